"""Files chainpipe writes on disk: private to the user who runs it.

The SQLite database holds the audit trail and token hashes, and crash.log holds tracebacks, so a
directory chainpipe creates is 0700 and a file it creates is 0600 (SQLite gives its -wal and -shm
files the mode of the database file). The default data directory is chainpipe's own, so a looser
mode left there by an older release is tightened; a directory the user chose and made keeps the
mode they gave it. Modes are only ever tightened, never loosened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from chainpipe.core.config import data_dir

SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def default_data_dir(env=os.environ) -> Path:
    """The data directory chainpipe uses when PIPE_DATA_DIR is not set."""
    return data_dir({k: v for k, v in env.items() if k != "PIPE_DATA_DIR"})


def is_ours(path: Path, env=os.environ) -> bool:
    """True for chainpipe's default data directory and what lies directly in it."""
    own = default_data_dir(env).expanduser().absolute()
    path = path.expanduser().absolute()
    return path == own or path.parent == own


def tighten(path: Path) -> None:
    """Drop the group and other permission bits of ``path`` if it has any."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(mode & 0o700)


def private_dir(path: Path) -> Path:
    """Make ``path`` exist; created 0700 (missing parents get the usual mode, as `mkdir -p`)."""
    path = path.expanduser()
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
    if is_ours(path):
        tighten(path)
    return path


def private_file(path: Path, sidecars: tuple[str, ...] = ()) -> Path:
    """Make ``path`` exist in a private directory: created 0600; if it is ours and already there,
    it and its ``sidecars`` (suffixes, e.g. SQLite's ``-wal``) are tightened."""
    path = path.expanduser()
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if is_ours(path):
            for each in [path, *(Path(f"{path}{s}") for s in sidecars)]:
                if each.exists():
                    tighten(each)
    return path


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, creating it 0600 in a private directory."""
    private_file(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
