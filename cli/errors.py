"""The one place where the CLI turns errors into a line on stderr and an exit code.

    PipeError subclasses  → "pipe: <message>", their own exit code (1 domain, 2 input/config)
    click usage errors    → "pipe: <message> (see `pipe CMD --help`)", exit 2
    anything else         → "pipe: internal error err-…", exit 3, traceback written to crash.log

Every line goes through ``core.text.one_line``: a value the user typed that holds a newline or an
escape sequence is shown escaped, never as a second line or a terminal control code.
"""

from __future__ import annotations

import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

INTERNAL_ERROR = 3


def say(message: str) -> None:
    from chainpipe.core.text import one_line

    print(f"pipe: {one_line(message)}", file=sys.stderr)


def crash_log_path() -> Path:
    from chainpipe.core.config import data_dir

    return data_dir() / "crash.log"


def report_crash(exc: BaseException) -> int:
    from chainpipe.core.crash import crash_line, crash_reference
    from chainpipe.core.files import append_private

    ref = crash_reference()
    where = crash_log_path()
    try:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        append_private(where, f"--- {ref} {stamp}\n{''.join(traceback.format_exception(exc))}\n")
        detail = f"details in {where}"
    except OSError:
        detail = "no crash log could be written"
    say(crash_line(ref, exc, detail))
    return INTERNAL_ERROR
