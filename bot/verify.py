"""Every Slack request, before anything else: signed with our secret, recent, and never seen before.

``SlackGuard`` replaces Bolt's own verification (which answers 500 to a timestamp that is not a
number, and logs refused bodies) and runs first, ahead of authorisation:

- the ``X-Slack-Request-Timestamp`` must be a Unix time (ASCII digits, at most 12) within five
  minutes of now, and ``X-Slack-Signature`` the HMAC of ``v0:<timestamp>:<body>`` → else 401;
- a request whose (timestamp, signature) was already accepted is answered 200 and runs nothing.
  Slack's retries (``X-Slack-Retry-Num``) follow the same rule. The record lives in the
  database (``SeenSlackRequest``, unique on the pair), so it holds across replicas and restarts;
  rows older than the window (plus a minute for clocks that disagree) are pruned every
  ``PRUNE_EVERY`` inserts — a request that old is refused as stale anyway.

Each refusal is one ``key=value`` log line (``bot.runtime.log_refusal``); nothing is written for it.
"""

from __future__ import annotations

import hmac
import re
import time

from slack_bolt.middleware.middleware import Middleware
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bot import blocks
from bot.outage import MESSAGE as OUTAGE_MESSAGE
from bot.outage import DatabaseUnavailable
from bot.runtime import log_refusal
from bot.slack_errors import describe
from core.config import Settings
from core.models import SeenSlackRequest
from core.uow import UnitOfWork

WINDOW = 5 * 60
SKEW = 60
PRUNE_EVERY = 64
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def remember_request(settings: Settings, timestamp: int, signature: str, *, prune_every: int = PRUNE_EVERY) -> bool:
    """Record an accepted request; False when it was recorded before (a replay)."""
    table = SeenSlackRequest.__table__
    with UnitOfWork(settings) as uow:
        dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(uow.dialect)
        if dialect is not None:
            stmt = dialect.insert(table).values(timestamp=timestamp, signature=signature)
            seq = uow.session.execute(stmt.on_conflict_do_nothing().returning(table.c.seq)).scalar()
        else:  # other databases: the unique key still refuses the second insert
            try:
                seq = uow.session.execute(insert(table).values(timestamp=timestamp, signature=signature)
                                          .returning(table.c.seq)).scalar()
            except IntegrityError:
                return False
        if seq is None:
            return False
        if seq % prune_every == 0:
            cutoff = int(uow.now().timestamp()) - WINDOW - SKEW
            uow.session.execute(delete(table).where(table.c.timestamp < cutoff))
        uow.commit()
        return True


class SlackGuard(Middleware):
    def __init__(self, signing_secret: str, runtime, clock=time.time):
        self.verifier = SignatureVerifier(signing_secret)
        self.runtime, self.clock = runtime, clock

    def process(self, *, req, resp, next):  # noqa: A002 - Bolt's name for it
        req.context["runtime"] = self.runtime  # how the plain listeners reach the core
        timestamp = _header(req, "x-slack-request-timestamp")
        signature = _header(req, "x-slack-signature")
        principal, command = describe(req.body)
        problem = self.check(req.raw_body, timestamp, signature)
        if problem is not None:
            log_refusal("slack", "unverified", problem, command, claimed=principal)
            return BoltResponse(status=401,
                                body={"error": "unauthorized", "message": f"Slack request refused: {problem}"})
        try:
            first = self.runtime.outage.call(remember_request, self.runtime.settings, int(timestamp), signature)
        except DatabaseUnavailable:
            return outage_reply(req)
        if not first:
            log_refusal("slack", principal, "replay", command, retry=_header(req, "x-slack-retry-num"))
            return BoltResponse(status=200, body="")
        return next()

    def check(self, body: str, timestamp: str | None, signature: str | None) -> str | None:
        """Why the request is not from Slack, or None when it is."""
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


def outage_reply(req) -> BoltResponse:
    """Tell the person the database is down, in whatever way this kind of request allows."""
    body = req.body if isinstance(req.body, dict) else {}
    line = blocks.error_text(OUTAGE_MESSAGE)
    if "command" in body:  # a slash command: the ack itself is shown
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": line})
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    if body.get("type") == "view_submission" and view.get("callback_id") == blocks.REJECT_MODAL:
        return BoltResponse(status=200, body={"response_action": "errors", "errors": {blocks.REASON_BLOCK: line}})
    if body.get("response_url"):
        try:
            req.context.respond(response_type="ephemeral", replace_original=False, text=line)
        except Exception:  # noqa: BLE001 - Slack unreachable too; nothing ran, nothing to undo
            pass
    return BoltResponse(status=200, body="")
