"""What the constraint says: SMT-LIB asserts bound to the data's columns, in raw and in scaled units.

Every declared name is an input feature or an output score. The network works in scaled units;
each assert is rewritten into them by exact affine substitution (rationals), so a formula that holds
in scaled units holds in raw units and vice versa. Variables of the scaled formulas are
``input_var(j)`` (scaled input j) and ``output_var(k)`` (network output k).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import z3

from deepsade.data import Encoding
from deepsade.errors import UserInputError
from deepsade.numbers import decimal_text, z3_rational
from deepsade.semantics import evaluate
from deepsade.smtlib import ConstraintSource, read_constraint_file, read_constraint_text
from deepsade.terms import distinct_subterms, free_constants, split_implication  # noqa: F401 (imported from here too)


def input_var(j: int) -> z3.ArithRef:
    """The z3 variable for scaled input feature j."""
    return z3.Real(f"x!{j}")


def output_var(k: int) -> z3.ArithRef:
    """The z3 variable for network output k (scaled units for regression, scores for classifiers)."""
    return z3.Real(f"y!{k}")


# The one conversion lives in deepsade.numbers; this name stays for the modules that import it from here.
rational = z3_rational


_LINEAR_OPS = {z3.Z3_OP_ADD, z3.Z3_OP_SUB, z3.Z3_OP_UMINUS, z3.Z3_OP_TO_REAL}


def is_linear(expr: z3.ExprRef) -> bool:
    """True when every arithmetic term is linear (sums, constant multiples) and holds no ``ite``."""
    if z3.is_bool(expr):
        return all(is_linear(c) for c in expr.children())
    if z3.is_rational_value(expr) or z3.is_int_value(expr) or z3.is_const(expr):
        return True
    kind = expr.decl().kind()
    if kind in _LINEAR_OPS:
        return all(is_linear(c) for c in expr.children())
    if kind == z3.Z3_OP_MUL:
        non_constant = [c for c in expr.children() if free_constants(c)]
        return len(non_constant) <= 1 and all(is_linear(c) for c in expr.children())
    if kind == z3.Z3_OP_DIV:  # z3 reads (/ a) as a and (/ a b c) as (a / b) / c
        numerator, *denominators = expr.children()
        return not any(free_constants(d) for d in denominators) and is_linear(numerator)
    return False


def conjunction_atoms(expr: z3.BoolRef) -> list[z3.BoolRef] | None:
    """Flatten nested ``and`` into comparison atoms; None if anything else (or, not, ite, ...) is in the way."""
    if z3.is_true(expr):
        return []
    if z3.is_and(expr):
        atoms: list[z3.BoolRef] = []
        for child in expr.children():
            sub = conjunction_atoms(child)
            if sub is None:
                return None
            atoms.extend(sub)
        return atoms
    if z3.is_le(expr) or z3.is_lt(expr) or z3.is_ge(expr) or z3.is_gt(expr):
        return [expr]
    if z3.is_eq(expr) and z3.is_arith(expr.arg(0)):
        return [expr]
    if z3.is_not(expr):
        inner = expr.arg(0)
        # not (a <= b) is a > b, etc.: still a single linear atom
        flipped = {z3.Z3_OP_LE: lambda a, b: a > b, z3.Z3_OP_LT: lambda a, b: a >= b,
                   z3.Z3_OP_GE: lambda a, b: a < b, z3.Z3_OP_GT: lambda a, b: a <= b}
        if z3.is_app(inner) and inner.decl().kind() in flipped:
            return [flipped[inner.decl().kind()](inner.arg(0), inner.arg(1))]
    return None


@dataclass
class Assert:
    """One assert of the constraint file, as given and in scaled units."""

    index: int
    text: str  # SMT-LIB of the assert as written (before the equivalent rewrites), raw units
    raw: z3.BoolRef  # over the column-named constants
    scaled: z3.BoolRef  # over input_var / output_var
    premise: z3.BoolRef  # scaled, inputs only ('true' when the assert is not an implication)
    conclusion: z3.BoolRef  # scaled
    inputs: list[int]  # input indices mentioned
    outputs: list[int]  # output indices mentioned
    linear: bool
    case_of: int | None = None  # the index of the assert as written that this one is a case of (deepsade.cases)

    @property
    def has_premise(self) -> bool:
        return not z3.is_true(self.premise)

    @property
    def written_index(self) -> int:
        """The index of the assert as written in the constraint file that this assert comes from."""
        return self.index if self.case_of is None else self.case_of


@dataclass
class Spec:
    """The parsed constraint file, bound to an encoding."""

    source: ConstraintSource
    input_names: list[str]
    output_names: list[str]
    asserts: list[Assert]
    declared: dict[str, str]
    notes: tuple[str, ...] = field(default_factory=tuple)
    # the inputs the asserts as written mention (None: those the asserts mention): a case split may leave out
    # a case whose premise is false as written, but the network's skip features stay those of the rule
    written_inputs: tuple[int, ...] | None = None

    @property
    def n_written(self) -> int:
        """How many asserts the constraint file holds (one split into cases counts once)."""
        return len({a.written_index for a in self.asserts})

    @property
    def mapped_features(self) -> list[int]:
        """Input indices the constraint mentions: they get identity skip connections to the last layer."""
        if self.written_inputs is not None:
            return sorted(self.written_inputs)
        return sorted({j for a in self.asserts for j in a.inputs})

    def evaluate_raw(self, raw_inputs: np.ndarray, raw_outputs: np.ndarray) -> np.ndarray:
        """Truth of each assert per row, shape (n, n_asserts), on raw-unit inputs and outputs."""
        env = {name: raw_inputs[:, j] for j, name in enumerate(self.input_names)}
        env.update({name: raw_outputs[:, k] for k, name in enumerate(self.output_names)})
        n = len(raw_inputs)
        with np.errstate(all="ignore"):  # x / 0 gives inf or nan, and a comparison with nan is false
            return np.stack([np.broadcast_to(evaluate(a.raw, env), (n,)) for a in self.asserts], axis=1)

    def evaluate_scaled(self, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Truth of each assert per row on scaled inputs and network outputs (what the network sees)."""
        env = {f"x!{j}": inputs[:, j] for j in range(inputs.shape[1])}
        env.update({f"y!{k}": outputs[:, k] for k in range(outputs.shape[1])})
        n = len(inputs)
        with np.errstate(all="ignore"):
            return np.stack([np.broadcast_to(evaluate(a.scaled, env), (n,)) for a in self.asserts], axis=1)


