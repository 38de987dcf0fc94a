"""The sha256 and size of a local file, as an artifact records them (``sha256:<hex>``).

Standard library only: the remote CLI and the Action's remote steps hash files on the caller's
machine without importing any database code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from chainpipe.core.errors import InvalidInput

DIGEST_PREFIX = "sha256:"


def file_digest(path: str) -> tuple[str, int]:
    """sha256 and size of a regular file; one clear line for a path that is not one."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InvalidInput(f"file not found: {path}")
    if not p.is_file():
        raise InvalidInput(f"not a regular file: {path} (give the file to record, e.g. an archive)")
    try:
        with p.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256")
            size = fh.tell()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    return DIGEST_PREFIX + digest.hexdigest(), size
