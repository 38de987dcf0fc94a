"""Every Slack request, before anything else: signed with our secret, recent, and never seen before.

``SlackGuard`` replaces Bolt's own verification (which answers 500 to a timestamp that is not a
number, and logs refused bodies) and runs first, ahead of authorisation:

- the ``X-Slack-Request-Timestamp`` must be a Unix time (ASCII digits, at most 12) within five
  minutes of now, and ``X-Slack-Signature`` the HMAC of ``v0:<timestamp>:<body>`` → else 401;
- a request whose (timestamp, signature) was already accepted runs nothing. Slack's retries
  (``X-Slack-Retry-Num``) follow the same rule. These checks need no database, so the listener
  acks at once; the record is written right after the ack, before any work (``Once``, through
  ``after_ack``), and a replay stops there: acked like any request, it never acts. The record
  lives in the database (``SeenSlackRequest``, unique on the pair), so it holds across replicas
  and restarts; rows older than the window (plus a minute for clocks that disagree) are pruned every
  ``PRUNE_EVERY`` inserts — a request that old is refused as stale anyway.

Over Socket Mode (``bot.socket_mode``) there is nothing to sign: the connection itself was opened
with the app-level token. What Slack does not see acked it sends again, so each envelope runs once:
its ``envelope_id`` is recorded in the same table (``envelope:<id>``, under a lock: on PostgreSQL an
advisory lock on the id, on SQLite the writer's ``BEGIN IMMEDIATE``) and kept as long as the
signed requests, longer than Slack's last redelivery (five minutes); a redelivery is acked and runs
nothing. Only ``bot.socket_mode`` builds socket-mode requests; an HTTP request is always checked.

Each refusal is one ``key=value`` log line (``bot.runtime.log_refusal``); nothing is written for it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import re
import time

from chainpipe.bot import blocks
from chainpipe.bot.outage import MESSAGE as OUTAGE_MESSAGE
from chainpipe.bot.outage import DatabaseUnavailable
from chainpipe.bot.runtime import log_refusal
from chainpipe.bot.slack_errors import describe, error_line
from chainpipe.core.aggregates import upsert
from chainpipe.core.config import Settings
from chainpipe.core.models import SeenSlackRequest
from chainpipe.core.uow import UnitOfWork
from slack_bolt.middleware.middleware import Middleware
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import IntegrityError

WINDOW = 5 * 60
SKEW = 60
PRUNE_EVERY = 64
ENVELOPE = "envelope:"
ONCE = "pipe_once"  # where the request context keeps its Once
ENVELOPE_HEADER = "x-pipe-socket-envelope-id"  # set by bot.socket_mode on socket-mode requests only
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SEEN = SeenSlackRequest.__table__


def remember_request(settings: Settings, timestamp: int, signature: str, *, prune_every: int = PRUNE_EVERY) -> bool:
    """Record an accepted request; False when it was recorded before (a replay)."""
    with UnitOfWork(settings) as uow:
        values = {"timestamp": timestamp, "signature": signature}
        if uow.dialect in ("postgresql", "sqlite"):
            seq = uow.conn.execute(_remember(uow.dialect), values).scalar()
        else:  # other databases: the unique key still refuses the second insert
            try:
                seq = uow.conn.execute(insert(_SEEN).returning(_SEEN.c.seq), values).scalar()
            except IntegrityError:
                return False
        return _keep(uow, seq, prune_every)


@functools.cache
def _remember(dialect: str):
    """Insert unless the pair is there, and say which row it made (built once per dialect)."""
    return upsert(_SEEN, dialect).on_conflict_do_nothing().returning(_SEEN.c.seq)


def remember_envelope(settings: Settings, envelope_id: str, *, prune_every: int = PRUNE_EVERY) -> bool:
    """Record a Socket Mode envelope; False when it was recorded before (Slack redelivered it)."""
    key = ENVELOPE + envelope_id
    if len(key) > 80:  # Slack's ids are UUIDs; anything longer is kept whole, as a digest
        key = ENVELOPE + "sha256:" + hashlib.sha256(envelope_id.encode("utf-8", "replace")).hexdigest()[:64]
    with UnitOfWork(settings) as uow:
        if uow.dialect == "postgresql":  # SQLite: the writer's BEGIN IMMEDIATE already serialises this
            uow.conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
        if uow.conn.execute(select(_SEEN.c.seq).where(_SEEN.c.signature == key)).first() is not None:
            return False
        received = int(uow.now().timestamp())
        seq = uow.conn.execute(insert(_SEEN).values(timestamp=received, signature=key)
                               .returning(_SEEN.c.seq)).scalar()
        return _keep(uow, seq, prune_every)


def _keep(uow: UnitOfWork, seq: int | None, prune_every: int) -> bool:
    """Commit a new record (pruning the old ones every ``prune_every``); False for none."""
    if seq is None:
        return False
    if seq % prune_every == 0:
        cutoff = int(uow.now().timestamp()) - WINDOW - SKEW
        uow.conn.execute(delete(_SEEN).where(_SEEN.c.timestamp < cutoff))
    uow.commit()
    return True


class SlackGuard(Middleware):
    def __init__(self, signing_secret: str | None, runtime, clock=time.time):
        # Without a secret (Socket Mode only) every HTTP request is refused, never checked
        # against an empty key.
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.runtime, self.clock = runtime, clock

    def process(self, *, req, resp, next):  # noqa: A002 - Bolt's name for it
        """Checks that need no database; the once-only record is made after the ack (``Once``)."""
        req.context["runtime"] = self.runtime  # how the plain listeners reach the core
        principal, command = describe(req.body)
        if req.mode == "socket_mode":
            envelope = _header(req, ENVELOPE_HEADER)
            if not envelope:
                log_refusal("slack", principal, "no envelope id", command)
                return BoltResponse(status=400, body="")
            record = functools.partial(remember_envelope, self.runtime.settings, envelope)
            req.context[ONCE] = Once(self.runtime, record, principal, command, {"envelope": envelope})
            return next()
        timestamp = _header(req, "x-slack-request-timestamp")
        signature = _header(req, "x-slack-signature")
        problem = self.check(req.raw_body, timestamp, signature)
        if problem is not None:
            log_refusal("slack", "unverified", problem, command, claimed=principal)
            return BoltResponse(status=401,
                                body={"error": "unauthorized", "message": f"Slack request refused: {problem}"})
        record = functools.partial(remember_request, self.runtime.settings, int(timestamp), signature)
        req.context[ONCE] = Once(self.runtime, record, principal, command,
                                 {"retry": _header(req, "x-slack-retry-num")})
        return next()

    def check(self, body: str, timestamp: str | None, signature: str | None) -> str | None:
        """Why the request is not from Slack, or None when it is."""
        if self.verifier is None:
            return "Slack over HTTP is off (Socket Mode only)"
        if not timestamp or not signature:
            return "missing signature"
        if not _TIMESTAMP.fullmatch(timestamp):
            return "bad timestamp"
        if abs(self.clock() - int(timestamp)) > WINDOW:
            return "stale timestamp"
        expected = self.verifier.generate_signature(timestamp=timestamp, body=body)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return "bad signature"
        return None


def _header(req, name: str) -> str | None:
    values = req.headers.get(name) or [None]
    return values[0]


class Once:
    """A verified request's work, run after its ack on the runtime's background threads: first its
    record in the database (``remember_request`` / ``remember_envelope``) — a replay or a
    redelivery stops there, logged — then the work. ``tell`` reaches the person (an ephemeral
    reply, a DM) when the database is down or the work crashed."""

    def __init__(self, runtime, record, principal: str | None, command: str | None, detail: dict):
        self.runtime, self.record = runtime, record
        self.principal, self.command, self.detail = principal, command, detail

    def __call__(self, work, tell) -> None:
        self.runtime.later(functools.partial(self.run, work, tell))

    def run(self, work, tell) -> None:
        try:
            try:
                with self.runtime.writing():
                    first = self.runtime.outage.call(self.record)
            except DatabaseUnavailable:
                tell(blocks.error_text(OUTAGE_MESSAGE))
                return
            if not first:
                log_refusal("slack", self.principal, "replay", self.command, **self.detail)
                return
            work()
        except Exception as exc:  # noqa: BLE001 - the translator tells a refusal from a crash
            with contextlib.suppress(Exception):  # Slack unreachable too: the log has the crash
                tell(error_line(exc, self.principal, self.command))


def after_ack(context, work, tell) -> None:
    """Run ``work`` once the listener has acked: once per Slack request, off the ack's path, so the
    ack never waits on the database. A listener called on its own, outside the app (no guard ran,
    nothing to record), runs it at once."""
    once = (context or {}).get(ONCE)
    if once is None:
        work()
    else:
        once(work, tell)
