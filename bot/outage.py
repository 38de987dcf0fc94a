"""A lost database is an outage, not a crash: requests are answered 503 with ``Retry-After``
(Slack: "database unavailable, try again"), and the server logs one line when the outage starts
and one when it ends — not a traceback per request or per notifier poll.

What counts as lost: SQLAlchemy's ``OperationalError`` / ``InterfaceError`` and any DBAPI error
that invalidated its connection, and core's ``ConfigError("database unavailable: …")`` (the unit
of work's translation of an ``OperationalError``).
"""

from __future__ import annotations

import logging
import threading
import time

from chainpipe.core.errors import ConfigError
from chainpipe.core.text import one_line
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger("chainpipe.server")

RETRY_AFTER_SECONDS = 5
MESSAGE = "database unavailable, try again"
_CORE_PREFIX = "database unavailable"


class DatabaseUnavailable(Exception):
    """The database did not answer; the request changed nothing it acknowledged."""

    def __init__(self, reason: str):
        super().__init__(MESSAGE)
        self.reason = reason


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnavailable | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConfigError) and exc.message.startswith(_CORE_PREFIX)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, DatabaseUnavailable):
        return exc.reason
    detail = str(getattr(exc, "orig", None) or exc).strip()
    first = detail.splitlines()[0] if detail else ""
    return one_line(first.removeprefix(_CORE_PREFIX + ": ")) or exc.__class__.__name__


class Outage:
    """The server's view of the database: up, or down since a moment, with what was refused.

    An outage starts with a failed call and ends with a successful one. A call that failed but had
    started before the latest success is a straggler from before the database came back: it is
    refused, but does not open a new outage (so one outage is two lines, however calls interleave).
    """

    def __init__(self, logger: logging.Logger = log, clock=time.monotonic):
        self._log, self._clock = logger, clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._refused = 0
        self._last_ok = float("-inf")  # when the latest successful call started
        self.failures = 0  # calls that found the database unavailable, ever (for /metrics)

    def down(self, exc: BaseException, started: float | None = None) -> DatabaseUnavailable:
        """Note a failed call (logging only the first of an outage); the error to raise."""
        reason = reason_of(exc)
        with self._lock:
            self.failures += 1
            if self._since is None and (started is None or started >= self._last_ok):
                self._since = self._clock()
                self._log.error("database unavailable: %s; answering 503 until it is back", reason)
            if self._since is not None:
                self._refused += 1
        return exc if isinstance(exc, DatabaseUnavailable) else DatabaseUnavailable(reason)

    def up(self, started: float | None = None) -> None:
        """Note a successful call; ends an outage with one line."""
        with self._lock:
            self._last_ok = max(self._last_ok, self._clock() if started is None else started)
            if self._since is None:
                return
            took, refused = self._clock() - self._since, self._refused
            self._since, self._refused = None, 0
        self._log.warning("database available again after %.1f s (%d attempts refused meanwhile)", took, refused)

    def call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, with a lost database raised as ``DatabaseUnavailable``.

        Only a success ends an outage: an error may have been raised before the database was asked."""
        started = self._clock()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if is_outage(exc):
                raise self.down(exc, started) from None
            raise
        self.up(started)
        return result
