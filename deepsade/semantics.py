"""What each operator of the rule language means on arrays: one table, read by numpy and by torch.

Metrics count violations with numpy (``spec.evaluate``); the baselines compile the same formulas into
torch (exact truth, loss terms, the arithmetic inside fuzzy truth). Both are built by ``FormulaCompiler``
from the one table ``OPERATORS``, parameterised by an ``ArrayNamespace`` that supplies the few primitives
where numpy and torch differ (arithmetic and comparisons are Python operators, which both share), so the
two cannot disagree on a rule.

Meaning, on float64 values of the reals (inputs and outputs are columns, one entry per row):

- numerals are their nearest float; ``true`` and ``false`` are Boolean constants;
- ``+ - * /`` fold left over their arguments as z3 reads them: ``(- a b c)`` is ``(a - b) - c``;
- ``(^ t e)`` needs an exponent that simplifies to a rational numeral: an integer ``e`` is ``t ** e``; for
  ``e = p/q`` in lowest terms it is the real ``q``-th root of ``t^p``, as z3 reads it (negative ``t`` with odd
  ``q`` has a root, negative for odd ``p``; with even ``q`` it has none);
- ``abs``, ``to_real`` (the value itself), ``to_int`` (floor), ``is_int``;
- ``<= < >= > =`` and ``distinct`` (pairwise) on terms; ``and or not => xor``, ``=`` (equivalence) and
  ``distinct`` on Booleans; ``ite`` on both.

Where z3 leaves a value undefined (division by zero, zero to a negative power, an even root of a negative
number) the float value is inf or nan, and any comparison with nan is false. Any other operator raises a
``UserInputError`` naming it, on both paths.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import z3

from deepsade.errors import UserInputError
from deepsade.numbers import z3_numeral_or_none

Array = Any  # a numpy array or a torch tensor, never both in one formula
Fn = Callable[[Any], Array]  # maps an environment (whatever ``variable`` reads) to an array


@dataclass(frozen=True)
class ArrayNamespace:
    """The primitives an array library supplies to the operator table."""

    name: str
    number: Callable[[float], Array]  # a 0-d float64 constant
    boolean: Callable[[bool], Array]  # a 0-d Boolean constant
    where: Callable[[Array, Array, Array], Array]
    logical_and: Callable[[Array, Array], Array]
    logical_or: Callable[[Array, Array], Array]
    logical_not: Callable[[Array], Array]
    logical_xor: Callable[[Array, Array], Array]
    absolute: Callable[[Array], Array]
    floor: Callable[[Array], Array]


NUMPY = ArrayNamespace(
    name="numpy",
    number=lambda value: np.asarray(value, dtype=np.float64),
    boolean=lambda value: np.asarray(value, dtype=bool),
    where=np.where,
    logical_and=np.logical_and,
    logical_or=np.logical_or,
    logical_not=np.logical_not,
    logical_xor=np.logical_xor,
    absolute=np.abs,
    floor=np.floor,
)


@functools.cache
def torch_namespace() -> ArrayNamespace:
    """The torch primitives (torch is imported on first use: metrics on numpy do not need it)."""
    import torch

    return ArrayNamespace(
        name="torch",
        number=lambda value: torch.tensor(value, dtype=torch.float64),
        boolean=lambda value: torch.tensor(value, dtype=torch.bool),
        where=torch.where,
        logical_and=torch.logical_and,
        logical_or=torch.logical_or,
        logical_not=torch.logical_not,
        logical_xor=torch.logical_xor,
        absolute=torch.abs,
        floor=torch.floor,
    )


# ---- the operator table --------------------------------------------------------------------------

Operator = Callable[[ArrayNamespace, Sequence[Array]], Array]


def _fold(combine: Callable[[Array, Array], Array]) -> Operator:
    return lambda ns, args: functools.reduce(combine, args)


def _fold_logical(name: str) -> Operator:
    return lambda ns, args: functools.reduce(getattr(ns, name), args)


def _all_pairs(ns: ArrayNamespace, pairs: list[Array]) -> Array:
    return functools.reduce(ns.logical_and, pairs)


# On numpy, ``=`` between numbers holds within float64 rounding: an equality the exact network keeps (the
# certificate's exact check) is computed in floats by ``predict``, whose sums round (``1e-12`` apart on
# budgets in the thousands). The certificate never reads this evaluator; it decides equalities exactly.
EQUALITY_RTOL = 1e-9
EQUALITY_ATOL = 1e-9


def _equal(ns: ArrayNamespace, left: Array, right: Array) -> Array:
    if ns.name != "numpy":
        return left == right
    left, right = np.asarray(left), np.asarray(right)
    if left.dtype.kind == "f" or right.dtype.kind == "f":
        return np.isclose(left, right, rtol=EQUALITY_RTOL, atol=EQUALITY_ATOL)
    return left == right


OPERATORS: dict[int, Operator] = {
    # arithmetic
    z3.Z3_OP_ADD: _fold(operator.add),
    z3.Z3_OP_SUB: _fold(operator.sub),
    z3.Z3_OP_MUL: _fold(operator.mul),
    z3.Z3_OP_DIV: _fold(operator.truediv),
    z3.Z3_OP_UMINUS: lambda ns, args: -args[0],
    z3.Z3_OP_TO_REAL: lambda ns, args: args[0],
    z3.Z3_OP_TO_INT: lambda ns, args: ns.floor(args[0]),
    z3.Z3_OP_IS_INT: lambda ns, args: args[0] == ns.floor(args[0]),
    z3.Z3_OP_ABS: lambda ns, args: ns.absolute(args[0]),
    # comparisons of terms (= and distinct also compare Booleans)
    z3.Z3_OP_LE: lambda ns, args: args[0] <= args[1],
    z3.Z3_OP_LT: lambda ns, args: args[0] < args[1],
    z3.Z3_OP_GE: lambda ns, args: args[0] >= args[1],
    z3.Z3_OP_GT: lambda ns, args: args[0] > args[1],
    z3.Z3_OP_EQ: lambda ns, args: _all_pairs(ns, [_equal(ns, args[0], other) for other in args[1:]]),
    z3.Z3_OP_DISTINCT: lambda ns, args: _all_pairs(
        ns, [args[i] != args[j] for i in range(len(args)) for j in range(i + 1, len(args))]),
    # connectives
    z3.Z3_OP_AND: _fold_logical("logical_and"),
    z3.Z3_OP_OR: _fold_logical("logical_or"),
    z3.Z3_OP_XOR: _fold_logical("logical_xor"),
    z3.Z3_OP_NOT: lambda ns, args: ns.logical_not(args[0]),
    z3.Z3_OP_IMPLIES: lambda ns, args: ns.logical_or(ns.logical_not(args[0]), args[1]),
}
# Read apart from the table: ite (its condition may be compiled by a caller's hook) and ^ (its exponent is
# read once, when the formula is compiled).
STRUCTURAL = frozenset({z3.Z3_OP_ITE, z3.Z3_OP_POWER})
SUPPORTED = "+ - * / ^ abs to_real to_int is_int <= < >= > = distinct and or not => xor ite true false numerals"


def unsupported_operator(expr: z3.ExprRef) -> UserInputError:
    """The one error for an operator the rules cannot use (the same whichever array library evaluates it)."""
    return UserInputError(f"operator '{expr.decl().name()}' is not supported in rules (supported: {SUPPORTED})")


def is_supported(kind: int) -> bool:
    """True when the operator kind has a meaning in ``OPERATORS`` or is read structurally (ite, ^)."""
    return kind in OPERATORS or kind in STRUCTURAL


def power(exponent: Fraction) -> Operator:
    """``t ^ exponent`` as z3 reads it on the reals (see the module docstring)."""
    value = float(exponent)
    if exponent.denominator == 1:
        return lambda ns, args: args[0] ** ns.number(value)
    odd_numerator, odd_root = exponent.numerator % 2 == 1, exponent.denominator % 2 == 1

    def real_root(ns: ArrayNamespace, args: Sequence[Array]) -> Array:
        base = args[0]
        magnitude = ns.absolute(base) ** ns.number(value)
        if not odd_root:
            return ns.where(base < 0, ns.number(math.nan), magnitude)
        return ns.where(base < 0, -magnitude, magnitude) if odd_numerator else magnitude
    return real_root


def constant_exponent(expr: z3.ExprRef) -> Fraction:
    """The rational exponent of ``(^ t e)``; a ``UserInputError`` when ``e`` is not a rational constant."""
    exponent = z3.simplify(expr.arg(1))
    value = z3_numeral_or_none(exponent) if not z3.is_algebraic_value(exponent) else None
    if value is None:
        text = " ".join(expr.sexpr().split())
        raise UserInputError(f"operator '^' needs a rational constant exponent: {text[:80]}")
    return value


# ---- compiling a z3 term or formula into a function of an environment ----------------------------

@dataclass
class FormulaCompiler:
    """Compiles z3 terms and formulas into functions of an environment, with the meaning of ``OPERATORS``.

    ``variable(name)`` gives the function that reads a declared constant from the environment. By default
    an ``ite`` inside a term selects crisply (``ns.where`` on the compiled condition); a caller may pass
    ``condition`` (compiles an ite's condition) and ``select`` (mixes the branches by it) to read ``ite``
    another way, as fuzzy truth does."""

    ns: ArrayNamespace
    variable: Callable[[str], Fn]
    condition: Callable[[z3.BoolRef], Fn] | None = None
    select: Callable[[Array, Array, Array], Array] | None = None
    _compiled: dict[int, Fn] = field(default_factory=dict, repr=False)

    def compile(self, expr: z3.ExprRef) -> Fn:
        """The function computing ``expr`` (a shared subterm is compiled once)."""
        key = expr.get_id()
        if key not in self._compiled:
            self._compiled[key] = self._compile_node(expr)
        return self._compiled[key]

    def _compile_node(self, expr: z3.ExprRef) -> Fn:
        if z3.is_true(expr) or z3.is_false(expr):
            truth = self.ns.boolean(z3.is_true(expr))
            return lambda env: truth
        number = z3_numeral_or_none(expr)
        if number is not None:
            constant = self.ns.number(float(number))
            return lambda env: constant
        if z3.is_const(expr) and expr.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            return self.variable(expr.decl().name())
        kind = expr.decl().kind()
        if kind == z3.Z3_OP_ITE:
            return self._ite(expr)
        if kind == z3.Z3_OP_POWER:
            return self._apply(power(constant_exponent(expr)), [self.compile(expr.arg(0))])
        if kind not in OPERATORS:
            raise unsupported_operator(expr)
        if kind == z3.Z3_OP_TO_REAL:  # the value itself: no extra call per evaluation
            return self.compile(expr.arg(0))
        return self._apply(OPERATORS[kind], [self.compile(child) for child in expr.children()])

    def _apply(self, op: Operator, args: list[Fn]) -> Fn:
        ns = self.ns
        return lambda env: op(ns, [arg(env) for arg in args])

    def _ite(self, expr: z3.ExprRef) -> Fn:
        hooked = self.condition is not None and not z3.is_bool(expr)
        condition = self.condition(expr.arg(0)) if hooked else self.compile(expr.arg(0))
        select = self.select if hooked and self.select is not None else self.ns.where
        then, other = self.compile(expr.arg(1)), self.compile(expr.arg(2))
        return lambda env: select(condition(env), then(env), other(env))


def evaluate(expr: z3.ExprRef, env: dict[str, np.ndarray]) -> np.ndarray:
    """``expr`` on numpy columns (one entry per row), names looked up in ``env``."""
    compiler = FormulaCompiler(NUMPY, lambda name: lambda columns: np.asarray(columns[name], dtype=np.float64))
    return compiler.compile(expr)(env)
