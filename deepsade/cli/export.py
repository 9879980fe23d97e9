"""``deepsade export``: write a model as ONNX plus one VNN-LIB property per assert, for other verifiers."""

from __future__ import annotations

import click

from deepsade.cli.common import UsageError, user_errors, warn_if_altered


@click.command("export")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write model.onnx, assert_N.vnnlib and export.json into.")
@click.option("--tolerance", type=float, default=None,
              help="How far each atom of the violation is widened (raw units, on the atom normalised to largest "
                   "coefficient 1); default: the verifier's strict margin (1e-6). Positive widens (unsat is a "
                   "proof, witnesses need a re-check); negative narrows (witnesses are sure, unsat is no proof).")
@click.option("--precision", type=click.Choice(["auto", "float32", "float64"]), default="auto", show_default=True,
              help="Tensor type of model.onnx (the network's weights are float32 either way; float64 keeps the "
                   "input scaling, and the target scaling folded into the last layer, closer to exact). auto: "
                   "float64 when the certificate's float32 rounding bound exceeds its margin, else float32.")
@user_errors
def export(model_dir, out_dir, tolerance, precision) -> None:
    """Export MODEL_DIR as model.onnx (raw inputs -> raw outputs) and one VNN-LIB file per linear assert
    (its violation over the domain box, raw units), described in export.json."""
    try:
        import onnx  # noqa: F401

        from deepsade.export import export_model, float32_not_covered
    except ImportError as exc:
        raise UsageError(f"export needs the onnx package ({exc.name} is missing): pip install 'deepsade[onnx]'") from None
    from deepsade.artifact import load
    from deepsade.verification import STRICT_MARGIN

    artifact = load(model_dir)
    warn_if_altered(artifact)
    result = export_model(artifact, out_dir, STRICT_MARGIN if tolerance is None else tolerance, precision)
    click.echo(f"wrote {result.directory / 'model.onnx'} ({artifact.encoding.task}, {len(artifact.encoding.input_names)} "
               f"inputs X_i -> {len(artifact.encoding.output_names)} outputs Y_j, raw units, {result.precision}) and "
               "export.json")
    if precision == "auto" and result.precision == "float64":
        click.echo(f"  float64 graph: {result.precision_reason}; float64's rounding is about 2^-29 of that bound, "
                   "within the margin (an estimate, as the certificate's warning says; --precision float32 to "
                   "override)")
    elif precision == "float32" and (uncovered := float32_not_covered(artifact)):
        click.echo(f"warning: {uncovered} (--precision float64 or auto writes a graph the certificate covers)",
                   err=True)
    for prop in result.properties:
        note = "" if prop.marabou_readable else "  (weighted sums: Marabou 2.0's VNN-LIB reader cannot read it)"
        click.echo(f"  {prop.file}: violation of assert {prop.assert_index}, {prop.disjuncts} disjunct(s){note}")
    for skipped in result.skipped:
        click.echo(f"  assert {skipped['assert']} not exported: {skipped['reason']}")
