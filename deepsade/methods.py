"""The training methods: one registry shared by the estimator, the CLI's ``--method`` and the experiments.

A method is a name, a one-line description, whether it certifies its models, which family of
settings it reads, and a function that trains it::

    register(Method("mine", "my penalty, no guarantee", certifies=False, family=BASELINE, train=train_mine))

``train`` receives a :class:`TrainingJob` (the parsed rule, the prepared splits, the settings and
the method's own options) and returns a :class:`deepsade.artifact.ModelArtifact`. This module imports
nothing heavy: the built-in methods import their trainers when they are called, so listing the
methods (``deepsade --help``) stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsade.errors import UserInputError

if TYPE_CHECKING:  # pragma: no cover - types only
    from deepsade.artifact import ModelArtifact
    from deepsade.data import TabularData
    from deepsade.spec import Spec
    from deepsade.training.settings import TrainSettings

# Which settings a method reads, in the estimator and in the experiments:
DEEPSADE = "deepsade"  # the certified trainer: epochs, solver timeout, checkpoints; per-epoch solver counters
BASELINE = "baseline"  # trained without guarantee: baseline epochs, a lambda grid (options such as on_grid)
CONSTRUCTION = "construction"  # guaranteed by an output layer (deepsade.constructions); DeepSaDe's epochs, else the baselines' settings
FAMILIES = (DEEPSADE, BASELINE, CONSTRUCTION)


@dataclass
class TrainingJob:
    """Everything a method's ``train`` function receives: what to fit, on which splits, with which settings."""

    method: str
    spec: Spec
    train: TabularData
    val: TabularData | None  # None: no validation split (a baseline then selects on the training part)
    settings: TrainSettings
    constraint_text: str
    options: dict[str, Any] = field(default_factory=dict)  # the method's own options (baselines: lambdas, ...)
    progress: Callable | None = None  # None: quiet
    checkpoint_dir: str | Path | None = None
    checkpoint_every: str | int = "epoch"
    resume: bool = False


TrainFunction = Callable[[TrainingJob], "ModelArtifact"]


@dataclass(frozen=True)
class Method:
    """One training method: its name, what it is in one line, whether it certifies, and how to train it."""

    name: str
    description: str
    certifies: bool
    train: TrainFunction
    family: str = BASELINE

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower() or "," in self.name:
            raise ValueError(f"a method name is one lower-case word without commas, got {self.name!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")


_REGISTRY: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to the registry (after the ones already there); refuses a taken name unless ``replace``."""
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"a method called {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (built-in ones included); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Every registered method, in registration order (the built-ins first)."""
    return tuple(_REGISTRY)


def get_method(name: str) -> Method:
    """The method called ``name``, or a UserInputError listing the known ones."""
    method = _REGISTRY.get(name)
    if method is None:
        raise UserInputError(f"unknown method {name!r}; choose one of {', '.join(_REGISTRY)}")
    return method


# ---- the default: pick the certified method for the rule --------------------------------------------

AUTO = "auto"  # not a method: ``deepsade train``'s default, resolved per rule by ``resolve_method``


