"""Predictions of a stored model: the float32 network evaluated in float64, in raw units, with the rows
inside the domain box (where the certificate's guarantee holds) flagged."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from deepsade import artifact as artifact_io
from deepsade.errors import UserInputError


def raw_outputs(art: artifact_io.ModelArtifact, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The network's outputs in raw units (regression targets, classifier scores) for rows without missing
    inputs, and the mask of rows inside the domain box (where the guarantee holds)."""
    enc = art.encoding
    raw = enc.encode_inputs(frame)
    return enc.outputs_to_raw(forward_float64(art.model, enc.scale_inputs(raw))), art.domain.contains(raw)


def forward_float64(model: torch.nn.Module, scaled_inputs: np.ndarray) -> np.ndarray:
    """The stored float32 network evaluated in float64: much closer to the exact network the certificate
    covers than a float32 pass (``float_error.float32_error_bound`` bounds both), and the same for a row
    whatever batch it comes in."""
    wide = copy.deepcopy(model).double()
    with torch.no_grad():
        return wide(torch.as_tensor(np.asarray(scaled_inputs, dtype=np.float64))).numpy()


def predictions_frame(art: artifact_io.ModelArtifact, frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions in raw units for every row; rows with missing inputs get NaN; ``in_domain`` flags D."""
    enc = art.encoding
    missing_cols = [c for c in enc.feature_columns if c not in frame.columns]
    if missing_cols:
        raise UserInputError(f"input column(s) missing from the data: {', '.join(map(repr, missing_cols))}")
    usable = ~frame[enc.feature_columns].isna().any(axis=1).to_numpy()
    scores = np.full((len(frame), len(enc.output_names)), np.nan)
    inside = np.zeros(len(frame), dtype=bool)
    if usable.any():
        scores[usable], inside[usable] = raw_outputs(art, frame.loc[usable])
    result = pd.DataFrame(index=frame.index)
    if enc.task == "regression":
        for k, name in enumerate(enc.output_names):
            result[f"predicted_{name}"] = scores[:, k]
    else:
        for k, name in enumerate(enc.output_names):
            result[f"score_{name}"] = scores[:, k]
        if enc.task == "binary":
            decision = np.where(scores[:, 0] > 0, enc.classes[1], enc.classes[0])
            result[f"predicted_{enc.target_columns[0]}"] = np.where(usable, decision, None)
        elif enc.task == "multiclass":
            best = np.nanargmax(np.where(usable[:, None], scores, 0.0), axis=1)
            result[f"predicted_{enc.target_columns[0]}"] = np.where(usable, np.asarray(enc.classes)[best], None)
        else:
            for k, name in enumerate(enc.output_names):
                result[f"predicted_{name}"] = np.where(usable, (scores[:, k] > 0).astype(int), -1)
    result["in_domain"] = inside
    return result
