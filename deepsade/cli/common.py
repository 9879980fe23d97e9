"""Pieces shared by every command: one-line user errors with exit code 2, the data flags, the method choice."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from deepsade.data import IMPUTE_CHOICES, TASKS
from deepsade.errors import UserInputError
from deepsade.extras import install_hint
from deepsade.methods import method_names


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
        except ModuleNotFoundError as exc:  # an optional extra that is not installed: say which one
            hint = install_hint(exc.name or "")
            if hint is None:
                raise
            raise UsageError(hint) from None
        except PermissionError as exc:
            raise UsageError(f"permission denied: {exc.filename or exc}") from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, OSError) as exc:
            if exc.errno is None:  # not a file-system error: a bug, let it show
                raise
            where = f": {exc.filename}" if exc.filename else ""
            raise UsageError(f"{exc.strerror or exc}{where}") from None
        except MemoryError:
            raise UsageError("out of memory while reading or processing the data") from None

    return wrapper


def warn_if_altered(artifact) -> None:
    """Every command that uses a model directory says loudly when its weights are not the certified ones."""
    from deepsade.artifact import weights_match_certificate

    if artifact.certificate.get("verdict") not in (None, "none") and not weights_match_certificate(artifact):
        click.echo("WARNING: the weights in this model directory do NOT match its certificate: they were altered "
                   "after certification, so no guarantee holds. Run `deepsade certify` on it.", err=True)


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


def parse_features(features: str | None) -> list[str] | None:
    return [f.strip() for f in features.split(",") if f.strip()] if features else None


class MethodChoice(click.Choice):
    """``--method``: the methods registered in ``deepsade.methods`` when the command runs."""

    def __init__(self) -> None:
        super().__init__(method_names())

    @property
    def choices(self) -> tuple[str, ...]:  # read on every use, so methods registered later are accepted
        return method_names()

    @choices.setter
    def choices(self, value) -> None:  # click's constructor assigns it; the registry is the source
        pass
