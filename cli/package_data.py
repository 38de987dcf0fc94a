"""Files that ship inside the package, printed by commands (so a `pip install` is enough to set up):

    pipe slack-manifest --url https://pipe.example.com   the Slack app manifest, request URLs filled in
    pipe slack-manifest --socket-mode                    the manifest for Socket Mode (no request URLs)
    pipe config --sample                                  a starting team config (docs/team-config.toml)

`pipe config` without ``--sample`` stays the grammar command (the configuration in force); the
sample is read before the mode is chosen, since it needs neither a database nor a server.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from urllib.parse import urlsplit

PLACEHOLDER = "https://pipe.example.com"


def manifest_text() -> str:
    return files("chainpipe.bot").joinpath("slack-manifest.yml").read_text(encoding="utf-8")


def sample_config_text() -> str:
    return files("chainpipe.cli").joinpath("data", "team-config.toml").read_text(encoding="utf-8")


def check_url(url: str) -> str:
    """The server's public base URL: https, a host, no query or fragment; without a trailing slash."""
    from chainpipe.core.errors import InvalidInput

    parts = urlsplit(url.strip())
    odd = any(c in url.strip() for c in " \"'\n\\")
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or odd:
        raise InvalidInput(f"--url must be the server's public https URL, e.g. {PLACEHOLDER}, got {url!r}")
    return url.strip().rstrip("/")


SOCKET_MODE_OFF = "socket_mode_enabled: false"


def filled_manifest(url: str | None, socket_mode: bool = False) -> str:
    """The manifest for a server at ``url`` (HTTP) or for Socket Mode, without the comments on
    filling it in. Exactly one of the two is asked for."""
    from chainpipe.core.errors import InvalidInput

    if socket_mode == bool(url):
        raise InvalidInput("give either --url https://<your server> (HTTP) or --socket-mode")
    lines = [line for line in manifest_text().splitlines(keepends=True) if not line.startswith("#")]
    if socket_mode:
        body = [line.replace(SOCKET_MODE_OFF, "socket_mode_enabled: true") for line in lines
                if PLACEHOLDER not in line]
        return "# Slack app manifest for chainpipe over Socket Mode (`pipe slack-manifest`).\n" + "".join(body)
    base = check_url(url)
    body = [line.replace(PLACEHOLDER, base) for line in lines]
    return f"# Slack app manifest for chainpipe at {base} (`pipe slack-manifest`).\n" + "".join(body)


def slack_manifest_command():
    """The Typer command (built on demand: `pipe config --sample` is checked before Typer is imported)."""
    import typer

    def slack_manifest(
        url: str = typer.Option(None, "--url", metavar="URL", help=f"pipe-server's public URL, e.g. {PLACEHOLDER}"),
        socket_mode: bool = typer.Option(False, "--socket-mode", help="For Socket Mode: no public URL needed"),
    ):
        """Print the Slack app manifest: request URLs pointing at your server, or for Socket Mode."""
        from chainpipe.cli.errors import say
        from chainpipe.core.errors import PipeError

        try:
            sys.stdout.write(filled_manifest(url, socket_mode))
        except PipeError as exc:
            say(exc.message)
            raise typer.Exit(exc.exit_code) from None

    return slack_manifest


def sample_config(argv: list[str]) -> int | None:
    """`pipe config --sample`: the sample team config on stdout; None for any other command line."""
    if argv[:1] != ["config"] or "--sample" not in argv[1:]:
        return None
    if argv[1:] != ["--sample"]:
        from chainpipe.cli.errors import say

        say("`pipe config --sample` takes no other option")
        return 2
    sys.stdout.write(sample_config_text())
    return 0
