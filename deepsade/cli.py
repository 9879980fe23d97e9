"""Command-line interface: a thin layer that parses flags and calls the Python API."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from deepsade.artifact import check_writable
from deepsade.artifact import load as load_artifact
from deepsade.checkpoint import CheckpointPolicy, TrainingInterrupted
from deepsade.checkpoint import default_directory as default_checkpoint_dir
from deepsade.checkpoint import exists as checkpoint_exists
from deepsade.checkpoint import remove as remove_checkpoint
from deepsade.cli_common import UsageError, data_options, parse_features, user_errors, warn_if_altered
from deepsade.data import prepare, read_csv
from deepsade.encode import STRATEGIES
from deepsade.errors import UserInputError
from deepsade.estimator import METHODS, DeepSaDe, predictions_frame
from deepsade.spec import Spec, parse_spec, vacuous_asserts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deepsade")
def main() -> None:
    """Train neural networks that provably satisfy domain constraints, and check any model against them."""


@main.command()
@click.argument("constraint", type=click.Path(dir_okay=False))
@click.argument("data_file", metavar="DATA.csv", type=click.Path(dir_okay=False))
@data_options
@click.option("--all-inputs", is_flag=True, help="Print the domain of every input, not only the mapped ones.")
@user_errors
def check(constraint, data_file, targets, features, task, positive, impute, domain_file, all_inputs) -> None:
    """Parse CONSTRAINT against DATA.csv and report bindings, domain, linearity and label violations."""
    frame = read_csv(data_file)
    data = prepare(frame, list(targets), parse_features(features), task, positive, impute, domain_file)
    spec = parse_spec(constraint, data.encoding)
    report_check(spec, data, all_inputs)


def report_check(spec: Spec, data, all_inputs: bool = False) -> None:
    enc = data.encoding
    echo = click.echo
    echo(f"data: {data.n_rows} rows used, {data.rows_dropped} dropped for missing values"
         + (f", {data.rows_imputed} imputed" if data.rows_imputed else "") + f"; task: {enc.task}")
    for note in spec.notes:
        echo(f"note: {note}")
    bound_inputs = [n for n in spec.declared if n in enc.input_names]
    bound_outputs = [n for n in spec.declared if n in enc.output_names]
    echo(f"inputs bound ({len(bound_inputs)}): {', '.join(bound_inputs) or '-'}")
    echo(f"outputs bound ({len(bound_outputs)}): {', '.join(bound_outputs)}")
    echo(f"network: {len(enc.input_names)} inputs, {len(enc.output_names)} outputs: {', '.join(enc.output_names)}")
    mapped = spec.mapped_features
    echo(f"mapped (skip-connection) features: {', '.join(enc.input_names[j] for j in mapped) or 'none'}")
    shown = range(len(enc.input_names)) if all_inputs or len(enc.input_names) <= 30 else mapped
    echo(f"domain box (raw units, from {data.domain.source}):")
    for j in shown:
        echo(f"  {enc.input_names[j]:<40} [{data.domain.lower[j]:.6g}, {data.domain.upper[j]:.6g}]")
    if len(shown) < len(enc.input_names):
        echo(f"  ... {len(enc.input_names) - len(shown)} more inputs (--all-inputs shows them)")
    truth = spec.evaluate_raw(data.raw_inputs, enc.targets_as_scores(data.targets))
    vacuous = set(vacuous_asserts(spec, *data.domain.scaled_exact(enc)))
    echo("asserts:")
    for a in spec.asserts:
        shape = "P => Q" if a.has_premise else "Q"
        kind = "linear" if a.linear else "non-linear"
        text = " ".join(a.text.split())
        echo(f"  [{a.index + 1}] {kind}, {shape}: {text[:100]}{'...' if len(text) > 100 else ''}")
        echo(f"      rows whose true labels violate it: {int((~truth[:, a.index]).sum())}")
        if a.index in vacuous:
            echo("      warning: its premise never holds in the domain box, so it constrains nothing there "
                 "(values are raw units)")
    echo(f"rows violating at least one assert: {int((~truth.all(axis=1)).sum())} of {data.n_rows}")


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {text!r}") from None


def _ints(text: str, name: str) -> tuple[int, ...]:
    values = _floats(text, name)
    if not values or any(v <= 0 or v != int(v) for v in values):
        raise UsageError(f"{name} must be comma-separated positive integers, got {text!r}")
    return tuple(int(v) for v in values)


class _Progress:
    """A tqdm bar over iterations with the counts that matter: line-search hits, solver calls, restarts."""

    def __init__(self, total: int | None, quiet: bool):
        from tqdm import tqdm

        self.bar = None if quiet else tqdm(total=total, unit="it", dynamic_ncols=True, leave=False)
        self.epoch_lines: list[str] = []
        self.quiet = quiet

    def __call__(self, stats, info: dict) -> None:
        if "total" in info:
            if self.bar is not None:
                self.bar.reset(total=info["total"])
                self.bar.update(info.get("done", 0))  # a resumed run starts where it stopped
            return
        if info.get("epoch_done"):
            line = (f"epoch {stats.epoch}: loss {stats.train_loss:.4f}, val {stats.val_loss:.4f}, "
                    f"line search {stats.line_search_hits}/{stats.iterations}, projection {stats.projection_hits}, MaxSMT {stats.maxsmt_successes}/"
                    f"{stats.maxsmt_calls}, restarts {stats.restarts}, solver {stats.solver_seconds:.1f}s")
            if self.bar is not None:
                self.bar.write(line)
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=stats.epoch, loss=f"{info['loss']:.4f}", ls=stats.line_search_hits,
                                 proj=stats.projection_hits, smt=stats.maxsmt_calls, restarts=stats.restarts, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _checkpoint_dir(method: str, out_dir: str, every: str, resume_dir: str | None) -> Path | None:
    """Where this run keeps its checkpoint; refuses to start over an interrupted run's checkpoint."""
    CheckpointPolicy.parse(every)  # a bad value fails before the data is read
    check_writable(out_dir)
    if method != "deepsade":
        if resume_dir is not None:
            raise UsageError(f"--resume works with --method deepsade only (got {method})")
        return None
    if resume_dir is not None:
        if not checkpoint_exists(resume_dir):
            raise UsageError(f"no checkpoint to resume in {resume_dir} (it has no checkpoint.json)")
        return Path(resume_dir)
    directory = default_checkpoint_dir(out_dir)
    if checkpoint_exists(directory):
        raise UsageError(f"{directory} holds the checkpoint of an interrupted run: continue it with --resume "
                         f"{directory}, or delete it to start over")
    return directory


