"""``deepsade export``: model.onnx computes what ``predict`` reports, and Marabou reads the exported pair.

Tiny models (hidden 8,4, three epochs) on small generated data with the toy rules of
``deepsade/constraints/example_*.smt2`` (written here so the test does not depend on where the files live).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest

from deepsade.artifact import load
from deepsade.estimator import DeepSaDe
from deepsade.export import export_model, recheck_counterexample
from deepsade.prediction import predictions_frame
from deepsade.spec import parse_spec_text
from deepsade.verification import Atom
from deepsade.vnnlib import Comparison, comparison_text, raw_violation, widen
from tests.conftest import run_cli

BOUNDS_RULE = "(declare-const x1 Real)\n(declare-const y Real)\n(assert (and (>= y 0.0) (<= y x1)))\n"
IMPLICATION_RULE = ("(declare-const a Real)\n(declare-const b Real)\n(declare-const label Real)\n"
                    "(assert (=> (and (> a 0.7) (> b 0.7)) (> label 0.0)))\n")
SETTINGS = {"hidden": (8, 4), "epochs": 3, "seed": 0}


def regression_frame(n: int = 120) -> pd.DataFrame:
    """y is a share of x1, and 10% of the rows exceed x1 (so an unconstrained fit breaks the rule)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (n, 3))
    y = x[:, 0] * np.clip(0.2 + 0.06 * x[:, 1] - 0.02 * x[:, 2], 0, 0.95)
    y = np.where(rng.random(n) < 0.1, x[:, 0] * 1.2 + 0.1, y)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y}).round(4)


def binary_frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (n, 3))
    label = np.where(a[:, 0] + a[:, 1] - 0.5 * a[:, 2] > 0.75, "yes", "no")
    label = np.where((a[:, 0] > 0.7) & (a[:, 1] > 0.7) & (rng.random(n) < 0.5), "no", label)
    return pd.DataFrame({"a": a[:, 0], "b": a[:, 1], "c": a[:, 2]}).round(4).assign(label=label)


def loan_frame(n: int = 150) -> pd.DataFrame:
    """A binary task with a categorical (one-hot) input and an equality in the rule's premise."""
    rng = np.random.default_rng(1)
    income = rng.uniform(1000, 20000, n).round()
    credit = rng.integers(0, 2, n).astype(float)
    area = rng.choice(["Urban", "Rural", "Semiurban"], n)
    status = np.where((credit == 1) | (income > 9000), "Y", "N")
    return pd.DataFrame({"ApplicantIncome": income, "Credit_History": credit, "Property_Area": area,
                         "Loan_Status": status})


LOAN_RULE = ("(declare-const ApplicantIncome Real)\n(declare-const Credit_History Real)\n"
             "(declare-const Loan_Status Real)\n"
             "(assert (=> (and (< ApplicantIncome 5000) (= Credit_History 0)) (< Loan_Status 0)))\n")

