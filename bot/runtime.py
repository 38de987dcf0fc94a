"""What every listener and route shares: the core settings, a way to run one grammar command, the
database's state (``bot.outage``), and the two kinds of log line the server writes on a caller's
behalf — a crash (reference + traceback) and a refusal (one ``key=value`` line)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chainpipe.bot.outage import Outage
from chainpipe.core.actor import Actor
from chainpipe.core.config import Settings
from chainpipe.core.crash import crash_line, crash_reference
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import Command
from chainpipe.core.text import one_line

log = logging.getLogger("chainpipe.server")
refusals = logging.getLogger("chainpipe.refusal")

_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")


def log_crash(exc: BaseException, where: str) -> str:
    """Log the traceback under a fresh reference and return the reference; the line to show
    people is ``core.crash.crash_line(ref, exc)``, the same words the log line starts with."""
    ref = crash_reference()
    log.error("%s in %s", crash_line(ref, exc), one_line(where), exc_info=exc)
    return ref


def _field(value) -> str:
    text = "-" if value is None or value == "" else str(value)
    if _BARE.fullmatch(text):
        return text
    return '"' + one_line(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def log_refusal(surface: str, principal: str | None, rule: str, command: str | None = None, **more) -> None:
    """One line per refused request, ``key=value`` pairs, so refusals can be found and counted later.

    Nothing is written to the database: a flood of forged requests must not grow it."""
    pairs = {"surface": surface, "principal": principal or "anonymous", "rule": rule, "command": command, **more}
    refusals.warning("refused %s", " ".join(f"{k}={_field(v)}" for k, v in pairs.items()))


@dataclass
class Runtime:
    settings: Settings
    # Nudges the notifier so a decision reaches Slack without waiting for the next poll.
    wake: Callable[[], None] = field(default=lambda: None)
    outage: Outage = field(default_factory=Outage)
    # Requests' database work at once (``database``); more wait on the event loop, not on a thread.
    # As many threads again run the work that follows an answer already sent (a Slack command after
    # its ack): with 32 slash commands in flight on PostgreSQL, 8 of them put the ack p99 at
    # 102-158 ms, 3 at 72-83 ms (the acks wait for the GIL, not for the work).
    database_threads: int = 3
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _writer: contextlib.AbstractContextManager = field(init=False, repr=False)
    _database_pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _write_turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        # SQLite has one writer at a time (BEGIN IMMEDIATE). Writers that find it taken wait in
        # SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and wakes none of them
        # when the lock frees: under a burst most of the time goes to sleeping. This process's
        # writers queue on a lock of their own instead, and the next one starts the moment the last
        # one commits; other processes (the CLI) still meet the busy handler, as before.
        self._writer = threading.Lock() if _sqlite(self.settings) else contextlib.nullcontext()

    def run(self, command: Command, values: dict | None, actor: Actor | None, *, admit=None):
        """Bind the raw ``values`` and run the command for a caller on another machine; with
        ``admit``, the caller is proven inside the command's transaction (``core.dispatch``)."""
        if command.kind == "catalogue" and admit is None:  # settings only: says nothing about the database
            return execute(command, values, actor, self.settings, local=False)
        with self.writing() if command.kind == "write" else contextlib.nullcontext():
            result = self.outage.call(execute, command, values, actor, self.settings, local=False, admit=admit)
        if command.kind == "write":
            self.wake()
        return result

    async def database(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` on one of ``database_threads`` threads (the caller's context
        variables, e.g. its request id, go with it); more requests wait on the event loop.

        A request's database work leaves the event loop here. Bounding it is what keeps a burst
        cheap: with 32 API writes in flight on PostgreSQL, Starlette's default of 40 threads cost the
        server 3.3–3.6 ms of CPU per write, 2–4 threads 1.8–2.2 ms at 1.6× the throughput (threads
        beyond what the database serves at once only pass the GIL around and wake each other); and a
        plain executor cost 0.25 ms less per write than anyio's thread limiter (measured on SQLite)."""
        with self._pool_lock:
            if self._database_pool is None:
                self._database_pool = ThreadPoolExecutor(self.database_threads, thread_name_prefix="pipe-db")
            pool = self._database_pool
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    async def request(self, command: Command, *, admit):
        """A request's command on the database threads (``database``). On SQLite its writes take
        their turn here, on the event loop, before they take a thread: the database has one writer
        at a time, so a queue of writes holds one thread, never all of them, and reads keep theirs
        (even while another process, e.g. a CLI, holds the write lock for long)."""
        if command.kind == "write" and _sqlite(self.settings):
            loop = asyncio.get_running_loop()
            if self._write_turn is None or self._write_turn[0] is not loop:  # one per event loop
                self._write_turn = (loop, asyncio.Lock())
            async with self._write_turn[1]:
                return await self.database(self.run, command, None, None, admit=admit)
        return await self.database(self.run, command, None, None, admit=admit)

    def writing(self) -> contextlib.AbstractContextManager:
        """Held around each of this server's write transactions (a queue on SQLite, nothing on PostgreSQL)."""
        return self._writer

    def later(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the background threads; what escapes it is logged as a crash."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.database_threads, thread_name_prefix="pipe-after")
            self._pool.submit(_logged, work)

    def close(self) -> None:
        """Finish the work already accepted (a stopping server still answers what it acked)."""
        with self._pool_lock:
            pools = (self._pool, self._database_pool)
            self._pool = self._database_pool = None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True)


def _sqlite(settings: Settings) -> bool:
    return settings.database_url.startswith("sqlite")


def _logged(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - nobody waits for this work; the log is where it ends
        log_crash(exc, f"background work {getattr(work, '__qualname__', work)}")


def slack_actor(user_id: str) -> Actor:
    """A Slack user, proven by the request's signature."""
    return Actor(f"slack:{user_id}", "slack", principal=f"slack:{user_id}")
