"""The `pipe` command's entry point. The mode is chosen first, before Typer or any database code is
imported, so remote mode starts in the time it takes to import the grammar:

    remote   a server is set (`pipe login`, or PIPE_SERVER_URL + PIPE_TOKEN): grammar commands run
             on it through its JSON API, as the token's person (cli/remote_cli.py)
    direct   otherwise: `pipe` opens the database itself: an ordinary grammar command is parsed by
             the grammar's own parser and run without Typer (`plain`); the rest takes the Typer
             app in cli/app.py

Help, usage errors, completion and the commands that are not grammar commands always take the Typer
app. Crashes become one line with a reference here, whichever road was taken.
"""

from __future__ import annotations

import gc
import os
import sys

HELP = """chainpipe: delivery pipelines with approval gates, artifacts, deploys and monitoring.

Where it works: on a server, as the person its token names (`pipe login --server URL`, or
PIPE_SERVER_URL + PIPE_TOKEN); else straight on the database (an SQLite file in your data
directory, or PIPE_DATABASE_URL), acting as --as or PIPE_ACTOR.

Exit codes: 0 ok, 1 refused by the pipeline's state or policy, 2 bad input or configuration."""


def default_actor() -> str:
    if os.environ.get("PIPE_ACTOR"):
        return os.environ["PIPE_ACTOR"]
    from chainpipe.core.actor import os_user

    return os_user()


# Set by the console script when it runs the command here: the cyclic garbage collector is off until
# the command's code is imported (`start_done`).
_start_without_gc = False


def start_done() -> None:
    """The one-shot start is over, the command's code imported: freeze what the start built (modules,
    classes, tables, mappers: they live as long as the process) and collect garbage again, for the
    command's own work. A no-op in process (the tests, the worker), where collection stays as it was."""
    global _start_without_gc
    if _start_without_gc:
        _start_without_gc = False
        gc.freeze()
        gc.enable()


def __getattr__(name: str):
    """The Typer app (``cli.main.app``), built on first use."""
    if name == "app":
        from chainpipe.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    from chainpipe.cli.errors import report_crash, say
    from chainpipe.core.grammar import join_words

    argv = join_words(sys.argv[1:] if argv is None else argv)
    try:
        from chainpipe.cli.package_data import sample_config
        from chainpipe.cli.remote_cli import dispatch

        code = sample_config(argv)
        code = dispatch(argv) if code is None else code
        if code is not None:
            return code
        code = plain(argv)
        if code is not None:
            return code
        from chainpipe.cli.app import run

        return run(argv)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place crashes become a short message
        return report_crash(exc)


def plain(argv: list[str]) -> int | None:
    """An ordinary grammar command, parsed by the grammar's own parser and run without importing
    Typer: the exit code, or None for the Typer app (help, completion, anything Click might read
    otherwise than the grammar does — short options, ``--``, a value that looks like an option —
    and every usage error, so its words stay Typer's)."""
    from chainpipe.core.errors import InvalidInput
    from chainpipe.core.grammar import COMMANDS, parse_args

    command = COMMANDS.get(argv[0]) if argv else None
    if command is None or any(k.startswith("_PIPE_COMPLETE") for k in os.environ):
        return None
    words, actor = _plain_words(command, argv[1:])
    if words is None:
        return None
    try:
        values = parse_args(command, words, reserved=("--json",))
    except InvalidInput:
        return None
    from chainpipe.cli.output import default_notes
    from chainpipe.cli.remote_cli import _given
    from chainpipe.cli.run import run_plain

    json_out = bool(values.pop("--json", False))
    defaulted = {p.name for p in command.params if not _given(p, words)}
    notes = [] if json_out else default_notes(command.name, values, defaulted)
    return run_plain(command, values, actor=actor or default_actor(), json_out=json_out, notes=notes)


def _plain_words(command, words: list[str]) -> tuple[list[str] | None, str | None]:
    """``words`` without ``--as NAME``, and NAME; (None, None) when Typer should read them."""
    flags = {f: p for p in command.params for f in p.flags}
    out, actor, rest = [], None, list(words)
    while rest:
        word = rest.pop(0)
        if not word.startswith("-"):
            out.append(word)
            continue
        flag, eq, inline = word.partition("=")
        takes_value = flag == "--as" and command.kind != "catalogue" or flag in flags and flags[flag].type != "bool"
        if flag not in flags and flag != "--json" and not takes_value or eq and not takes_value:
            return None, None
        if takes_value and not eq:
            if not rest or rest[0].startswith("-"):
                return None, None
            inline = rest.pop(0)
        if flag == "--as":
            actor = inline
        else:
            out.append(f"{flag}={inline}" if takes_value else flag)
    return out, actor


def closed_streams() -> int | None:
    """Exit 2 before anything runs when standard output is closed (``pipe create … >&-``): a
    command that had written its change and then could not tell it would be an internal error after
    the fact. A closed standard error gets /dev/null, so that no file the command opens (the SQLite
    database) can take descriptor 2 and receive its messages."""
    if sys.stderr is None:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 2:
            os.dup2(fd, 2)
            os.close(fd)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    if sys.stdout is None:
        sys.stderr.write("pipe: standard output is closed: nothing was run (redirect it to /dev/null "
                         "to discard it)\n")
        sys.stderr.flush()
        return 2
    return None


def entrypoint() -> None:
    """The console script: a warm worker answers when it can (cli/worker_client.py: the standard
    library alone; PIPE_WORKER=0 turns it off), else the command runs here. ``main(argv)``, called
    in process (the tests), never uses the worker."""
    global _start_without_gc
    if (code := closed_streams()) is not None:
        sys.exit(code)
    from chainpipe.cli.worker_client import forward

    try:
        code = forward(sys.argv[1:])
    except KeyboardInterrupt:  # the worker finishes (or rolls back) the command on its own
        sys.stderr.write("pipe: interrupted\n")
        code = 130
    if code is None:
        # The start allocates hundreds of thousands of objects that live until exit and makes
        # almost no garbage: the collector's passes over them while they are being made are wasted
        # (measured: ~210M instructions, ~10 % of a cold `pipe create`: half the passes during the
        # start, half the collection at exit over all it built, which `gc.freeze` spares; peak memory
        # +0.4 MB). Back on at `start_done`.
        _start_without_gc = True
        gc.disable()
        code = main()
    sys.exit(code)


if __name__ == "__main__":
    entrypoint()
