"""``deepsade predict`` and ``deepsade certify``: use a model directory, re-check its certificate."""

from __future__ import annotations

import sys

import click

from deepsade.artifact import load as load_artifact
from deepsade.certify import certify_artifact
from deepsade.cli.common import UsageError, user_errors, warn_if_altered
from deepsade.data import read_csv
from deepsade.estimator import predictions_frame


def print_certificate(certificate: dict) -> None:
    verdict = certificate.get("verdict", "none")
    click.echo(f"certificate: {verdict.upper()}"
               + (f" (margin {certificate['margin']:g}, checked in {certificate.get('seconds', 0):.2f}s)"
                  if "margin" in certificate else ""))
    for entry in certificate.get("asserts", []):
        click.echo(f"  assert {entry['assert']}: {entry['result']}  {entry['text'][:90]}")
        if entry.get("skip_inputs_raw"):
            click.echo(f"    counterexample skip inputs (raw): {entry['skip_inputs_raw']}")
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
    result = predictions_frame(art, frame)
    outside = int((~result["in_domain"]).sum())
    if outside:
        click.echo(f"warning: {outside} of {len(result)} rows lie outside the domain box: the guarantee does not "
                   "cover them (column in_domain = False)", err=True)
    if out_file:
        try:
            result.to_csv(out_file, index=False)
        except OSError as exc:
            raise UsageError(f"cannot write {out_file}: {exc.strerror}") from None
        click.echo(f"{len(result)} predictions written to {out_file}")
    else:
        click.echo(result.to_csv(index=False), nl=False)


@click.command("certify")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds per assert for the exact check.")
@user_errors
def certify(model_dir, timeout) -> None:
    """Re-check MODEL_DIR's certificate from scratch; exit 1 on any mismatch, violation or altered weights."""
    art = load_artifact(model_dir)
    stored = art.certificate
    fresh = certify_artifact(art, timeout)
    print_certificate(fresh)
    problems = []
    if stored.get("verdict") in (None, "none"):
        click.echo(f"note: the model directory holds no certificate (method {art.method}); the check above is "
                   "the only evidence")
    elif stored.get("weights_sha256") != fresh["weights_sha256"]:
        problems.append("the weights differ from the ones the stored certificate covers (altered after training)")
    if stored.get("verdict") not in (None, "none") and stored.get("verdict") != fresh["verdict"]:
        problems.append(f"stored verdict {stored.get('verdict')!r} but the re-check says {fresh['verdict']!r}")
    if stored.get("constraint_sha256") and stored["constraint_sha256"] != fresh["constraint_sha256"]:
        problems.append("the constraint text differs from the one certified")
    if fresh["verdict"] != "certified":
        problems.append(f"the model is not certified: {fresh['verdict']}")
    for problem in problems:
        click.echo(f"FAILED: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("certificate re-checked: OK")