def parse_spec(source: ConstraintSource | str | Path, encoding: Encoding, cases: bool = True) -> Spec:
    """Parse a constraint file (path or already-read source) and bind its names to the encoding.

    ``cases=False`` keeps every assert whole (no ``deepsade.cases`` split): for a check independent of the
    split, such as ``scripts/attack_certified.py --whole-asserts``; every command uses the default."""
    if not isinstance(source, ConstraintSource):
        source = read_constraint_file(source)
    inputs = {name: j for j, name in enumerate(encoding.input_names)}
    outputs = {name: k for k, name in enumerate(encoding.output_names)}
    _check_declarations(source, encoding, inputs, outputs)
    _check_shadowing(source, encoding)
    try:
        parsed = z3.parse_smt2_string(source.text)
    except z3.Z3Exception as exc:
        raise UserInputError(f"constraint file rejected by z3: {_z3_error(exc)}") from None
    for index, raw in enumerate(parsed):
        _check_formula_shape(raw, index)
    as_written = [decimal_text(raw.sexpr()) for raw in parsed]  # the asserts as written (macros expanded)
    parsed = [rewrite_absolute_bounds(rewrite_disequalities(raw)) for raw in parsed]
    from deepsade.cases import expand_premise_choices

    premise_choices = []
    for index, raw in enumerate(parsed):
        expanded = expand_premise_choices(raw, set(outputs))
        if expanded is not None:
            parsed[index] = expanded
            premise_choices.append(index + 1)
    for index, raw in enumerate(parsed):
        if not free_constants(raw) & set(outputs):
            raise UserInputError(
                f"assert {index + 1} ({_short(raw)}) mentions no output: it restricts the data, not the model"
            )
    # (raw, text, case_of): the asserts as written, and after them the further cases of any assert split into
    # cases, so that every assert keeps its number (its first case takes it)
    written, further, notes = [], [], list(source.notes)
    if premise_choices:
        numbered = ", ".join(map(str, premise_choices))
        notes.append(f"assert{'s' if len(premise_choices) > 1 else ''} {numbered}: a premise that chooses a threshold "
                     "with ite on inputs is read as that ite's cases joined with or (the same rule, proven equivalent)")
    for index, raw in enumerate(parsed):
        split = _cases(raw, encoding, set(outputs)) if cases else None
        if split is None:
            written.append((raw, as_written[index], None))
            continue
        written.append((split[0], decimal_text(split[0].sexpr()), index))
        numbers = [index + 1] + [len(parsed) + len(further) + k + 1 for k in range(len(split) - 1)]
        further.extend((case, decimal_text(case.sexpr()), index) for case in split[1:])
        from deepsade.cases import case_forms

        notes.append(f"assert {index + 1} states {len(split)} cases ({case_forms(raw, set(outputs))}): it is checked "
                     f"as asserts {', '.join(map(str, numbers))}, one per case, which together say exactly what it "
                     "says")

    substitution = _scaling_substitution(encoding, inputs, outputs)
    asserts = []
    for index, (raw, text, case_of) in enumerate(written + further):
        names = free_constants(raw)
        mentioned_outputs = sorted(outputs[n] for n in names if n in outputs)
        raw_premise, raw_conclusion = split_implication(raw, set(outputs))
        premise, conclusion = (z3.simplify(z3.substitute(e, *substitution)) for e in (raw_premise, raw_conclusion))
        scaled = conclusion if z3.is_true(premise) else z3.Implies(premise, conclusion)
        asserts.append(Assert(
            index=index,
            text=text,
            raw=raw,
            scaled=scaled,
            premise=premise,
            conclusion=conclusion,
            inputs=sorted(inputs[n] for n in names if n in inputs),
            outputs=mentioned_outputs,
            linear=is_linear(raw),
            case_of=case_of,
        ))
    written_inputs = tuple(sorted({inputs[n] for raw in parsed for n in free_constants(raw) if n in inputs}))
    return Spec(source, list(encoding.input_names), list(encoding.output_names), asserts,
                dict(source.declared), tuple(notes), written_inputs)


