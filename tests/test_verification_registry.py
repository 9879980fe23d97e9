"""The engine registry: engines added from outside through the public API are planned, run and
confirmed like the built-in ones, and an engine is skipped for the asserts it cannot express."""

from __future__ import annotations

import numpy as np
import pytest

from deepsade.cli.verify import adi, verify
from deepsade.errors import UserInputError
from deepsade.ingest import prepare
from deepsade.verification import (
    ENGINES,
    Answer,
    Engine,
    Query,
    ViolationForm,
    Z3Engine,
    adversity_index,
    engine_names,
    make_plan,
    register_engine,
    unregister_engine,
    verify_domain,
)
from deepsade.verification.violation import Atom
from tests.test_verify import (
    Y_LEQ_X1,
    assert_real_counterexample,
    regression_frame,
    safe_by_construction,
    trained_violator,
    verifier,
)

OPS = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater, "==": np.equal}


def _holds(atom: Atom, env: dict[str, np.ndarray]) -> np.ndarray:
    value = sum(float(c) * env[name] for name, c in atom.terms)
    return OPS[atom.op](value, float(atom.bound))


class GridEngine(Engine):
    """A toy engine: evaluates the violation disjuncts on a grid of the box in float64. It can find
    counterexamples but never proves anything (no grid shows a box safe), and it needs linear atoms."""

    name = "grid"
    label = "grid sampling"
    exact = False
    points_per_axis = 9

    @classmethod
    def cannot_express(cls, form: ViolationForm) -> str | None:
        return None if form.disjuncts is not None else f"it evaluates linear atoms only; {form.reason}"

    def check(self, query: Query) -> Answer:
        axes = [np.linspace(float(lo), float(hi), self.points_per_axis) for lo, hi in zip(query.lower, query.upper,
                                                                                         strict=True)]
        points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
        outputs = self.weights.forward(points)
        env = {f"x!{j}": points[:, j] for j in range(points.shape[1])}
        env |= {f"y!{k}": outputs[:, k] for k in range(outputs.shape[1])}
        broken = np.zeros(len(points), dtype=bool)
        for disjunct in query.disjuncts:
            holds = np.ones(len(points), dtype=bool)
            for atom in disjunct:
                holds &= _holds(atom, env)
            broken |= holds
        hits = np.flatnonzero(broken)
        return Answer.violation(points[hits[-1]].tolist()) if hits.size else Answer.unknown("grid found nothing")


class CountingZ3(Z3Engine):
    """z3 under another name, counting its queries."""

    name = "counting-z3"
    label = "counting z3"
    calls = 0

    def check(self, query: Query) -> Answer:
        type(self).calls += 1
        return super().check(query)


class Liar(Engine):
    """Claims the lower corner of every box breaks the rule (inexact, like a floating-point engine)."""

    name = "liar"
    label = "Liar"
    exact = False

    def check(self, query: Query) -> Answer:
        return Answer.violation(query.lower)


@pytest.fixture
def register():
    """Register engines for one test; they are removed afterwards."""
    added: list[str] = []

    def add(engine: type[Engine]) -> type[Engine]:
        register_engine(engine)
        added.append(engine.name)
        return engine

    yield add
    for name in added:
        unregister_engine(name)


def test_builtin_registry_gives_the_cli_choices():
    assert ENGINES == engine_names() == ("marabou", "z3")
    for command in (adi, verify):
        option = next(p for p in command.params if p.name == "engine")
        assert tuple(option.type.choices) == ("marabou", "z3") and option.default == "marabou"


