"""One assert that states several cases, written as one assert per case: an exact equivalence.

A practitioner writes "if the applicant is young or new, the limit is at most 500" as one premise joined with
``or``, and "the limit is 50 in town and 130 outside" as a bound chosen with ``ite``. Both are a conjunction
of implications, one per case::

    (=> (or A B) C)              is   (=> A C) and (=> B C)
    (=> P (<= y (ite c a b)))    is   (=> (and P c) (<= y a)) and (=> (and P (not c)) (<= y b))
    (and (=> A C1) (=> B C2))    is   (=> A C1) and (=> B C2)

(``c`` reads inputs only). The sequential clamps take a conjunction of linear inequalities over the inputs as
a premise gate, so once split such a rule trains at an unconstrained network's cost instead of going to
DeepSaDe with one wide premise. Each case's premise is put in disjunctive normal form, negations pushed down
to the comparisons, so that every case is a conjunction of comparisons.

Cases that never hold in the domain box (``flag > 1`` for a 0/1 flag, from the ``not`` of ``flag = 1``)
constrain nothing and are kept: the domain is not known when the rule is read.
"""

from __future__ import annotations

import z3

from deepsade.terms import COMPARE, NEGATED_COMPARISON, distinct_subterms, free_constants, split_implication

# more cases than this and the assert is kept as written: a premise in conjunctive form can have exponentially
# many disjuncts, and each case costs a premise gate
MAX_CASES = 16
EQUIVALENCE_RLIMIT = 2_000_000  # z3 resource units for proving a split equivalent (deterministic)


class _TooManyCases(Exception):
    pass


def split_cases(expr: z3.BoolRef, output_names: set[str]) -> list[z3.BoolRef] | None:
    """The assert ``expr`` as one implication per case (their conjunction is equivalent to ``expr``), or None
    when it states one case only, when it would take more than ``MAX_CASES``, when a case would mention
    no output (a condition on the data, not on the model), or when z3 does not prove the split equivalent."""
    try:
        split = [case for part in _rules(expr, output_names) for case in _cases(part, output_names)]
    except _TooManyCases:
        return None
    if len(split) <= 1 or len(split) > MAX_CASES or any(not free_constants(c) & output_names for c in split):
        return None
    if not _equivalent(expr, z3.And(*split)):
        return None
    return split


# more input ``ite``s than this in one premise and it is kept as written (each doubles the premise)
MAX_PREMISE_CHOICES = 4


def expand_premise_choices(expr: z3.BoolRef, output_names: set[str]) -> z3.BoolRef | None:
    """``expr`` with each comparison of its premise that holds an ``ite`` on inputs written as that ite's cases,
    ``(>= years (ite (>= age 40.0) 15.0 12.0))`` as ``(or (and (>= age 40.0) (>= years 15.0)) (and (not (>= age
    40.0)) (>= years 12.0)))``; None when the premise holds no such ite, holds more than ``MAX_PREMISE_CHOICES``,
    or z3 does not prove the rewrite equivalent. A premise of comparisons is what the premise gates, the score
    clamps and the linear encodings take; with the ite in it, the rule read as nonlinear and went to DeepSaDe
    (a new-user probe: 0.744 accuracy against 0.920 with the same rule written as two asserts)."""
    premise, conclusion = split_implication(expr, output_names)
    choices = [n for n in distinct_subterms(premise) if _is_input_choice(n, output_names)]
    if not choices or len(choices) > MAX_PREMISE_CHOICES:
        return None
    rewritten = z3.Implies(_expand_choices(premise, output_names), conclusion)
    return rewritten if _equivalent(expr, rewritten) else None


