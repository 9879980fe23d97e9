"""The plots of a use-case report: validation loss per epoch (mean and band over folds per method), test loss
against lambda (with error bars over folds), the main metric against AdI per method (the project's central
claim: quality is not bought with broken rules), t-SNE of the last hidden layer."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from deepsade.methods import method_names
from deepsade.usecases import get as get_usecase
from deepsade.usecases.results import method_order

METRIC_NAMES = {"mse": "MSE", "accuracy": "accuracy", "coherent_accuracy": "coherent accuracy",
                "flattened_accuracy": "flattened accuracy", "jaccard": "Jaccard index"}


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

    written += _val_loss_plot(plt, out, name, ok, colours)
    written += _lambda_plot(plt, out, name, ok, colours)
    written += _quality_against_adi_plot(plt, out, name, ok, colours)

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


def mean_and_spread(curves: list[list[float | None]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position: the mean over the curves and the mean -/+ one standard deviation (shorter curves and None
    count as missing; a position that only one curve reaches has no spread)."""
    length = max((len(c) for c in curves), default=0)
    table = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        table[i, : len(curve)] = [np.nan if v is None else v for v in curve]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing epoch gives NaN, drawn as a gap
        mean, spread = np.nanmean(table, axis=0), np.nanstd(table, axis=0)
    return mean, mean - spread, mean + spread


def _val_loss_plot(plt, out: Path, name: str, ok: list[dict[str, Any]], colours: dict[str, str]):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for method in method_order({r["method"] for r in ok}):
        curves = [r.get("val_loss_curve") or [] for r in ok if r["method"] == method]
        curves = [c for c in curves if c]
        if not curves:
            continue
        mean, low, high = mean_and_spread(curves)
        epochs = np.arange(1, len(mean) + 1)
        colour = colours.get(method, "black")
        ax.plot(epochs, mean, color=colour, lw=1.6, label=f"{method} (mean of {len(curves)} folds)")
        # a log axis cannot show a non-positive lower edge: cut it at a tenth of the mean
        ax.fill_between(epochs, np.maximum(low, mean / 10), high, color=colour, alpha=0.15, lw=0)
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation data loss")
    ax.set_yscale("log")
    ax.set_title(f"{name}: validation loss per epoch (line: mean over folds; band: ± 1 sd)", fontsize=10)
    ax.legend(fontsize=8)
    path = _save(plt, fig, out / "val_loss.png")
    return [(path, "validation data loss per epoch: the mean over folds per method with a ± 1 standard "
                   "deviation band (DeepSaDe: the constraint-satisfying snapshot of each "
                   "epoch; baselines: the chosen lambda)")]


def _lambda_plot(plt, out: Path, name: str, ok: list[dict[str, Any]], colours: dict[str, str]):
    curves = [r for r in ok if r.get("lambda_curve")]
    deepsade = [r["test_loss"] for r in ok if r["method"] == "deepsade"]
    if not (curves and any(r["method"] == "sl" for r in curves)):
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in ("sl", "sbr", "reg"):
        runs = [r for r in curves if r["method"] == method]
        if not runs:
            continue
        lambdas = [p["lambda"] for p in runs[0]["lambda_curve"]]
        losses = np.array([[p["test_loss"] for p in r["lambda_curve"]] for r in runs], dtype=float)
        spread = losses.std(axis=0) if len(runs) > 1 else np.zeros(len(lambdas))
        style = "-o" if method == "sl" else "--."
        ax.errorbar(lambdas, losses.mean(axis=0), yerr=spread, fmt=style, color=colours[method], capsize=3,
                    label=f"{method} (test loss, {len(runs)} folds)")
    if deepsade:
        level = float(np.mean(deepsade))
        ax.axhline(level, color=colours["deepsade"], lw=2, label=f"DeepSaDe (test loss, {len(deepsade)} folds)")
        if len(deepsade) > 1:
            ax.axhspan(level - float(np.std(deepsade)), level + float(np.std(deepsade)), color=colours["deepsade"],
                       alpha=0.12, lw=0)
    ax.set_xlabel("lambda (weight of the constraint loss)")
    ax.set_ylabel("test data loss, mean over folds (bars: ± 1 sd)")
    figure = get_usecase(name).paper_figures.get("lambda_test_loss")
    ax.set_title(f"{name}: test loss against lambda" + (f" (paper's {figure})" if figure else ""))
    ax.legend(fontsize=8)
    path = _save(plt, fig, out / "lambda_test_loss.png")
    return [(path, "test data loss of the semantic-loss (and other penalty) models against lambda, mean over folds "
                   "with ± 1 standard deviation bars; DeepSaDe as a horizontal line with its ± 1 sd band"
                   + (f" (the paper's {figure})" if figure else ""))]


def _quality_against_adi_plot(plt, out: Path, name: str, ok: list[dict[str, Any]], colours: dict[str, str]):
    """One panel per AdI radius: the use case's main metric (corrected) against AdI, one point per method
    (mean over folds, ± 1 sd bars both ways) and the folds as faint dots."""
    with_adi = [r for r in ok if r.get("adi")]
    if not with_adi:
        return []
    metric = get_usecase(name).metrics[0]
    epsilons = [e["epsilon"] for e in with_adi[0]["adi"]["per_epsilon"]]
    fig, axes = plt.subplots(1, len(epsilons), figsize=(4.4 * len(epsilons), 3.9), squeeze=False)
    for panel, (ax, eps) in enumerate(zip(axes[0], epsilons, strict=True)):
        for method in method_order({r["method"] for r in with_adi}):
            points = []
            for r in with_adi:
                if r["method"] != method or panel >= len(r["adi"]["per_epsilon"]):
                    continue
                adi, quality = r["adi"]["per_epsilon"][panel]["adi"], r["test"].get(f"{metric}_corrected")
                if adi is not None and quality is not None:
                    points.append((adi, quality))
            if not points:
                continue
            xy = np.array(points, dtype=float)
            colour = colours.get(method, "black")
            ax.scatter(xy[:, 0], xy[:, 1], s=10, color=colour, alpha=0.3)
            sd = xy.std(axis=0) if len(xy) > 1 else np.zeros(2)
            ax.errorbar(xy[:, 0].mean(), xy[:, 1].mean(), xerr=sd[0], yerr=sd[1], fmt="o", ms=7, color=colour,
                        capsize=3, label=f"{method} ({len(xy)} folds)")
        ax.set_xlabel(f"AdI at eps = {eps:g} (scaled units)")
        ax.set_ylabel(f"test {METRIC_NAMES.get(metric, metric)} (corrected)")
        ax.set_xlim(-0.05, 1.05)
        ax.set_title(f"eps = {eps:g}", fontsize=10)
        if metric == "mse":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    better = "lower" if metric == "mse" else "higher"
    fig.suptitle(f"{name}: quality against rule-breaking near the data (left is safer, {better} is better)",
                 fontsize=10)
    path = _save(plt, fig, out / "quality_vs_adi.png")
    return [(path, f"test {METRIC_NAMES.get(metric, metric)} (corrected) against the Adversity Index, one panel per "
                   "radius: per method the mean over folds with ± 1 sd bars, each fold a faint dot; a certified "
                   "model sits at AdI 0")]
