"""z3 formulas of a Spec turned into torch functions of a batch: terms, crisp truth and fuzzy truth.

A formula is compiled once into nested closures; each closure maps a ``Batch`` to a tensor, so a
training step pays no z3 call. Shapes: ``inputs`` is ``(n, d)``, ``outputs`` is ``(..., n, k)``
(leading dimensions are side-by-side models); every compiled function returns ``(..., n)`` or a
broadcastable 0-d tensor.

Three readings of the same formula:

- *terms*: arithmetic (``+ - * /``, powers, ``abs``, ``ite``) as differentiable torch;
- *crisp*: Boolean tensors, exact in float64 (used to count violations and for input-only tests);
  terms and crisp truth are built from the operator table of ``deepsade.semantics``, the one the
  metrics read on numpy, so both count the same violations;
- *fuzzy*: truth values in [0, 1] (SBR). Connectives follow a t-norm (product or Lukasiewicz),
  negations are pushed down to the comparisons, and a comparison that mentions an output becomes
  ``min(1, 2 * sigmoid(steepness * margin))`` where ``margin`` is how far the comparison holds
  (``b - a`` for ``a <= b``): exactly 1 when it holds, smooth and tending to 0 as it is violated,
  with slope ``steepness / 2`` at the boundary. The margin is in network units (scaled values for
  regression, logits for classifiers), so the default steepness 10 gives truth 0.54 to a violation
  by 0.1. Comparisons that mention no output are evaluated crisply: the inputs are data, not
  something to learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import z3

from deepsade.errors import UserInputError
from deepsade.semantics import FormulaCompiler, is_supported, torch_namespace, unsupported_operator
from deepsade.spec import free_constants

Fn = Callable[["Batch"], torch.Tensor]
DEFAULT_STEEPNESS = 10.0
TNORMS = ("product", "lukasiewicz")


@dataclass(frozen=True)
class Batch:
    """What a compiled formula reads: scaled inputs (float64) and network outputs (any float dtype)."""

    inputs: torch.Tensor  # (n, d)
    outputs: torch.Tensor  # (..., n, k)


def mentions_outputs(expr: z3.ExprRef) -> bool:
    """True when ``expr`` reads a network output (a ``y!k`` variable)."""
    return any(name.startswith("y!") for name in free_constants(expr))


def _variable(name: str) -> Fn:
    """Reads ``x!j`` (scaled input j) or ``y!k`` (output k) from a batch."""
    kind, _, index = name.partition("!")
    if kind not in ("x", "y") or not index.isdigit():
        raise UserInputError(f"unknown variable {name!r} in a scaled formula")
    j = int(index)
    if kind == "x":
        return lambda b: b.inputs[:, j]
    return lambda b: b.outputs[..., j]


def compile_term(expr: z3.ExprRef, condition: Callable[[z3.BoolRef], Fn],
                 select: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> Fn:
    """An arithmetic term as a torch function; ``ite`` conditions use ``condition``, mixed by ``select``.

    Crisp callers pass ``compile_crisp`` and ``torch.where``; fuzzy callers a truth-weighted mix of the
    branches. Every operator means what ``deepsade.semantics`` says (as in the metrics on numpy)."""
    return FormulaCompiler(torch_namespace(), _variable, condition=condition, select=select).compile(expr)


def _comparison_sides(expr: z3.BoolRef) -> tuple[z3.ExprRef, z3.ExprRef] | None:
    """(a, b) for an arithmetic comparison ``a op b``; None for anything else."""
    if expr.num_args() == 2 and z3.is_arith(expr.arg(0)) and (
        z3.is_le(expr) or z3.is_lt(expr) or z3.is_ge(expr) or z3.is_gt(expr) or z3.is_eq(expr)
        or z3.is_distinct(expr)
    ):
        return expr.arg(0), expr.arg(1)
    return None


# ---- crisp truth ---------------------------------------------------------------------------------

def compile_crisp(expr: z3.ExprRef) -> Fn:
    """Exact Boolean truth of a formula (a bool tensor), or the value of a term; evaluate on float64 outputs
    for an exact count. The same meaning as ``spec.evaluate`` on numpy (``deepsade.semantics``)."""
    return FormulaCompiler(torch_namespace(), _variable).compile(expr)


# ---- fuzzy truth ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TNorm:
    """Fuzzy connectives: conjunction, disjunction and the implication ``or(not a, b)``."""

    name: str

    def conjunction(self, values: list[torch.Tensor]) -> torch.Tensor:
        if self.name == "product":
            result = values[0]
            for v in values[1:]:
                result = result * v
            return result
        return torch.clamp(sum(values) - (len(values) - 1), min=0.0)

    def disjunction(self, values: list[torch.Tensor]) -> torch.Tensor:
        if self.name == "product":
            result = 1.0 - values[0]
            for v in values[1:]:
                result = result * (1.0 - v)
            return 1.0 - result
        return torch.clamp(sum(values), max=1.0)

    def implication(self, premise: torch.Tensor, conclusion: torch.Tensor) -> torch.Tensor:
        return self.disjunction([1.0 - premise, conclusion])


def make_tnorm(name: str) -> TNorm:
    if name not in TNORMS:
        raise UserInputError(f"unknown t-norm {name!r}; choose one of {', '.join(TNORMS)}")
    return TNorm(name)


def soft_holds(margin: torch.Tensor, steepness: float) -> torch.Tensor:
    """Truth of ``margin >= 0``: 1 where it holds, ``2 sigmoid(steepness * margin)`` below."""
    return torch.clamp(2.0 * torch.sigmoid(steepness * margin), max=1.0)


_NEGATED_COMPARISON = {z3.Z3_OP_LE: z3.Z3_OP_GT, z3.Z3_OP_LT: z3.Z3_OP_GE, z3.Z3_OP_GE: z3.Z3_OP_LT,
                       z3.Z3_OP_GT: z3.Z3_OP_LE, z3.Z3_OP_EQ: z3.Z3_OP_DISTINCT, z3.Z3_OP_DISTINCT: z3.Z3_OP_EQ}


def compile_fuzzy(expr: z3.BoolRef, tnorm: TNorm, steepness: float = DEFAULT_STEEPNESS,
                  negated: bool = False) -> Fn:
    """Fuzzy truth in [0, 1] of ``expr`` (of ``not expr`` when ``negated``), differentiable in the outputs.

    Negations are pushed down to the comparisons (De Morgan holds for both t-norms with ``1 - t``),
    so ``not (0 <= y)`` reads as ``y < 0`` and the truth is exactly 1 wherever the formula holds
    crisply. Exceptions, because a continuous truth cannot be 1 on all of ``a != b``: ``distinct``
    and a negated ``=``. Strict and non-strict comparisons share one reading, so the boundary of a
    strict comparison counts as holding (a set of measure zero for float outputs)."""
    if not mentions_outputs(expr):
        crisp = compile_crisp(expr)
        if negated:
            return lambda b: torch.logical_not(crisp(b)).to(torch.float64)
        return lambda b: crisp(b).to(torch.float64)

    def sub(e: z3.BoolRef, flip: bool = False) -> Fn:
        return compile_fuzzy(e, tnorm, steepness, negated=flip)

    def mix(weight: torch.Tensor, then: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return weight * then + (1.0 - weight) * other

    kind = expr.decl().kind()
    sides = _comparison_sides(expr)
    if sides is not None:
        a, c = (compile_term(s, sub, mix) for s in sides)
        kind = _NEGATED_COMPARISON[kind] if negated else kind
        if kind in (z3.Z3_OP_LE, z3.Z3_OP_LT):
            return lambda b: soft_holds(c(b) - a(b), steepness)
        if kind in (z3.Z3_OP_GE, z3.Z3_OP_GT):
            return lambda b: soft_holds(a(b) - c(b), steepness)
        if kind == z3.Z3_OP_EQ:
            return lambda b: soft_holds(-torch.abs(a(b) - c(b)), steepness)
        return lambda b: 1.0 - soft_holds(-torch.abs(a(b) - c(b)), steepness)
    children = expr.children()
    if kind == z3.Z3_OP_NOT:
        return sub(children[0], not negated)
    if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
        args = [sub(c, negated) for c in children]
        if (kind == z3.Z3_OP_AND) != negated:
            return lambda b: tnorm.conjunction([f(b) for f in args])
        return lambda b: tnorm.disjunction([f(b) for f in args])
    if kind == z3.Z3_OP_IMPLIES:
        premise, conclusion = sub(children[0]), sub(children[1], negated)
        if negated:  # not (p => q) is p and not q
            return lambda b: tnorm.conjunction([premise(b), conclusion(b)])
        return lambda b: tnorm.implication(premise(b), conclusion(b))
    if kind == z3.Z3_OP_ITE:
        condition, then, other = sub(children[0]), sub(children[1], negated), sub(children[2], negated)
        return lambda b: mix(condition(b), then(b), other(b))
    if kind in (z3.Z3_OP_EQ, z3.Z3_OP_XOR, z3.Z3_OP_DISTINCT) and len(children) == 2:
        p, q, not_q = sub(children[0]), sub(children[1]), sub(children[1], True)
        equivalence = (kind == z3.Z3_OP_EQ) != negated
        second = q if equivalence else not_q  # p <=> q, or p <=> not q (xor)

        def iff(b: Batch) -> torch.Tensor:
            left, right = p(b), second(b)
            return tnorm.disjunction([tnorm.conjunction([left, right]),
                                      tnorm.conjunction([1.0 - left, 1.0 - right])])
        return iff
    if not is_supported(kind):
        raise unsupported_operator(expr)
    raise UserInputError(f"operator '{expr.decl().name()}' with {len(children)} arguments has no fuzzy reading "
                         "(sbr) where it mentions an output: write it with and/or/not and comparisons")
