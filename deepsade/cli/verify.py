"""``deepsade adi`` and ``deepsade verify``: search a trained model for counterexamples to its constraint.

Exit codes of ``verify``: 0 verified, 1 counterexample, 3 unknown (timeout), 4 holds by construction only
(HCR, HardNet-Aff with A(x): the exactly provable part is proven, the rest is not machine-checked);
2 for bad input.
"""

from __future__ import annotations

import click
import numpy as np

from deepsade.cli.common import backend_options, list_callback, make_backend, user_errors, warn_if_altered
from deepsade.verification import ENGINES, Outcome, Verifier, counterexample_raw_inputs

EXIT_VERIFIED, EXIT_COUNTEREXAMPLE, EXIT_UNKNOWN, EXIT_BY_CONSTRUCTION = 0, 1, 3, 4


def _engine_options(timeout_default: float, presample_default: int):
    """The flags both commands share: engine, timeout, presampling, bounds, seed."""
    def decorate(func):
        options = [
            click.option("--engine", type=click.Choice(ENGINES), default="marabou", show_default=True,
                         help="Solver: Marabou (z3 takes the asserts Marabou cannot express) or z3 for all."),
            click.option("--timeout", type=float, default=timeout_default, show_default=True,
                         help="Seconds per search, not for the whole command: each assert (and each part of one) is its "
                              "own search, and a Marabou counterexample that exact arithmetic does not confirm is "
                              "searched again by z3 (Marabou rounds up to whole seconds). A timeout is 'unknown'."),
            click.option("--presample", type=click.IntRange(min=0), default=presample_default, show_default=True,
                         help="Random points tried in each box before the solver (0: solver only)."),
            click.option("--no-bounds", "no_bounds", is_flag=True,
                         help="Skip the pre-checks that rest on sound linear bounds: the bound check, and z3 on the "
                              "last layers with what comes before them free in those bounds (the engines then "
                              "search the whole network)."),
            click.option("--seed", type=int, default=0, show_default=True,
                         help="Seed of the random points tried before the solver (and of --sample)."),
            click.option("--relaxed", is_flag=True,
                         help="Search the relaxed box the certificate covers (fractional one-hot values, "
                              "non-whole values in integer columns) instead of inputs a real row could have."),
        ]
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


@click.command("adi")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_file", metavar="DATA.csv", type=click.Path(dir_okay=False))
@click.option("--epsilon", "epsilons", multiple=True, default=("0.1,0.01",), show_default=True,
              callback=list_callback(float),
              help="Radius of the L-inf ball around each instance, in scaled units (the [0, 1] units of the "
                   "network's inputs); several radii comma-separated or repeated.")
@_engine_options(timeout_default=10.0, presample_default=64)
@backend_options("One task per instance.")
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help="Check a seeded random sample of this many rows instead of all.")
@click.option("--out", type=click.Path(dir_okay=False), default="adi.csv", show_default=True,
              help="Per instance x epsilon results (CSV); the summary goes beside it as .json.")
