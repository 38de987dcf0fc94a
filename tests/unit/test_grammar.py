"""One grammar, every surface: the core parser (used by Slack) and the Typer/Click tree of the CLI
must read the same words into the same values, for every command."""

from __future__ import annotations

import pytest
import typer
from chainpipe.cli.main import app
from chainpipe.core.errors import InvalidInput
from chainpipe.core.grammar import COMMANDS, parse_args, usage


def _sample_argv(command, with_options: bool) -> list[str]:
    argv = []
    for p in command.params:
        if p.positional:
            if p.required or with_options:
                argv.append(f"{p.name}-value")
        elif p.type == "bool":
            if with_options:
                argv.append(p.flags[0])
        elif p.required or with_options:
            argv += [p.flags[0], "7" if p.type == "int" else f"{p.name} value"]
    return argv


def _click_values(name: str, argv: list[str]) -> dict:
    group = typer.main.get_command(app)
    sub = group.get_command(None, name)
    ctx = sub.make_context(name, list(argv))
    return {k: v for k, v in ctx.params.items() if k not in ("json_out", "as_")}


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("with_options", [False, True], ids=["required-only", "everything"])
def test_cli_and_core_parser_agree(name, with_options):
    command = COMMANDS[name]
    argv = _sample_argv(command, with_options)
    assert parse_args(command, argv) == _click_values(name, argv)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_a_usage_line(name):
    command = COMMANDS[name]
    assert command.help and usage(command).startswith(name)
    assert command.kind in ("catalogue", "read", "write")


def test_every_command_resolves_to_a_callable_use_case():
    for command in COMMANDS.values():
        assert callable(command.resolve()), command.name


def test_equals_form_and_options_before_arguments():
    cmd = COMMANDS["approve"]
    assert parse_args(cmd, ["--gate=code-review", "pipe-1", "--reason", "looks good"]) == {
        "pipeline_id": "pipe-1", "gate": "code-review", "reason": "looks good"}


@pytest.mark.parametrize("argv,problem", [
    (["pipe-1"], "missing option --gate"),
    ([], "missing argument PIPELINE_ID"),
    (["pipe-1", "--gate"], "needs a value"),
    (["pipe-1", "--gate", "g", "--colour", "red"], "no such option"),
    (["pipe-1", "pipe-2", "--gate", "g"], "unexpected extra argument"),
])
def test_parse_errors_are_invalid_input(argv, problem):
    with pytest.raises(InvalidInput, match=problem):
        parse_args(COMMANDS["approve"], argv)


def test_integer_options_are_checked():
    with pytest.raises(InvalidInput, match="whole number"):
        parse_args(COMMANDS["list"], ["--limit", "many"])


def test_reserved_flags_are_left_to_the_surface():
    assert parse_args(COMMANDS["stats"], ["--json"], reserved=("--json",))["--json"] is True
