"""Metrics shared by every method: prediction quality, "corrected" quality and constraint satisfaction.

- Quality per task: regression MSE in raw units (per target and their mean); binary / multiclass
  accuracy; multi-label coherent accuracy (every label of a row right), flattened accuracy (per
  label) and Jaccard index (per row ``|pred & true| / |pred | true|``, 1 when both are empty,
  averaged over rows).
- Corrected variants (suffix ``_corrected``): the same, on the rows whose TRUE labels satisfy the
  constraint only (rows that break the rule on purpose are not held against a model that obeys it).
  None when no row qualifies.
- Constraint satisfaction of the predictions (raw outputs, every assert): ``constraint_accuracy``
  (fraction of rows whose prediction satisfies all asserts), ``violating_rows`` and
  ``violations_per_assert``.

Decisions: a binary or multi-label score > 0 means the positive label; multiclass takes the argmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepsade.artifact import ModelArtifact
from deepsade.data import TabularData
from deepsade.network import SkipMLP
from deepsade.spec import Spec, parse_spec_text


def predict_outputs(model: SkipMLP, inputs: np.ndarray) -> np.ndarray:
    """Network outputs (scaled values or scores), float64 (n, k), computed in float32 as stored."""
    with torch.no_grad():
        return model(torch.as_tensor(inputs, dtype=torch.float32)).to(torch.float64).numpy()


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def quality_metrics(task: str, targets: np.ndarray, outputs: np.ndarray, encoding: Any = None,
                    output_names: list[str] | None = None) -> dict[str, Any]:
    """Quality of ``outputs`` (network units) against ``targets`` (network units), per task.

    Regression needs ``encoding`` to report raw units."""
    if task == "regression":
        raw_out = encoding.outputs_to_raw(outputs)
        raw_true = encoding.outputs_to_raw(targets)
        if len(raw_out) == 0:
            return {"mse": None, "mse_per_target": None, "r2_per_target": None}
        per_target = ((raw_out - raw_true) ** 2).mean(axis=0)
        names = output_names or [str(k) for k in range(len(per_target))]
        # R^2 per target: scale-free, so a worse small-scale target shows where the raw mean over targets
        # is dominated by a large-scale one (None: fewer than two rows, or a constant target)
        spread = ((raw_true - raw_true.mean(axis=0)) ** 2).mean(axis=0)
        r2 = [1.0 - m / v if len(raw_true) > 1 and v > 0 else None for m, v in zip(per_target, spread, strict=True)]
        return {"mse": float(per_target.mean()),
                "mse_per_target": {name: float(v) for name, v in zip(names, per_target, strict=True)},
                "r2_per_target": {name: None if v is None else float(v) for name, v in zip(names, r2, strict=True)}}
    if task == "binary":
        predicted = np.asarray(outputs)[:, 0] > 0
        return {"accuracy": _mean_or_none(predicted == (targets.reshape(-1) > 0.5))}
    if task == "multiclass":
        return {"accuracy": _mean_or_none(outputs.argmax(axis=1) == np.asarray(targets).reshape(-1))}
    predicted, truth = outputs > 0, np.asarray(targets) > 0.5
    union = (predicted | truth).sum(axis=1)
    jaccard = np.where(union > 0, (predicted & truth).sum(axis=1) / np.maximum(union, 1), 1.0)
    return {
        "coherent_accuracy": _mean_or_none((predicted == truth).all(axis=1)),
        "flattened_accuracy": float((predicted == truth).mean()) if predicted.size else None,
        "jaccard": _mean_or_none(jaccard),
    }


def compute_metrics(spec: Spec, data: TabularData, outputs: np.ndarray) -> dict[str, Any]:
    """Every metric of ``outputs`` (network units, one row per data row) on ``data`` under ``spec``."""
    encoding = data.encoding
    task = encoding.task
    label_truth = spec.evaluate_raw(data.raw_inputs, data.label_scores())
    prediction_truth = spec.evaluate_raw(data.raw_inputs, encoding.outputs_to_raw(outputs))
    clean = label_truth.all(axis=1)
    satisfied = prediction_truth.all(axis=1)
    metrics: dict[str, Any] = {
        "task": task,
        "n_rows": data.n_rows,
        "rows_outside_domain": int((~data.domain.contains(data.raw_inputs)).sum()),
        "label_violating_rows": int((~clean).sum()),
    }
    metrics.update(quality_metrics(task, data.targets, outputs, encoding, encoding.output_names))
    corrected = quality_metrics(task, data.targets[clean], outputs[clean], encoding, encoding.output_names)
    metrics.update({f"{key}_corrected": value for key, value in corrected.items()})
    metrics.update({
        "constraint_accuracy": _mean_or_none(satisfied),
        "violating_rows": int((~satisfied).sum()),
        "violations_per_assert": [int(v) for v in (~prediction_truth).sum(axis=0)],
    })
    return metrics


def evaluate_model(artifact: ModelArtifact, data: TabularData) -> dict[str, Any]:
    """Metrics of a saved model on data prepared with its own encoding, plus its method and certificate verdict.

    The outputs are what ``predict`` returns (the stored float32 weights evaluated in float64), so an equality
    the exact network keeps is not reported broken by float32 rounding."""
    from deepsade.prediction import forward_float64

    spec = parse_spec_text(artifact.constraint_text, artifact.encoding)
    metrics = compute_metrics(spec, data, forward_float64(artifact.model, data.inputs))
    return {"method": artifact.method, "certificate": artifact.certificate.get("verdict", "none"), **metrics}