@click.option("--quiet", is_flag=True, help="No progress bar and no notes: only the AdI lines and the results' paths.")
@user_errors
def adi(model_dir, data_file, epsilons, engine, timeout, presample, no_bounds, seed, relaxed, jobs, backend,
        scheduler, address, sample, out, quiet) -> None:
    """Adversity Index of the model in MODEL_DIR on the rows of DATA.csv.

    For each row and radius eps, searches the inputs within eps of the row (scaled units, inside the
    domain box) for one where the model breaks the constraint. AdI is the fraction of rows with one."""
    from deepsade.artifact import load
    from deepsade.ingest import read_csv
    from deepsade.verification.adi import adversity_index, instances_from_frame

    where = make_backend(backend, jobs, scheduler, address)
    artifact = load(model_dir)
    warn_if_altered(artifact)
    frame = read_csv(data_file)
    rows, inputs, dropped = instances_from_frame(frame, artifact.encoding, sample, seed)
    echo = click.echo
    info = (lambda _line: None) if quiet else click.echo
    info(f"instances: {len(rows)}" + (f" (random sample of {sample}, seed {seed})" if sample and sample < len(frame)
                                      else "") + (f"; {dropped} rows dropped for missing inputs" if dropped else ""))
    report = adversity_index(artifact, inputs, epsilons, engine=engine, timeout=timeout, jobs=jobs,
                             presample=presample, bound_check=not no_bounds, seed=seed, progress=not quiet,
                             row_ids=rows.tolist(), realisable=not relaxed, backend=where)
    for note in report.summary["notes"]:
        info(f"note: {note}")
    info(f"engine: {report.summary.get('engine', engine)}, timeout {timeout:g} s per search; {report.summary['wall_seconds']:.1f} s in all, "
         f"{report.summary['seconds_per_instance']:.3f} s of search per instance")
    for part in report.summary["epsilons"]:
        adi_text = "n/a (nothing decided)" if part["adi"] is None else f"{part['adi']:.3f}"
        if part.get("basis") == "by construction":  # HCR, A(x): nothing searched, nothing called verified
            line = (f"eps={part['epsilon']:g}: AdI {adi_text} by construction, not verified  ({part['counterexample']} "
                    f"with a counterexample found by sampling, {part['by_construction']} safe by construction, "
                    f"{part['unknown']} unknown (exact part not proven)")
        else:
            line = (f"eps={part['epsilon']:g}: AdI {adi_text}  ({part['counterexample']} with a counterexample, "
                    f"{part['verified']} verified safe, {part['unknown']} unknown (timeout)")
        if part["outside"]:
            line += f", {part['outside']} outside the domain box"
        echo(line + ")")
        if part["unknown"]:
            echo(f"    unknowns are not counted as safe: AdI would be {part['adi_if_unknown_safe']:.3f} if all "
                 f"were safe, {part['adi_if_unknown_unsafe']:.3f} if all were unsafe")
    csv_path, json_path = report.write(out)
    echo(f"results: {csv_path} (one row per instance x epsilon), summary: {json_path}")


@click.command("verify")
@click.argument("model_dir", type=click.Path(file_okay=False))
@_engine_options(timeout_default=60.0, presample_default=1024)
@backend_options("One task per assert when more than one worker is asked for (or a cluster).")
@click.option("--quiet", is_flag=True, help="Only the verdict (and a counterexample), no notes.")
@user_errors
def verify(model_dir, engine, timeout, presample, no_bounds, seed, relaxed, jobs, backend, scheduler, address,
           quiet) -> None:
    """Search the whole domain box of the model in MODEL_DIR for an input that breaks its constraint.

    Exit code 0: verified (no such input); 1: counterexample (printed in raw units); 3: unknown; 4: a model
    whose rule holds by construction (HCR, A(x): exact part proven, layer not machine-checked), never "verified"."""
    from deepsade.artifact import load
    from deepsade.verification.per_assert import verify_domain_per_assert

    where = make_backend(backend, jobs, scheduler, address)
    artifact = load(model_dir)
    warn_if_altered(artifact)
    from deepsade.constructions.constructed_verify import is_checked_by_construction

    if is_checked_by_construction(artifact.model):  # HCR, HardNet-Aff with A(x): not piecewise linear
        _verify_constructed(artifact, timeout, presample, seed, not relaxed, quiet)
    if getattr(artifact.model, "kind", None) == "label-set-repair" and _verify_repaired(artifact, timeout):
        return
    outcome, verifier = verify_domain_per_assert(artifact, engine=engine, timeout=timeout, presample=presample,
                                                 bound_check=not no_bounds, seed=seed, realisable=not relaxed,
                                                 backend=where)
    for note in [] if quiet else verifier.notes:
        click.echo(f"note: {note}")
    ctx = click.get_current_context()
    if outcome.status == "verified":
        click.echo(f"verified: no input in the domain box breaks the constraint "
                   f"(decided by {outcome.decided_by}, {outcome.seconds:.2f} s{how_decided(outcome.decided_by)})")
        ctx.exit(EXIT_VERIFIED)
    if outcome.status == "counterexample":
        report_counterexample(outcome, verifier, artifact.encoding)
        ctx.exit(EXIT_COUNTEREXAMPLE)
    click.echo(f"unknown: no answer within {timeout:g} s ({outcome.note or outcome.status}); "
               "try a longer --timeout")
    ctx.exit(EXIT_UNKNOWN)


