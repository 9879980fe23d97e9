"""Fuzzing the two readers of user files: whatever the constraint parser or the CSV loader is given, it
either succeeds or raises UserInputError (one clear line, exit code 2) -- never another exception."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepsade.encoding.encoder import Encoder
from deepsade.encoding.layout import LatentLayout, weight_variables
from deepsade.errors import UserInputError
from deepsade.ingest import prepare, read_csv
from deepsade.smtlib import read_constraint_file, read_constraint_text
from deepsade.spec import parse_spec, vacuous_asserts

# modest by default so the suite stays fast; DEEPSADE_FUZZ_EXAMPLES=5000 for a long hunt
FUZZ = settings(max_examples=int(os.environ.get("DEEPSADE_FUZZ_EXAMPLES", 80)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def encoding():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.uniform(0, 10, 40), "b b": rng.uniform(-1, 1, 40),
                          "c": rng.choice(["u", "v"], 40), "y": rng.uniform(0, 5, 40), "z": rng.uniform(0, 1, 40)})
    return prepare(frame, ["y", "z"]).encoding


def _parse(text: str, encoding) -> None:
    """The whole path a constraint file takes in the tool: commands, z3, binding, the domain check."""
    try:
        spec = parse_spec(read_constraint_text(text), encoding)
        vacuous_asserts(spec, [0.0] * len(encoding.input_names), [1.0] * len(encoding.input_names), timeout_s=1.0)
    except UserInputError as exc:
        message = str(exc)
        assert message and "Traceback" not in message


ATOMS = ["a", "|b b|", "|c=u|", "y", "z", "q", "+", "-", "*", "/", "<=", "<", ">=", ">", "=", "distinct", "and", "or",
         "not", "=>", "ite", "let", "Real", "Int", "Bool", "true", "false", "0", "1", "2.5", "-3", "1e3", "#b101",
         '"text"', ":named", "_", "!", "exists", "forall", "to_real", "abs", "f", "v", "x", "|(|", "|)|", "|y|", "||"]
COMMANDS = ["assert", "declare-const", "declare-fun", "define-fun", "define-fun-rec", "push", "pop", "check-sat",
            "set-option", "set-logic", "eval", "get-model", "exit", "echo", "reset", "declare-sort", "simplify"]


def _render(tree) -> str:
    return tree if isinstance(tree, str) else "(" + " ".join(_render(t) for t in tree) + ")"


terms = st.recursive(st.sampled_from(ATOMS), lambda inner: st.lists(inner, min_size=1, max_size=5), max_leaves=25)
commands = st.builds(lambda head, args: [head, *args], st.sampled_from(COMMANDS), st.lists(terms, max_size=3))
# mostly well-formed scripts: typical declarations plus random commands, sometimes cut or with stray parentheses
scripts = st.builds(
    lambda cmds, cut, extra: ("(declare-const a Real)(declare-const y Real)(declare-const z Real)"
                              + "".join(_render(c) for c in cmds))[:cut] + extra,
    st.lists(commands, min_size=1, max_size=6), st.integers(0, 10**4), st.sampled_from(["", ")", "(", "|", '"']))


arith = st.recursive(st.sampled_from(["a", "|b b|", "|c=u|", "y", "z", "0", "1", "2.5", "(- 3)", "1000000"]),
                     lambda inner: st.one_of(
                         st.builds(lambda op, xs: [op, *xs], st.sampled_from(["+", "-", "*", "/"]),
                                   st.lists(inner, min_size=1, max_size=3)),
                         st.builds(lambda c, x, w: ["ite", [c, x, w], x, w], st.sampled_from(["<", ">=", "="]),
                                   inner, inner)), max_leaves=12)
atoms = st.builds(lambda op, x, w: [op, x, w], st.sampled_from(["<=", "<", ">=", ">", "="]), arith, arith)
formulas = st.recursive(atoms, lambda inner: st.one_of(
    st.builds(lambda op, xs: [op, *xs], st.sampled_from(["and", "or"]), st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda p, q: ["=>", p, q], inner, inner), st.builds(lambda p: ["not", p], inner)), max_leaves=6)


@FUZZ
@given(scripts)
def test_random_sexpressions_only_raise_user_errors(encoding, text):
    _parse(text, encoding)


@FUZZ
@given(st.lists(formulas, min_size=1, max_size=3))
def test_random_well_formed_asserts_only_raise_user_errors(encoding, asserts):
    """Beyond parsing: what `check` evaluates on data, and what training and the certificate ask of the encoder."""
    text = "(declare-const a Real)(declare-const |b b| Real)(declare-const |c=u| Real)(declare-const y Real)" \
           "(declare-const z Real)" + "".join(f"(assert {_render(f)})" for f in asserts)
    try:
        spec = parse_spec(read_constraint_text(text), encoding)
        rng = np.random.default_rng(0)
        spec.evaluate_raw(rng.uniform(0, 1, (5, len(encoding.input_names))), rng.uniform(0, 1, (5, 2)))
        layout = LatentLayout(3, tuple(spec.mapped_features), 2)
        encoder = Encoder(spec, layout, "auto")
        low, high = np.zeros(layout.n_latent), np.ones(layout.n_latent)
        weights, biases = weight_variables(layout)
        encoder.hard_constraints(weights, biases, low, high, Fraction(1, 1000), 1.0)
        encoder.check_candidates(rng.normal(size=(2, 2, layout.n_latent)), rng.normal(size=(2, 2)), low, high,
                                 1e-3, 1.0)
    except UserInputError as exc:
        assert str(exc)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_random_text_only_raises_user_errors(encoding, text):
    _parse(text, encoding)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_constraint_file_only_raise_user_errors(encoding, tmp_path, raw):
    path = tmp_path / "c.smt2"
    path.write_bytes(raw)
    try:
        _parse(read_constraint_file(path).text, encoding)
    except UserInputError:
        pass


def _load(path, targets) -> None:
    try:
        frame = read_csv(path)
        prepare(frame, targets)
    except UserInputError as exc:
        assert str(exc)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_csv_only_raise_user_errors(tmp_path, raw):
    path = tmp_path / "d.csv"
    path.write_bytes(b"x,y\n" + raw)
    _load(path, ["y"])


cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.sampled_from(
    ["", "NA", "nan", "inf", "-inf", "yes", "no", "1", "0", "a,b", '"q"', "é", " ", "1e400", "0x10", "True"]))


@FUZZ
@given(st.integers(0, 6), st.integers(1, 4), st.data())
def test_random_tables_only_raise_user_errors(tmp_path, n_rows, n_cols, data):
    columns = {f"c{j}": data.draw(st.lists(cells, min_size=n_rows, max_size=n_rows)) for j in range(n_cols)}
    columns["y"] = data.draw(st.lists(cells, min_size=n_rows, max_size=n_rows))
    path = tmp_path / "t.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    _load(path, ["y"])
