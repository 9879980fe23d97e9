"""``deepsade train`` (and ``deepsade demo``): train a model on a CSV under a rule file, certify it, write it."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click

from deepsade.artifact import check_writable
from deepsade.checkpoint import TrainingInterrupted
from deepsade.cli.common import (
    MethodChoice,
    UsageError,
    data_options,
    list_callback,
    parse_features,
    user_errors,
)
from deepsade.cli.model import print_certificate, written_numbers
from deepsade.estimator import DeepSaDe, maxsmt_choices, strategy_choices
from deepsade.ingest import read_csv
from deepsade.methods import AUTO, get_method
from deepsade.training.lifecycle import checkpoint_directory
from deepsade.training.settings import DEFAULT_BATCH_SIZE, DEFAULT_PATIENCE, OPTIMIZERS, PAPER_BATCH_SIZE


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


# without a progress bar (output to a log), a line at most this often within an epoch
HEARTBEAT_SECONDS = 60.0


class _Progress:
    """A tqdm bar over iterations with the counts that matter: line-search hits, solver calls, restarts."""

    def __init__(self, total: int | None, quiet: bool):
        from tqdm import tqdm

        # disable=None: a bar on a terminal only; in a log, the epoch lines alone (tqdm.write prints them)
        self.bar = None if quiet else tqdm(total=total, unit="it", dynamic_ncols=True, leave=False, disable=None)
        self.epoch_lines: list[str] = []
        self.quiet = quiet
        self.last_line = time.monotonic()

    def __call__(self, stats, info: dict) -> None:
        if "total" in info:
            if self.bar is not None:
                self.bar.reset(total=info["total"])
                self.bar.update(info.get("done", 0))  # a resumed run starts where it stopped
            return
        if info.get("epoch_done"):
            self.last_line = time.monotonic()
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
            if self.bar.disable and time.monotonic() - self.last_line >= HEARTBEAT_SECONDS:
                # no bar (a log, not a terminal): a line now and then, so a slow epoch is not silence
                self.last_line = time.monotonic()
                self.bar.write(f"epoch {stats.epoch}: {stats.iterations} steps so far, loss {info['loss']:.4f}, "
                               f"MaxSMT {stats.maxsmt_successes}/{stats.maxsmt_calls}, restarts {stats.restarts}, "
                               f"solver {stats.solver_seconds:.1f}s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("train")
@click.argument("data_file", metavar="DATA.csv", type=click.Path(dir_okay=False))
@click.option("--constraint", required=True, type=click.Path(dir_okay=False), help="SMT-LIB constraint file.")
@data_options
@click.option("--method", type=MethodChoice(auto=True), default="auto", show_default=True,
              help="auto (certified: sequential clamps, 'polytope', when they take every assert of a regression "
                   "rule, score clamps, 'scoreclamp', when they take every assert of a classifier rule, otherwise "
                   "'deepsade'; always 'deepsade' with --paper), deepsade, a construction (hardnet, hcr, polytope, "
                   "scoreclamp), or a baseline without guarantee.")
@click.option("--hidden", multiple=True, default=("50,30,10",), show_default=True, callback=list_callback(joined=True),
              help="Hidden layer sizes, comma-separated or repeated.")
@click.option("--epochs", type=click.IntRange(1), default=50, show_default=True, help="Passes over the training rows.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help=f"Rows per mini-batch.  [default: {DEFAULT_BATCH_SIZE}; {PAPER_BATCH_SIZE} (the paper's) under --paper "
                   "and for the baselines]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Learning rate (hidden layers; also the line search's longest step).")
@click.option("--max-step", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Side of the box around the last layer's weights that the MaxSMT step searches.")
@click.option("--margins", multiple=True, default=("0,1,2",), show_default=True, callback=list_callback(joined=True),
              help="Soft-clause margins, comma-separated or repeated (classification: score margin; regression: "
                   "x max|label|, scaled units).")
@click.option("--line-search-steps", type=click.IntRange(0), default=5, show_default=True,
              help="Candidate steps the last layer's line search tries (furthest first) before the solver.")
@click.option("--projection/--no-projection", default=True, show_default=True,
              help="When the line search fails, project the gradient step onto the constraint (an LP for "
                   "linear asserts whose premises bound single inputs, a closed form for sign patterns) before "
                   "MaxSMT; always re-checked exactly.")
@click.option("--strategy", type=click.Choice(strategy_choices()), default="auto", show_default=True,
              help="How the constraint is translated to the last layer.")
@click.option("--maxsmt", type=click.Choice(maxsmt_choices()), default="fu-malik", show_default=True,
              help="MaxSMT algorithm of the last-layer step: Fu-Malik cores over z3, or z3's Optimize.")
@click.option("--solver-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds per solver call.")
@click.option("--margin", "output_margin", type=click.FloatRange(min=0, min_open=True), default=1e-4,
              show_default=True, help="Certificate slack: every output may move by this much (network units).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of the rows held out for validation (model selection), 0 to <1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, the initial weights and "
              "the batches.")
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
@click.option("--paper", is_flag=True,
              help="Train as the DeepSaDe paper does: one latent box over the whole domain, no premise gates, no "
                   "convex refit of the last layer (reproduces the committed use-case results).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True,
              help="Optimiser of the hidden layers: plain SGD at --lr (the paper's), or Adam at PyTorch's default "
                   "step 1e-3 (--lr then only sets the line search). The last layer always takes DeepSaDe's own "
                   "constraint-satisfying step.")
@click.option("--patience", type=click.IntRange(0), default=None,
              help="Early stopping: end training after this many epochs without a lower validation loss (the best "
                   f"epoch is kept, as always); 0 trains every epoch.  [default: {DEFAULT_PATIENCE} for DeepSaDe; 0 "
                   "under --paper and for the other methods]")
@click.option("--weight-average/--no-weight-average", default=False, show_default=True,
              help="Constructions (score clamps, sequential clamps, repair layer, HardNet): judge each epoch by, and "
                   "keep, a moving average of SGD's weights over the last fifth of the steps. UC2: +1.2 accuracy "
                   "points over 25 folds; mixed on other problems, so off by default (ignored under --paper; "
                   "DeepSaDe's own trainer does not average).")
@user_errors
def train(data_file, constraint, targets, features, task, positive, impute, domain_file, method, hidden, epochs,
          batch_size, lr, max_step, margins, line_search_steps, projection, strategy, maxsmt, solver_timeout, output_margin,
          val_fraction, seed, out_dir, force, quiet, checkpoint_every, resume_dir, paper, optimizer, patience,
          weight_average) -> None:
    """Train a model on DATA.csv that satisfies --constraint, certify it and write it to --out."""
    if Path(out_dir).is_dir() and any(Path(out_dir).iterdir()) and not force:
        raise UsageError(f"{out_dir} already holds files (a model trained before?): choose another --out, or "
                         "replace it with --force")
    # fail before the data is read: an unwritable --out, a bad --checkpoint-every, a stale checkpoint
    check_writable(out_dir)
    checkpoint_directory(out_dir, resume_dir, checkpoint_every, "deepsade" if method == AUTO else method)
    frame = read_csv(data_file)
    # the estimator runs the checkpoint lifecycle of deepsade.training.lifecycle: train, write --out, then
    # remove the checkpoint once the written model is certified (kept when writing fails)
    estimator = DeepSaDe(constraint, list(targets), features=parse_features(features), task=task, positive=positive,
                         impute=impute, domain=domain_file, method=method, hidden=_ints(hidden, "--hidden"),
                         epochs=epochs, batch_size=batch_size, lr=lr, max_step=max_step,
                         margins=_floats(margins, "--margins"), line_search_steps=line_search_steps,
                         projection=projection, strategy=strategy, maxsmt=maxsmt, solver_timeout=solver_timeout,
                         margin=output_margin, val_fraction=val_fraction, seed=seed, out=out_dir,
                         checkpoint_every=checkpoint_every, resume=resume_dir if resume_dir is not None else False,
                         paper=paper, optimizer=optimizer, patience=patience,
                         weight_average=weight_average)
    progress = _Progress(None, quiet)
    estimator.progress = None if quiet else progress  # None silences every method, baselines included
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
    method = estimator.method_
    held_out = art.training.get("val_rows", 0)
    click.echo(f"trained {method} on {art.training.get('train_rows', summary['rows'])} rows "
               f"({f'{held_out} more held out for validation, ' if held_out else ''}"
               f"{summary['rows_dropped']} dropped for missing values) in {art.training['seconds']:.1f}s")
    broken = summary.get("label_violating_rows", 0)
    if broken and get_method(method).certifies:  # the model keeps the rule, so it cannot fit these labels
        click.echo(f"note: {broken} row(s) of the data hold labels that break the rule (the model keeps the rule, "
                   "so it departs from them there; deepsade check counts them per assert)", err=True)
    chosen = art.encoding.positive_class_note() if positive is None else None  # said when the tool chose it
    for key in ("domain_note", "edge_note"):
        if summary.get(key):
            click.echo(f"note: {summary[key]}", err=True)
    filled = summary.get("imputed_values")
    if filled:
        click.echo("note: missing values filled: " + "; ".join(f"{c} with its {w}" for c, w in filled.items()), err=True)
    for note in [chosen, art.encoding.constant_columns_note(), art.encoding.identifier_columns_note(),
                 *art.training.get("notes", [])]:
        if note:
            click.echo(f"note: {note}", err=True)
    if art.training.get("method_choice"):
        click.echo(f"method {art.training['method_choice']}")
    click.echo(f"model written to {out_dir}")
    if not quiet:
        for line in art.training.get("mechanisms", []) + art.training.get("diagnosis", {}).get("lines", []):
            click.echo(f"  {line}")
    if estimator.checkpoint_kept_ is not None:  # e.g. the check was cut short: --resume repeats it, no training
        click.echo(f"checkpoint kept in {estimator.checkpoint_kept_}", err=True)
    print_certificate(art.certificate, written_numbers(art.constraint_text, art.encoding))
    if get_method(method).certifies and art.certificate.get("verdict") not in ("certified", "by construction"):
        raise UsageError("training finished but the certificate did not confirm the constraint; see above")


@click.command("demo")
@click.option("--out", "out_dir", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Model directory to write (the generated CSV goes beside it); replaced when it exists.")
@click.option("--rows", type=click.IntRange(50), default=614, show_default=True, help="Generated rows.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True, help="Training epochs.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the data and of the training.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--paper", is_flag=True, help="Train as the DeepSaDe paper does (see deepsade train --paper).")
@user_errors
def demo(out_dir, rows, epochs, seed, quiet, paper) -> None:
    """Generate UC2-like loan data, train a certified model on it and print the certificate."""
    from deepsade.usecases import uc2_loan

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out.parent / f"{out.name}_data.csv"
    frame = uc2_loan.inject_violations(uc2_loan.generate(rows, seed=seed), n=40, seed=seed)
    frame.to_csv(csv, index=False)
    constraint = uc2_loan.CASE.constraint_path
    click.echo(f"generated {len(frame)} UC2-like rows -> {csv}; constraint {constraint.name}:")
    click.echo("  an applicant with income below 5000 and no credit history must be denied")
    train.main(args=[str(csv), "--constraint", str(constraint), "--target", "Loan_Status", "--positive", "Y",
                     "--epochs", str(epochs), "--seed", str(seed), "--out", str(out), "--force",  # the demo's own folder
                     *(["--quiet"] if quiet else []), *(["--paper"] if paper else [])],
               standalone_mode=False)