def print_certificate(certificate: dict) -> None:
    verdict = certificate.get("verdict", "none")
    click.echo(f"certificate: {verdict.upper()}"
               + (f" (margin {certificate['margin']:g}, checked in {certificate.get('seconds', 0):.2f}s)"
                  if "margin" in certificate else ""))
    for entry in certificate.get("asserts", []):
        click.echo(f"  assert {entry['assert']}: {entry['result']}  {entry['text'][:90]}")
        if entry.get("violating_input_raw"):
            click.echo(f"    violating input (raw units, evaluated exactly): {entry['violating_input_raw']}")
        elif entry.get("skip_inputs_raw"):
            click.echo(f"    bound check failed near skip inputs (raw, latent relaxation, not a violation): "
                       f"{entry['skip_inputs_raw']}")
    if certificate.get("reason"):
        click.echo(f"  {certificate['reason']}")
    if certificate.get("warning"):
        click.echo(f"warning: {certificate['warning']}", err=True)
    if certificate.get("note"):
        click.echo(f"  {certificate['note']}")


@main.command()
@click.argument("data_file", metavar="DATA.csv", type=click.Path(dir_okay=False))
@click.option("--constraint", required=True, type=click.Path(dir_okay=False), help="SMT-LIB constraint file.")
@data_options
@click.option("--method", type=click.Choice(METHODS), default="deepsade", show_default=True,
              help="deepsade (certified) or a baseline without guarantee.")