def _cases(raw: z3.BoolRef, encoding: Encoding, output_names: set[str]) -> list[z3.BoolRef] | None:
    """The assert as one implication per case (deepsade.cases), for a regression rule; None to keep it whole.

    Only regression rules are split: the classifier constructions (score clamps, label repair) take a premise
    joined with or as it is, and their committed results were made with the rules whole."""
    if encoding.task != "regression":
        return None
    from deepsade.cases import split_cases

    return split_cases(raw, output_names)


# Bounds on each assert once define-fun macros are expanded: the file's own size and nesting are bounded
# before parsing (smtlib.py), but macros that use each other can multiply both (a chain of 60 doublings
# is a few lines). Deeper or larger formulas would exhaust Python's recursion or take forever to walk.
MAX_FORMULA_DEPTH = 400
MAX_FORMULA_NODES = 100_000


def _check_shadowing(source: ConstraintSource, encoding: Encoding) -> None:
    """Refuse a define-fun or let that binds the name of a column, input or output (declared or not)."""
    columns = set(encoding.input_names) | set(encoding.output_names) | set(encoding.feature_columns) \
        | set(encoding.target_columns)
    for name, line in source.bound_names:
        if name in columns:
            raise UserInputError(f"line {line}: '{name}' is a column name and is bound again by a define-fun or let: "
                                 "the rule would not mean what it reads; rename the binding")


