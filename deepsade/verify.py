"""Compatibility shim: the verifier moved to ``deepsade.verification``. Import from there; this module
goes once every import is updated."""

from deepsade.verification import (  # noqa: F401
    ENGINES,
    MAX_CONDITIONS,
    MAX_DISJUNCTS,
    STATUSES,
    STRICT_MARGIN,
    Atom,
    Box,
    Disjunct,
    NetworkWeights,
    Outcome,
    Plan,
    Relaxation,
    Status,
    Verifier,
    VerifierConfig,
    Z3Network,
    make_plan,
    raw_inputs,
    verifier_for,
    verify_domain,
    violation_disjuncts,
)
