"""Command-line interface: a thin layer that parses flags and calls the Python API."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import click

from deepsade.data import IMPUTE_CHOICES, TASKS, prepare, read_csv
from deepsade.errors import UserInputError
from deepsade.spec import Spec, parse_spec


class UsageError(click.ClickException):
    """A user error: one line on stderr, exit code 2."""

    exit_code = 2


def user_errors(func: Callable) -> Callable:
    """Turn UserInputError (and a few OS errors) into one clear line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserInputError as exc:
            raise UsageError(str(exc)) from None
        except PermissionError as exc:
            raise UsageError(f"permission denied: {exc.filename or exc}") from None
        except MemoryError:
            raise UsageError("out of memory while reading or processing the data") from None

    return wrapper


def data_options(func: Callable) -> Callable:
    """The flags that say how a CSV becomes inputs and targets."""
    options = [
        click.option("--target", "targets", multiple=True, required=True,
                     help="Target column (repeat for several targets)."),
        click.option("--features", default=None,
                     help="Comma-separated input columns (default: every column that is not a target)."),
        click.option("--task", type=click.Choice(TASKS), default=None, help="Learning task (inferred when omitted)."),
        click.option("--positive", default=None, help="Positive class of a binary target."),
        click.option("--impute", type=click.Choice(IMPUTE_CHOICES), default="drop", show_default=True,
                     help="Missing inputs: drop the rows, or fill with the column median / mode."),
        click.option("--domain", "domain_file", type=click.Path(dir_okay=False), default=None,
                     help="JSON {column: [lo, hi]} or CSV feature,lower,upper overriding the domain box."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _features(features: str | None) -> list[str] | None:
    return [f.strip() for f in features.split(",") if f.strip()] if features else None


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
    data = prepare(frame, list(targets), _features(features), task, positive, impute, domain_file)
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
    echo("asserts:")
    for a in spec.asserts:
        shape = "P => Q" if a.has_premise else "Q"
        kind = "linear" if a.linear else "non-linear"
        text = " ".join(a.text.split())
        echo(f"  [{a.index + 1}] {kind}, {shape}: {text[:100]}{'...' if len(text) > 100 else ''}")
        echo(f"      rows whose true labels violate it: {int((~truth[:, a.index]).sum())}")
    echo(f"rows violating at least one assert: {int((~truth.all(axis=1)).sum())} of {data.n_rows}")


def run() -> None:
    """Entry point that never shows a traceback for a broken pipe."""
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main()

