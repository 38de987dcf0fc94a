"""`pipe login` / `pipe logout`: where `pipe` works, the way `gh auth` does it.

The token never comes from argv (shell history, `ps`): it is read from stdin when stdin is not a
terminal (`pipe login --server URL < token.txt`, or piped from a secret manager), else prompted
for without echo. It is checked against the server before anything is stored, then kept with the
server URL in the credentials file (cli/credentials.py).
"""

from __future__ import annotations

import sys

import typer
from chainpipe.cli import credentials
from chainpipe.cli.render import kv, print_json

JSON = typer.Option(False, "--json", help="Machine output (JSON) on stdout")
PROMPT = "Paste your chainpipe token (cp_…; input is hidden): "


def _fail(exc) -> typer.Exit:
    from chainpipe.cli.errors import say

    say(exc.message)
    return typer.Exit(exc.exit_code)


def login(
    server: str = typer.Option(None, "--server", metavar="URL", help="The chainpipe server, e.g. https://pipe.example.com"),
    status: bool = typer.Option(False, "--status", help="Say where `pipe` works now, and check the token"),
    json_out: bool = JSON,
):
    """Work through a server as your token's person; the token is read from stdin or prompted for."""
    from chainpipe.core.errors import InvalidInput, PipeError

    try:
        if status:
            return _status(json_out)
        if not server:
            raise InvalidInput("say which server: pipe login --server URL (or pipe login --status)")
        url = credentials.check_server_url(server)
        token = credentials.check_token(_read_token())
        _client(url, token).check()
        path = credentials.save(url, token)
    except PipeError as exc:
        raise _fail(exc) from None
    if json_out:
        print_json({"mode": "remote", "server": url, "credentials": str(path)})
    else:
        typer.echo(f"logged in to {url}: pipe commands now run there, as the person your token belongs to")
        typer.echo(f"credentials saved in {path} (only you can read it); `pipe logout` removes them")
    for warning in _warnings(url):
        typer.echo(f"pipe: {warning}", err=True)


def logout(json_out: bool = JSON):
    """Forget the server and token `pipe login` saved (the token stays valid until it is revoked)."""
    path = credentials.remove()
    where = str(credentials.credentials_path())
    if json_out:
        print_json({"removed": path is not None, "credentials": where})
    elif path is None:
        typer.echo(f"not logged in (no {where})")
    else:
        typer.echo(f"logged out: removed {where}; to revoke the token itself, ask the server's administrator "
                   "(`pipe token revoke NAME`)")
    if _env_set():
        typer.echo(f"pipe: {credentials.ENV_SERVER} / {credentials.ENV_TOKEN} are still set in your environment",
                   err=True)


def _env_set() -> bool:
    import os

    return any(os.environ.get(name, "").strip() for name in (credentials.ENV_SERVER, credentials.ENV_TOKEN))


def _read_token() -> str:
    from chainpipe.core.errors import InvalidInput

    if sys.stdin is None or sys.stdin.closed:
        raise InvalidInput("no token: pipe it on stdin, or run `pipe login` in a terminal to be prompted")
    if sys.stdin.isatty():
        import getpass

        try:
            return getpass.getpass(PROMPT)
        except EOFError:
            raise InvalidInput("no token given") from None
    token = sys.stdin.readline(4096)
    if not token.strip():
        raise InvalidInput("no token on stdin: pipe it in, e.g. `pipe login --server URL < token.txt`")
    return token


def _client(url: str, token: str):
    from chainpipe.cli.api_client import ApiClient
    from chainpipe.cli.remote_cli import timeout

    return ApiClient(url, token, timeout=timeout())


def _warnings(url: str) -> list[str]:
    from urllib.parse import urlsplit

    out = []
    if urlsplit(url).scheme == "http" and urlsplit(url).hostname not in ("localhost", "127.0.0.1", "::1"):
        out.append(f"{url} is plain http: the token crosses the network unencrypted; prefer https")
    if _env_set():
        out.append(f"{credentials.ENV_SERVER} / {credentials.ENV_TOKEN} are set and win over the saved credentials")
    return out


def _status(json_out: bool) -> None:
    """Which mode and server are in use; in remote mode the token is checked (exit 2 if refused)."""
    from chainpipe.core.errors import PipeError

    target = credentials.find()
    if target is None:
        return _direct_status(json_out)
    view = {"mode": "remote", "server": target.server, "source": target.source}
    problem = None
    try:
        _client(target.server, target.token).check()
        view["token"] = "accepted"
    except PipeError as exc:
        problem, view["token"] = exc, "refused or unchecked"
    if json_out:
        print_json(view | {"error": problem.message if problem else None})
    else:
        typer.echo(kv(view))
    if problem is not None:
        raise problem


def _direct_status(json_out: bool) -> None:
    from chainpipe.core.config import load_settings, redact_url

    settings = load_settings()
    view = {"mode": "direct", "database": redact_url(settings.database_url),
            "credentials": str(credentials.credentials_path())}
    if json_out:
        print_json(view)
        return
    typer.echo(kv(view))
    typer.echo("not logged in: `pipe login --server URL` to work through a server as yourself")