def _expand_choices(formula: z3.BoolRef, output_names: set[str]) -> z3.BoolRef:
    """``formula`` (Boolean, over inputs) with its comparisons' input ``ite``s written as cases."""
    kind = formula.decl().kind() if z3.is_app(formula) else None
    if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR, z3.Z3_OP_NOT, z3.Z3_OP_IMPLIES):
        children = [_expand_choices(c, output_names) for c in formula.children()]
        return {z3.Z3_OP_AND: z3.And, z3.Z3_OP_OR: z3.Or, z3.Z3_OP_NOT: z3.Not,
                z3.Z3_OP_IMPLIES: z3.Implies}[kind](*children)
    choice = next((n for n in distinct_subterms(formula) if _is_input_choice(n, output_names)), None)
    if choice is None or not z3.is_bool(formula):
        return formula
    test = choice.arg(0)
    taken, other = (_expand_choices(z3.substitute(formula, (choice, choice.arg(k))), output_names) for k in (1, 2))
    return z3.Or(z3.And(test, taken), z3.And(z3.Not(test), other))


def case_forms(expr: z3.BoolRef, output_names: set[str]) -> str:
    """What makes ``expr`` several cases, in words for the user's note (for an assert ``split_cases`` splits)."""
    forms = []
    rules = _rules(expr, output_names)
    if len(rules) > 1:
        forms.append("several rules joined with and")
    premises_conclusions = [split_implication(rule, output_names) for rule in rules]
    if any(len(_disjuncts(premise)) > 1 for premise, _ in premises_conclusions):
        forms.append("a premise joined with or")
    if any(_is_input_choice(n, output_names) for _, conclusion in premises_conclusions
           for n in distinct_subterms(conclusion)):
        forms.append("a value chosen with ite on inputs")
    return ", ".join(forms) or "several cases"


def _rules(expr: z3.BoolRef, output_names: set[str]) -> list[z3.BoolRef]:
    """``expr`` as the rules a conjunction in its conclusion holds, when one of them states cases of its own
    (``(and (=> A C1) (=> B C2))`` is two rules); else ``[expr]``: a plain conjunction of comparisons such as
    ``(and (>= y 0.0) (<= y 30.0))`` stays one assert, as the clamps take it."""
    premise, conclusion = split_implication(expr, output_names)
    conjuncts = _conjuncts(conclusion)
    if len(conjuncts) == 1 or not any(_states_cases(c, output_names) for c in conjuncts):
        return [expr]
    parts: list[z3.BoolRef] = []
    for conjunct in conjuncts:
        parts.extend(_rules(conjunct, output_names))
        if len(parts) > MAX_CASES:
            raise _TooManyCases
    return parts if z3.is_true(premise) else [z3.Implies(premise, rule) for rule in parts]


def _conjuncts(expr: z3.BoolRef) -> list[z3.BoolRef]:
    """The conjuncts of nested ``and``s, in order (``expr`` itself when it is no conjunction)."""
    found, stack = [], [expr]
    while stack:
        node = stack.pop()
        if z3.is_and(node):
            stack.extend(reversed(node.children()))
        else:
            found.append(node)
    return found


def _states_cases(expr: z3.BoolRef, output_names: set[str]) -> bool:
    """Whether ``expr`` (no conjunction) has a premise on inputs or an ``ite`` on inputs in its conclusion."""
    premise, conclusion = split_implication(expr, output_names)
    return not z3.is_true(premise) or any(_is_input_choice(n, output_names) for n in distinct_subterms(conclusion))


def _cases(expr: z3.BoolRef, output_names: set[str]) -> list[z3.BoolRef]:
    """One rule as one implication per case: its input ``ite`` choices resolved, its premise in disjunctive
    normal form (a rule of one case comes back as it is)."""
    premise, conclusion = split_implication(expr, output_names)
    choices = _choices(conclusion, output_names)
    cases = [(conjunct, chosen) for condition, chosen in choices
             for conjunct in _disjuncts(z3.And(premise, condition) if condition is not None else premise)]
    if len(cases) <= 1:
        return [expr]
    split = []
    for conjuncts, chosen in cases:
        literals = [c for c in conjuncts if not z3.is_true(c)]
        if any(z3.is_false(c) for c in literals):
            continue  # a case whose premise is false as written states nothing
        premise_of_case = z3.And(*literals) if len(literals) > 1 else (literals[0] if literals else None)
        split.append(chosen if premise_of_case is None else z3.Implies(premise_of_case, chosen))
    return split


