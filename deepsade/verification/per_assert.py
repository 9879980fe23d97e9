"""Whole-domain verification as independent tasks: one search of the domain box per assert.

The asserts of a rule file are independent questions ("can assert i break somewhere in D?"), so they
can run on different workers (``deepsade.parallel``: loky processes, a Dask or Ray cluster). Each task
builds the verifier from the plain config with a plan whose engines check assert i only; random
points and bounds run as usual (a sampled point that breaks any assert is a counterexample like any
other, confirmed exactly). The answers combine soundly: a counterexample if any task found one (the
lowest assert's, so the answer does not depend on which worker finished first), else unknown if any
task timed out, else verified: every assert was proved for the whole box by its own task.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from deepsade.parallel import Backend, run_tasks
from deepsade.verification.config import VerifierConfig, verify_domain
from deepsade.verification.outcome import Outcome, Status, join_notes
from deepsade.verification.planner import Plan, make_plan
from deepsade.verification.verifier import Verifier

if TYPE_CHECKING:
    from deepsade.artifact import ModelArtifact


def plan_for_assert(plan: Plan, index: int) -> Plan:
    """``plan`` with every engine's assignment cut to assert ``index`` (engine order kept)."""
    return dataclasses.replace(plan, assignments={name: [i for i in asserts if i == index]
                                                  for name, asserts in plan.assignments.items()})


def check_domain_for_assert(config: VerifierConfig, index: int) -> tuple[int, Outcome]:
    """Search the whole domain box for an input that breaks assert ``index`` (0-based)."""
    return index, config.build().check_domain()


def verify_domain_per_assert(artifact: ModelArtifact, engine: str = "marabou", timeout: float = 60.0,
                             presample: int = 1024, bound_check: bool = True, seed: int = 0,
                             realisable: bool = True, backend: Backend | None = None) -> tuple[Outcome, Verifier]:
    """Like ``verify_domain``, with one task per assert on ``backend``. In this process (the default,
    or one assert) it is ``verify_domain`` itself."""
    backend = backend if backend is not None else Backend()
    config = VerifierConfig.from_artifact(artifact, engine=engine, timeout=timeout, presample=presample,
                                          bound_check=bound_check, seed=seed, realisable=realisable)
    spec = config.build_spec()
    if backend.in_process or len(spec.asserts) <= 1:
        return verify_domain(artifact, engine, timeout, presample, bound_check, seed, realisable)
    plan = make_plan(spec, engine)
    config.plan = plan
    verifier = config.build()  # for the caller's notes and counterexample report
    tasks = [(dataclasses.replace(config, plan=plan_for_assert(plan, a.index)), a.index) for a in spec.asserts]
    start = time.perf_counter()
    outcomes = dict(run_tasks(check_domain_for_assert, tasks, backend))
    return combine(outcomes, time.perf_counter() - start), verifier


def combine(outcomes: dict[int, Outcome], seconds: float) -> Outcome:
    """One answer from per-assert answers: counterexample > unknown > verified (see the module doc)."""
    order = sorted(outcomes)
    for index in order:
        if outcomes[index].status is Status.COUNTEREXAMPLE:
            found = dataclasses.replace(outcomes[index])
            found.seconds = seconds
            return found
    unknown = [outcomes[i] for i in order if outcomes[i].status is Status.UNKNOWN]
    decided_by = "+".join(dict.fromkeys(part for i in order for part in outcomes[i].decided_by.split("+") if part))
    note = join_notes(*(f"assert {i + 1}: {outcomes[i].note}" for i in order if outcomes[i].note))
    status = Status.UNKNOWN if unknown else Status.VERIFIED
    return Outcome(status, decided_by, seconds, note=note)