def resolve_method(name: str, spec: Spec, train: TabularData, settings: TrainSettings) -> tuple[str, str]:
    """The registered method ``name`` stands for, and why, in one line.

    ``auto`` takes ``polytope`` (sequential clamps, exact certificate) when the rule is a regression rule
    whose every assert the clamps take (asserts affine in the outputs without a premise, and premises that
    are boxes of single inputs or conjunctions of linear inequalities over the inputs, through premise gates): then nothing has to hold over a wide latent box and
    the network trains at an unconstrained network's cost (results/price/auto). Otherwise, and always
    under ``--paper``, it takes ``deepsade``. For a binary or multi-label rule on the predicted labels alone that
    predicting more labels never breaks, it takes ``repair`` (label-set repair, exact certificate). For another
    classifier rule it takes ``scoreclamp`` (score clamps, exact
    certificate) when the clamps take every assert (premises that are boxes of single inputs or linear
    inequalities over the inputs, heads that are
    score signs or class comparisons, rules between scores), else ``deepsade``."""
    if name != AUTO:
        get_method(name)
        return name, ""
    if settings.paper:
        return DEEPSADE, "auto: deepsade (--paper)"
    if train.encoding.task in ("binary", "multilabel"):
        from deepsade.constructions.monotone_rule import recognise_monotone
        from deepsade.constructions.recognise import NotApplicable

        try:
            recognise_monotone(spec, train.encoding.task)
        except NotApplicable:
            return _classifier_choice(spec, train, settings)
        return "repair", ("auto: repair (the rule only asks for labels and predicting more never breaks it, so a fixed "
                          "layer adds the cheapest labels it needs; --method deepsade trains DeepSaDe instead)")
    if train.encoding.task != "regression":
        return _classifier_choice(spec, train, settings)
    from deepsade.constructions.exact_equalities import for_clamps
    from deepsade.constructions.polytope import polytope_projection, split_asserts
    from deepsade.constructions.recognise import NotApplicable

    low, high = train.domain.scaled_exact(train.encoding)
    spec, encoding = for_clamps(spec, train.encoding)  # as train_polytope will: equalities made exact if they can be
    split = split_asserts(spec, low, high)
    if not (split.constructible or split.gated) or split.remaining:
        return DEEPSADE, ("auto: deepsade (assert(s) " + ", ".join(str(i + 1) for i in split.remaining)
                          + " need the DeepSaDe trainer)")
    from fractions import Fraction

    from deepsade.constructions.hardnet import SLACK_FACTOR

    try:  # as train_polytope will: the tightened rows, and the split once the gates are built
        split = polytope_projection(spec, split, low, high, Fraction(SLACK_FACTOR * settings.output_margin),
                                    encoding)[3]
    except NotApplicable as exc:
        return DEEPSADE, f"auto: deepsade (sequential clamps do not apply: {exc})"
    if split.remaining:
        return DEEPSADE, ("auto: deepsade (assert(s) " + ", ".join(str(i + 1) for i in split.remaining)
                          + " need the DeepSaDe trainer)")
    return "polytope", ("auto: polytope (sequential clamps take every assert, so the guarantee costs no "
                        "latent box; --method deepsade trains DeepSaDe instead)")


def _classifier_choice(spec: Spec, train: TabularData, settings: TrainSettings) -> tuple[str, str]:
    """``auto`` for a classifier: score clamps when they take every assert (proven for every score by z3),
    otherwise DeepSaDe, with the clamps' one-line reason."""
    from deepsade.constructions.recognise import NotApplicable
    from deepsade.constructions.score_clamp_train import score_program

    low, high = train.domain.scaled_exact(train.encoding)
    try:
        score_program(spec, low, high, train.encoding.task, settings.output_margin)
    except NotApplicable as exc:
        return DEEPSADE, f"auto: deepsade (score clamps do not apply: {exc})"
    return "scoreclamp", ("auto: scoreclamp (score clamps take every assert, so the guarantee holds for any score "
                          "and costs no latent box; --method deepsade trains DeepSaDe instead)")


# ---- the built-in methods ----------------------------------------------------------------------------


