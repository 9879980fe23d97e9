"""``deepsade usecase list|run|report``: the DeepSaDe paper's use cases, cross-validated against the published figures."""

from __future__ import annotations

from pathlib import Path

import click

from deepsade.cli.common import (
    UsageError,
    backend_options,
    list_callback,
    make_backend,
    split_list,
    user_errors,
)
from deepsade.methods import method_names


@click.group("usecase")
def usecase() -> None:
    """The paper's five use cases (UC1..UC5): list them, run a cross-validation, write its report."""


@usecase.command("list")
def list_cases() -> None:
    """List the use cases: task, constraint, data (real file found or generator), paper settings, metrics."""
    from deepsade.usecases import USECASES

    for name, case in USECASES.items():
        real = case.load_real(None) is not None if case.real_file else False
        data = (f"real {case.real_file} (found)" if real else
                f"generator (real {case.real_file} not found)" if case.real_file else
                case.bundled_data or "generator only")
        s = case.settings
        click.echo(f"{name}  {case.task:<10}  {case.constraint}  data: {data}")
        click.echo(f"      metrics: {', '.join(case.metrics)}; hidden {'-'.join(map(str, s['hidden']))}, "
                   f"{s['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']}, max step {s['max_step']}, "
                   f"margins {','.join(map(str, s['margins']))}; baselines {s['baseline_epochs']} epochs")


@usecase.command("run")
@click.argument("name", metavar="UC")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding the real data files (default: $DEEPSADE_DATA or ../shared/data).")
@click.option("--folds", type=click.IntRange(min=1), default=None,
              help="Run the first N folds of the 5-fold split (default: all 5).")
@click.option("--methods", multiple=True, default=(",".join(method_names()),), show_default=True,
              help="Methods, comma-separated or repeated; a baseline that does not apply to the rule is recorded "
                   "as such.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: results/UC; a sweep puts one folder per combination in it).")
@backend_options("One task per fold x method (x sweep combination).")
@click.option("--seeds", multiple=True, callback=list_callback(int),
              help="Sweep: seeds of the split and the models, comma-separated or repeated (e.g. 0,1,2); each "
                   "seed x --grid combination gets its own folder OUT/seed<s>_<key><value>.")
@click.option("--grid", multiple=True, metavar="KEY=V1,V2",
              help="Sweep: values of one of the use case's settings (hidden, epochs, batch_size, lr, max_step, "
                   "margins, baseline_epochs; list values with '-', e.g. hidden=32-16,64); repeat for "
                   "several settings. Resumable like a single run.")
@click.option("--rows", type=click.IntRange(min=10), default=None,
              help="Use a seeded subset of this many rows (default: all rows; generators: their default size).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of DeepSaDe and of the constructions auto trains in its place (default: the paper's).")
@click.option("--baseline-epochs", type=click.IntRange(min=1), default=None,
              help="Baseline epochs (default: the paper's).")
@click.option("--adi-sample", type=click.IntRange(min=0), default=100, show_default=True,
              help="Test rows per fold (fixed seeded sample) on which AdI is measured (radii 0.1 and 0.01, "
                   "scaled units); 0 skips AdI.")
@click.option("--adi-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds per AdI search.")
@click.option("--solver-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="DeepSaDe's seconds per solver call (default: the trainer's).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the split and of the models (see --seeds for several).")
@click.option("--no-models", is_flag=True, help="Do not save the trained models under OUT/models.")
@click.option("--quiet", is_flag=True, help="No line per finished fold x method and no progress bars.")
@click.option("--paper", is_flag=True,
              help="Train DeepSaDe as the paper does (one whole-domain latent box, no premise gates, no refit): "
                   "the trainer behind the committed results under results/UC*.")
@user_errors
def run(name, data_dir, folds, methods, out, jobs, backend, scheduler, address, seeds, grid, rows, epochs,
        baseline_epochs, adi_sample, adi_timeout, solver_timeout, seed, no_models, quiet, paper) -> None:
    """Cross-validate every method on use case UC (same folds for all) and write OUT/runs.csv, report.md, plots.

    Each finished fold x method is stored at once under OUT/folds; a rerun with the same settings
    skips what is there, so an interrupted run resumes where it stopped. With --seeds or --grid, one
    such cross-validation per combination (OUT/seed<s>_<key><value>/), and OUT/sweep.csv over all."""
    from deepsade.usecases import get as get_usecase
    from deepsade.usecases.experiment import (
        ExperimentConfig,
        parse_methods,
        run_experiment,
        run_experiments,
    )
    from deepsade.usecases.sweep import parse_grid, sweep_configs, write_sweep_table

    try:
        case = get_usecase(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    where = make_backend(backend, jobs, scheduler, address)
    config = ExperimentConfig(
        usecase=case.name, out=out or str(Path("results") / case.name), folds=folds,
        methods=parse_methods(split_list(methods)),
        data_dir=data_dir, rows=rows, epochs=epochs, baseline_epochs=baseline_epochs, adi_sample=adi_sample,
        adi_timeout=adi_timeout, solver_timeout=solver_timeout, seed=seed, jobs=jobs, save_models=not no_models,
        paper=paper,
        quiet=quiet)
    if seeds or grid:
        configs = sweep_configs(config, seeds or (seed,), parse_grid(grid, case.name))
        run_experiments(configs, log=click.echo, backend=where)
        table = write_sweep_table(config.out, configs)
        click.echo(f"sweep: {len(configs)} combinations under {config.out}; all runs: {table}")
        return
    run_experiment(config, log=click.echo, backend=where)
    click.echo(f"report: {Path(config.out) / 'report.md'}; per fold x method: {Path(config.out) / 'runs.csv'}")


@usecase.command("report")
@click.argument("out", type=click.Path(file_okay=False, exists=True))
@user_errors
def report(out) -> None:
    """Rewrite OUT/report.md, OUT/runs.csv and the plots from the fold results stored under OUT."""
    from deepsade.usecases.report import write_report

    try:
        path = write_report(out)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    click.echo(f"report: {path}")
