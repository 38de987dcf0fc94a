"""The one place where the CLI turns errors into a line on stderr and an exit code.

    PipeError subclasses  → "pipe: <message>", their own exit code (1 domain, 2 input/config)
    click usage errors    → "pipe: <message> (see `pipe CMD --help`)", exit 2
    anything else         → "pipe: internal error …", exit 3, traceback written to a log file
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

INTERNAL_ERROR = 3


def say(message: str) -> None:
    print(f"pipe: {message}", file=sys.stderr)


def crash_log_path() -> Path:
    from core.config import data_dir

    return data_dir() / "crash.log"


def report_crash(exc: BaseException) -> int:
    ref = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    where = crash_log_path()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        with where.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {ref}\n{''.join(traceback.format_exception(exc))}\n")
        detail = f"details in {where}"
    except OSError:
        detail = "no crash log could be written"
    say(f"internal error {ref}: {exc.__class__.__name__}; {detail}")
    return INTERNAL_ERROR
