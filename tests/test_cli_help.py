"""Every option of every command (``deepsade.cli.COMMANDS``, subcommands included) carries help text."""

from __future__ import annotations

import click
import pytest

from deepsade.cli import COMMANDS, load_command


def _walk(name: str, command: click.Command):
    yield name, command
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            yield from _walk(f"{name} {sub_name}", sub)


@pytest.mark.parametrize("command_name", sorted(COMMANDS))
def test_every_option_has_help_text(command_name: str) -> None:
    missing = [f"{name} {param.opts[0]}" for name, command in _walk(command_name, load_command(command_name))
               for param in command.params
               if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert missing == []


def test_train_help_states_the_defaults_the_trainer_uses() -> None:
    """The batch-size and patience defaults are resolved in code (``training.settings``), not by click, so
    their help text states them; it once said 32 and 10 while the trainer used 5 and 0."""
    from deepsade.training.settings import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_PATIENCE,
        default_batch_size,
        default_patience,
    )

    options = {param.name: param for param in load_command("train").params}
    assert f"[default: {default_batch_size('deepsade', False)};" in options["batch_size"].help
    assert f"{default_batch_size('deepsade', True)} (the paper's)" in options["batch_size"].help
    assert f"[default: {default_patience('deepsade', False)} for DeepSaDe" in options["patience"].help
    assert DEFAULT_BATCH_SIZE == default_batch_size("deepsade", False) and DEFAULT_PATIENCE == default_patience(
        "deepsade", False)
