"""Run one grammar command for the terminal: execute it, render it, map errors to exit codes."""

from __future__ import annotations

import typer

from core.errors import PipeError
from core.grammar import Command


def run_command(command: Command, values: dict, *, actor: str, json_out: bool) -> None:
    from cli.errors import say
    from core.actor import local_actor
    from core.config import load_settings
    from core.dispatch import execute
    from core.grammar import check_text

    try:
        settings = load_settings()
        who = local_actor(check_text("--as", actor), allow_as=settings.allow_as)
        result = execute(command, values, who, settings)
    except PipeError as exc:
        say(exc.message)
        raise typer.Exit(exc.exit_code) from None
    from cli import render

    if json_out:
        render.print_json(result)
    else:
        render.human(command.name, result)
