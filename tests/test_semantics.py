"""One meaning per operator: numpy (metrics), torch (baselines) and z3 agree on random rules.

Random terms and formulas are written as SMT-LIB text (as a user would write rules), parsed by z3, and
evaluated on random points by ``spec.evaluate`` (numpy) and by the baselines' torch compilation; a sample
of points is also substituted exactly into the formula and simplified by z3 itself.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import z3

from deepsade.baselines.formula import Batch, compile_crisp, compile_term
from deepsade.errors import UserInputError
from deepsade.numbers import z3_fraction, z3_rational
from deepsade.semantics import OPERATORS, STRUCTURAL
from deepsade.spec import distinct_subterms, evaluate

INPUTS, OUTPUTS = ("x!0", "x!1"), ("y!0", "y!1")
DECLARATIONS = "".join(f"(declare-const {name} Real)" for name in INPUTS + OUTPUTS)
N_ROWS = 64
TIE = 1e-7  # relative distance under which a comparison (or a floor) counts as a tie and is not compared


class RuleGenerator:
    """Random SMT-LIB terms and formulas over two inputs and two outputs using every operator."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def numeral(self) -> str:
        choice = self.rng.randrange(4)
        if choice == 0:
            return str(self.rng.randint(0, 3))
        if choice == 1:
            return f"(- {self.rng.randint(1, 3)}.{self.rng.randint(0, 9)})"
        if choice == 2:
            return f"(/ {self.rng.randint(1, 9)} {self.rng.randint(2, 9)})"
        return f"{self.rng.randint(0, 2)}.{self.rng.randint(1, 99):02d}"

    def leaf(self) -> str:
        return self.rng.choice(INPUTS + OUTPUTS) if self.rng.random() < 0.7 else self.numeral()

    def varying(self, depth: int) -> str:
        """A term that mentions a variable (a floor of a constant may sit exactly on an integer)."""
        return f"(+ {self.rng.choice(INPUTS + OUTPUTS)} {self.term(depth)})"

    def positive(self, depth: int) -> str:
        return f"(+ 0.5 (abs {self.term(depth)}))"

    def term(self, depth: int) -> str:
        if depth == 0 or self.rng.random() < 0.2:
            return self.leaf()
        d = depth - 1
        choice = self.rng.randrange(14)
        if choice == 0:
            return f"(+ {' '.join(self.term(d) for _ in range(self.rng.randint(2, 3)))})"
        if choice == 1:
            return f"(- {' '.join(self.term(d) for _ in range(self.rng.randint(2, 3)))})"
        if choice == 2:
            return f"(- {self.term(d)})"
        if choice == 3:
            return f"(* {self.term(d)} {self.term(d)})"
        if choice == 4:
            return f"(/ {self.term(d)} {self.rng.choice(['2', '(- 3)', '0.25', '(/ 7 3)'])})"
        if choice == 5:  # a divisor that never vanishes
            return f"(/ {self.term(d)} {self.positive(d)})"
        if choice == 6:
            return f"(^ {self.term(d)} {self.rng.randint(0, 3)})"
        if choice == 7:  # negative and even-root exponents on a positive base (z3 leaves the others undefined)
            exponent = self.rng.choice(["(- 1)", "(- 2)", "0.5", "(/ 3 2)", "(- (/ 1 2))"])
            return f"(^ {self.positive(d)} {exponent})"
        if choice == 8:  # odd roots: real roots of negative numbers too
            return f"(^ {self.term(d)} {self.rng.choice(['(/ 1 3)', '(/ 2 3)', '(/ 3 5)'])})"
        if choice == 9:
            return f"(abs {self.term(d)})"
        if choice == 10:
            return f"(ite {self.formula(d)} {self.term(d)} {self.term(d)})"
        if choice == 11:
            return f"(to_real (to_int {self.varying(d)}))"
        if choice == 12:
            return f"(+ (to_int {self.varying(d)}) {self.term(d)})"
        return self.leaf()

    def atom(self, depth: int) -> str:
        choice = self.rng.randrange(9)
        if choice < 4:
            op = ("<=", "<", ">=", ">")[choice]
            return f"({op} {self.term(depth)} {self.term(depth)})"
        if choice == 4:
            return f"(= {self.term(depth)} {self.term(depth)})"
        if choice == 5:
            return f"(distinct {' '.join(self.term(depth) for _ in range(self.rng.randint(2, 3)))})"
        if choice == 6:
            return f"(is_int {self.varying(depth)})"
        if choice == 7:  # integer-valued sides: equality holds on whole stretches
            return f"(= (to_int {self.varying(depth)}) {self.rng.randint(-2, 2)})"
        return self.rng.choice(["true", "false"])

    def formula(self, depth: int) -> str:
        if depth == 0 or self.rng.random() < 0.3:
            return self.atom(max(depth, 1))
        d = depth - 1
        choice = self.rng.randrange(8)
        if choice in (0, 1):
            op = ("and", "or")[choice]
            return f"({op} {' '.join(self.formula(d) for _ in range(self.rng.randint(2, 3)))})"
        if choice == 2:
            return f"(not {self.formula(d)})"
        if choice == 3:
            return f"(=> {self.formula(d)} {self.formula(d)})"
        if choice == 4:
            return f"(xor {self.formula(d)} {self.formula(d)})"
        if choice == 5:
            return f"(= {self.formula(d)} {self.formula(d)})"
        if choice == 6:
            return f"(distinct {self.formula(d)} {self.formula(d)})"
        return f"(ite {self.formula(d)} {self.formula(d)} {self.formula(d)})"


