"""From a raw table to ``TabularData``: reading the CSV, the roles (inputs / targets), missing values, and
fitting the encoding and the domain box on the training rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from deepsade.data import (
    MAX_RANGE,
    TASKS,
    Domain,
    Encoding,
    TabularData,
    default_domain,
    format_level,
    read_domain_override,
)
from deepsade.errors import UserInputError

IMPUTE_CHOICES = ("drop", "median", "mode")
_INDEX_COLUMN = re.compile(r"^Unnamed: \d+$")
_POSITIVE_WORDS = ("1", "y", "yes", "true", "t", "positive", "pos")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file with clear errors; drop an unnamed leading index column."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"data file not found: {path}")
    if path.is_dir():
        raise UserInputError(f"data path is a folder, not a CSV file: {path}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UserInputError(f"data file is empty: {path}") from None
    except UnicodeDecodeError as exc:
        raise UserInputError(f"data file {path} is not UTF-8 text (byte {exc.start}): re-save it as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise UserInputError(f"cannot parse {path} as CSV: {str(exc).strip()}") from None
    if len(frame.columns) and str(frame.columns[0]).lstrip().startswith(("(declare", "(assert", "(define", ";")):
        raise UserInputError(f"{path} is not a CSV: it reads like an SMT-LIB rule file (first line "
                             f"{str(frame.columns[0])[:40]!r}); are the rule file and the data swapped?")
    return drop_index_columns(frame)


def drop_index_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop columns pandas names 'Unnamed: N' (a row index written without a header)."""
    index_like = [c for c in frame.columns if _INDEX_COLUMN.match(str(c))]
    return frame.drop(columns=index_like)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def infer_task(frame: pd.DataFrame, targets: list[str]) -> str:
    """Guess the task from the target columns (a user can always say --task)."""
    if len(targets) > 1:
        if all(set(frame[t].dropna().unique()) <= {0, 1} for t in targets):
            return "multilabel"
        if all(_is_numeric(frame[t]) for t in targets):
            return "regression"
        raise UserInputError(
            "several targets given but they are neither all numeric (regression) nor all 0/1 (multilabel): "
            "pass --task"
        )
    column = frame[targets[0]].dropna()
    if column.nunique() == 2:
        return "binary"
    if _is_numeric(column):
        return "regression"
    return "multiclass"


IDENTIFIER_MIN_ROWS = 20  # below this a text column unique per row may just be a small table's labels


def _is_identifier(series: pd.Series) -> bool:
    """A text column whose present values all differ (an id, a timestamp) over at least IDENTIFIER_MIN_ROWS
    rows: as a default input it would be one-hot into one input per row. Judged on the rows as read, before
    missing values are dropped or imputed (an imputed id would repeat the mode and look categorical)."""
    present = series.dropna()
    return not _is_numeric(series) and len(present) >= IDENTIFIER_MIN_ROWS and present.is_unique


def fit_encoding(
    frame: pd.DataFrame,
    targets: list[str],
    features: list[str] | None = None,
    task: str | None = None,
    positive: str | None = None,
    identifiers: list[str] | None = None,
) -> Encoding:
    """Decide roles and fit the encoding on ``frame`` (already free of missing values). ``identifiers``: the
    columns ``prepare`` left out of the default inputs as identifiers (recorded in the encoding)."""
    identifiers = list(identifiers or [])
    if not targets:
        raise UserInputError("name at least one target column with --target")
    unknown = [c for c in targets + list(features or []) if c not in frame.columns]
    if unknown:
        raise UserInputError(
            f"unknown column(s): {', '.join(map(repr, unknown))}; the data has: {', '.join(map(str, frame.columns))}"
        )
    if len(frame) < 2:
        raise UserInputError(f"only {len(frame)} usable row: at least 2 are needed to fit the scaling and the "
                             "domain box (min and max of every column)")
    if features is None:
        features = [c for c in frame.columns if c not in targets]
    overlap = set(features) & set(targets)
    if overlap:
        raise UserInputError(f"column(s) used both as input and target: {sorted(overlap)}")
    if not features:
        raise UserInputError("no input columns left after removing the targets"
                             + (f" and the identifier column(s) {', '.join(map(repr, identifiers))} (text holding a "
                                "different value in every row; name them with --features to use them)"
                                if identifiers else ""))
    task = task or infer_task(frame, targets)
    if task not in TASKS:
        raise UserInputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")

    constant = {c: format_level(frame[c].iloc[0]) for c in features if frame[c].nunique() < 2}
    if len(constant) == len(features):
        raise UserInputError(f"every input column is constant in the data ({', '.join(map(repr, constant))}): "
                             "there is nothing to learn from")
    features = [c for c in features if c not in constant]  # one value: no information, no range to scale

    categorical_levels: dict[str, list[str]] = {}
    input_names: list[str] = []
    integer_inputs: list[str] = []
    for column in features:
        series = frame[column]
        if _is_numeric(series):
            input_names.append(column)
            values = series.to_numpy(dtype=np.float64)
            if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
                integer_inputs.append(column)
        else:
            levels = sorted({format_level(v) for v in series})
            categorical_levels[column] = levels
            input_names.extend(f"{column}={level}" for level in levels)

    encoding = Encoding(
        feature_columns=list(features),
        categorical_levels=categorical_levels,
        input_names=input_names,
        target_columns=list(targets),
        task=task,
        output_names=[],
        input_min=[],
        input_max=[],
        integer_inputs=integer_inputs,
        constant_columns=constant or None,
        identifier_columns=identifiers or None,
    )
    raw_inputs = encoding.encode_inputs(frame)
    if not np.all(np.isfinite(raw_inputs)):
        bad = [input_names[j] for j in np.where(~np.isfinite(raw_inputs).all(axis=0))[0]]
        raise UserInputError(f"input column(s) hold inf values: {bad}")
    encoding.input_min = raw_inputs.min(axis=0).tolist()
    encoding.input_max = raw_inputs.max(axis=0).tolist()
    _check_range("input column", input_names, encoding.input_min, encoding.input_max)
    _fit_targets(encoding, frame, positive)
    return encoding


