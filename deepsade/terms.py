"""Walking z3 terms: distinct subterms, the named constants in a term, an implication's premise, and
comparisons by kind (built, negated)."""

from __future__ import annotations

from collections.abc import Iterator

import z3

# each comparison's negation, and a comparison of a kind built as a method of its left side: Python's ``a < b``
# tries ``b > a`` first when ``b`` is a number literal (a subclass), which prints the sides swapped
NEGATED_COMPARISON = {z3.Z3_OP_LE: z3.Z3_OP_GT, z3.Z3_OP_LT: z3.Z3_OP_GE, z3.Z3_OP_GE: z3.Z3_OP_LT,
                      z3.Z3_OP_GT: z3.Z3_OP_LE}
COMPARE = {z3.Z3_OP_LE: z3.ArithRef.__le__, z3.Z3_OP_LT: z3.ArithRef.__lt__, z3.Z3_OP_GE: z3.ArithRef.__ge__,
           z3.Z3_OP_GT: z3.ArithRef.__gt__}


def distinct_subterms(expr: z3.ExprRef) -> Iterator[z3.ExprRef]:
    """Every distinct node of ``expr`` once (formulas are DAGs: shared subterms are not revisited)."""
    seen: set[int] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node.get_id() in seen:
            continue
        seen.add(node.get_id())
        yield node
        stack.extend(node.children())


def free_constants(expr: z3.ExprRef) -> set[str]:
    """Names of the uninterpreted constants in ``expr``."""
    return {node.decl().name() for node in distinct_subterms(expr)
            if z3.is_const(node) and node.decl().kind() == z3.Z3_OP_UNINTERPRETED}


def split_implication(expr: z3.BoolRef, output_names: set[str]) -> tuple[z3.BoolRef, z3.BoolRef]:
    """``P => Q`` with P free of ``output_names`` -> (P, Q); nested implications merge their premises.

    An assert of another shape is (true, assert)."""
    premises: list[z3.BoolRef] = []
    while z3.is_implies(expr) and not (free_constants(expr.arg(0)) & output_names):
        premises.append(expr.arg(0))
        expr = expr.arg(1)
    premise = z3.And(*premises) if len(premises) > 1 else (premises[0] if premises else z3.BoolVal(True))
    return premise, expr
