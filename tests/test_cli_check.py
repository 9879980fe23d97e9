"""The CLI as a user runs it: `deepsade check` output and one-line errors with exit code 2."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


def test_check_reports_bindings_and_violations(tmp_path, loan_frame, loan_constraint):
    csv = tmp_path / "loan.csv"
    loan_frame.to_csv(csv, index=False)
    result = run_cli("check", str(loan_constraint), str(csv), "--target", "Loan_Status", "--positive", "Y")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mapped (skip-connection) features: ApplicantIncome, Credit_History" in out
    assert "1 dropped for missing values" in out
    assert "linear arithmetic, P => Q" in out
    assert "rows violating at least one assert: 0 of 199" in out



def test_check_says_which_constant_columns_were_left_out(tmp_path, loan_frame, loan_constraint):
    csv = tmp_path / "loan.csv"
    loan_frame.assign(Branch="north").to_csv(csv, index=False)
    result = run_cli("check", str(loan_constraint), str(csv), "--target", "Loan_Status", "--positive", "Y")
    assert result.returncode == 0, result.stderr
    assert "note: 1 input column(s) held one value in every row and were left out" in result.stdout
    assert "Branch" in result.stdout


@pytest.mark.parametrize("case, message", [
    ("missing_file", "data file not found"),
    ("unknown_column", "unknown column"),
    ("constant_column", "holds one value (1) in every row"),
    ("regression_text_target", "not numeric"),
    ("empty_after_missing", "no rows left"),
    ("unknown_name", "neither inputs nor outputs"),
    ("syntax", "unbalanced"),
    ("missing_constraint", "constraint file not found"),
    ("empty_file", "empty"),
])
def test_bad_inputs_one_line_exit_2(tmp_path, loan_frame, loan_constraint, case, message):
    csv = tmp_path / "loan.csv"
    constraint = loan_constraint
    target = ["--target", "Loan_Status"]
    frame = loan_frame.copy()
    if case == "constant_column":  # the rule mentions it
        frame["Credit_History"] = 1.0
    if case == "empty_after_missing":
        frame["ApplicantIncome"] = float("nan")
    frame.to_csv(csv, index=False)
    extra: list[str] = []
    if case == "missing_file":
        csv = tmp_path / "nope.csv"
    elif case == "unknown_column":
        target = ["--target", "Loan_Stat"]
    elif case == "regression_text_target":
        extra = ["--task", "regression"]
    elif case == "unknown_name":
        constraint = tmp_path / "c.smt2"
        constraint.write_text("(declare-const Salary Real)(declare-const Loan_Status Real)(assert (< Loan_Status Salary))")
    elif case == "syntax":
        constraint = tmp_path / "c.smt2"
        constraint.write_text("(declare-const Loan_Status Real)(assert (< Loan_Status 0)")
    elif case == "missing_constraint":
        constraint = tmp_path / "none.smt2"
    elif case == "empty_file":
        csv = tmp_path / "empty.csv"
        csv.write_text("")
    result = run_cli("check", str(constraint), str(csv), *target, *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_and_advise_also_take_the_rule_file_as_train_does(tmp_path, loan_frame, loan_constraint):
    """A user coming from `train DATA.csv --constraint R.smt2` gets the same answer, not click's
    "No such option '--constraint'. Did you mean '--domain'?"."""
    from click.testing import CliRunner

    from deepsade.cli import main

    csv = tmp_path / "loan.csv"
    loan_frame.to_csv(csv, index=False)
    common = ["--target", "Loan_Status", "--positive", "Y"]
    for verb in ("check", "advise"):
        positional = CliRunner().invoke(main, [verb, str(loan_constraint), str(csv), *common])
        as_train = CliRunner().invoke(main, [verb, str(csv), "--constraint", str(loan_constraint), *common])
        assert positional.exit_code == as_train.exit_code == 0, as_train.output
        assert positional.output == as_train.output
        wrong = CliRunner().invoke(main, [verb, str(csv), *common])
        assert wrong.exit_code == 2 and "RULES.smt2 DATA.csv, or DATA.csv --constraint RULES.smt2" in wrong.output


def test_a_reader_that_leaves_early_is_no_error(tmp_path, loan_frame, loan_constraint):
    """`deepsade check ... | head -1` printed 'Error: Broken pipe' with exit 2 (session 15 probe)."""
    import subprocess
    import sys

    csv = tmp_path / "loan.csv"
    loan_frame.to_csv(csv, index=False)
    command = (f"'{sys.executable}' -m deepsade.cli check '{loan_constraint}' '{csv}' --target Loan_Status "
               "--positive Y | true")
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True,
                            timeout=300)
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr
    assert result.returncode in (0, 1)