def rewrite_disequalities(expr: z3.BoolRef) -> z3.BoolRef:
    """The same formula with ``(not (= a b))`` and ``distinct`` over numbers written as ``a < b or a > b``
    and ``xor`` / Boolean ``=`` written with and/or/not, so the disjunctive fast paths can take them."""
    cache: dict[int, z3.ExprRef] = {}

    def unequal(a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return z3.Or(a < b, a > b)

    def walk(node: z3.ExprRef) -> z3.ExprRef:
        key = node.get_id()
        if key in cache:
            return cache[key]
        if not z3.is_app(node) or node.num_args() == 0:
            cache[key] = node
            return node
        children = [walk(c) for c in node.children()]
        kind = node.decl().kind()
        if kind == z3.Z3_OP_NOT and z3.is_eq(node.arg(0)) and z3.is_arith(node.arg(0).arg(0)):
            left, right = children[0].children()
            result = unequal(left, right)
        elif kind == z3.Z3_OP_DISTINCT and z3.is_arith(node.arg(0)):
            result = z3.And(*[unequal(children[i], children[j])
                              for i in range(len(children)) for j in range(i + 1, len(children))])
        elif kind == z3.Z3_OP_DISTINCT and len(children) == 2:  # Booleans: two distinct truth values
            result = z3.Or(z3.And(children[0], z3.Not(children[1])), z3.And(z3.Not(children[0]), children[1]))
        elif kind == z3.Z3_OP_DISTINCT:  # three or more distinct Booleans cannot exist
            result = z3.BoolVal(False)
        elif kind == z3.Z3_OP_XOR:
            a, b = children
            result = z3.Or(z3.And(a, z3.Not(b)), z3.And(z3.Not(a), b))
        elif kind == z3.Z3_OP_EQ and z3.is_bool(node.arg(0)):
            result = z3.And(*[z3.Or(z3.And(children[0], c), z3.And(z3.Not(children[0]), z3.Not(c)))
                              for c in children[1:]])
        else:
            result = _rebuilt(node, children)
        cache[key] = result
        return result

    return walk(expr)


def _rebuilt(node: z3.ExprRef, children: list[z3.ExprRef]) -> z3.ExprRef:
    """``node`` over rewritten ``children``: ``node`` itself when none changed (z3's own term; some, like a unary
    '/', cannot be rebuilt) or when z3 cannot rebuild it (the rewrites are optional)."""
    if all(new.eq(old) for new, old in zip(children, node.children(), strict=True)):
        return node
    try:
        return node.decl()(*children)
    except z3.Z3Exception:
        return node


def rewrite_absolute_bounds(expr: z3.BoolRef) -> z3.BoolRef:
    """The same formula with every comparison of an ``abs`` with a term written without it:
    ``|t| <= c`` as ``t <= c and -t <= c`` (a band: linear, so the polytope paths can take it) and
    ``|t| >= c`` as ``t >= c or -t >= c`` (likewise with strict comparisons, either side). Each is an
    equivalence, so the rule means exactly what it read; any other use of ``abs`` is left as written."""
    cache: dict[int, z3.ExprRef] = {}
    below = {z3.Z3_OP_LE: lambda a, b: a <= b, z3.Z3_OP_LT: lambda a, b: a < b}
    above = {z3.Z3_OP_GE: lambda a, b: a >= b, z3.Z3_OP_GT: lambda a, b: a > b}
    mirrored = {z3.Z3_OP_LE: z3.Z3_OP_GE, z3.Z3_OP_LT: z3.Z3_OP_GT, z3.Z3_OP_GE: z3.Z3_OP_LE,
                z3.Z3_OP_GT: z3.Z3_OP_LT}

    def is_abs(term: z3.ExprRef) -> bool:
        return z3.is_app(term) and term.decl().kind() == z3.Z3_OP_ABS

    def walk(node: z3.ExprRef) -> z3.ExprRef:
        key = node.get_id()
        if key in cache:
            return cache[key]
        result = node
        if z3.is_app(node) and node.num_args() == 2 and node.decl().kind() in mirrored:
            kind, left, right = node.decl().kind(), node.arg(0), node.arg(1)
            if not is_abs(left) and is_abs(right):  # c <= |t| is |t| >= c
                kind, left, right = mirrored[kind], right, left
            if is_abs(left):
                t = left.arg(0)
                if kind in below:
                    result = z3.And(below[kind](t, right), below[kind](-t, right))
                else:
                    result = z3.Or(above[kind](t, right), above[kind](-t, right))
        elif z3.is_app(node) and node.num_args() and z3.is_bool(node):
            result = _rebuilt(node, [walk(c) for c in node.children()])
        cache[key] = result
        return result

    return walk(expr)


def _z3_error(exc: z3.Z3Exception) -> str:
    """z3's parser message on one line: '(error "line 3 column 9: unknown constant q")' -> 'line 3 column 9: ...'."""
    message = exc.value.decode(errors="replace") if isinstance(exc.value, bytes) else str(exc.value)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "z3 could not parse the file"
    match = re.fullmatch(r'\(error "(.*?)"\)', lines[0])
    return " ".join((match.group(1) if match else lines[0]).split())


def _check_formula_shape(expr: z3.ExprRef, index: int) -> None:
    """Refuse an assert whose expanded formula is deeper or larger than the bounds (computed on z3's shared
    DAG, so a formula with an astronomically large tree is measured cheaply)."""
    shape: dict[int, tuple[int, int]] = {}
    stack: list[tuple[z3.ExprRef, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        key = node.get_id()
        if key in shape:
            continue
        children = node.children()
        if children and not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in children if child.get_id() not in shape)
            continue
        depth = 1 + max((shape[c.get_id()][0] for c in children), default=0)
        size = min(1 + sum(shape[c.get_id()][1] for c in children), MAX_FORMULA_NODES + 1)
        if depth > MAX_FORMULA_DEPTH:
            raise UserInputError(f"assert {index + 1} nests deeper than {MAX_FORMULA_DEPTH} levels once its "
                                 "define-fun macros and let bindings are expanded")
        shape[key] = (depth, size)
    if shape[expr.get_id()][1] > MAX_FORMULA_NODES:
        raise UserInputError(f"assert {index + 1} has more than {MAX_FORMULA_NODES:,} terms once its define-fun "
                             "macros and let bindings are expanded")


def vacuous_asserts(spec: Spec, low: Sequence[Fraction], high: Sequence[Fraction],
                    timeout_s: float = 10.0) -> list[int]:
    """Indices of asserts whose premise holds nowhere in the (scaled) domain box: they constrain nothing there,
    which usually means a unit slip (raw units are expected) or a rule meant for inputs outside the data.

    An assert split into cases (deepsade.cases) is named once, by its first case, and only when none of its
    cases holds anywhere: a case that cannot happen (``flag > 1`` for a 0/1 flag) is no slip of the user's."""
    holds_somewhere: dict[int, bool] = {}
    for a in spec.asserts:
        if not a.has_premise:
            holds_somewhere[a.written_index] = True
            continue
        if holds_somewhere.get(a.written_index):
            continue
        solver = z3.Solver()
        solver.set("timeout", int(timeout_s * 1000))
        for j in a.inputs:
            solver.add(input_var(j) >= rational(Fraction(low[j])), input_var(j) <= rational(Fraction(high[j])))
        solver.add(a.premise)
        holds_somewhere[a.written_index] = solver.check() != z3.unsat
    return sorted(i for i, holds in holds_somewhere.items() if not holds)


def parse_spec_text(text: str, encoding: Encoding, cases: bool = True) -> Spec:
    return parse_spec(read_constraint_text(text), encoding, cases)


def _short(expr: z3.ExprRef, limit: int = 80) -> str:
    text = " ".join(decimal_text(expr.sexpr()).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_declarations(source: ConstraintSource, encoding: Encoding, inputs: dict, outputs: dict) -> None:
    wrong_sort = [f"{n} ({s})" for n, s in source.declared.items() if s != "Real"]
    if wrong_sort:
        categorical = [n for n, s in source.declared.items() if s != "Real" and n in encoding.categorical_levels]
        hint = "".join(f"; '{n}' is categorical: its one-hot inputs are Reals named |{n}=VALUE| (1 for the row's "
                       f"value, 0 otherwise), e.g. |{n}={encoding.categorical_levels[n][0]}|" for n in categorical)
        raise UserInputError(
            f"declare these as Real (the network computes over the reals): {', '.join(wrong_sort)}{hint}"
        )
    unknown = [n for n in source.declared if n not in inputs and n not in outputs]
    if unknown:
        hints = []
        for name in unknown:
            if name in encoding.target_columns and encoding.task == "multiclass":
                hints.append(f"'{name}' is a multiclass target: name its scores as |{name}=CLASS|.")
            elif name in encoding.categorical_levels:
                hints.append(f"'{name}' is categorical: name its one-hot inputs as |{name}=VALUE|.")
            elif name.split("=", 1)[0] in (encoding.identifier_columns or []):
                hints.append(f"'{name.split('=', 1)[0]}' held a different value in every row, so it was left out of "
                             "the inputs as an identifier: name it with --features to use it.")
            elif name in (encoding.constant_columns or {}):
                hints.append(f"'{name}' holds one value ({encoding.constant_columns[name]}) in every row, so it was "
                             "left out of the inputs: give rows where it varies, or drop it from the rule.")
        raise UserInputError(
            f"constraint declares name(s) that are neither inputs nor outputs: {', '.join(map(repr, unknown))}. "
            + (" ".join(hints) + " " if hints else "")
            + f"Inputs: {', '.join(encoding.input_names)}. Outputs: {', '.join(encoding.output_names)}."
        )


def _scaling_substitution(encoding: Encoding, inputs: dict, outputs: dict) -> list[tuple[z3.ExprRef, z3.ExprRef]]:
    """raw name -> offset + scale * scaled variable, exactly."""
    pairs = []
    for name, j in inputs.items():
        offset, scale = encoding.input_affine()[j]
        pairs.append((z3.Real(name), rational(offset) + rational(scale) * input_var(j)))
    for name, k in outputs.items():
        offset, scale = encoding.output_affine()[k]
        pairs.append((z3.Real(name), rational(offset) + rational(scale) * output_var(k)))
    return pairs
