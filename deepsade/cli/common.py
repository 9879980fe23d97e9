"""Pieces shared by every command: one-line user errors with exit code 2, the data flags, the method choice,
lists and where tasks run.

Lists: every option that takes several values takes them comma-separated, and may also be repeated
(``--target a,b`` is ``--target a --target b``). Numbers are in the data's raw units unless the help
says "scaled" (the [0, 1] units the network sees)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from deepsade.data import TASKS
from deepsade.errors import UserInputError
from deepsade.extras import install_hint
from deepsade.ingest import IMPUTE_CHOICES
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
        except BrokenPipeError:  # the reader left (`| head`): not the user's error; ``run`` ends quietly
            raise
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


def rules_and_data(func: Callable) -> Callable:
    """``RULES.smt2 DATA.csv`` as two arguments, or ``DATA.csv --constraint RULES.smt2`` as ``train`` takes the
    rule file; the command receives ``constraint`` and ``data_file``."""

    @click.argument("files", nargs=-1, metavar="RULES.smt2 DATA.csv", type=click.Path(dir_okay=False))
    @click.option("--constraint", "constraint_option", type=click.Path(dir_okay=False), default=None,
                  help="The rule file, as train takes it (instead of the first argument).")
    @functools.wraps(func)
    def wrapper(*args, files: tuple[str, ...], constraint_option: str | None, **kwargs):
        if constraint_option is not None and len(files) == 1:
            return func(*args, constraint=constraint_option, data_file=files[0], **kwargs)
        if constraint_option is None and len(files) == 2:
            return func(*args, constraint=files[0], data_file=files[1], **kwargs)
        given = f"got {len(files)} argument{'s' if len(files) != 1 else ''}" + (
            " and --constraint" if constraint_option is not None else "")
        raise click.UsageError(f"give the rule file and the data: RULES.smt2 DATA.csv, or DATA.csv --constraint "
                               f"RULES.smt2 ({given})")

    return wrapper


def data_options(func: Callable) -> Callable:
    """The flags that say how a CSV becomes inputs and targets."""
    options = [
        click.option("--target", "targets", multiple=True, required=True, callback=list_callback(),
                     help="Target column(s): comma-separated, or repeat the option."),
        click.option("--features", multiple=True, callback=list_callback(joined=True),
                     help="Input columns, comma-separated or repeated (default: every column that is not a "
                          "target)."),
        click.option("--task", type=click.Choice(TASKS), default=None, help="Learning task (inferred when omitted)."),
        click.option("--positive", default=None, help="Positive class of a binary target (a value of the raw column)."),
        click.option("--impute", type=click.Choice(IMPUTE_CHOICES), default="drop", show_default=True,
                     help="Missing inputs: drop the rows, or fill with the column median / mode."),
        click.option("--domain", "domain_file", type=click.Path(dir_okay=False), default=None,
                     help="JSON {column: [lo, hi]} or CSV feature,lower,upper overriding the domain box "
                          "(bounds in raw units)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_features(features: str | None) -> list[str] | None:
    return [f.strip() for f in features.split(",") if f.strip()] if features else None


class MethodChoice(click.Choice):
    """``--method``: the methods registered in ``deepsade.methods`` when the command runs."""

    def __init__(self, auto: bool = False) -> None:
        self.auto = auto  # also accept "auto" (deepsade train's default, resolved per rule)
        super().__init__(method_names())

    @property
    def choices(self) -> tuple[str, ...]:  # read on every use, so methods registered later are accepted
        return (("auto",) if getattr(self, "auto", False) else ()) + method_names()

    @choices.setter
    def choices(self, value) -> None:  # click's constructor assigns it; the registry is the source
        pass


# ---- lists: every list option takes comma-separated values, and may be repeated ----------------------------


def split_list(values: str | tuple[str, ...] | list[str] | None) -> list[str]:
    """The items of a list option: comma-separated, repeated, or both (``--target a,b --target c``)."""
    if values is None:
        return []
    texts = [values] if isinstance(values, str) else list(values)
    return [item.strip() for text in texts for item in str(text).split(",") if item.strip()]


def list_callback(kind: Callable[[str], object] = str, joined: bool = False) -> Callable:
    """A click callback for a ``multiple=True`` option: the items of every value, split at commas and
    converted with ``kind``; ``joined`` hands the command one comma-separated string (None when empty)."""

    def callback(ctx: click.Context, param: click.Parameter, value):
        items = split_list(value)
        if joined:
            return ",".join(items) if items else None
        try:
            return tuple(kind(item) for item in items)
        except ValueError:
            raise click.BadParameter(f"cannot read {', '.join(items)!r} as a list of "
                                     f"{getattr(kind, '__name__', 'values')}") from None

    return callback


# ---- where independent tasks run (deepsade.parallel) ---------------------------------------------------------


def backend_options(jobs_help: str) -> Callable[[Callable], Callable]:
    """``--jobs``, ``--backend``, ``--scheduler``, ``--address``: where a command's independent tasks run."""
    def decorate(func: Callable) -> Callable:
        options = [
            click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                         help=f"{jobs_help} Local worker processes with --backend loky (1: in this process)."),
            click.option("--backend", type=click.Choice(["loky", "dask", "ray"]), default="loky", show_default=True,
                         help="Where the tasks run, through joblib: loky (this machine), dask (a dask.distributed "
                              "cluster, needs 'deepsade[dask]') or ray (a Ray cluster, needs 'deepsade[ray]')."),
            click.option("--scheduler", default=None, metavar="ADDRESS",
                         help="With --backend dask: the scheduler's address, e.g. tcp://10.0.0.5:8786."),
            click.option("--address", default=None, metavar="ADDRESS",
                         help="With --backend ray: the cluster's address, e.g. ray://10.0.0.5:10001 "
                              "(default: a local Ray instance)."),
        ]
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def make_backend(backend: str, jobs: int, scheduler: str | None, address: str | None):
    """The ``deepsade.parallel.Backend`` the options describe; a missing extra is one clear line."""
    from deepsade.parallel import Backend, require

    chosen = Backend(backend, jobs, scheduler, address)
    require(backend)
    return chosen