def how_decided(decided_by: str) -> str:
    """What a proof on the last layers alone means (``abstraction``), for the deciders in ``decided_by``."""
    from deepsade.verification.abstraction import EnforcementAbstraction, LatentAbstraction

    return "".join(f"; {kind.label}: {kind.proves}" for kind in (EnforcementAbstraction, LatentAbstraction)
                   if kind.label in decided_by.split("+"))


def _verify_repaired(artifact, timeout: float) -> bool:
    """Label-set repair: z3 searches every base output (not only those the network reaches) for scores the layer
    leaves breaking the rule; none means no input breaks it (exits 0). False: fall back to the domain search."""
    import time

    from deepsade.constructions.repair_certificate import certify_repaired
    from deepsade.spec import parse_spec_text

    spec = parse_spec_text(artifact.constraint_text, artifact.encoding)
    start = time.perf_counter()
    proof = certify_repaired(artifact.model, spec, 0.0, timeout, {}, start)
    if proof["verdict"] != "certified":
        return False
    click.echo(f"verified: no input in the domain box breaks the constraint (decided by z3 on the label-set repair "
               f"layer: no base output at all makes it break the rule, {time.perf_counter() - start:.2f} s)")
    click.get_current_context().exit(EXIT_VERIFIED)
    return True


def _verify_constructed(artifact, timeout: float, presample: int, seed: int, realisable: bool, quiet: bool) -> None:
    """Report, per assert, what is proven exactly and what rests on construction (HCR, A(x)); exits."""
    from deepsade.constructions.constructed_verify import (
        BY_CONSTRUCTION,
        COUNTEREXAMPLE,
        describe_assert,
        verify_constructed,
    )

    result = verify_constructed(artifact, timeout=timeout, presample=presample, seed=seed, realisable=realisable)
    ctx = click.get_current_context()
    for note in [] if quiet else result.notes:
        click.echo(f"note: {note}")
    for report in result.asserts:
        for line in describe_assert(report) if not quiet else []:
            click.echo(line)
    enc = artifact.encoding
    if result.status == COUNTEREXAMPLE:
        click.echo(f"counterexample (found by sampling, checked exactly, {result.seconds:.2f} s):")
        for report in (r for r in result.asserts if r.counterexample is not None):
            raw = np.asarray(enc.input_min) + (np.asarray(enc.input_max) - np.asarray(enc.input_min)) \
                * report.counterexample
            click.echo(f"  breaks assert {report.index + 1} at inputs (raw units): "
                       + ", ".join(f"{n} = {v:.10g}" for n, v in zip(enc.input_names, raw, strict=True)))
        ctx.exit(EXIT_COUNTEREXAMPLE)
    if result.status == BY_CONSTRUCTION:
        click.echo(f"by construction, not verified: the exactly provable part holds for every assert (above); the "
                   f"rest rests on the construction, which no engine checked ({result.sampled_inputs} sampled inputs "
                   f"broke nothing; {result.seconds:.2f} s)")
        ctx.exit(EXIT_BY_CONSTRUCTION)
    click.echo("not proven: the exact check failed or timed out for some assert (see above); nothing is verified")
    ctx.exit(EXIT_UNKNOWN)


def report_counterexample(outcome: Outcome, verifier: Verifier, encoding) -> None:
    """Print a counterexample in raw units: the inputs, the model's outputs and the asserts it breaks."""
    echo = click.echo
    echo(f"counterexample (found by {outcome.decided_by} in {outcome.seconds:.2f} s):")
    for index in outcome.broken:
        text = " ".join(verifier.spec.asserts[index].text.split())
        echo(f"  breaks assert {index + 1}: {text[:160]}{'...' if len(text) > 160 else ''}")
    if outcome.note:
        echo(f"  note: {outcome.note}")
    point = counterexample_raw_inputs(encoding, outcome)
    outputs = encoding.outputs_to_raw(np.asarray(outcome.outputs)[None, :])[0]
    mentioned = {j for i in outcome.broken for j in verifier.spec.asserts[i].inputs}
    echo("  inputs (raw units; * = named in the broken assert):")
    for j, name in enumerate(encoding.input_names):
        echo(f"    {'*' if j in mentioned else ' '} {name} = {point[j]:.10g}")
    echo("  model outputs there (raw units):")
    for k, name in enumerate(encoding.output_names):
        echo(f"      {name} = {outputs[k]:.10g}")
