"""The scikit-learn estimators: ``fit(X, y)`` over arrays or DataFrames, trained and certified as ``DeepSaDe``.

    reg = DeepSaDeRegressor("rules.smt2", features=["x1", "x2"], targets=["y"], epochs=20)
    reg.fit(X, y)                   # arrays or DataFrames; trains, then certifies the stored float32 weights
    reg.certificate_["verdict"]     # "certified"
    reg.predict(X_new); reg.in_domain(X_new); reg.score(X_test, y_test)   # R^2 (accuracy for the classifier)

``DeepSaDeRegressor`` and ``DeepSaDeClassifier`` follow scikit-learn's conventions (``clone``,
``GridSearchCV``, pipelines, ``check_estimator``). They share their hyper-parameters, and their names, with
``deepsade.estimator.DeepSaDe`` and ``deepsade train``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from deepsade.data import format_level  # how a class label is named in the rule file
from deepsade.estimator import _SHARED_PARAMETERS, _ConstrainedTraining, _target_list, split_validation
from deepsade.ingest import prepare
from deepsade.prediction import raw_outputs
from deepsade.smtlib import read_constraint_text
from deepsade.spec import parse_spec


class _SklearnEstimator(_ConstrainedTraining):
    """``fit(X, y)`` over arrays or DataFrames: X's columns are named by ``features`` (arrays) or by the
    frame; y's by ``targets`` (default: y's own name, else ``y``, or ``y0, y1, ...`` for several)."""

    _task: str | None = None  # the regressor says "regression"; the classifier infers it from y

    def _input_frame(self, X: Any, reset: bool, y: Any = None) -> pd.DataFrame:
        """X as a frame with the rule's column names, checked the scikit-learn way (ValueError). Fitting
        (``reset``) needs y and two rows at least: the scaling and the domain box are fitted on them."""
        if reset and y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        min_rows = 2 if reset else 1
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, skip_check_array=True, reset=reset)
            if X.isna().to_numpy().any():
                raise ValueError("Input X contains NaN: impute it first (e.g. sklearn.impute.SimpleImputer in a "
                                 "pipeline)")
            if len(X) < min_rows:
                raise ValueError(f"Found array with {len(X)} sample(s) while a minimum of {min_rows} is required.")
            frame = X.copy()
            frame.columns = [str(c) for c in X.columns]
        else:
            values = validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=min_rows)
            names = list(self.features) if self.features is not None else [f"x{j}" for j in range(values.shape[1])]
            if len(names) != values.shape[1]:
                raise ValueError(f"features names {len(names)} column(s) but X has {values.shape[1]}")
            frame = pd.DataFrame(values, columns=names)
        if reset:
            self.input_columns_ = list(self.features) if self.features is not None and isinstance(X, pd.DataFrame) \
                else list(frame.columns)
        missing = [c for c in self.input_columns_ if c not in frame.columns]
        if missing:
            raise ValueError(f"input column(s) missing from X: {', '.join(map(repr, missing))}")
        return frame[self.input_columns_].reset_index(drop=True)

    def _target_names(self, y: Any, n_columns: int) -> list[str]:
        if self.targets is not None:
            names = _target_list(self.targets)
        elif isinstance(y, pd.DataFrame):
            names = [str(c) for c in y.columns]
        elif isinstance(y, pd.Series) and y.name is not None:
            names = [str(y.name)]
        else:
            names = ["y"] if n_columns == 1 else [f"y{k}" for k in range(n_columns)]
        if len(names) != n_columns:
            raise ValueError(f"targets names {len(names)} column(s) but y has {n_columns}")
        return names

    def _fit_frame(self, frame: pd.DataFrame, targets: list[str], task: str, positive: str | None):
        """Train on ``frame`` (inputs + targets), keep the certificate."""
        settings = self._validated_settings()
        clash = sorted(set(targets) & set(self.input_columns_))
        if clash:
            raise ValueError(f"column(s) {clash} name both an input and a target")
        constraint_text = self._constraint_text()
        data = prepare(frame, targets, list(self.input_columns_), task, positive, "drop", self.domain)
        spec = parse_spec(read_constraint_text(constraint_text), data.encoding)
        train, val = split_validation(data, settings.val_fraction, settings.seed)
        rows = {"rows": data.n_rows, "rows_dropped": 0, "rows_imputed": 0}
        self.artifact_ = self._train(settings, spec, train, val, constraint_text, rows)
        self.certificate_ = self.artifact_.certificate
        self.target_names_ = list(targets)
        return self

    def _outputs(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "artifact_")
        return raw_outputs(self.artifact_, self._input_frame(X, reset=False))

    def in_domain(self, X: Any) -> np.ndarray:
        """Boolean per row: inside the domain box, where the certificate's guarantee holds."""
        return self._outputs(X)[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False  # seeded: the same data and parameters give the same weights
        return tags


_SKLEARN_PARAMETERS = """
    Parameters
    ----------
    constraint : str or path
        The SMT-LIB rule file (or its text). It names inputs by ``features`` and outputs by ``targets``,
        in raw units.
    features : sequence of str, default=None
        Names of X's columns when X is an array (default ``x0, x1, ...``); with a DataFrame, its own column
        names are used, and ``features`` (if given) picks the input columns.
    targets : str or sequence of str, default=None
        Names of y's columns (default: a Series' or DataFrame's own names, else ``y``, or ``y0, y1, ...``
        for a 2-d y).
"""


class DeepSaDeRegressor(RegressorMixin, _SklearnEstimator):
    __doc__ = ("""A regressor whose predictions provably satisfy the rule for every input in the domain box.

    ``fit`` trains (DeepSaDe) and certifies the stored float32 weights exactly; ``score`` is R².
    """ + _SKLEARN_PARAMETERS + _SHARED_PARAMETERS + """
    Attributes
    ----------
    certificate_ : dict
        The exact certificate of the fitted model (``verdict``, strategy, time, digest).
    artifact_ : ModelArtifact
        The trained model (``save`` writes it as a model directory).
    input_columns_, target_names_ : list of str
        The names the rule was bound to.
    """)

    def __init__(self, constraint: str | Path, *, features: Sequence[str] | None = None,
                 targets: str | Sequence[str] | None = None, method: str = "auto",
                 hidden: Sequence[int] = (50, 30, 10), epochs: int = 50, batch_size: int | None = None, lr: float = 0.1,
                 max_step: float = 0.1, margins: Sequence[float] = (0.0, 1.0, 2.0), line_search_steps: int = 5,
                 projection: bool = True, strategy: str = "auto", maxsmt: str = "fu-malik",
                 solver_timeout: float = 10.0, margin: float = 1e-4, val_fraction: float = 0.1, seed: int = 0,
                 domain: str | Path | None = None, baseline_options: dict[str, Any] | None = None,
                 progress: Callable | None = None, out: str | Path | None = None,
                 checkpoint_every: str | int = "epoch", resume: bool | str | Path = False, paper: bool = False,
                 optimizer: str = "sgd", patience: int | None = None,
                 weight_average: bool = False):
        self.constraint = constraint
        self.features = features
        self.targets = targets
        self.method = method
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_step = max_step
        self.margins = margins
        self.line_search_steps = line_search_steps
        self.projection = projection
        self.strategy = strategy
        self.maxsmt = maxsmt
        self.solver_timeout = solver_timeout
        self.margin = margin
        self.val_fraction = val_fraction
        self.seed = seed
        self.domain = domain
        self.baseline_options = baseline_options
        self.progress = progress
        self.out = out
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.paper = paper
        self.optimizer = optimizer
        self.patience = patience
        self.weight_average = weight_average

    def fit(self, X: Any, y: Any) -> DeepSaDeRegressor:
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets); certify."""
        frame = self._input_frame(X, reset=True, y=y)
        values = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if values.ndim > 2 or len(values) != len(frame):
            raise ValueError(f"y must be (n_samples,) or (n_samples, n_targets) with {len(frame)} rows, "
                             f"got shape {values.shape}")
        self._y_ndim = values.ndim
        columns = values.reshape(len(values), -1)
        targets = self._target_names(y, columns.shape[1])
        for k, name in enumerate(targets):
            frame[name] = columns[:, k]
        return self._fit_frame(frame, targets, "regression", None)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in y's units: (n_samples,) for a 1-d y, else (n_samples, n_targets)."""
        outputs = self._outputs(X)[0]
        return outputs[:, 0] if self._y_ndim == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # several targets, one output each (UC1's five expenses)
        return tags


