"""``deepsade predict`` and ``deepsade certify``: use a model directory, re-check its certificate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deepsade.artifact import load as load_artifact
from deepsade.cli.common import UsageError, user_errors, warn_if_altered
from deepsade.errors import UserInputError
from deepsade.ingest import fill_with, read_csv
from deepsade.prediction import predictions_frame


def written_numbers(constraint_text: str, encoding) -> dict[int, str]:
    """Assert number -> what it is of the assert as written, e.g. "assert 1 as written, case 2 of 2" (only
    for asserts split into cases, ``deepsade.cases``, the first case included: a probe read an unlabelled
    first case as the whole rule), for the certificate's lines; empty when the rule cannot be read."""
    from deepsade.spec import parse_spec_text

    try:
        spec = parse_spec_text(constraint_text, encoding)
    except (UserInputError, ValueError, ArithmeticError):  # a damaged model directory: the re-check says why
        return {}
    groups: dict[int, list[int]] = {}
    for a in spec.asserts:
        if a.case_of is not None:
            groups.setdefault(a.case_of, []).append(a.index)
    return {index + 1: f"assert {written + 1} as written, case {k + 1} of {len(members)}"
            for written, members in groups.items() if len(members) > 1 for k, index in enumerate(members)}


def print_certificate(certificate: dict, cases: dict[int, str] | None = None) -> None:
    """The certificate's verdict and one line per assert (``cases``: assert number -> which case of which
    assert as written it is, ``written_numbers``)."""
    cases = cases or {}
    verdict = certificate.get("verdict", "none")
    click.echo(f"certificate: {verdict.upper()}"
               + (f" (margin {certificate['margin']:g}, checked in {certificate.get('seconds', 0):.2f}s)"
                  if "margin" in certificate else ""))
    for entry in certificate.get("asserts", []):
        text = entry["text"]
        case = f" ({cases[entry['assert']]})" if entry.get("assert") in cases else ""
        click.echo(f"  assert {entry['assert']}{case}: {entry['result']}  "
                   f"{text if len(text) <= 90 else text[:87] + '...'}")
        if entry.get("violating_input_raw"):
            click.echo(f"    violating input (raw units, evaluated exactly): {entry['violating_input_raw']}")
        elif entry.get("skip_inputs_raw"):
            click.echo(f"    bound check failed near skip inputs (raw, latent relaxation, not a violation): "
                       f"{entry['skip_inputs_raw']}")
    for part in (certificate.get("construction") or {}).get("by_construction", []):
        click.echo(f"  by construction (not proven exactly): {part}")
    if certificate.get("reason"):
        click.echo(f"  {certificate['reason']}")
    if certificate.get("warning") and certificate.get("verdict") != "violated":  # rounding advice: moot when broken
        from deepsade.float_error import FLOAT64_COVERED

        # predict and the default export covered, a float32 runtime not: a note (a probe read the warning under
        # CERTIFIED as alarming, with nothing to do)
        label = "note" if certificate["warning"].startswith(FLOAT64_COVERED) else "warning"
        click.echo(f"{label}: {certificate['warning']}", err=True)
    if certificate.get("note"):
        click.echo(f"  {certificate['note']}")


