"""The plots of a use-case report: validation loss per epoch, test loss against lambda, t-SNE of the last hidden layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepsade.methods import method_names
from deepsade.usecases import get as get_usecase


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write and close one figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# The built-in methods keep their colours; methods registered later take the next tab10 colours.
_COLOURS = ["tab:red", "tab:gray", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
            "tab:olive", "tab:cyan"]


def method_colours() -> dict[str, str]:
    """One plot colour per registered method, in registry order (cycling after ten)."""
    return {m: _COLOURS[i % len(_COLOURS)] for i, m in enumerate(method_names())}


def write_plots(out: Path, results: list[dict[str, Any]]) -> list[tuple[Path, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok"]
    written: list[tuple[Path, str]] = []
    if not ok:
        return written
    name = ok[0]["usecase"]
    colours = method_colours()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in ok:
        curve = [np.nan if v is None else v for v in r.get("val_loss_curve") or []]
        if curve:
            ax.plot(range(1, len(curve) + 1), curve, color=colours.get(r["method"], "black"), alpha=0.85, lw=1.2,
                    label=r["method"] if r["fold"] == ok[0]["fold"] else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation data loss")
    ax.set_yscale("log")
    ax.set_title(f"{name}: validation loss per epoch (baselines: chosen lambda; one line per fold)")
    ax.legend()
    path = _save(plt, fig, out / "val_loss.png")
    written.append((path, "validation data loss per epoch, per method and fold (DeepSaDe: the "
                          "constraint-satisfying snapshot of each epoch)"))

    curves = [r for r in ok if r.get("lambda_curve")]
    deepsade = [r["test_loss"] for r in ok if r["method"] == "deepsade"]
    if curves and any(r["method"] == "sl" for r in curves):
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in ("sl", "sbr", "reg"):
            runs = [r for r in curves if r["method"] == method]
            if not runs:
                continue
            lambdas = [p["lambda"] for p in runs[0]["lambda_curve"]]
            losses = np.mean([[p["test_loss"] for p in r["lambda_curve"]] for r in runs], axis=0)
            style = "-o" if method == "sl" else "--."
            ax.plot(lambdas, losses, style, color=colours[method], label=f"{method} (test loss)")
        if deepsade:
            ax.axhline(float(np.mean(deepsade)), color=colours["deepsade"], lw=2, label="DeepSaDe (test loss)")
        ax.set_xlabel("lambda (weight of the constraint loss)")
        ax.set_ylabel("test data loss, mean over folds")
        figure = get_usecase(name).paper_figures.get("lambda_test_loss")
        ax.set_title(f"{name}: test loss against lambda" + (f" (paper's {figure})" if figure else ""))
        ax.legend()
        path = _save(plt, fig, out / "lambda_test_loss.png")
        written.append((path, "test data loss of the semantic-loss (and other penalty) models against lambda, "
                              "DeepSaDe as a horizontal line" + (f" (the paper's {figure})" if figure else "")))

    hidden = [r for r in ok if r.get("test_hidden") and r["fold"] == ok[0]["fold"]]
    tsne_figure = get_usecase(name).paper_figures.get("tsne_hidden")
    if hidden and tsne_figure:
        from sklearn.manifold import TSNE

        fig, axes = plt.subplots(1, len(hidden), figsize=(3.6 * len(hidden), 3.6), squeeze=False)
        for ax, r in zip(axes[0], hidden, strict=True):
            points = np.asarray(r["test_hidden"], dtype=float)
            premise = np.asarray(r["test_premise"], dtype=bool)
            perplexity = float(min(30, max(2, (len(points) - 1) // 3)))
            embedded = TSNE(n_components=2, perplexity=perplexity, random_state=0, init="pca").fit_transform(points)
            ax.scatter(*embedded[~premise].T, s=6, c="tab:gray", alpha=0.6, label="premise false")
            ax.scatter(*embedded[premise].T, s=10, c="tab:red", alpha=0.9, label="premise true (Beatles)")
            ax.set_title(r["method"])
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][0].legend(loc="best", fontsize=7)
        fig.suptitle(f"{name}: t-SNE of the last hidden layer on the test rows of fold {ok[0]['fold']}")
        path = _save(plt, fig, out / "tsne_hidden.png")
        written.append((path, "t-SNE of the last hidden layer of every model on the test rows, coloured by the "
                              f"rule's premise (the paper's {tsne_figure})"))
    return written