@click.option("--hidden", default="50,30,10", show_default=True, help="Hidden layer sizes.")
@click.option("--epochs", type=click.IntRange(1), default=50, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=5, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Learning rate (hidden layers; also the line search's longest step).")
@click.option("--max-step", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Side of the box around the last layer's weights that the MaxSMT step searches.")
@click.option("--margins", default="0,1,2", show_default=True,
              help="Soft-clause margins (classification: score margin; regression: x max|label|).")
@click.option("--line-search-steps", type=click.IntRange(0), default=5, show_default=True)
@click.option("--projection/--no-projection", default=True, show_default=True,
              help="When the line search fails, project the gradient step onto the constraint (an LP for "
                   "linear asserts whose premises bound single inputs, a closed form for sign patterns) before "
                   "MaxSMT; always re-checked exactly.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="How the constraint is translated to the last layer.")
@click.option("--maxsmt", type=click.Choice(["fu-malik", "z3-opt"]), default="fu-malik", show_default=True)
@click.option("--solver-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds per solver call.")
@click.option("--margin", "output_margin", type=click.FloatRange(min=0, min_open=True), default=1e-4,
              show_default=True, help="Certificate slack: every output may move by this much (network units).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--force", is_flag=True, help="Replace --out even when it already holds files (refused otherwise).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--checkpoint-every", default="epoch", show_default=True,
              help="When to write a checkpoint to OUT.checkpoint/: 'epoch' (end of each epoch, and every 5 minutes "
                   "within one), a number of iterations (e.g. 200), a duration (90s, 10m) or 'never'. "
                   "Ctrl-C / SIGTERM always writes one. Removed once the model is written.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None,
              help="Continue the run whose checkpoint is in this directory (same data, constraint and flags; "
                   "--epochs may be larger).")
@user_errors
def train(data_file, constraint, targets, features, task, positive, impute, domain_file, method, hidden, epochs,
          batch_size, lr, max_step, margins, line_search_steps, projection, strategy, maxsmt, solver_timeout, output_margin,
          val_fraction, seed, out_dir, force, quiet, checkpoint_every, resume_dir) -> None:
    """Train a model on DATA.csv that satisfies --constraint, certify it and write it to --out."""
    if Path(out_dir).is_dir() and any(Path(out_dir).iterdir()) and not force:
        raise UsageError(f"{out_dir} already holds files (a model trained before?): choose another --out, or "
                         "replace it with --force")
    checkpoint_dir = _checkpoint_dir(method, out_dir, checkpoint_every, resume_dir)
    frame = read_csv(data_file)
    estimator = DeepSaDe(constraint, list(targets), features=parse_features(features), task=task, positive=positive,
                         impute=impute, domain_file=domain_file, method=method, hidden=_ints(hidden, "--hidden"),
                         epochs=epochs, batch_size=batch_size, lr=lr, max_step=max_step,
                         margins=_floats(margins, "--margins"), line_search_steps=line_search_steps,
                         projection=projection, strategy=strategy, maxsmt=maxsmt, solver_timeout=solver_timeout,
                         output_margin=output_margin, val_fraction=val_fraction, seed=seed,
                         checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                         resume=resume_dir is not None)
    progress = _Progress(None, quiet)
    estimator.progress = progress
    try:
        estimator.fit(frame)
    except TrainingInterrupted as stop:
        progress.close()
        # the same command line plus --resume (run as 'deepsade train ...'; otherwise a template)
        command = ["deepsade", *sys.argv[1:]] if sys.argv[1:2] == ["train"] else ["deepsade", "train", "..."]
        if stop.directory is None:
            click.echo("interrupted during initialisation, before the first checkpoint: nothing to resume; "
                       "run the command again", err=True)
        else:
            if resume_dir is None:
                command += ["--resume", str(stop.directory)]
            click.echo(f"interrupted: checkpoint written to {stop.directory}; resume with: {shlex.join(command)}",
                       err=True)
        sys.exit(stop.exit_code)
    finally:
        progress.close()
    art = estimator.artifact_
    summary = estimator.data_summary_
    click.echo(f"trained {method} on {art.training.get('train_rows', summary['rows'])} rows "
               f"({summary['rows_dropped']} dropped for missing values) in {art.training['seconds']:.1f}s")
    for note in art.training.get("notes", []):
        click.echo(f"note: {note}", err=True)
    try:
        estimator.save(out_dir)
    except UserInputError as exc:
        if checkpoint_dir is not None and checkpoint_exists(checkpoint_dir):
            raise UsageError(f"{exc}; the trained state is kept in {checkpoint_dir}: once this is fixed, run the same "
                             f"command with --resume {checkpoint_dir}") from None
        raise
    click.echo(f"model written to {out_dir}")
    if checkpoint_dir is not None:
        if art.certificate.get("verdict") == "certified":
            remove_checkpoint(checkpoint_dir)
        else:  # e.g. the check was cut short: --resume repeats it without training again
            click.echo(f"checkpoint kept in {checkpoint_dir}", err=True)
    print_certificate(art.certificate)
    if method == "deepsade" and art.certificate.get("verdict") != "certified":
        raise UsageError("training finished but the certificate did not confirm the constraint; see above")


@main.command()
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


@main.command()
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
    from deepsade.certify import recheck_artifact
    from deepsade.data import read_domain_override
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
    print_certificate(result.certificate)
    for note in result.notes:
        click.echo(f"note: {note}")
    problems = list(result.problems)
    if result.certificate.get("verdict") != "certified":
        problems.append(f"the model is {result.certificate.get('verdict')}")
    for problem in problems:
        click.echo(f"FAILED: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("certificate re-checked: OK")


@main.command()
@click.option("--out", "out_dir", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--rows", type=click.IntRange(50), default=614, show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--quiet", is_flag=True)
@user_errors
def demo(out_dir, rows, epochs, seed, quiet) -> None:
    """Generate UC2-like loan data, train a certified model on it and print the certificate."""
    from usecases import uc2_loan

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out.parent / f"{out.name}_data.csv"
    frame = uc2_loan.inject_violations(uc2_loan.generate(rows, seed=seed), n=40, seed=seed)
    frame.to_csv(csv, index=False)
    constraint = Path(__file__).resolve().parents[1] / uc2_loan.CONSTRAINT
    click.echo(f"generated {len(frame)} UC2-like rows -> {csv}; constraint {constraint.name}:")
    click.echo("  an applicant with income below 5000 and no credit history must be denied")
    train.main(args=[str(csv), "--constraint", str(constraint), "--target", "Loan_Status", "--positive", "Y",
                     "--epochs", str(epochs), "--seed", str(seed), "--out", str(out), *(["--quiet"] if quiet else [])],
               standalone_mode=False)


from deepsade.cli_evaluate import evaluate  # noqa: E402  (each verb lives in its own module)

main.add_command(evaluate)

from deepsade.cli_verify import adi, verify  # noqa: E402

main.add_command(adi)
main.add_command(verify)

from deepsade.cli_usecase import usecase  # noqa: E402

main.add_command(usecase)
from deepsade.cli_export import export; main.add_command(export)  # noqa: E402, E702, I001


def run() -> None:
    """Entry point that never shows a traceback for a broken pipe."""
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main()

