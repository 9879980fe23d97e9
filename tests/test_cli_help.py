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
