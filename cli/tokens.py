"""`pipe token …`: API tokens for the server (the secret is printed once; only its hash is kept)."""

from __future__ import annotations

import typer

from cli.render import print_json, table, when

app = typer.Typer(help="API tokens for pipe-server (create, list, revoke)", no_args_is_help=True)


def _run(fn, actor: str | None, **values):
    from cli.errors import say
    from core.actor import Actor
    from core.errors import PipeError
    from core.uow import UnitOfWork

    if actor is None:
        from cli.main import default_actor

        actor = default_actor()
    try:
        with UnitOfWork() as uow:
            return fn(uow, Actor(actor, "cli"), **values)
    except PipeError as exc:
        say(exc.message)
        raise typer.Exit(exc.exit_code) from None


AS = typer.Option(None, "--as", metavar="NAME", help="Who is acting, for the record [env PIPE_ACTOR]")
JSON = typer.Option(False, "--json", help="Machine output (JSON) on stdout")


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A name for the token, e.g. ci"),
    allow_actor_header: bool = typer.Option(
        False, "--allow-actor-header", help="Let the holder name the actor with X-Pipe-Actor (trusted CI only)"),
    json_out: bool = JSON,
    as_: str | None = AS,
):
    """Create a token and print it once."""
    from core.services.tokens import create_token

    view = _run(create_token, as_, name=name, allow_actor_header=allow_actor_header)
    if json_out:
        print_json(view)
        return
    typer.echo(view["token"])
    typer.echo(f"token {view['name']} created; it is shown only this once, store it now "
               "(use it as `Authorization: Bearer <token>`)", err=True)


@app.command("list")
def list_(json_out: bool = JSON):
    """List tokens (names and dates, never the secrets)."""
    from core.services.tokens import list_tokens

    rows = _run(list_tokens, "")
    if json_out:
        print_json(rows)
        return
    if not rows:
        typer.echo("no tokens")
        return
    typer.echo(table(["name", "state", "actor header", "created", "last used"], [
        [t["name"], "active" if t["active"] else "revoked", t["allow_actor_header"], when(t["created_at"]),
         when(t["last_used_at"])] for t in rows]))


@app.command("revoke")
def revoke(name: str = typer.Argument(..., metavar="NAME"), json_out: bool = JSON, as_: str | None = AS):
    """Revoke a token; requests with it get 401 from then on."""
    from core.services.tokens import revoke_token

    view = _run(revoke_token, as_, name=name)
    if json_out:
        print_json(view)
    else:
        typer.echo(f"token {view['name']} revoked" if view["changed"] else f"token {view['name']} was already revoked")
