"""`pipe db …`: the database's schema version, and the explicit upgrade to the latest one."""

from __future__ import annotations

import typer

app = typer.Typer(help="The database schema: its version (current) and the upgrade to this release's",
                  no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine output (JSON) on stdout")


def _run(fn) -> dict:
    from chainpipe.cli.errors import say
    from chainpipe.core.config import load_settings
    from chainpipe.core.errors import PipeError

    try:
        return fn(load_settings().database_url)
    except PipeError as exc:
        say(exc.message)
        raise typer.Exit(exc.exit_code) from None


_STATES = {
    "empty": "no schema yet; it is created at version {latest} on first use",
    "current": "up to date",
    "behind": "older than this chainpipe ({latest}); back it up, then run `pipe db upgrade`",
    "ahead": "newer than this chainpipe ({latest}); upgrade chainpipe",
}


@app.command("current")
def current(json_out: bool = JSON):
    """Show the database's schema version and whether it needs `pipe db upgrade`."""
    from chainpipe.cli import render
    from chainpipe.core.db import describe_database

    view = _run(describe_database)
    if json_out:
        render.print_json(view)
        return
    version = "-" if view["version"] is None else view["version"]
    typer.echo(f"{view['database']}\nschema version {version}: {_STATES[view['state']].format(**view)}")


@app.command("upgrade")
def upgrade(json_out: bool = JSON):
    """Upgrade the database to this release's schema (back it up first: docs/configuration.md)."""
    from chainpipe.cli import render
    from chainpipe.core.db import upgrade_database

    view = _run(upgrade_database)
    if json_out:
        render.print_json(view)
    elif view["from"] is None:
        typer.echo(f"{view['database']}: created at schema version {view['to']}")
    elif view["changed"]:
        typer.echo(f"{view['database']}: upgraded from schema version {view['from']} to {view['to']}")
    else:
        typer.echo(f"{view['database']}: already at schema version {view['to']}")