@click.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_file", metavar="NEW.csv", type=click.Path(dir_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="CSV to write (default: print to stdout).")
@user_errors
def predict(model_dir, data_file, out_file) -> None:
    """Predict with MODEL_DIR on NEW.csv; rows outside the domain box (no guarantee there) are flagged."""
    art = load_artifact(model_dir)
    warn_if_altered(art)
    frame = read_csv(data_file)
    stored = art.training.get("imputation") or {}
    frame, filled = fill_with(frame, stored.get("values") or {})
    if filled:
        click.echo(f"note: {filled} of {len(frame)} rows had missing input values, filled with the training data's "
                   f"values as in training (--impute {stored.get('method')})", err=True)
    result = predictions_frame(art, frame)
    present = [c for c in art.encoding.feature_columns if c in frame.columns]
    missing = frame[present].isna().any(axis=1).to_numpy()
    if missing.any():
        click.echo(f"warning: {int(missing.sum())} of {len(result)} rows have missing input values: no prediction "
                   "for them (empty cells; in_domain = False)", err=True)
    outside = int((~result["in_domain"].to_numpy() & ~missing).sum())
    if outside:
        click.echo(f"warning: {outside} of {len(result)} rows lie outside the domain box: the guarantee does not "
                   "cover them (column in_domain = False)", err=True)
    for column, rows in art.encoding.unseen_categories(frame).items():
        values = sorted({str(v) for v in frame.loc[rows, column]})
        click.echo(f"warning: {int(rows.sum())} rows hold a category of {column!r} the model never saw "
                   f"({', '.join(values[:5])}{', ...' if len(values) > 5 else ''}): all its one-hot inputs are 0, "
                   "unlike any training row (column unseen_category = True)", err=True)
        result["unseen_category"] = result.get("unseen_category", False) | rows
    if out_file:
        try:
            result.to_csv(out_file, index=False)
        except OSError as exc:
            raise UsageError(f"cannot write {out_file}: {exc.strerror or exc}") from None
        click.echo(f"{len(result)} predictions written to {out_file}")
    else:
        click.echo(result.to_csv(index=False), nl=False)


@click.command("certify")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--constraint", "constraint_file", type=click.Path(dir_okay=False), default=None,
              help="Your own SMT-LIB rule file (raw units): the model is checked against it instead of the stored "
                   "rules, and any difference from them is reported.")
@click.option("--domain", "domain_file", type=click.Path(dir_okay=False), default=None,
              help="Your own domain box (JSON {column: [lo, hi]} or CSV feature,lower,upper, raw units; unnamed "
                   "inputs keep the training rows' range): checked on it, differences from the stored box reported.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds per assert for the exact check.")
@user_errors
def certify(model_dir, constraint_file, domain_file, timeout) -> None:
    """Re-check MODEL_DIR from first principles; exit 1 on any difference, on a failed check or a violation."""
    from deepsade.artifact import MODEL_FILE, WEIGHTS_FILE
    from deepsade.data import read_domain_override
    from deepsade.recheck import recheck_artifact
    from deepsade.smtlib import read_constraint_file

    if not all((Path(model_dir) / name).is_file() for name in (MODEL_FILE, WEIGHTS_FILE)):
        raise UsageError(f"{model_dir} is not a deepsade model directory (needs {MODEL_FILE} and {WEIGHTS_FILE})")
    rules = None
    if constraint_file:
        read_constraint_file(constraint_file)  # a missing or malformed rule file is a usage error (exit 2)
        rules = Path(constraint_file).read_text(encoding="utf-8")
    try:
        art = load_artifact(model_dir)
    except UserInputError as exc:  # a damaged model directory is a failed check, not a usage error
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    domain = read_domain_override(domain_file, art.encoding) if domain_file else None
    result = recheck_artifact(art, rules, domain, timeout)
    print_certificate(result.certificate, written_numbers(rules or art.constraint_text, art.encoding))
    for note in result.notes:
        click.echo(f"note: {note}")
    problems = list(result.problems)
    by_construction = result.certificate.get("verdict") == "by construction"  # HCR: not an exact proof of the net
    if result.certificate.get("verdict") != "certified" and not by_construction:
        problems.append(f"the model is {result.certificate.get('verdict')}")
    for problem in problems:
        click.echo(f"FAILED: {problem}", err=True)
    if problems:
        sys.exit(1)
    if by_construction:
        click.echo("certificate re-checked: OK, BY CONSTRUCTION (not certified: the region is checked exactly, the "
                   "layer keeping its outputs in it is by construction and was sampled, not proven)")
        return
    click.echo("certificate re-checked: OK")
