"""Where `pipe` finds its server in remote mode, and the file `pipe login` keeps it in.

    PIPE_SERVER_URL + PIPE_TOKEN     both, for scripts and CI; they win over the file
    the credentials file             $XDG_CONFIG_HOME/chainpipe/credentials (default
                                     ~/.config/chainpipe/credentials), written by `pipe login`
    PIPE_MODE=direct                 ignore both and open the database (an administrator's way)

The file holds a bearer token, so it is created 0600 in a 0700 directory, replaced atomically, and
refused when another user owns it or it is open to others: a token others could read is a leaked
token, and a file someone else wrote could send your commands to their server.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from chainpipe.core.errors import ConfigError, InvalidInput

ENV_SERVER, ENV_TOKEN, ENV_MODE = "PIPE_SERVER_URL", "PIPE_TOKEN", "PIPE_MODE"
MODES = ("direct", "remote")
TOKEN_MAX = 200  # the server ignores longer tokens


@dataclass(frozen=True)
class Remote:
    """A server to run commands on, with the token that says who is asking."""

    server: str
    token: str
    source: str  # "environment" or the credentials file's path

    def __repr__(self) -> str:  # never the token, even in a traceback's locals
        return f"Remote(server={self.server!r}, source={self.source!r})"


def credentials_path(env=os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "chainpipe" / "credentials"


def check_server_url(url: str) -> str:
    """``url`` as the base of the API (no trailing slash), or one InvalidInput."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidInput(f"not a server URL: {url!r}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(f"the server URL must start with https:// (or http://), got {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput("the server URL is scheme://host[:port][/path], without a user, query or fragment")
    return url.rstrip("/")


def check_token(token: str) -> str:
    token = (token or "").strip()
    if not token:
        raise InvalidInput("no token given")
    if len(token) > TOKEN_MAX or not token.isascii() or not token.isprintable() or " " in token:
        raise InvalidInput("that is not a chainpipe token (cp_… from `pipe token create`)")
    return token


def find(env=os.environ) -> Remote | None:
    """The server of remote mode, or None for direct mode; ConfigError for a half-set environment
    or an unsafe credentials file."""
    mode = (env.get(ENV_MODE) or "").strip().lower()
    if mode and mode not in MODES:
        raise ConfigError(f"{ENV_MODE} must be direct or remote, got {mode!r}")
    if mode == "direct":
        return None
    found = _from_env(env) or _from_file(credentials_path(env))
    if found is None and mode == "remote":
        raise ConfigError(f"{ENV_MODE}=remote but no server is set: run `pipe login --server URL` "
                          f"or set {ENV_SERVER} and {ENV_TOKEN}")
    return found


def _from_env(env) -> Remote | None:
    server, token = env.get(ENV_SERVER, "").strip(), env.get(ENV_TOKEN, "").strip()
    if not server and not token:
        return None
    if not (server and token):
        have, missing = (ENV_SERVER, ENV_TOKEN) if server else (ENV_TOKEN, ENV_SERVER)
        raise ConfigError(f"{have} is set but {missing} is not: set both for remote mode, or neither")
    try:
        return Remote(check_server_url(server), check_token(token), "environment")
    except InvalidInput as exc:
        raise ConfigError(f"{ENV_SERVER}/{ENV_TOKEN}: {exc.message}") from None


def _from_file(path: Path) -> Remote | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        check_private(path, os.fstat(fh.fileno()))
        raw = fh.read(64 * 1024)
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
        server, token = data["server"], data["token"]
        if not isinstance(server, str) or not isinstance(token, str):
            raise TypeError
        return Remote(check_server_url(server), check_token(token), str(path))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, InvalidInput):
        raise ConfigError(f"{path} is not a credentials file `pipe login` wrote: run `pipe logout`, "
                          "then `pipe login` again") from None


def check_private(path: Path, st: os.stat_result) -> None:
    """Refuse a credentials file another user owns or others may read or write."""
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user; remove it and run `pipe login`")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} is open to other users (mode {mode:04o}); treat its token as leaked: "
                          "`pipe logout`, then log in with a new token")


def save(server: str, token: str, env=os.environ) -> Path:
    """Write the credentials file atomically: a 0600 file in a 0700 directory."""
    from chainpipe.core.files import private_dir, tighten

    path = credentials_path(env)
    tighten(private_dir(path.parent))  # the directory is chainpipe's own
    text = ("# chainpipe credentials, written by `pipe login`: keep this file private\n"
            f"server = {json.dumps(check_server_url(server))}\n"
            f"token = {json.dumps(check_token(token))}\n")  # JSON's ASCII escapes are TOML's
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove(env=os.environ) -> Path | None:
    """Delete the credentials file; its path if there was one."""
    path = credentials_path(env)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return path