CASES = {
    "regression": (regression_frame, BOUNDS_RULE, ["y"], {"method": "deepsade"}),  # auto would take clamps
    "binary": (binary_frame, IMPLICATION_RULE, ["label"], {"positive": "yes"}),
    "loan": (loan_frame, LOAN_RULE, ["Loan_Status"], {"positive": "Y"}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Model directories: a certified model per case, and an unconstrained ffn on the regression rule."""
    root = tmp_path_factory.mktemp("export_models")
    models = {}
    for name, (make, rule, targets, options) in CASES.items():
        model = DeepSaDe(rule, targets, **options, **SETTINGS).fit(make())
        assert model.certificate["verdict"] == "certified"
        models[name] = model.save(root / name)
    ffn = DeepSaDe(BOUNDS_RULE, ["y"], method="ffn", **SETTINGS).fit(regression_frame())
    models["ffn"] = ffn.save(root / "ffn")
    return models


@pytest.fixture(scope="module")
def float32_uncovered(tmp_path_factory) -> Path:
    """A certified model (auto: sequential clamps) whose certificate's float32 error bound exceeds its margin."""
    model = DeepSaDe(BOUNDS_RULE, ["y"], **SETTINGS).fit(regression_frame())
    certificate = model.certificate
    assert certificate["verdict"] == "certified" and certificate["float32_error_bound"] > certificate["margin"]
    return model.save(tmp_path_factory.mktemp("float32_uncovered") / "clamped")


def onnx_tensor_types(path: Path) -> set[int]:
    import onnx

    return {tensor.data_type for tensor in onnx.load(str(path)).graph.initializer}


def test_auto_precision_writes_float64_when_the_certificate_does_not_cover_float32(trained, float32_uncovered,
                                                                                  tmp_path):
    import onnx

    artifact = load(float32_uncovered)
    result = export_model(artifact, tmp_path / "auto")
    assert result.precision == "float64" and "exceeds its margin" in result.precision_reason
    assert onnx_tensor_types(tmp_path / "auto" / "model.onnx") == {onnx.TensorProto.DOUBLE}
    manifest = json.loads((tmp_path / "auto" / "export.json").read_text())
    assert manifest["onnx"]["precision"] == "float64" and "exceeds its margin" in manifest["onnx"]["precision_reason"]
    rows = random_domain_rows(artifact, 200, seed=5)
    expected = predictions_frame(artifact, rows)[["predicted_y"]].to_numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "auto" / "model.onnx"))
    got = session.run(None, {"X": artifact.encoding.encode_inputs(rows).astype(np.float64)})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(expected).max())))
    # a model whose certificate covers float32 (or an ffn, with no certificate) stays float32
    for name in ("binary", "ffn"):
        covered = load(trained[name])
        assert export_model(covered, tmp_path / name).precision == "float32"
        assert onnx_tensor_types(tmp_path / name / "model.onnx") == {onnx.TensorProto.FLOAT}
    asked = export_model(artifact, tmp_path / "asked", precision="float32")
    assert asked.precision == "float32" and "not covered" in asked.precision_reason
    with pytest.raises(Exception, match="unknown precision"):
        export_model(artifact, tmp_path / "bad", precision="float16")
    assert not (tmp_path / "bad").exists()


def test_cli_export_says_why_it_wrote_float64_and_warns_on_a_forced_float32(float32_uncovered, tmp_path):
    auto = run_cli("export", str(float32_uncovered), "--out", str(tmp_path / "auto"))
    assert auto.returncode == 0, auto.stderr
    assert "float64 graph: the certificate's float32 error bound" in auto.stdout and "warning" not in auto.stderr
    forced = run_cli("export", str(float32_uncovered), "--out", str(tmp_path / "forced"), "--precision", "float32")
    assert forced.returncode == 0, forced.stderr
    assert "warning: the certificate's float32 error bound" in forced.stderr and "float64 graph" not in forced.stdout


def random_domain_rows(artifact, n: int, seed: int) -> pd.DataFrame:
    """Rows drawn uniformly from the domain box (categorical inputs: a random level)."""
    enc, rng = artifact.encoding, np.random.default_rng(seed)
    columns = {}
    for column in enc.feature_columns:
        if column in enc.categorical_levels:
            columns[column] = rng.choice(enc.categorical_levels[column], n)
        else:
            j = enc.input_names.index(column)
            columns[column] = rng.uniform(artifact.domain.lower[j], artifact.domain.upper[j], n)
    return pd.DataFrame(columns)


