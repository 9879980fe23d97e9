"""Prime implicants and the greedy cover (``deepsade.prime_implicants``), against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepsade.prime_implicants import FREE_BIT, prime_cover, prime_implicants


def _implicant(free: int, value: int, truth: np.ndarray, n_bits: int) -> bool:
    return all(truth[m] for m in range(2 ** n_bits) if m & ~free == value)


@pytest.mark.parametrize("seed", range(12))
def test_prime_implicants_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_bits = int(rng.integers(1, 6))
    truth = rng.random(2 ** n_bits) < rng.uniform(0.2, 0.9)
    primes = prime_implicants(list(np.nonzero(truth)[0]), n_bits)
    # every cube (3**n) that is an implicant and not inside a larger implicant
    expected = set()
    for free in range(2 ** n_bits):
        for value in range(2 ** n_bits):
            if value & free or not _implicant(free, value, truth, n_bits):
                continue
            larger = any(_implicant(free | 1 << j, value & ~(1 << j), truth, n_bits)
                         for j in range(n_bits) if not free >> j & 1)
            if not larger:
                expected.add((free, value))
    assert set(primes) == expected



def test_prime_implicants_give_up_past_the_cap():
    everything = range(2 ** 6)  # one prime, after all 3**6 cubes were generated
    assert prime_implicants(everything, 6) == [(2 ** 6 - 1, 0)]
    assert prime_implicants(everything, 6, max_generated=100) is None


@pytest.mark.parametrize("seed", range(8))
def test_prime_cover_is_exactly_the_minterms_and_made_of_primes(seed):
    rng = np.random.default_rng(seed)
    n_bits = int(rng.integers(1, 7))
    minterms = {p for p in itertools.product((0, 1), repeat=n_bits) if rng.random() < 0.6}
    cover = prime_cover(minterms)
    union = set()
    for cube in cover:
        free = [i for i, b in enumerate(cube) if b == FREE_BIT]
        for bits in itertools.product((0, 1), repeat=len(free)):
            point = list(cube)
            for i, b in zip(free, bits):
                point[i] = b
            union.add(tuple(point))
    assert union == minterms
    primes = prime_implicants([sum(b << i for i, b in enumerate(m)) for m in minterms], n_bits) or []
    as_bits = {tuple(FREE_BIT if f >> j & 1 else v >> j & 1 for j in range(n_bits)) for f, v in primes}
    assert set(cover) <= as_bits and len(cover) == len(set(cover))


def test_prime_cover_of_nothing_is_empty():
    assert prime_cover(set()) == []