def train_deepsade(job: TrainingJob) -> ModelArtifact:
    """DeepSaDe: the certified trainer, then the exact certificate on the stored float32 weights."""
    from deepsade import artifact as artifact_io
    from deepsade.certify import certify_model
    from deepsade.checkpoint import CheckpointPolicy
    from deepsade.diagnostics import diagnose
    from deepsade.equalities import equality_hint
    from deepsade.spec import vacuous_asserts
    from deepsade.training import NoModelExists
    from deepsade.training.loop import DeepSaDeTrainer

    spec, train, val, settings = job.spec, job.train, job.val, job.settings
    vacuous = vacuous_asserts(spec, *train.domain.scaled_exact(train.encoding))
    if len(vacuous) == spec.n_written:
        raise UserInputError(
            "no assert's premise holds anywhere in the domain box, so the constraint would enforce nothing "
            "(values are raw units: check them, or widen the box with --domain)")
    trainer = DeepSaDeTrainer(spec, train, settings, progress=job.progress, checkpoint_dir=job.checkpoint_dir,
                              checkpoint_policy=CheckpointPolicy.parse(job.checkpoint_every))
    from deepsade.constructions.polytope import equality_blocker

    clamps_reason = equality_blocker(spec, train.encoding, *train.domain.scaled_exact(train.encoding)) \
        if train.encoding.task == "regression" else None
    hint = equality_hint(spec, settings.output_margin,
                         [scale for _, scale in train.encoding.output_affine()], clamps_reason)
    try:
        result = trainer.fit(val, resume=job.resume)
    except NoModelExists as exc:
        if hint is None:
            raise
        # the equality is the likely reason: it leads, and the trainer's own words (often "raise
        # --solver-timeout", which does not help against an equality) follow as what happened
        raise NoModelExists(f"no certified model found: {hint}. (What the trainer hit: {exc})") from exc
    certificate = certify_model(result.model, spec, train.encoding, train.domain, settings.output_margin)
    certificate["strategy"] = {str(i + 1): k for i, k in trainer.encoder.kinds.items()}
    certificate["constraint_sha256"] = artifact_io.text_sha256(job.constraint_text)
    training = asdict(settings)
    training.update({"method": job.method, "seconds": round(result.seconds, 3),
                     "init_seconds": round(result.init_seconds, 3), "best_epoch": result.best_epoch,
                     "train_rows": train.n_rows, "val_rows": 0 if val is None else val.n_rows})
    notes = list(spec.notes) + [f"assert {i + 1}: its premise never holds in the domain box, so it constrains "
                                "nothing there" for i in vacuous] + list(result.notes) + ([hint] if hint else [])
    if notes:
        training["notes"] = notes
    if result.mechanisms:  # what the price-of-the-guarantee levers did: gates added, refits kept or skipped
        training["mechanisms"] = list(result.mechanisms)
    # why the model is as good as it is: which asserts bind, how wide the latent box is against the data's
    diagnosis = diagnose(result.model, spec, train.inputs, *train.domain.scaled(train.encoding), settings.output_margin)
    training["diagnosis"] = {**diagnosis.to_dict(), "lines": diagnosis.lines()}
    return artifact_io.ModelArtifact(
        model=result.model, encoding=train.encoding, domain=train.domain, constraint_text=job.constraint_text,
        method=job.method, training=training, history=[asdict(h) for h in result.history],
        certificate=certificate,
    )


def train_penalty_baseline(job: TrainingJob) -> ModelArtifact:
    """A baseline of ``deepsade.baselines`` (its constraint loss is chosen by the method's name)."""
    from deepsade.baselines import train_baseline

    s = job.settings
    art = train_baseline(job.method, job.train, job.val if job.val is not None else job.train, job.spec,
                         hidden=s.hidden, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed,
                         quiet=job.progress is None, **job.options)
    art.constraint_text = job.constraint_text
    return art


register(Method("deepsade", "certified: every input in the domain box satisfies the rule (exact certificate)",
                certifies=True, train=train_deepsade, family=DEEPSADE))
register(Method("ffn", "the plain network, data loss only", certifies=False, train=train_penalty_baseline))
register(Method("reg", "data loss + lambda x hinge penalty of the linear asserts", certifies=False,
                train=train_penalty_baseline))
register(Method("sbr", "data loss + lambda x (1 - fuzzy truth of the rule)", certifies=False,
                train=train_penalty_baseline))
register(Method("sl", "data loss + lambda x semantic loss over the label events", certifies=False,
                train=train_penalty_baseline))


def train_constructed(job: TrainingJob) -> ModelArtifact:
    """A guarantee by construction (``deepsade.constructions``): the method's name picks the construction."""
    from deepsade.constructions.train import train_construction

    return train_construction(job)


# --- constructions (deepsade.constructions): one line per method ---
register(Method("hardnet", "certified by construction: HardNet-Aff enforcement layer (constant A, bounds affine in "
                "the inputs; clamps as the special case), exact certificate", certifies=True, train=train_constructed,
                family=CONSTRUCTION))
register(Method("hcr", "guaranteed by construction: HCR layer (direction + radius around an interior point of a bounded "
                "polytope free of the inputs); region checked exactly, layer not piecewise linear", certifies=True,
                train=train_constructed, family=CONSTRUCTION))
register(Method("polytope", "certified: sequential clamps onto the polytope of the asserts affine in the outputs "
                "(bounds affine in the inputs, any number of rows), DeepSaDe for the other asserts; exact certificate",
                certifies=True, train=train_constructed, family=CONSTRUCTION))
register(Method("repair", "certified: label-set repair, a fixed layer that adds the cheapest labels a monotone rule on "
                "the predicted labels needs (multi-label and binary rules that mention no input); exact certificate",
                certifies=True, train=train_constructed, family=CONSTRUCTION))
register(Method("scoreclamp", "certified by construction: score clamps (max/min after a classifier's scores, premise "
                "gates on boxes of inputs) keep every assert for any score; exact certificate", certifies=True,
                train=train_constructed, family=CONSTRUCTION))