def solve_with_marabou(directory: Path, property_file: str) -> tuple[str, np.ndarray | None]:
    """Marabou on the exported pair: its ONNX reader, then its VNN-LIB reader (``propertyFilename``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # maraboupy warns that its TensorFlow parser is unavailable
        from maraboupy import Marabou, MarabouCore
    network = Marabou.read_onnx(str(directory / "model.onnx"))
    options = MarabouCore.Options()
    options._verbosity = 0
    options._timeoutInSeconds = 60
    exit_code, values, _ = network.solve(propertyFilename=str(directory / property_file), options=options,
                                         verbose=False)
    if exit_code != "sat":
        return exit_code, None
    return exit_code, np.array([values[int(v)] for v in network.inputVars[0].ravel()])


@pytest.mark.parametrize("case", ["regression", "binary", "loan", "ffn"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_onnx_outputs_equal_predict_scores_on_random_domain_points(trained, tmp_path, case, precision):
    artifact = load(trained[case])
    export_model(artifact, tmp_path, precision=precision)
    rows = random_domain_rows(artifact, 200, seed=3)
    predicted = predictions_frame(artifact, rows)
    prefix = "predicted_" if artifact.encoding.task == "regression" else "score_"
    expected = predicted[[prefix + name for name in artifact.encoding.output_names]].to_numpy()
    raw = artifact.encoding.encode_inputs(rows)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    got = session.run(None, {"X": raw.astype(np.float32 if precision == "float32" else np.float64)})[0]
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    # the network's weights are float32 either way; both graphs are compared at float32 accuracy
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5 * scale)
    assert not np.allclose(got, 0.0)  # a graph that ignored its inputs would not pass for a real model


def test_onnx_uses_only_operators_marabou_reads(trained, tmp_path):
    import onnx

    export_model(load(trained["loan"]), tmp_path)
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert {node.op_type for node in model.graph.node} == {"MatMul", "Add", "Relu"}
    assert [i.name for i in model.graph.input] == ["X"] and [o.name for o in model.graph.output] == ["Y"]


@pytest.mark.parametrize("case", ["regression", "binary", "loan"])
def test_marabou_proves_the_certified_model_from_the_exported_files(trained, tmp_path, case):
    artifact = load(trained[case])
    result = export_model(artifact, tmp_path)
    assert [p.file for p in result.properties] == ["assert_1.vnnlib"]
    assert result.properties[0].marabou_readable
    status, _ = solve_with_marabou(tmp_path, "assert_1.vnnlib")
    assert status == "unsat"


def test_marabou_counterexample_for_an_ffn_is_confirmed_by_deepsade(trained, tmp_path):
    artifact = load(trained["ffn"])
    export_model(artifact, tmp_path)
    status, witness = solve_with_marabou(tmp_path, "assert_1.vnnlib")
    assert status == "sat"
    check = recheck_counterexample(artifact, witness)
    assert check.confirmed and check.broken == [1]
    x1, y = check.inputs[0], check.outputs[0]
    assert y < 0 or y > x1  # the rule 0 <= y <= x1, broken by predict's own output at the witness
    assert artifact.domain.contains(check.inputs[None, :])[0]


def test_marabou_reads_a_weighted_rule_and_its_witness_is_confirmed(trained, tmp_path):
    artifact = load(trained["ffn"])
    artifact.constraint_text = ("(declare-const x1 Real)\n(declare-const x2 Real)\n(declare-const y Real)\n"
                                "(assert (<= (+ y x2) (* 1.1 x1)))\n")
    result = export_model(artifact, tmp_path)
    assert result.properties[0].marabou_readable
    assert "(* 1.1 X_0)))" in (tmp_path / "assert_1.vnnlib").read_text()
    status, witness = solve_with_marabou(tmp_path, "assert_1.vnnlib")
    assert status == "sat"  # y + x2 <= 1.1 x1 fails wherever x1 is small and x2 large
    check = recheck_counterexample(artifact, witness)
    assert check.broken == [1] and check.outputs[0] + check.inputs[1] > 1.1 * check.inputs[0]


@pytest.mark.parametrize("case", ["regression", "loan"])
def test_recheck_rejects_points_where_the_rule_holds(trained, case):
    artifact = load(trained[case])  # certified: no point of the box breaks the rule
    corners = [artifact.domain.lower, artifact.domain.upper, (artifact.domain.lower + artifact.domain.upper) / 2]
    for corner in corners:
        check = recheck_counterexample(artifact, corner)
        assert not check.confirmed and check.broken == [] and not check.clipped
    outside = recheck_counterexample(artifact, artifact.domain.upper + 1.0)
    assert outside.clipped and np.array_equal(outside.inputs, artifact.domain.upper)


def test_export_json_documents_names_order_units_domain_and_tolerance(trained, tmp_path):
    artifact = load(trained["loan"])
    export_model(artifact, tmp_path, tolerance=1e-5)
    manifest = json.loads((tmp_path / "export.json").read_text())
    enc = artifact.encoding
    assert [f["name"] for f in manifest["input"]["features"]] == enc.input_names
    assert [f["vnnlib"] for f in manifest["input"]["features"]] == [f"X_{j}" for j in range(len(enc.input_names))]
    assert manifest["input"]["features"][0]["domain"] == [artifact.domain.lower[0], artifact.domain.upper[0]]
    assert {f["units"] for f in manifest["input"]["features"]} == {"raw", "one-hot (0/1)"}
    assert [o["name"] for o in manifest["output"]["outputs"]] == enc.output_names
    assert "logit" in manifest["output"]["outputs"][0]["units"]
    assert manifest["tolerance"]["value"] == 1e-5 and "widened" in manifest["tolerance"]["direction"]
    text = (tmp_path / "assert_1.vnnlib").read_text()
    assert "tolerance 0.00001" in text
    # premise Credit_History = 0 (an equality) becomes a band of the tolerance's width
    j = enc.input_names.index("Credit_History")
    assert f"(assert (<= X_{j} 0.00001))" in text and f"(assert (>= X_{j} " not in text.split("premise")[1]


def test_strict_and_equality_atoms_are_widened_outwards_and_narrowed_inwards():
    from fractions import Fraction

    strict = Atom((("X_0", Fraction(1)),), ">", Fraction(7, 10))
    (wide,) = widen(strict, Fraction(1, 10**6))
    text, _ = comparison_text(wide)
    value = Fraction(text.split()[-1].rstrip(")"))
    assert wide.op == ">=" and value <= Fraction(7, 10) - Fraction(1, 10**6)  # contains every a > 0.7
    (narrow,) = widen(strict, Fraction(-1, 10**6))
    value = Fraction(comparison_text(narrow)[0].split()[-1].rstrip(")"))
    assert value >= Fraction(7, 10) + Fraction(1, 10**6)  # only points that break the rule by the margin
    equal = Atom((("Y_0", Fraction(-1)),), "==", Fraction(2))
    band = sorted(comparison_text(c)[0] for c in widen(equal, Fraction(1, 1000)))
    assert [b.split()[:2] for b in band] == [["(<=", "Y_0"], ["(>=", "Y_0"]]
    upper, lower = (Fraction(b.split()[-1].rstrip(")")) for b in band)
    assert Fraction(-1999, 1000) <= upper < Fraction(-1999, 1000) + Fraction(1, 10**12)  # rounded outwards
    assert Fraction(-2001, 1000) - Fraction(1, 10**12) < lower <= Fraction(-2001, 1000)


def test_weighted_atoms_use_the_form_marabou_reads_when_there_is_one():
    from fractions import Fraction

    # Going_Out - 0.05 * income >= -1e-6: one coefficient is not +-1 -> (* c v) on the other side
    one_scaled = Comparison((("X_0", Fraction(-1, 20)), ("Y_1", Fraction(1))), ">=", Fraction(-1, 10**6), True)
    text, readable = comparison_text(one_scaled)
    assert readable and text.startswith("(>= (+ Y_1 0.00000100") and text.endswith(") (* 0.05 X_0))")
    two_scaled = Comparison((("X_0", Fraction(1, 2)), ("Y_0", Fraction(1, 3)), ("Y_1", Fraction(1))), "<=",
                            Fraction(1), True)
    text, readable = comparison_text(two_scaled)
    assert not readable and text.startswith("(<= (+ (* 0.5 X_0) (* 0.3333333333333333 Y_0) (* 1.0 Y_1))")


def test_a_non_linear_assert_is_skipped_with_its_reason(encoding):
    spec = parse_spec_text("(declare-const x1 Real)\n(declare-const y1 Real)\n(assert (<= (* y1 y1) x1))\n"
                           "(assert (<= y1 x1))\n", encoding)
    disjuncts, reason = raw_violation(spec.asserts[0], spec)
    assert disjuncts is None and "not linear" in reason
    disjuncts, _ = raw_violation(spec.asserts[1], spec)
    assert disjuncts is not None and len(disjuncts) == 1  # y1 > x1 in raw units over Y_0 / X_0
    (atom,) = disjuncts[0]
    assert dict(atom.terms) == {"X_0": -1, "Y_0": 1} and atom.op == ">" and atom.bound == 0


def test_cli_export_writes_the_files_and_reports_them(trained, tmp_path):
    out = tmp_path / "exported"
    result = run_cli("export", str(trained["binary"]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["assert_1.vnnlib", "export.json", "model.onnx"]
    assert "assert_1.vnnlib: violation of assert 1" in result.stdout
    bad = run_cli("export", str(tmp_path / "missing"), "--out", str(out))
    assert bad.returncode == 2 and "not a deepsade model directory" in bad.stderr
