"""Run one grammar command for the terminal: execute it, render it, map errors to exit codes."""

from __future__ import annotations

from chainpipe.core.errors import PipeError
from chainpipe.core.grammar import Command


def run_command(command: Command, values: dict, *, actor: str, json_out: bool) -> None:
    code = run_plain(command, values, actor=actor, json_out=json_out)
    if code:
        import typer

        raise typer.Exit(code)


def run_plain(command: Command, values: dict, *, actor: str, json_out: bool, notes: list[str] = ()) -> int:
    """The same without Typer (cli/main.py's road for an ordinary invocation): the exit code."""
    from chainpipe.cli.errors import say
    from chainpipe.cli.main import start_done
    from chainpipe.core.actor import local_actor
    from chainpipe.core.config import load_settings
    from chainpipe.core.dispatch import execute
    from chainpipe.core.grammar import check_text

    try:
        settings = load_settings()
        who = local_actor(check_text("--as", actor), allow_as=settings.allow_as)
        command.resolve()  # the use case and the database code it imports: still part of the start
        start_done()
        result = execute(command, values, who, settings)
    except PipeError as exc:
        say(exc.message)
        return exc.exit_code
    from chainpipe.cli import output

    output.show(command.name, result, json_out=json_out, notes=notes)
    return 0