class DeepSaDeClassifier(ClassifierMixin, _SklearnEstimator):
    __doc__ = ("""A classifier whose scores provably satisfy the rule for every input in the domain box.

    Binary: one score named after the target, positive means ``positive`` (default ``classes_[1]``);
    multiclass: one score per class, named ``|target=class|``; multi-label (a 0/1 matrix y): one score per
    column. ``fit`` trains (DeepSaDe) and certifies the stored float32 weights exactly; ``score`` is accuracy.
    """ + _SKLEARN_PARAMETERS + """    positive : object, default=None
        The class the binary score's positive sign stands for (default: ``classes_[1]``).
    """ + _SHARED_PARAMETERS + """
    Attributes
    ----------
    classes_ : ndarray
        The class labels (multi-label: the column indices).
    certificate_ : dict
        The exact certificate of the fitted model (``verdict``, strategy, time, digest).
    artifact_ : ModelArtifact
        The trained model (``save`` writes it as a model directory).
    input_columns_, target_names_ : list of str
        The names the rule was bound to.
    """)

    def __init__(self, constraint: str | Path, *, features: Sequence[str] | None = None,
                 targets: str | Sequence[str] | None = None, positive: Any = None, method: str = "auto",
                 hidden: Sequence[int] = (50, 30, 10), epochs: int = 50, batch_size: int | None = None, lr: float = 0.1,
                 max_step: float = 0.1, margins: Sequence[float] = (0.0, 1.0, 2.0), line_search_steps: int = 5,
                 projection: bool = True, strategy: str = "auto", maxsmt: str = "fu-malik",
                 solver_timeout: float = 10.0, margin: float = 1e-4, val_fraction: float = 0.1, seed: int = 0,
                 domain: str | Path | None = None, baseline_options: dict[str, Any] | None = None,
                 progress: Callable | None = None, out: str | Path | None = None,
                 checkpoint_every: str | int = "epoch", resume: bool | str | Path = False, paper: bool = False,
                 optimizer: str = "sgd", patience: int | None = None,
                 weight_average: bool = False):
        self.constraint = constraint
        self.features = features
        self.targets = targets
        self.positive = positive
        self.method = method
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_step = max_step
        self.margins = margins
        self.line_search_steps = line_search_steps
        self.projection = projection
        self.strategy = strategy
        self.maxsmt = maxsmt
        self.solver_timeout = solver_timeout
        self.margin = margin
        self.val_fraction = val_fraction
        self.seed = seed
        self.domain = domain
        self.baseline_options = baseline_options
        self.progress = progress
        self.out = out
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.paper = paper
        self.optimizer = optimizer
        self.patience = patience
        self.weight_average = weight_average

    def fit(self, X: Any, y: Any) -> DeepSaDeClassifier:
        """Train on X (n_samples, n_features) and class labels y (or a 0/1 matrix, multi-label); certify."""
        frame = self._input_frame(X, reset=True, y=y)
        labels = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        if len(labels) != len(frame):
            raise ValueError(f"y has {len(labels)} rows but X has {len(frame)}")
        check_classification_targets(labels)
        if type_of_target(labels) == "multilabel-indicator":
            self.classes_ = np.arange(labels.shape[1])
            targets = self._target_names(y, labels.shape[1])
            for k, name in enumerate(targets):
                frame[name] = labels[:, k].astype(int)
            self._task, self._sign = "multilabel", 1.0
            return self._fit_frame(frame, targets, "multilabel", None)
        labels = column_or_1d(labels, warn=True)  # a column vector is one target (with scikit-learn's warning)
        self.classes_ = np.unique(labels)
        names = [format_level(c.item() if hasattr(c, "item") else c) for c in self.classes_]
        if len(set(names)) != len(names):
            raise ValueError(f"class labels {list(self.classes_)} are not distinct once written as rule names")
        self._class_names = names
        [target] = self._target_names(y, 1)
        frame[target] = labels
        if len(self.classes_) > 2:
            self._task, self._sign = "multiclass", 1.0
            return self._fit_frame(frame, [target], "multiclass", None)
        positive = self.classes_[-1] if self.positive is None else self.positive
        if len(self.classes_) == 2 and not np.any(self.classes_ == positive):
            raise ValueError(f"positive={positive!r} is not one of the classes {list(self.classes_)}")
        # decision_function > 0 means classes_[1] (scikit-learn); the score's sign means `positive`
        self._sign = 1.0 if len(self.classes_) < 2 or positive == self.classes_[1] else -1.0
        self._task = "binary"
        return self._fit_frame(frame, [target], "binary", format_level(positive) if len(self.classes_) == 2 else None)

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores: (n_samples,) for binary (positive means ``classes_[1]``), else one column per class / label."""
        scores = self._outputs(X)[0]
        if self._task == "binary":
            return self._sign * scores[:, 0]
        if self._task == "multiclass":
            order = [self.artifact_.encoding.classes.index(name) for name in self._class_names]
            return scores[:, order]
        return scores

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (multi-label: a 0/1 matrix)."""
        scores = self.decision_function(X)
        if self._task == "binary":
            return self.classes_[(scores > 0).astype(int)]
        if self._task == "multiclass":
            return self.classes_[scores.argmax(axis=1)]
        return (scores > 0).astype(int)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities read from the scores (sigmoid per binary / multi-label score, softmax over classes).
        The rule is certified on the scores and decisions, not on these numbers."""
        scores = self.decision_function(X)
        if self._task == "binary":
            positive = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1.0 - positive, positive])
        if self._task == "multiclass":
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-scores))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
