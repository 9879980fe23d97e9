"""Tests of the use-case generators, real-data loaders and constraint files (no training here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import z3

from deepsade import usecases
from deepsade.usecases import toy, uc1_expenses, uc2_loan, uc3_music, uc4_digits, uc5_sushi

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "deepsade"  # the use cases name their rule files relative to the package
DATA_DIR = usecases.default_data_dir()
SMALL = {"UC1": 300, "UC2": 200, "UC3": 200, "UC4": 100, "UC5": 300, "TOY_REG": 100, "TOY_BIN": 100}
CASES = sorted(usecases.ALL_CASES)
REAL_CASES = [name for name, case in usecases.USECASES.items() if case.real_file is not None]
ALLOWED_COMMANDS = {"declare-const", "define-fun", "assert"}


def needs_real(case) -> None:
    """Skip when the real file of ``case`` (a UseCase, or a use-case module) is not present on this machine."""
    case = getattr(case, "CASE", case)
    if DATA_DIR is None or not (DATA_DIR / case.real_file).is_file():
        pytest.skip(f"real data {case.real_file} not present")


def strip_comments(text: str) -> str:
    """SMT-LIB text without ``;`` comments (none of our files has ';' inside a |quoted| name)."""
    return re.sub(r";[^\n]*", "", text)


def top_level_commands(text: str) -> list[str]:
    """The command word of every top-level s-expression, e.g. ['declare-const', 'assert']."""
    commands, depth = [], 0
    for match in re.finditer(r"\|[^|]*\||[()]|[^\s()|]+", strip_comments(text)):
        token = match.group()
        if token == "(":
            depth += 1
            if depth == 1:
                commands.append(None)
        elif token == ")":
            depth -= 1
        elif depth == 1 and commands and commands[-1] is None:
            commands[-1] = token
    assert depth == 0, "unbalanced parentheses"
    return commands


def declared(text: str) -> dict[str, str]:
    """Declared constant names (without |bars|) mapped to their sort."""
    pairs = re.findall(r"\(declare-const\s+(\|[^|]*\||[^\s()]+)\s+([^\s()]+)\s*\)", strip_comments(text))
    return {name.strip("|"): sort for name, sort in pairs}


def score_names(case, frame: pd.DataFrame) -> set[str]:
    """Every name a constraint may use: columns, one-hot ``column=value`` names, class scores."""
    names = set(frame.columns)
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            names |= {f"{col}={v}" for v in frame[col].dropna().unique()}
    return names


def holds(path: Path, values: dict[str, float]) -> bool:
    """Whether all assertions of the constraint file are true for these values of its constants."""
    formula = z3.And(*z3.parse_smt2_file(str(path)))
    consts = {d.name(): z3.Real(d.name()) for d in _consts(formula)}
    result = z3.simplify(z3.substitute(formula, *[(c, z3.RealVal(values[n])) for n, c in consts.items()]))
    assert z3.is_true(result) or z3.is_false(result), f"not ground after substitution: {result}"
    return z3.is_true(result)


def _consts(expr: z3.ExprRef) -> list[z3.FuncDeclRef]:
    """Uninterpreted constants of ``expr`` (its free variables)."""
    seen, found, todo = set(), {}, [expr]
    while todo:
        e = todo.pop()
        if e.get_id() in seen:
            continue
        seen.add(e.get_id())
        if z3.is_const(e) and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            found[e.decl().name()] = e.decl()
        todo.extend(e.children())
    return list(found.values())


def signed(flags: np.ndarray) -> np.ndarray:
    """0/1 labels as scores: +1 for positive, -1 for negative (what a perfect model would output)."""
    return np.where(np.asarray(flags, dtype=bool), 1.0, -1.0)


# ----------------------------------------------------------------------------- registry


def test_registry_and_get() -> None:
    assert list(usecases.USECASES) == ["UC1", "UC2", "UC3", "UC4", "UC5"]
    assert usecases.get("uc2") is uc2_loan.CASE
    assert usecases.get(" Toy_Reg ") is toy.TOY_REG
    with pytest.raises(ValueError, match="UC1, UC2"):
        usecases.get("UC9")


@pytest.mark.parametrize("name", CASES)
def test_module_attributes(name: str) -> None:
    case = usecases.get(name)
    assert case.name == name
    assert (PACKAGE / case.constraint).is_file()
    assert case.task in {"regression", "binary", "multiclass", "multilabel"}
    assert (case.positive is not None) == (case.task == "binary")
    required = {"hidden", "epochs", "batch_size", "lr", "max_step", "margins", "baseline_epochs"}
    assert required <= set(case.settings)
    assert isinstance(case.settings["hidden"], tuple) and isinstance(case.settings["margins"], tuple)


def test_default_data_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(usecases.DATA_ENV, str(tmp_path))
    assert usecases.default_data_dir() == tmp_path
    monkeypatch.setenv(usecases.DATA_ENV, str(tmp_path / "missing"))
    assert usecases.default_data_dir() is None


# ----------------------------------------------------------------------------- generators


@pytest.mark.parametrize("name", CASES)
def test_generator_deterministic_and_seeded(name: str) -> None:
    case = usecases.get(name)
    first = case.generate(SMALL[name], seed=3)
    pd.testing.assert_frame_equal(first, case.generate(SMALL[name], seed=3))
    assert not first.equals(case.generate(SMALL[name], seed=4))
    assert len(first) == SMALL[name]
    assert len(case.generate(SMALL[name] + 7, seed=3)) == SMALL[name] + 7
    assert set(case.targets) <= set(first.columns)


@pytest.mark.parametrize("name", CASES)
def test_generator_rejects_bad_size(name: str) -> None:
    with pytest.raises(ValueError, match="n_rows"):
        usecases.get(name).generate(0)


@pytest.mark.parametrize("name", ["UC1", "UC2", "UC3", "UC4", "UC5"])
def test_generated_frames_suit_the_data_layer(name: str) -> None:
    """No constant columns, numbers are numbers, categoricals are strings (the data layer's contract)."""
    case = usecases.get(name)
    frame = case.generate(SMALL[name], seed=0)
    inputs = frame.drop(columns=list(case.targets))
    assert (inputs.nunique() > 1).all(), "constant input columns"
    for col in inputs.columns:
        values = inputs[col].dropna()
        assert pd.api.types.is_numeric_dtype(values) or values.map(type).eq(str).all(), col


def test_uc1_generator_shape_and_violations() -> None:
    frame = uc1_expenses.generate(2000, seed=0)
    assert list(frame.columns) == uc1_expenses.COLUMNS
    assert set(frame["Household Head Sex"]) == {"Male", "Female"}
    assert pd.api.types.is_integer_dtype(frame["House Floor Area"])
    income = frame[uc1_expenses.INCOME]
    broken = (frame[uc1_expenses.TARGETS].sum(axis=1) > income) | (
        frame["Going_Out_Expenses"] > 0.05 * income
    )
    # The real table has 85% of rows breaking a rule; the stand-in should be close.
    assert 0.7 < broken.mean() < 0.95


def test_uc2_generator_codes_and_missing_values() -> None:
    frame = uc2_loan.generate(seed=0)
    assert list(frame.columns) == uc2_loan.COLUMNS and len(frame) == 614
    assert set(frame["Dependents"].dropna()) == {"0", "1", "2", "3+"}
    assert set(frame["Loan_Status"]) == {"Y", "N"}
    assert set(frame["Credit_History"].dropna()) == {0.0, 1.0}
    assert frame["Credit_History"].isna().any() and frame["Gender"].isna().any()
    approved = frame.groupby("Credit_History")["Loan_Status"].apply(lambda s: (s == "Y").mean())
    assert approved[1.0] > 0.6 > 0.3 > approved[0.0]


def test_uc3_generator_beatles_are_rock_or_pop() -> None:
    frame = uc3_music.generate(seed=0)
    assert len(frame) == 793 and list(frame.columns) == uc3_music.COLUMNS
    assert set(frame["genre"]) == set(uc3_music.CLASSES)
    beatles = frame[frame["Beatles"] == 1]
    assert 0.05 < len(beatles) / len(frame) < 0.15
    assert beatles["genre"].isin(["rock", "pop"]).all()


def test_uc4_generator_strips_and_labels() -> None:
    frame = uc4_digits.generate(200, seed=1)
    pixels = [c for c in frame.columns if c.startswith("px_")]
    assert set(pixels) <= set(uc4_digits.PIXELS) and len(pixels) > 200
    assert frame[pixels].to_numpy().min() >= 0 and frame[pixels].to_numpy().max() <= 16
    assert (frame[pixels].nunique() > 1).all()
    counts = frame[uc4_digits.TARGETS].sum(axis=1)
    assert counts.between(1, 4).all() and (counts == 4).any()
    assert uc4_digits.load_real() is None and len(uc4_digits.load(n_rows=50)) == 50


def test_uc5_rankings_to_frame_known_ranking() -> None:
    # Ranking 7,4,5,1,10,2,8,3,9,6 (best first): among inputs the order is 7,5,1,2,8,3.
    frame = uc5_sushi.rankings_to_frame(np.array([[7, 4, 5, 1, 10, 2, 8, 3, 9, 6]]))
    row = frame.iloc[0]
    assert (
        row["in_7_1"]
        == row["in_5_2"]
        == row["in_1_3"]
        == row["in_2_4"]
        == row["in_8_5"]
        == row["in_3_6"]
        == 1
    )
    assert row["out_4_1"] == row["out_10_2"] == row["out_9_3"] == row["out_6_4"] == 1
    assert row.sum() == 10
    with pytest.raises(ValueError, match="exactly once"):
        uc5_sushi.rankings_to_frame(np.array([[1, 1, 2, 3, 4, 5, 6, 7, 8, 9]]))


def assert_permutation_blocks(frame: pd.DataFrame) -> None:
    """Each row's 6x6 input block and 4x4 output block are permutation matrices."""
    for names, k in ((uc5_sushi.INPUTS, 6), (uc5_sushi.TARGETS, 4)):
        block = frame[names].to_numpy().reshape(len(frame), k, k)
        assert set(np.unique(block)) <= {0, 1}
        assert (block.sum(axis=1) == 1).all() and (block.sum(axis=2) == 1).all()


def test_uc5_generator_permutation_blocks() -> None:
    frame = uc5_sushi.generate(500, seed=2)
    assert list(frame.columns) == uc5_sushi.COLUMNS and len(frame) == 500
    assert_permutation_blocks(frame)


def test_toy_generators_break_their_rules_a_little() -> None:
    reg = toy.generate_regression(1000, seed=0)
    assert list(reg.columns) == ["x1", "x2", "x3", "y"]
    assert 0.01 < ((reg["y"] > reg["x1"]) | (reg["y"] < 0)).mean() < 0.1
    binary = toy.generate_binary(1000, seed=0)
    assert list(binary.columns) == ["a", "b", "c", "label"] and set(binary["label"]) == {"yes", "no"}
    premise = (binary["a"] > 0.7) & (binary["b"] > 0.7)
    assert 0 < (premise & (binary["label"] == "no")).sum() < premise.sum() / 2


# ----------------------------------------------------------------------------- violation injection


def test_uc2_inject_violations_breaks_the_rule() -> None:
    clean = uc2_loan.generate(seed=0).dropna().reset_index(drop=True)
    injected = uc2_loan.inject_violations(clean, n=40, seed=1)
    changed = injected["Loan_Status"] != clean["Loan_Status"]
    eligible = (uc2_loan.premise(clean) & (clean["Loan_Status"] == "N")).sum()
    assert changed.sum() == min(40, eligible) > 0
    assert (injected.loc[changed, "Loan_Status"] == "Y").all() and uc2_loan.premise(injected[changed]).all()
    pd.testing.assert_frame_equal(injected.drop(columns="Loan_Status"), clean.drop(columns="Loan_Status"))
    assert injected.equals(uc2_loan.inject_violations(clean, n=40, seed=1))
    path = PACKAGE / uc2_loan.CONSTRAINT
    for _, row in injected[changed].head(5).iterrows():
        values = {
            "ApplicantIncome": row["ApplicantIncome"],
            "Credit_History": row["Credit_History"],
            "Loan_Status": 1.0,
        }
        assert not holds(path, values)
    assert uc2_loan.inject_violations(clean, n=3, seed=0)["Loan_Status"].ne(clean["Loan_Status"]).sum() == 3


def test_uc3_inject_violations_breaks_the_rule() -> None:
    clean = uc3_music.generate(seed=0)
    injected = uc3_music.inject_violations(clean, n=40, seed=0)
    changed = injected["genre"] != clean["genre"]
    assert changed.sum() == 40
    assert (injected.loc[changed, "Beatles"] == 1).all()
    assert injected.loc[changed, "genre"].isin(["jazz", "classical", "hiphop"]).all()
    path = PACKAGE / uc3_music.CONSTRAINT
    for _, row in injected[changed].head(5).iterrows():
        values = {f"genre={c}": 1.0 if row["genre"] == c else -1.0 for c in uc3_music.CLASSES}
        assert not holds(path, {**values, "Beatles": 1.0})


# ----------------------------------------------------------------------------- constraint files


@pytest.mark.parametrize("name", CASES)
def test_constraint_file_parses_and_names_match_columns(name: str) -> None:
    case = usecases.get(name)
    path = PACKAGE / case.constraint
    text = path.read_text()
    assert text.lstrip().startswith(";"), "each file starts with a comment block"
    assert set(top_level_commands(text)) <= ALLOWED_COMMANDS
    assertions = z3.parse_smt2_file(str(path))
    assert len(assertions) >= 1
    names = declared(text)
    assert set(names.values()) == {"Real"}
    frame = case.generate(SMALL[name], seed=0)
    if name == "UC4":
        frame = case.generate(1000, seed=0)  # every digit appears at this size
    unknown = set(names) - score_names(case, frame)
    assert not unknown, f"names in {case.constraint} that are no column or score: {unknown}"
    used = {d.name() for a in assertions for d in _consts(a)}
    assert used <= set(names)


def test_constraints_say_what_they_mean() -> None:
    """Spot checks that each file encodes its rule (perfect-model scores: +1 positive, -1 negative)."""
    root = PACKAGE / "constraints"
    uc1 = {
        "Total Household Income": 100.0,
        "All_Food_Expenses": 50.0,
        "Going_Out_Expenses": 5.0,
        "Shopping_Expenses": 10.0,
        "Necessary_Expenses": 20.0,
        "Miscellaneous_Expenses": 15.0,
    }
    assert holds(root / "uc1_expenses.smt2", uc1)
    assert not holds(
        root / "uc1_expenses.smt2", {**uc1, "Going_Out_Expenses": 5.1, "Miscellaneous_Expenses": 14.0}
    )
    assert not holds(root / "uc1_expenses.smt2", {**uc1, "All_Food_Expenses": 51.0})
    uc2 = {"ApplicantIncome": 4999.0, "Credit_History": 0.0, "Loan_Status": -1.0}
    assert holds(root / "uc2_loan.smt2", uc2) and not holds(
        root / "uc2_loan.smt2", {**uc2, "Loan_Status": 1.0}
    )
    assert holds(root / "uc2_loan.smt2", {**uc2, "ApplicantIncome": 5000.0, "Loan_Status": 1.0})
    uc3 = {f"genre={c}": -1.0 for c in uc3_music.CLASSES}
    assert holds(root / "uc3_music.smt2", {**uc3, "Beatles": 1.0, "genre=pop": 1.0})
    assert not holds(root / "uc3_music.smt2", {**uc3, "Beatles": 1.0, "genre=jazz": 1.0})
    assert holds(root / "uc3_music.smt2", {**uc3, "Beatles": 0.0, "genre=jazz": 1.0})
    digits = {f"digit_{d}": -1.0 for d in range(10)}
    assert holds(root / "uc4_digits.smt2", {**digits, "digit_9": 1.0, "digit_2": 1.0})
    assert not holds(root / "uc4_digits.smt2", {**digits, "digit_9": 1.0, "digit_1": 1.0, "digit_0": 1.0})
    identity = {
        f"out_{i}_{p}": 1.0 if k == p - 1 else -1.0 for k, i in enumerate((4, 6, 9, 10)) for p in range(1, 5)
    }
    assert holds(root / "uc5_sushi.smt2", identity)
    assert not holds(root / "uc5_sushi.smt2", {**identity, "out_4_2": 1.0})
    assert not holds(root / "uc5_sushi.smt2", {**identity, "out_4_1": -1.0})
    assert holds(root / "example_bounds.smt2", {"x1": 2.0, "y": 2.0})
    assert not holds(root / "example_bounds.smt2", {"x1": 2.0, "y": -0.1})
    assert not holds(root / "example_implication.smt2", {"a": 0.8, "b": 0.9, "label": -1.0})


def test_uc4_and_uc5_generated_labels_against_constraints() -> None:
    """UC4 data breaks its rule in some rows (as the paper's did); UC5 true orders always satisfy theirs."""
    frame = uc4_digits.generate(300, seed=0)
    sums = frame[uc4_digits.TARGETS].to_numpy() @ np.arange(10)
    path4 = PACKAGE / uc4_digits.CONSTRAINT
    for row, total in zip(frame[uc4_digits.TARGETS].to_numpy()[:20], sums[:20], strict=True):
        assert holds(path4, dict(zip(uc4_digits.TARGETS, signed(row), strict=True))) == (total > 10)
    assert 0.02 < (sums <= 10).mean() < 0.5
    sushi = uc5_sushi.generate(20, seed=0)
    for row in sushi[uc5_sushi.TARGETS].to_numpy():
        assert holds(PACKAGE / uc5_sushi.CONSTRAINT, dict(zip(uc5_sushi.TARGETS, signed(row), strict=True)))


# ----------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", REAL_CASES)
def test_generator_columns_match_real_file(name: str) -> None:
    case = usecases.get(name)
    needs_real(case)
    real = case.load_real()
    generated = case.generate(SMALL[name], seed=0)
    assert list(generated.columns) == list(real.columns)
    for col in real.columns:
        assert pd.api.types.is_numeric_dtype(real[col]) == pd.api.types.is_numeric_dtype(generated[col]), col


def test_uc1_real_loader() -> None:
    needs_real(uc1_expenses)
    real = uc1_expenses.load_real()
    assert len(real) == 41417 and list(real.columns) == uc1_expenses.COLUMNS
    assert len(uc1_expenses.load(n_rows=100, seed=0)) == 100


def test_uc2_real_loader() -> None:
    needs_real(uc2_loan)
    real = uc2_loan.load_real()
    assert len(real) == 614 and len(real.dropna()) == 480
    assert set(real["Dependents"].dropna()) == {"0", "1", "2", "3+"}
    assert uc2_loan.premise(real.dropna()).sum() > 40


def test_uc5_real_loader_gives_5000_permutations() -> None:
    needs_real(uc5_sushi)
    real = uc5_sushi.load_real()
    assert len(real) == 5000 and list(real.columns) == uc5_sushi.COLUMNS
    assert_permutation_blocks(real)


@pytest.mark.parametrize("name", CASES)
def test_real_loaders_return_none_without_data(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = usecases.get(name)
    assert case.load_real(tmp_path) is None
    monkeypatch.setenv(usecases.DATA_ENV, str(tmp_path / "nowhere"))
    assert usecases.default_data_dir() is None
    assert case.load_real() is None
    fallback = case.load(n_rows=SMALL[name], seed=0)
    pd.testing.assert_frame_equal(fallback, case.generate(SMALL[name], seed=0))
