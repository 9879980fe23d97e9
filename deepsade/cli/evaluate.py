"""``deepsade evaluate MODEL_DIR DATA.csv``: the metrics of any saved model (every method) on a CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from deepsade.artifact import load
from deepsade.cli.common import user_errors, warn_if_altered
from deepsade.errors import UserInputError
from deepsade.ingest import IMPUTE_CHOICES, fill_with, prepare, read_csv
from deepsade.metrics import evaluate_model

_LABELS = {
    "mse": "MSE (raw units, mean over targets)",
    "accuracy": "accuracy",
    "coherent_accuracy": "coherent accuracy (all labels right)",
    "flattened_accuracy": "flattened accuracy (per label)",
    "jaccard": "Jaccard index",
}


def _format(value: Any) -> str:
    if value is None:
        return "n/a (no row qualifies)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@click.command("evaluate")
@click.argument("model_dir", metavar="MODEL_DIR", type=click.Path(file_okay=False))
@click.argument("data_file", metavar="DATA.csv", type=click.Path(dir_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the metrics as JSON to this file.")
@click.option("--impute", type=click.Choice(IMPUTE_CHOICES), default="drop", show_default=True,
              help="Missing inputs: drop the rows, or fill them: with the training data's values when the model "
                   "was trained with --impute, else with this file's column median / mode.")
@user_errors
def evaluate(model_dir: str, data_file: str, out_file: str | None, impute: str) -> None:
    """Measure a saved model on DATA.csv: quality, corrected quality and constraint violations."""
    artifact = load(model_dir)
    warn_if_altered(artifact)
    enc = artifact.encoding
    frame = read_csv(data_file)
    stored = artifact.training.get("imputation") or {}
    filled = 0
    if impute != "drop" and stored.get("values"):  # the training data's values, as the model was trained with
        frame, filled = fill_with(frame, stored["values"])
    data = prepare(frame, list(enc.target_columns), list(enc.feature_columns), enc.task, impute=impute,
                   encoding=enc, domain=artifact.domain)
    metrics = evaluate_model(artifact, data)
    echo = click.echo
    note = artifact.certificate.get("note")
    echo(f"model: {model_dir} (method {artifact.method}); certificate: {metrics['certificate']}"
         + (f" ({note})" if note else ""))
    echo(f"data: {data.n_rows} rows used, {data.rows_dropped} dropped for missing values"
         + (f", {data.rows_imputed} imputed" if data.rows_imputed else ""))
    if filled:
        echo(f"note: {filled} row(s) with missing inputs filled with the training data's values (the model was "
             f"trained with --impute {stored.get('method')}); --impute drop leaves them out")
    if data.imputation_note():
        echo(f"note: {data.imputation_note()} (this file's own values)")
    echo(f"rows outside the domain box: {metrics['rows_outside_domain']} of {data.n_rows}"
         + (" (any guarantee covers the box only)" if metrics["rows_outside_domain"] else ""))
    echo(f"rows whose true labels violate the constraint: {metrics['label_violating_rows']}"
         " (left out of the corrected metrics)")
    for key, label in _LABELS.items():
        if key in metrics:
            echo(f"{label}: {_format(metrics[key])}  corrected: {_format(metrics[key + '_corrected'])}")
    if "mse_per_target" in metrics and metrics["mse_per_target"]:
        r2, r2_corrected = metrics.get("r2_per_target") or {}, metrics.get("r2_per_target_corrected") or {}
        for name, value in metrics["mse_per_target"].items():
            echo(f"  MSE {name}: {value:.6g}  corrected: {_format((metrics['mse_per_target_corrected'] or {}).get(name))}"
                 f"  (R^2 {_format(r2.get(name))}, corrected {_format(r2_corrected.get(name))})")
    echo(f"constraint accuracy (predictions satisfying every assert): {_format(metrics['constraint_accuracy'])}")
    echo(f"rows whose prediction violates the constraint: {metrics['violating_rows']}"
         f" (per assert: {', '.join(map(str, metrics['violations_per_assert']))})")
    if out_file:
        path = Path(out_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UserInputError(f"cannot write {path}: {exc.strerror}") from None
        echo(f"metrics written to {path}")
