"""The `pipe` command's Typer app, built from the shared grammar in core.grammar: help, usage errors,
completion and the commands that are not grammar commands (login, token, db).

Each grammar command becomes a Typer command whose signature is generated from its parameters,
plus `--json` and `--as`. Database code is imported only when a command that needs it runs; in
remote mode a grammar command's callback hands it to cli.remote_cli (cli/main.py chooses the mode
and usually sends it there before this module is even imported).
"""

from __future__ import annotations

import inspect
import sys
from typing import Optional

import typer

try:  # recent Typer releases vendor Click; older ones use the click package
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click

from chainpipe.cli import db, login, package_data, tokens
from chainpipe.cli.complete import completer
from chainpipe.cli.main import HELP, default_actor
from chainpipe.cli.output import default_notes
from chainpipe.core.grammar import COMMANDS, Command, Param

app = typer.Typer(
    name="pipe",
    help=HELP,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

_TYPES = {"str": str, "int": int, "bool": bool}


def _typer_param(command: Command, p: Param) -> tuple[object, object]:
    annotation = _TYPES[p.type]
    complete = completer(command, p)
    if p.positional:
        default = ... if p.required else p.default
        return (annotation if p.required else Optional[annotation]), typer.Argument(
            default, help=p.help, metavar=p.label, show_default=False, autocompletion=complete)
    if not p.required and p.default is None:
        annotation = Optional[annotation]
    default = ... if p.required else p.default
    metavar = None if p.type == "bool" else (p.metavar or p.name.upper())
    return annotation, typer.Option(default, *p.flags, help=p.help, metavar=metavar,
                                    show_default=p.default not in (None, False), autocompletion=complete)


def _defaulted(ctx: typer.Context, command: Command) -> set[str]:
    return {p.name for p in command.params if ctx.get_parameter_source(p.name).name == "DEFAULT"}


def make_callback(command: Command):
    def callback(ctx: typer.Context, **values):
        json_out = values.pop("json_out")
        as_ = values.pop("as_", None)
        from chainpipe.cli import remote_cli

        code = remote_cli.run(command, values, _remote(), as_given=as_ is not None, json_out=json_out,
                              defaulted=_defaulted(ctx, command))
        if code is not None:
            raise typer.Exit(code)
        from chainpipe.cli.run import run_command

        notes = [] if json_out else default_notes(command.name, values, _defaulted(ctx, command))
        run_command(command, values, actor=as_ or default_actor(), json_out=json_out)
        for note in notes:
            typer.echo(note)

    params, annotations = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD)], {"ctx": typer.Context}
    for p in command.params:
        annotation, default = _typer_param(command, p)
        params.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=default))
        annotations[p.name] = annotation
    params.append(inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY,
                                    default=typer.Option(False, "--json", help="Machine output (JSON) on stdout")))
    annotations["json_out"] = bool
    if command.kind != "catalogue":
        params.append(inspect.Parameter("as_", inspect.Parameter.KEYWORD_ONLY, default=typer.Option(
            None, "--as", metavar="NAME", help="Who is acting, for the record [env PIPE_ACTOR; default: OS user]")))
        annotations["as_"] = Optional[str]
    callback.__signature__ = inspect.Signature(params)
    callback.__annotations__ = annotations
    callback.__name__ = command.name.replace("-", "_")
    callback.__doc__ = command.help
    return callback


for _command in COMMANDS.values():
    _epilog = "Example: " + "; ".join(_command.examples) if _command.examples else None
    app.command(_command.name, help=_command.help, epilog=_epilog)(make_callback(_command))


def _remote():
    """The server of remote mode, or None; a broken setting stops the command with one line."""
    from chainpipe.cli import credentials
    from chainpipe.cli.errors import say
    from chainpipe.core.errors import PipeError

    try:
        return credentials.find()
    except PipeError as exc:
        say(exc.message)
        raise typer.Exit(exc.exit_code) from None


# Commands that are not grammar commands: where `pipe` works (login), and what is managed only from
# a terminal on the database itself (API tokens, the schema).
app.command("login")(login.login)
app.command("logout")(login.logout)
app.add_typer(tokens.app, name="token")
app.add_typer(db.app, name="db")
app.command("slack-manifest")(package_data.slack_manifest_command())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chainpipe")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pipe (chainpipe) {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit", is_eager=True,
                                 callback=_print_version),
) -> None:
    pass


def _catalogue_fast_path(argv: list[str]) -> int | None:
    """Catalogue commands answer from settings alone; skip Typer's parameter machinery for them."""
    command = COMMANDS.get(argv[0]) if argv else None
    if command is None or command.kind != "catalogue" or any(a != "--json" for a in argv[1:]):
        return None
    from chainpipe.cli.run import run_command

    try:
        run_command(command, {}, actor="", json_out="--json" in argv)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


def run(argv: list[str]) -> int:
    """``pipe ARGV`` on the local road (catalogue commands, help, usage errors, direct mode); ``argv``
    has its two-word commands joined (core.grammar.join_words)."""
    from chainpipe.cli.errors import report_crash, say
    from chainpipe.cli.main import start_done

    start_done()
    try:
        fast = _catalogue_fast_path(argv)
    except Exception as exc:  # noqa: BLE001
        return report_crash(exc)
    if fast is not None:
        return fast
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="pipe", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # A bare `pipe` asks what there is to do: the help, on stdout, is the answer.
        sys.stdout.write(exc.format_message() + "\n")
        return 0
    except click.exceptions.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        say(exc.format_message() + hint)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        say("aborted")
        return 130
    except click.exceptions.ClickException as exc:
        say(exc.format_message())
        return exc.exit_code
    except SystemExit as exc:  # shell completion answers and exits
        return exc.code if isinstance(exc.code, int) else 0
    return result if isinstance(result, int) else 0
