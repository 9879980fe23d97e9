"""The report's plots: one mean line and band per method, quality against AdI, error bars over folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepsade.usecases.plots import mean_and_spread, write_plots

pytest.importorskip("matplotlib")


def _result(method: str, fold: int, curve: list[float | None], adi: float, accuracy: float) -> dict:
    return {"usecase": "UC2", "method": method, "fold": fold, "status": "ok", "val_loss_curve": curve,
            "test_loss": 0.5, "test": {"accuracy_corrected": accuracy},
            "adi": {"per_epsilon": [{"epsilon": 0.1, "adi": adi}, {"epsilon": 0.01, "adi": adi / 2}]},
            "lambda_curve": [{"lambda": lam, "test_loss": 0.4 + fold * lam} for lam in (0.1, 0.5, 0.9)]
            if method == "sl" else None}


def test_mean_and_band_over_folds_of_unequal_length() -> None:
    mean, low, high = mean_and_spread([[1.0, 2.0, 3.0], [3.0, None], [2.0]])
    assert np.allclose(mean, [2.0, 2.0, 3.0])
    assert np.allclose(high - mean, [np.std([1.0, 3.0, 2.0]), 0.0, 0.0])
    assert np.allclose(mean - low, high - mean)


def test_report_plots_one_line_per_method_and_quality_against_adi(tmp_path: Path) -> None:
    results = [_result(m, k, [1.0 + k, 0.9, 0.8], adi, acc) for k in (1, 2, 3)
               for m, adi, acc in (("deepsade", 0.0, 0.8), ("ffn", 0.2, 0.7), ("sl", 0.1, 0.75))]
    import matplotlib.pyplot as plt

    lines_per_axes = []
    original = plt.Figure.savefig

    def spy(fig, path, *args, **kwargs):
        lines_per_axes.append((Path(path).name, [len(ax.get_lines()) for ax in fig.axes],
                               [len(ax.containers) for ax in fig.axes]))
        return original(fig, path, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        written = write_plots(tmp_path, results)
    finally:
        plt.Figure.savefig = original
    names = [p.name for p, _ in written]
    assert names == ["val_loss.png", "lambda_test_loss.png", "quality_vs_adi.png"]
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)
    seen = {name: (lines, containers) for name, lines, containers in lines_per_axes}
    assert seen["val_loss.png"][0] == [3]  # three methods, one mean line each (not nine fold curves)
    assert seen["lambda_test_loss.png"][1][0] >= 1  # the sl curve is drawn with error bars
    assert seen["quality_vs_adi.png"][1] == [3, 3]  # one point with error bars per method and radius
