"""Counterexample search on trained networks: whole-domain verification and the Adversity Index.

One module per idea: ``network`` (the weights as plain arrays, float64 and exact evaluation),
``relaxation`` (sound bounds over a box), ``violation`` (an assert's violation as linear disjuncts),
``engine`` (the ``Engine`` interface), ``marabou_engine`` and ``z3_engine`` (the engines),
``engines`` (the one registry), ``planner`` (which engine checks which assert), ``bound_check`` (atoms the
bounds rule out), ``abstraction`` (a construction's asserts proved on its enforcement layer alone),
``verifier`` (per box: sampling, bounds, the enforcement layer, engines, exact confirmation), ``config`` (a
verifier as plain data, or from a model directory), ``outcome`` (the answers), ``adi`` (the Adversity Index
over data).

Adding an engine: subclass ``Engine`` in a new module and call ``register_engine`` on it.
"""

from deepsade.verification.adi import AdiReport, adversity_index, instances_from_frame
from deepsade.verification.config import VerifierConfig, verifier_for, verify_domain
from deepsade.verification.engine import Engine, Query, ViolationForm
from deepsade.verification.engines import engine_class, engine_names, register_engine, unregister_engine
from deepsade.verification.marabou_engine import STRICT_MARGIN, MarabouEngine
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import (
    STATUSES,
    Answer,
    Outcome,
    Status,
    Verdict,
    counterexample_raw_inputs,
    raw_inputs,
)
from deepsade.verification.planner import Plan, make_plan
from deepsade.verification.relaxation import Relaxation
from deepsade.verification.verifier import Box, Verifier
from deepsade.verification.violation import MAX_CONDITIONS, MAX_DISJUNCTS, Atom, Disjunct, violation_disjuncts
from deepsade.verification.z3_engine import Z3Engine, Z3Network

ENGINES = engine_names()  # the engines registered at import: the CLI's --engine choices

__all__ = [
    "ENGINES", "MAX_CONDITIONS", "MAX_DISJUNCTS", "STATUSES", "STRICT_MARGIN", "AdiReport", "Answer", "Atom", "Box",
    "Disjunct", "Engine", "MarabouEngine", "NetworkWeights", "Outcome", "Plan", "Query", "Relaxation", "Status",
    "Verdict", "Verifier", "VerifierConfig", "ViolationForm", "Z3Engine", "Z3Network", "adversity_index",
    "counterexample_raw_inputs", "engine_class", "engine_names", "instances_from_frame", "make_plan", "raw_inputs", "register_engine",
    "unregister_engine", "verifier_for", "verify_domain", "violation_disjuncts",
]