def _equivalent(a: z3.BoolRef, b: z3.BoolRef) -> bool:
    """z3 proves ``a`` and ``b`` equivalent over the reals (every certificate reads the cases, so the split is
    checked each time it is made, not only trusted; not proven: the assert is kept whole).

    Bounded by z3's resource limit, not by time, so that whether an assert is split never depends on how busy
    the machine is (``train`` and a later ``certify`` must read the same asserts); a linear rule takes about a
    thousandth of it, a nonlinear one that exhausts it about half a second. The time limit is a backstop."""
    solver = z3.Solver()
    solver.set("rlimit", EQUIVALENCE_RLIMIT)
    solver.set("timeout", 60_000)
    solver.add(a != b)
    return solver.check() == z3.unsat


def _choices(conclusion: z3.BoolRef, output_names: set[str]) -> list[tuple[z3.BoolRef | None, z3.BoolRef]]:
    """``conclusion`` with every numeric ``ite`` whose condition reads inputs only resolved: one (condition,
    conclusion) pair per combination of branches taken (condition None: no ite to resolve)."""
    pending, done = [(None, conclusion)], []
    while pending:
        condition, term = pending.pop()
        choice = next((n for n in distinct_subterms(term) if _is_input_choice(n, output_names)), None)
        if choice is None:
            done.append((condition, term))
            continue
        test = choice.arg(0)
        for branch, holds in ((choice.arg(1), test), (choice.arg(2), z3.Not(test))):
            pending.append((holds if condition is None else z3.And(condition, holds),
                            z3.substitute(term, (choice, branch))))
        if len(pending) + len(done) > MAX_CASES:
            raise _TooManyCases
    return done[::-1]


def _is_input_choice(node: z3.ExprRef, output_names: set[str]) -> bool:
    return (z3.is_app(node) and node.decl().kind() == z3.Z3_OP_ITE and z3.is_arith(node)
            and not free_constants(node.arg(0)) & output_names)


def _disjuncts(premise: z3.BoolRef, negate: bool = False) -> list[list[z3.BoolRef]]:
    """``premise`` (or its negation) in disjunctive normal form: a list of conjunctions of comparisons (and
    any other Boolean term kept whole), negations pushed down to the comparisons."""
    kind = premise.decl().kind() if z3.is_app(premise) else None
    if kind == z3.Z3_OP_NOT:
        return _disjuncts(premise.arg(0), not negate)
    if kind == z3.Z3_OP_IMPLIES:  # a => b is (not a) or b
        return _disjuncts(z3.Or(z3.Not(premise.arg(0)), premise.arg(1)), negate)
    if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
        parts = [_disjuncts(c, negate) for c in premise.children()]
        if (kind == z3.Z3_OP_OR) != negate:  # a disjunction: the cases of each part
            cases = [case for part in parts for case in part]
        else:  # a conjunction: one case per choice of a case in each part
            cases = [[]]
            for part in parts:
                cases = [case + more for case in cases for more in part]
                if len(cases) > MAX_CASES:
                    raise _TooManyCases
        if len(cases) > MAX_CASES:
            raise _TooManyCases
        return cases
    if not negate:
        return [[premise]]
    if kind in NEGATED_COMPARISON:
        return [[COMPARE[NEGATED_COMPARISON[kind]](premise.arg(0), premise.arg(1))]]
    if kind == z3.Z3_OP_EQ and z3.is_arith(premise.arg(0)):  # a != b: a < b or a > b
        left, right = premise.arg(0), premise.arg(1)
        return [[COMPARE[z3.Z3_OP_LT](left, right)], [COMPARE[z3.Z3_OP_GT](left, right)]]
    if z3.is_true(premise) or z3.is_false(premise):
        return [[z3.BoolVal(z3.is_false(premise))]]
    return [[z3.Not(premise)]]
