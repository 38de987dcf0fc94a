"""`pipe token …`: API tokens for the server (the secret is printed once; only its hash is kept).

A personal token (``--for alice``) acts as its person on every request: what a team member logs in
with (`pipe login`). A service token (``--service``, the default) acts as ``token:<name>``: for CI
and bots.
"""

from __future__ import annotations

import typer
from chainpipe.cli.render import print_json, table, when

app = typer.Typer(help="API tokens for pipe-server (create, list, rotate, revoke)", no_args_is_help=True)


def _run(fn, actor: str | None, **values):
    from chainpipe.cli.errors import say
    from chainpipe.core.actor import Actor
    from chainpipe.core.errors import PipeError
    from chainpipe.core.uow import UnitOfWork

    if actor is None:
        from chainpipe.cli.main import default_actor

        actor = default_actor()
    try:
        with UnitOfWork() as uow:
            return fn(uow, Actor(actor, "cli"), **values)
    except PipeError as exc:
        say(exc.message)
        raise typer.Exit(exc.exit_code) from None


AS = typer.Option(None, "--as", metavar="NAME", help="Who is acting, for the record [env PIPE_ACTOR]")
JSON = typer.Option(False, "--json", help="Machine output (JSON) on stdout")


def _print_secret(view: dict, json_out: bool, done: str) -> None:
    if json_out:
        print_json(view)
        return
    typer.echo(view["token"])
    who = f"acts as {view['person']}" if view["kind"] == "personal" else f"acts as token:{view['name']}"
    typer.echo(f"{view['kind']} token {view['name']} {done} ({who}); it is shown only this once, store it now "
               "(`pipe login --server URL` reads it from stdin, or send `Authorization: Bearer <token>`)", err=True)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A name for the token, e.g. alice-laptop or ci"),
    person: str | None = typer.Option(
        None, "--for", metavar="PERSON", help="A personal token: every request made with it acts as PERSON"),
    service: bool = typer.Option(
        False, "--service", help="A service token (the default): it acts as token:NAME, for CI and bots"),
    allow_actor_header: bool = typer.Option(
        False, "--allow-actor-header", help="A service token whose holder may name the actor with X-Pipe-Actor"),
    json_out: bool = JSON,
    as_: str | None = AS,
):
    """Create a token and print it once."""
    from chainpipe.cli.errors import say
    from chainpipe.core.services.tokens import create_token

    if person is not None and (service or allow_actor_header):
        say("a token is either personal (--for PERSON) or a service token (--service), not both")
        raise typer.Exit(2)
    view = _run(create_token, as_, name=name, person=person, allow_actor_header=allow_actor_header)
    _print_secret(view, json_out, "created")


@app.command("rotate")
def rotate(name: str = typer.Argument(..., metavar="NAME"), json_out: bool = JSON, as_: str | None = AS):
    """Replace a token's secret: the old one stops working now, the new one is printed once."""
    from chainpipe.core.services.tokens import rotate_token

    _print_secret(_run(rotate_token, as_, name=name), json_out, "rotated")


@app.command("list")
def list_(json_out: bool = JSON):
    """List tokens (names and dates, never the secrets)."""
    from chainpipe.core.services.tokens import list_tokens

    rows = _run(list_tokens, "")
    if json_out:
        print_json(rows)
        return
    if not rows:
        typer.echo("no tokens")
        return
    typer.echo(table(["name", "kind", "acts as", "state", "created", "last used"], [
        [t["name"], t["kind"], t["person"] if t["kind"] == "personal" else f"token:{t['name']}",
         "active" if t["active"] else "revoked", when(t["created_at"]), when(t["last_used_at"])] for t in rows]))


@app.command("revoke")
def revoke(name: str = typer.Argument(..., metavar="NAME"), json_out: bool = JSON, as_: str | None = AS):
    """Revoke a token; requests with it get 401 from then on."""
    from chainpipe.core.services.tokens import revoke_token

    view = _run(revoke_token, as_, name=name)
    if json_out:
        print_json(view)
    else:
        typer.echo(f"token {view['name']} revoked" if view["changed"] else f"token {view['name']} was already revoked")