def _check_range(kind: str, names: list[str], lows: list[float], highs: list[float]) -> None:
    for name, low, high in zip(names, lows, highs, strict=True):
        with np.errstate(over="ignore"):
            span = np.float64(high) - np.float64(low)
        if not np.isfinite(span) or span > MAX_RANGE:
            raise UserInputError(f"{kind} {name!r} spans [{low:.6g}, {high:.6g}]: its range overflows the scaling "
                                 f"(max - min must stay below {MAX_RANGE:g}); rescale the column, e.g. divide it by "
                                 "a power of ten")


def _fit_targets(encoding: Encoding, frame: pd.DataFrame, positive: str | None) -> None:
    targets, task = encoding.target_columns, encoding.task
    if task == "regression":
        for column in targets:
            if not _is_numeric(frame[column]):
                raise UserInputError(f"target {column!r} is not numeric, so it cannot be a regression target")
        values = frame[targets].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise UserInputError("regression targets hold inf values")
        low, high = values.min(axis=0), values.max(axis=0)
        constant = [t for t, lo, hi in zip(targets, low, high, strict=False) if lo == hi]
        if constant:
            raise UserInputError(f"regression target(s) {constant} are constant: nothing to learn")
        encoding.target_min, encoding.target_max = low.tolist(), high.tolist()
        _check_range("regression target", targets, encoding.target_min, encoding.target_max)
        encoding.output_names = list(targets)
        return
    if task == "multilabel":
        for column in targets:
            values = set(frame[column].unique())
            if not values <= {0, 1}:
                raise UserInputError(f"multi-label target {column!r} must hold only 0/1, found {sorted(values)[:5]}")
        encoding.output_names = list(targets)
        return
    if len(targets) != 1:
        raise UserInputError(f"a {task} task takes exactly one target column, got {len(targets)}")
    column = targets[0]
    levels = sorted({format_level(v) for v in frame[column]})
    if len(levels) < 2:
        raise UserInputError(f"target {column!r} has a single class ({levels[0]!r}): nothing to learn")
    if task == "binary":
        if len(levels) != 2:
            raise UserInputError(f"binary target {column!r} has {len(levels)} classes: {levels}; use --task multiclass")
        if positive is None:
            words = [lv for lv in levels if lv.lower() in _POSITIVE_WORDS]
            positive = words[0] if len(words) == 1 else levels[1]
        positive = format_level(positive)
        if positive not in levels:
            raise UserInputError(f"--positive {positive!r} is not a class of {column!r} ({levels})")
        encoding.classes = [lv for lv in levels if lv != positive] + [positive]
        encoding.output_names = [column]
        return
    encoding.classes = levels
    encoding.output_names = [f"{column}={level}" for level in levels]


def fill_values(frame: pd.DataFrame, columns: list[str], impute: str) -> dict[str, float | str]:
    """What ``impute`` ('median' or 'mode') fills each of ``columns`` with, from ``frame``'s own values (a text
    column takes its most frequent value under 'median' too); columns with no value at all are left out. Kept
    with a model so that ``predict`` and ``evaluate`` fill new rows with the training data's values."""
    values: dict[str, float | str] = {}
    for column in columns:
        series = frame[column].dropna()
        if series.empty:
            continue
        if impute == "median" and _is_numeric(series):
            values[column] = float(series.median())
        else:
            mode = series.mode().iloc[0]
            values[column] = float(mode) if _is_numeric(series) else str(mode)
    return values