def parse(formula: str) -> z3.BoolRef:
    return z3.parse_smt2_string(DECLARATIONS + f"(assert {formula})")[0]


def random_point_columns(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-3, 3, size=(N_ROWS, len(INPUTS))), rng.uniform(-3, 3, size=(N_ROWS, len(OUTPUTS)))


def numpy_env(inputs: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
    env = {name: inputs[:, j] for j, name in enumerate(INPUTS)}
    env.update({name: outputs[:, k] for k, name in enumerate(OUTPUTS)})
    return env


def on_rows(value, n: int = N_ROWS) -> np.ndarray:
    return np.broadcast_to(np.asarray(value), (n,))


def away_from_ties(expr: z3.ExprRef, env: dict[str, np.ndarray]) -> np.ndarray:
    """Rows where no comparison inside ``expr`` is within rounding of a tie and no floor argument is near an
    integer: there, rounding cannot change a Boolean, so numpy, torch and exact z3 must agree exactly."""
    clear = np.ones(N_ROWS, dtype=bool)
    with np.errstate(all="ignore"):
        for node in distinct_subterms(expr):
            kind = node.decl().kind() if z3.is_app(node) else None
            children = node.children()
            if kind in (z3.Z3_OP_TO_INT, z3.Z3_OP_IS_INT):
                value = on_rows(evaluate(children[0], env))
                clear &= np.abs(value - np.round(value)) > TIE * (1 + np.abs(value))
            elif children and z3.is_arith(children[0]) and kind in (
                    z3.Z3_OP_LE, z3.Z3_OP_LT, z3.Z3_OP_GE, z3.Z3_OP_GT, z3.Z3_OP_EQ, z3.Z3_OP_DISTINCT):
                if all(z3.is_int(c) for c in children):
                    continue  # integers compare exactly; their floor arguments are checked above
                values = [on_rows(evaluate(c, env)) for c in children]
                for i in range(len(values)):
                    for j in range(i + 1, len(values)):
                        scale = 1 + np.abs(values[i]) + np.abs(values[j])
                        clear &= np.abs(values[i] - values[j]) > TIE * scale
    return clear


def z3_value(expr: z3.ExprRef, inputs: np.ndarray, outputs: np.ndarray, row: int) -> bool | float | None:
    """z3's own value of ``expr`` at one row (exact rationals of the floats); None if z3 leaves it symbolic."""
    pairs = [(z3.Real(name), z3_rational(float(inputs[row, j]))) for j, name in enumerate(INPUTS)]
    pairs += [(z3.Real(name), z3_rational(float(outputs[row, k]))) for k, name in enumerate(OUTPUTS)]
    value = z3.simplify(z3.substitute(expr, *pairs))
    if z3.is_true(value) or z3.is_false(value):
        return z3.is_true(value)
    if z3.is_rational_value(value) or z3.is_int_value(value) or z3.is_algebraic_value(value):
        return float(z3_fraction(value))
    return None


def torch_value(expr: z3.ExprRef, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    batch = Batch(torch.as_tensor(inputs, dtype=torch.float64), torch.as_tensor(outputs, dtype=torch.float64))
    return on_rows(compile_crisp(expr)(batch).numpy())


SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_numpy_torch_and_z3_agree_on_random_formulas(seed):
    generator = RuleGenerator(seed)
    formula = parse(generator.formula(3))
    inputs, outputs = random_point_columns(seed)
    env = numpy_env(inputs, outputs)
    with np.errstate(all="ignore"):
        by_numpy = on_rows(evaluate(formula, env))
    by_torch = torch_value(formula, inputs, outputs)
    assert by_numpy.dtype == bool and by_torch.dtype == bool
    clear = away_from_ties(formula, env)
    np.testing.assert_array_equal(by_numpy[clear], by_torch[clear])
    for row in np.flatnonzero(clear)[:4]:
        exact = z3_value(formula, inputs, outputs, row)
        if exact is not None:
            assert exact == bool(by_numpy[row]), f"z3 says {exact} at row {row} of {formula.sexpr()}"


@pytest.mark.parametrize("seed", SEEDS)
def test_numpy_torch_and_z3_agree_on_random_terms(seed):
    generator = RuleGenerator(1000 + seed)
    term = parse(f"(<= {generator.term(3)} 0)").arg(0)
    inputs, outputs = random_point_columns(1000 + seed)
    env = numpy_env(inputs, outputs)
    with np.errstate(all="ignore"):
        by_numpy = on_rows(evaluate(term, env)).astype(np.float64)
    by_torch = torch_value(term, inputs, outputs)
    clear = away_from_ties(term, env)
    assert np.isfinite(by_numpy).all(), "the generator only builds terms defined everywhere"
    np.testing.assert_allclose(by_numpy[clear], by_torch[clear], rtol=1e-12, atol=1e-12)
    for row in np.flatnonzero(clear)[:4]:
        exact = z3_value(term, inputs, outputs, row)
        if exact is not None:
            assert exact == pytest.approx(float(by_numpy[row]), rel=1e-9, abs=1e-9), term.sexpr()


def test_the_generator_uses_every_operator_of_the_table():
    """The agreement tests above mean something for every operator (a new one needs a generator case)."""
    seen: set[int] = set()
    for seed in SEEDS:
        for expr in (parse(RuleGenerator(seed).formula(3)), parse(f"(<= {RuleGenerator(1000 + seed).term(3)} 0)")):
            seen |= {node.decl().kind() for node in distinct_subterms(expr) if z3.is_app(node)}
    missing = (set(OPERATORS) | set(STRUCTURAL)) - seen
    assert not missing, f"operators never generated: {sorted(missing)}"
    assert {z3.Z3_OP_TRUE, z3.Z3_OP_FALSE, z3.Z3_OP_ANUM} <= seen


def test_the_comparisons_above_are_not_vacuous():
    """Most rows are away from ties, and z3 reduces most sampled points to a value."""
    clear_rows = decided = sampled = 0
    for seed in SEEDS:
        formula = parse(RuleGenerator(seed).formula(3))
        inputs, outputs = random_point_columns(seed)
        clear_rows += away_from_ties(formula, numpy_env(inputs, outputs)).sum()
        if seed < 20:
            for row in range(3):
                sampled += 1
                decided += z3_value(formula, inputs, outputs, row) is not None
    assert clear_rows >= 0.8 * N_ROWS * len(SEEDS)
    assert decided >= 0.8 * sampled


def test_roots_and_powers_read_as_z3_reads_them():
    x = np.array([-8.0, -1.0, 0.0, 8.0, 27.0])
    env = {"y!0": x}
    cases = {"(/ 1 3)": [-2.0, -1.0, 0.0, 2.0, 3.0], "(/ 2 3)": [4.0, 1.0, 0.0, 4.0, 9.0],
             "2": [64.0, 1.0, 0.0, 64.0, 729.0], "0.5": [np.nan, np.nan, 0.0, 8 ** 0.5, 27 ** 0.5]}
    for exponent, expected in cases.items():
        term = parse(f"(<= (^ y!0 {exponent}) 0)").arg(0)
        with np.errstate(all="ignore"):
            by_numpy = evaluate(term, env)
        by_torch = compile_crisp(term)(Batch(torch.zeros(5, 0, dtype=torch.float64), torch.as_tensor(x)[:, None]))
        np.testing.assert_allclose(by_numpy, expected, rtol=1e-12)
        np.testing.assert_allclose(by_torch.numpy(), expected, rtol=1e-12)
        for value, want in zip(x, expected, strict=True):
            if not np.isnan(want):  # z3 totalises the even root of a negative number; floats have none
                exact = z3.simplify(z3.substitute(term, (z3.Real("y!0"), z3_rational(value))))
                assert float(z3_fraction(exact)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("rule, operator", [
    ("(< (div (to_int y!0) 2) 1)", "div"),
    ("(< (mod (to_int y!0) 2) 1)", "mod"),
    ("(< (^ y!0 x!0) 1)", "^"),
])
def test_unsupported_operators_are_refused_identically_on_both_paths(rule, operator):
    formula = parse(rule)
    with pytest.raises(UserInputError) as by_numpy:
        evaluate(formula, {name: np.zeros(3) for name in INPUTS + OUTPUTS})
    with pytest.raises(UserInputError) as by_torch:
        compile_crisp(formula)
    assert f"'{operator}'" in str(by_numpy.value)
    assert str(by_numpy.value) == str(by_torch.value)
    with pytest.raises(UserInputError) as by_torch_term:
        compile_term(formula.arg(0), compile_crisp, torch.where)
    assert str(by_torch_term.value) == str(by_numpy.value)