def test_a_registered_sampling_engine_finds_counterexamples_end_to_end(register):
    register(GridEngine)
    assert engine_names() == ("marabou", "z3", "grid")
    frame = regression_frame()
    violator = trained_violator(frame)
    outcome, v = verify_domain(violator, engine="grid", presample=0, bound_check=False)
    assert (outcome.status, outcome.decided_by, outcome.broken) == ("counterexample", "grid", (0,))
    assert_real_counterexample(violator, v, outcome)
    assert v.plan.on("grid") == [0] and not v.notes

    inputs = prepare(frame, ["y"]).inputs[:6]
    report = adversity_index(violator, inputs, [0.1], engine="grid", presample=0, bound_check=False, progress=False)
    assert report.summary["engine"] == "grid"
    assert set(report.table.decided_by) == {"grid"} and set(report.table.status) == {"counterexample"}
    in_workers = adversity_index(violator, inputs, [0.1], engine="grid", presample=0, bound_check=False,
                                 progress=False, jobs=2)  # the plan carries the class into the worker processes
    assert in_workers.table.drop(columns="seconds").equals(report.table.drop(columns="seconds"))

    # on a safe model the grid proves nothing: unknown, never verified
    outcome, _ = verify_domain(safe_by_construction(frame), engine="grid", presample=0, bound_check=False)
    assert (outcome.status, outcome.decided_by, outcome.note) == ("unknown", "grid", "unknown on assert 1: grid found nothing")


def test_an_engine_that_cannot_express_an_assert_is_skipped_for_it(register):
    register(GridEngine)
    frame = regression_frame()
    base = safe_by_construction(frame)
    text = Y_LEQ_X1.replace("(assert (<= y x1))", "(assert (<= y x1))(assert (<= (* y y) (+ (* x1 x1) 1)))")
    artifact = type(base)(base.model, base.encoding, base.domain, text, method="test")
    v = verifier(artifact, engine="grid", presample=0, bound_check=False)
    # the non-linear assert: neither grid nor Marabou can take it, so z3 (the next in the registry) does
    assert v.plan.on("grid") == [0] and v.plan.on("marabou") == [] and v.plan.on("z3") == [1]
    assert v.plan.engine_order() == ["grid", "marabou", "z3"]
    assert len(v.notes) == 1 and v.notes[0].startswith(
        "assert 2 is checked with z3 (grid sampling cannot express it: it evaluates linear atoms only; it multiplies or divides variables (a non-linear term)")
    outcome = v.check_domain()
    assert (outcome.status, outcome.decided_by) == ("unknown", "grid+z3")  # grid: no proof; z3: assert 2 holds
    assert outcome.note == "unknown on assert 1: grid found nothing"  # names the assert the search left open


def test_a_registered_exact_engine_is_used_for_every_query(register):
    register(CountingZ3)
    CountingZ3.calls = 0
    frame = regression_frame()
    outcome, v = verify_domain(safe_by_construction(frame), engine="counting-z3", presample=0, bound_check=False)
    assert (outcome.status, outcome.decided_by) == ("verified", "counting-z3") and CountingZ3.calls == 1
    inputs = prepare(frame, ["y"]).inputs[:4]
    report = adversity_index(trained_violator(frame), inputs, [0.1, 0.01], engine="counting-z3", presample=0,
                             bound_check=False, progress=False)
    assert set(report.table.decided_by) == {"counting-z3"}
    assert 1 < CountingZ3.calls <= 1 + 2 * len(inputs)  # at most one query per ball


def test_a_wrong_witness_from_an_inexact_engine_is_settled_by_an_exact_one(register):
    register(Liar)
    outcome, _ = verify_domain(safe_by_construction(regression_frame()), engine="liar", presample=0,
                               bound_check=False)
    assert (outcome.status, outcome.decided_by) == ("verified", "liar+z3")
    assert outcome.note == "liar's counterexample did not hold in exact arithmetic; z3 re-checked"


def test_registry_refuses_bad_and_duplicate_engines(register):
    with pytest.raises(ValueError, match="already registered"):
        register_engine(type("Other", (Z3Engine,), {"name": "z3"}))
    with pytest.raises(TypeError, match="Engine subclass"):
        register_engine(object)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="unknown engine 'grid'; choose one of marabou, z3"):
        make_plan(verifier(safe_by_construction(regression_frame())).spec, "grid")
