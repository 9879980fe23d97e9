"""A 1,000,000-row CSV loads and is checked within a bounded amount of memory (slow: run with -m slow)."""

from __future__ import annotations

import resource

import pytest

from tests.conftest import run_cli

PEAK_LIMIT_MIB = 2048  # measured: about 0.7 GiB for read_csv + prepare (results/bench_memory.md)


@pytest.mark.slow
def test_one_million_rows_check_within_memory(tmp_path):
    from deepsade import usecases

    case = usecases.get("UC1")
    block = case.generate(100_000, seed=0)
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as handle:
        block.to_csv(handle, index=False)
        for _ in range(9):
            block.to_csv(handle, index=False, header=False)
    targets = [arg for t in case.targets for arg in ("--target", t)]
    result = run_cli("check", str(case.constraint_path), str(path), *targets, timeout=600)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert result.returncode == 0, result.stderr
    assert "data: 1000000 rows used" in result.stdout
    assert peak_mib < PEAK_LIMIT_MIB, f"peak resident memory {peak_mib:.0f} MiB"
    print(f"peak RSS of `deepsade check` on 1,000,000 rows: {peak_mib:.0f} MiB")
