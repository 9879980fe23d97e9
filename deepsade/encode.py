"""Old import path, kept while other branches move over: everything lives in ``deepsade.encoding``."""

from deepsade.encoding.dual import (  # noqa: F401
    ConclusionRow,
    DualAssert,
    Premise,
    dual_constraints,
    dual_satisfied,
    dual_worst_case,
    to_dual,
)
from deepsade.encoding.dual_or import (  # noqa: F401
    DisjunctiveDual,
    disjunctive_constraints,
    disjunctive_satisfied,
    to_disjunctive_dual,
)
from deepsade.encoding.exact import Counterexample, find_counterexample, point_constraint  # noqa: F401
from deepsade.encoding.layout import LatentLayout, weight_variables  # noqa: F401
from deepsade.encoding.qe import eliminate_quantifiers  # noqa: F401
from deepsade.encoding.quantified import quantified_formula  # noqa: F401
from deepsade.encoding.registry import user_choices

STRATEGIES = user_choices()
