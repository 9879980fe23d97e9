"""Command-line interface: thin click commands over the Python API, one module per verb.

The group imports a command's module only when that command runs (or shows its own help), so
``deepsade --help`` imports neither torch nor z3. Adding a verb is one module plus one line in
``COMMANDS``; a test checks that each summary below is the first paragraph of the command's docstring.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

import click


class LazyCommand(NamedTuple):
    """Where a command lives ("module:attribute") and the summary ``deepsade --help`` shows for it."""

    target: str
    summary: str


COMMANDS: dict[str, LazyCommand] = {
    "adi": LazyCommand("deepsade.cli.verify:adi", "Adversity Index of the model in MODEL_DIR on the rows of DATA.csv."),
    "advise": LazyCommand("deepsade.cli.advise:advise", "List which methods can guarantee the rules in RULES.smt2 on "
                          "DATA.csv, with the reason for each."),
    "certify": LazyCommand("deepsade.cli.model:certify", "Re-check MODEL_DIR from first principles; exit 1 on any "
                           "difference, on a failed check or a violation."),
    "check": LazyCommand("deepsade.cli.check:check", "Parse the rules in RULES.smt2 against DATA.csv and report "
                         "bindings, domain, linearity and label violations."),
    "demo": LazyCommand("deepsade.cli.train:demo", "Generate UC2-like loan data, train a certified model on it and "
                        "print the certificate."),
    "evaluate": LazyCommand("deepsade.cli.evaluate:evaluate", "Measure a saved model on DATA.csv: quality, corrected "
                            "quality and constraint violations."),
    "export": LazyCommand("deepsade.cli.export:export", "Export MODEL_DIR as model.onnx (raw inputs -> raw outputs) "
                          "and one VNN-LIB file per linear assert (its violation over the domain box, raw units), "
                          "described in export.json."),
    "predict": LazyCommand("deepsade.cli.model:predict", "Predict with MODEL_DIR on NEW.csv; rows outside the domain "
                           "box (no guarantee there) are flagged."),
    "train": LazyCommand("deepsade.cli.train:train", "Train a model on DATA.csv that satisfies --constraint, certify "
                         "it and write it to --out."),
    "usecase": LazyCommand("deepsade.cli.usecase:usecase", "The paper's five use cases (UC1..UC5): list them, run a "
                           "cross-validation, write its report."),
    "verify": LazyCommand("deepsade.cli.verify:verify", "Search the whole domain box of the model in MODEL_DIR for an "
                          "input that breaks its constraint."),
}


def load_command(name: str) -> click.Command:
    """Import the command called ``name`` from its module."""
    module, attribute = COMMANDS[name].target.split(":")
    return getattr(importlib.import_module(module), attribute)


class LazyGroup(click.Group):
    """A group whose commands in ``COMMANDS`` are imported on first use; ``--help`` lists their summaries."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, from the summaries for commands not imported yet (click's own layout)."""
        entries: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name].summary)
            if not command.hidden:
                entries.append((name, command))
        if entries:
            limit = formatter.width - 6 - max(len(name) for name, _ in entries)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in entries])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deepsade")
def main() -> None:
    """Train neural networks that provably satisfy domain constraints, and check any model against them."""


def run() -> None:
    """Entry point that never shows a traceback for a broken pipe."""
    try:
        main()
    except BrokenPipeError:
        # the reader closed the pipe (`| head`): point stdout at devnull so the exit's flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
