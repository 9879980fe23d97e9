"""How a constraint becomes a constraint on the last layer's weights ``W, b`` alone.

For a latent box ``B`` (every reachable ``[h; s]``) each assert ``P(x) => Q(x, y)`` becomes
``forall z in B, |e| <= margin: P(s) => Q(s, W z + b + e)``: the conclusion must hold even when
every output moves by up to ``margin`` (so float rounding at inference cannot flip it).

One module per strategy (``dual``, ``dual_or``, ``sign_pattern``, ``cegis``, ``qe``, ``quantified``), each a
``Strategy`` (``base``) listed in the ordered ``registry`` that ``auto`` walks; the ``Encoder`` assigns
asserts to strategies; ``exact`` is the checker every strategy must agree with.
"""

from deepsade.encoding.base import ClosedFormVerdict, Margins, Strategy, Warmup
from deepsade.encoding.encoder import Encoder
from deepsade.encoding.exact import UNKNOWN, Counterexample, Undecided, find_counterexample, point_constraint
from deepsade.encoding.layout import LatentLayout, weight_variables
from deepsade.encoding.registry import register_strategy, registered, unregister_strategy, user_choices

__all__ = ["ClosedFormVerdict", "Counterexample", "Encoder", "LatentLayout", "Margins", "Strategy", "UNKNOWN",
           "Undecided", "Warmup", "find_counterexample", "point_constraint", "register_strategy", "registered",
           "unregister_strategy", "user_choices", "weight_variables"]