def fill_with(frame: pd.DataFrame, values: dict[str, float | str]) -> tuple[pd.DataFrame, int]:
    """``frame`` with the missing cells of each column in ``values`` filled with its value (a model's
    ``training.imputation``), and how many rows had a cell filled."""
    columns = [c for c in values if c in frame.columns]
    if not columns:
        return frame, 0
    filled = int(frame[columns].isna().any(axis=1).sum())
    if not filled:
        return frame, 0
    return frame.fillna({c: values[c] for c in columns}), filled


def handle_missing(frame: pd.DataFrame, columns: list[str], targets: list[str],
                   impute: str) -> tuple[pd.DataFrame, int, int, dict[str, str], dict[str, float | str]]:
    """Drop (default) or impute missing values in ``columns``; rows with a missing target are always dropped.

    Returns the cleaned frame, rows dropped, rows imputed, for each filled column what filled it (``--impute
    median`` fills a text column with its most frequent value, as ``mode`` does), and ``fill_values`` of every
    column (what a model keeps to fill new rows; empty when dropping)."""
    if impute not in IMPUTE_CHOICES:
        raise UserInputError(f"--impute must be one of {', '.join(IMPUTE_CHOICES)}")
    frame = frame.replace([np.inf, -np.inf], np.nan) if len(frame) else frame
    before = len(frame)
    frame = frame.dropna(subset=targets)
    imputed, fills, values = 0, {}, {}
    if impute == "drop":
        frame = frame.dropna(subset=columns)
    else:
        empty = [c for c in columns if frame[c].isna().all()]
        if empty and len(frame):
            raise UserInputError(f"column {empty[0]!r} has no value to impute from: every row is missing it")
        values = fill_values(frame, columns, impute)
        imputed = int(frame[columns].isna().any(axis=1).sum())
        frame = frame.copy()
        for column in columns:
            missing = int(frame[column].isna().sum())
            if not missing:
                continue
            fill, numeric = values[column], _is_numeric(frame[column])
            shown = f"{fill:.6g}" if numeric else repr(fill)
            rows = f"{missing} row{'s' if missing != 1 else ''}"
            median = impute == "median" and numeric
            fills[column] = (f"median {shown} ({rows})" if median else f"most frequent value {shown} ({rows}"
                             + ("; a text column has no median)" if impute == "median" else ")"))
            frame[column] = frame[column].fillna(fill)
    if frame.empty:
        raise UserInputError(
            f"no rows left after dropping rows with missing values ({before} had some); try --impute median"
        )
    return frame.reset_index(drop=True), before - len(frame), imputed, fills, values


def prepare(
    frame: pd.DataFrame,
    targets: list[str],
    features: list[str] | None = None,
    task: str | None = None,
    positive: str | None = None,
    impute: str = "drop",
    domain_file: str | Path | None = None,
    encoding: Encoding | None = None,
    domain: Domain | None = None,
) -> TabularData:
    """Frame -> TabularData. Fits the encoding unless one is given (then applies it, e.g. for test data)."""
    frame = drop_index_columns(frame)
    if frame.empty:
        raise UserInputError("the data has no rows")
    unknown = [c for c in list(targets) + list(features or []) if c not in frame.columns]
    if unknown:
        raise UserInputError(
            f"unknown column(s): {', '.join(map(repr, unknown))}; the data has: {', '.join(map(str, frame.columns))}"
        )
    used = list(features) if features is not None else [c for c in frame.columns if c not in targets]
    identifiers = [c for c in used if _is_identifier(frame[c])] if features is None and encoding is None else []
    used = [c for c in used if c not in identifiers]  # before missing values: a missing id costs no row
    frame, dropped, imputed, fills, fills_for_new_rows = handle_missing(frame, used, list(targets), impute)
    if encoding is None:
        encoding = fit_encoding(frame, list(targets), used, task, positive, identifiers)
    if domain is None:
        domain = read_domain_override(domain_file, encoding) if domain_file else default_domain(encoding)
    raw_inputs = encoding.encode_inputs(frame)
    return TabularData(
        encoding=encoding,
        domain=domain,
        raw_inputs=raw_inputs,
        inputs=encoding.scale_inputs(raw_inputs),
        targets=encoding.encode_targets(frame),
        frame=frame,
        rows_dropped=dropped,
        rows_imputed=imputed,
        imputed_values=fills,
        fill_values=fills_for_new_rows,
    )
