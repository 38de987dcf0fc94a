"""The `pipe` command's entry point. The mode is chosen first, before Typer or any database code is
imported, so remote mode starts in the time it takes to import the grammar:

    remote   a server is set (`pipe login`, or PIPE_SERVER_URL + PIPE_TOKEN): grammar commands run
             on it through its JSON API, as the token's person (cli/remote_cli.py)
    direct   otherwise: `pipe` opens the database itself (the Typer app in cli/app.py)

Help, usage errors, catalogue commands and the commands that are not grammar commands always take
the Typer app. Crashes become one line with a reference here, whichever road was taken.
"""

from __future__ import annotations

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
    from core.actor import os_user

    return os_user()


def __getattr__(name: str):
    """The Typer app (``cli.main.app``), built on first use."""
    if name == "app":
        from cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    from cli.errors import report_crash, say
    from core.grammar import join_words

    argv = join_words(sys.argv[1:] if argv is None else argv)
    try:
        from cli.package_data import sample_config
        from cli.remote_cli import dispatch

        code = sample_config(argv)
        code = dispatch(argv) if code is None else code
        if code is not None:
            return code
        from cli.app import run

        return run(argv)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place crashes become a short message
        return report_crash(exc)


def entrypoint() -> None:
    """The console script: a warm worker answers when it can (cli/worker_client.py: the standard
    library alone; PIPE_WORKER=0 turns it off), else the command runs here. ``main(argv)``, called
    in process (the tests), never uses the worker."""
    from cli.worker_client import forward

    code = forward(sys.argv[1:])
    sys.exit(main() if code is None else code)


if __name__ == "__main__":
    entrypoint()
