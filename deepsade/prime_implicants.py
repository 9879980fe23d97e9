"""Prime implicants of a Boolean function given by its minterms (Quine-McCluskey), and a small cover.

A cube fixes some bits and leaves the others free; it is an implicant when every completion is a
minterm, and prime when no larger cube is. Here a cube over ``n_bits`` bits is a pair ``(free, value)``
of bit masks: the free bits, and the values of the fixed ones (``value & free == 0``). Two users: the
sign-pattern strategy (the cubes of the asserts' truth table) and the violation DNF (the breaking sign
patterns of an ``ite``-count conclusion, merged into few disjuncts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

Cube = tuple[int, int]  # (mask of free bits, values of the fixed bits)
FREE_BIT = 2  # in a cube written as a tuple of bits: 0 or 1 fixed, 2 free


def prime_implicants(minterms: Iterable[int], n_bits: int, max_generated: int | None = None) -> list[Cube] | None:
    """Every prime implicant of the function true exactly on ``minterms``, smallest cubes first (each size
    sorted); None when merging generates more than ``max_generated`` cubes."""
    current = {(0, int(m)) for m in minterms}
    primes: list[Cube] = []
    generated = len(current)
    while current:
        merged: set[Cube] = set()
        larger: set[Cube] = set()
        for free, value in current:
            for j in range(n_bits):
                bit = 1 << j
                if free & bit or value & bit:
                    continue
                partner = (free, value | bit)
                if partner in current:
                    larger.add((free | bit, value))
                    merged.update(((free, value), partner))
        primes += sorted(current - merged)
        generated += len(larger)
        if max_generated is not None and generated > max_generated:
            return None
        current = larger
    return primes


def _as_bits(cube: Cube, n_bits: int) -> tuple[int, ...]:
    free, value = cube
    return tuple(FREE_BIT if free >> j & 1 else value >> j & 1 for j in range(n_bits))


def _points(cube: tuple[int, ...]) -> set[tuple[int, ...]]:
    """Every completion of a cube written as bits."""
    free = [i for i, b in enumerate(cube) if b == FREE_BIT]
    out = set()
    for bits in itertools.product((0, 1), repeat=len(free)):
        point = list(cube)
        for i, b in zip(free, bits, strict=True):
            point[i] = b
        out.add(tuple(point))
    return out


def prime_cover(minterms: set[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """A small set of cubes (tuples of bits: 0/1 fixed, ``FREE_BIT`` free) whose union is exactly the
    minterms (tuples of 0/1, all of one length): the prime implicants, then a greedy cover that takes the
    cube covering most of what is left (ties: the smallest tuple)."""
    if not minterms:
        return []
    n_bits = len(next(iter(minterms)))
    as_ints = [sum(b << i for i, b in enumerate(m)) for m in minterms]
    primes = [_as_bits(cube, n_bits) for cube in prime_implicants(as_ints, n_bits)]
    coverage = {cube: _points(cube) for cube in primes}
    uncovered, chosen = set(minterms), []
    while uncovered:
        best = max(sorted(coverage), key=lambda c: len(coverage[c] & uncovered))
        chosen.append(best)
        uncovered -= coverage[best]
    return chosen
