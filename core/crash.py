"""One format for "something broke that should not have": every surface shows the same short
reference, and the full traceback goes to that surface's log under the same reference.

    internal error err-3f9c2a61: KeyError; details in /home/me/.local/share/chainpipe/crash.log
"""

from __future__ import annotations

import secrets


def crash_reference() -> str:
    """A short id tying the line a user sees to the traceback in the log."""
    return "err-" + secrets.token_hex(4)


def crash_line(ref: str, exc: BaseException, detail: str | None = None) -> str:
    """The one user-facing line for a crash: the reference, the exception's class, where to look."""
    line = f"internal error {ref}: {exc.__class__.__name__}"
    return f"{line}; {detail}" if detail else line
