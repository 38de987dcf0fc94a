"""The outbox drainer: turns audit events (written by any process: CLI, Action, API, Slack) into
Slack posts and updates, at least once, each event once per consumer.

- gates: when a pipeline reaches a gated stage (``start``, ``stage``, ``retry``, ``resume``) the
  gate message is posted and its channel/ts stored on the gate; every later gate or pipeline event
  updates it (``chat.update``) from the gate's current state, so stale buttons disappear;
- deploys recorded, finished or rolled back, and unhealthy verdicts, are posted to the channel;
- a GitHub protection rule held on a pipeline (and its answer) shows on the gate messages, with the
  environment, ref, sha and a link to the run.

On PostgreSQL one replica at a time drains (a session advisory lock), so events of one gate are
handled in order; claims (``core.services.notifications``) keep delivery to once per event even
without it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from chainpipe.bot import blocks
from chainpipe.bot.github_blocks import held_blocks
from chainpipe.bot.outage import Outage, is_outage
from chainpipe.bot.poller import Poller
from chainpipe.core.clock import parse_iso, utcnow
from chainpipe.core.config import Settings
from chainpipe.core.services import notifications as outbox
from chainpipe.core.services import protection
from chainpipe.core.uow import UnitOfWork
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import text

log = logging.getLogger("chainpipe.notifier")
CONSUMER = "slack"
# One lock per schema, so servers on different schemas of one database do not wait for each other.
LEADER_KEY = "SELECT hashtext(current_schema() || '/chainpipe-notifier')"
POST_ACTIONS = ("start", "stage", "retry", "resume")
GATE_ENTITIES = ("gate", "deployment-request", "pipeline", "artifact")  # events that may touch gate messages
DEPLOY_FINISHED = ("succeeded", "failed", "rolled-back")


class GateMessageBusy(Exception):
    """Another drainer holds the right to post this gate's message."""


class Notifier(Poller):
    thread_name = "pipe-notifier"

    def __init__(self, settings: Settings, client: WebClient, channel: str, *, lease: float = 30.0,
                 max_age_hours: float = 24.0, batch: int = 50, poll_interval: float = 1.0,
                 outage: Outage | None = None):
        super().__init__(poll_interval=poll_interval, batch=batch, outage=outage, log=log)
        self.settings, self.client, self.channel = settings, client, channel
        self.lease, self.max_age = lease, timedelta(hours=max_age_hours)
        self._floor: int | None = None  # None: scan the whole log once (start-up)
        self._leader = None
        # What each gate message shows now (by ts), so an event that changes nothing visible
        # costs no chat.update. Lost on restart: then the first event updates once more.
        self._shown: dict[str, str] = {}
        self.delivery_failures = 0  # events whose delivery failed (retried later or given up; /metrics)
        # While a batch is delivered: the pipelines of its events that have a gate message (read once
        # for the batch, grown by what it posts). None outside a batch: every event reads its gates.
        self._messaged: set[str] | None = None

    # --- the loop (bot.poller) ------------------------------------------------------------------

    def alive(self) -> bool:
        """True while the drain loop runs (readiness, /metrics)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        super().stop()
        self._release_leader()

    def drain_once(self) -> int:
        """Claim and deliver one batch; returns how many events were handled."""
        if not self._is_leader():
            return 0
        with UnitOfWork(self.settings) as uow:
            after = 0 if self._floor is None else self._floor
            events = outbox.claim_events(uow, CONSUMER, after=after, limit=self.batch, lease_seconds=self.lease)
        claimed_at = time.monotonic()
        done: list[tuple[int, str, int]] = []
        self._messaged = self._with_messages(events)
        try:
            for event in events:
                self._deliver_one(event, done, claimed_at)
        finally:
            self._messaged = None
        self._finish(done)
        if events or self._floor is None:
            with UnitOfWork(self.settings, write=False) as uow:
                self._floor = max(0, outbox.high_water(uow, CONSUMER) - outbox.LOOKBACK)
        return len(events)

    def _deliver_one(self, event: dict, done: list[tuple[int, str, int]], claimed_at: float) -> None:
        outcome = self._deliver_safely(event)
        if not outcome.startswith(("ok", "skipped")):
            self.delivery_failures += 1
        done.append((event["seq"], outcome, event["attempt"]))
        # Outcomes are recorded together, in one transaction per batch, except: a post or update
        # that reached Slack is recorded at once (a crash right after it must not repeat it),
        # and so is everything once the batch is half its lease old (a slow Slack must not
        # outlive the claims). A skip or failure lost in a crash is only delivered again.
        if outcome.startswith("ok") or time.monotonic() - claimed_at > self.lease / 2:
            self._finish(done)

    def _with_messages(self, events: list[dict]) -> set[str] | None:
        """The pipelines among ``events``' that have a gate message, when some event may need to know
        (one read for the batch instead of a read of its gates per event)."""
        ids = [e["pipeline_id"] for e in events if e.get("pipeline_id") and e["entity"] in GATE_ENTITIES]
        if not ids:
            return None
        with UnitOfWork(self.settings, write=False) as uow:
            return outbox.pipelines_with_gate_messages(uow, ids)

    def _finish(self, done: list[tuple[int, str, int]]) -> None:
        if done:
            with UnitOfWork(self.settings) as uow:
                outbox.finish_deliveries(uow, CONSUMER, done)
            done.clear()

    # --- one replica drains at a time (PostgreSQL) ----------------------------------------------

    def _is_leader(self) -> bool:
        with UnitOfWork(self.settings, write=False) as uow:
            if uow.dialect != "postgresql":
                return True
            engine = uow.engine
        if self._leader is not None:
            try:
                self._leader.execute(text("SELECT 1"))
                self._leader.commit()
                return True
            except Exception:  # noqa: BLE001 - the connection dropped, and the lock with it
                self._release_leader()
        conn = engine.connect()
        self._key = conn.execute(text(LEADER_KEY)).scalar()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
        conn.commit()
        if got:
            self._leader = conn
        else:
            conn.close()
        return bool(got)

    def _release_leader(self) -> None:
        if self._leader is not None:
            try:
                self._leader.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._leader.commit()
                self._leader.close()
            except Exception:  # noqa: BLE001
                pass
            self._leader = None

    # --- delivery -------------------------------------------------------------------------------

    def _deliver_safely(self, event: dict) -> str:
        try:
            return self.deliver(event)
        except GateMessageBusy as exc:
            return f"gate message of {exc} is being posted by another drainer"
        except SlackApiError as exc:
            return f"slack error: {exc.response.get('error', 'unknown')}"
        except (SlackClientError, OSError) as exc:
            return f"slack unreachable: {exc.__class__.__name__}"
        except Exception as exc:  # noqa: BLE001
            if is_outage(exc):  # nothing can be recorded now; the claim's lease brings it back
                raise
            log.exception("delivering audit event %s failed", event["seq"])
            return f"error: {exc.__class__.__name__}"

    def deliver(self, event: dict) -> str:
        if utcnow() - parse_iso(event["at"]) > self.max_age:
            return "skipped: older than the outbox max age"
        entity, action = event["entity"], event["action"]
        if entity == "gate" and event.get("pipeline_id"):
            return self._sync_gates(event["pipeline_id"], only=event["entity_id"], may_post=action == "reopen")
        if entity == "deployment-request" and event.get("pipeline_id"):  # GitHub holds (or was told)
            return self._sync_gates(event["pipeline_id"], may_post=action == "request")
        if entity in ("pipeline", "artifact") and event.get("pipeline_id"):
            entered = event.get("to") if action == "stage" else None
            return self._sync_gates(event["pipeline_id"], may_post=action in POST_ACTIONS, entered=entered)
        if entity == "deploy" and (action in ("record", "rollback") or event.get("to") in DEPLOY_FINISHED):
            return self._post(*blocks.deploy_notice(event, self._deploy(event["entity_id"])))
        if self._is_alert(event):
            return self._post(*blocks.alert_notice(event))
        return "skipped: nothing to say"

    @staticmethod
    def _is_alert(event: dict) -> bool:
        data = event.get("data") or {}
        if event["action"] in ("unhealthy", "rollback"):
            return True
        return event["entity"] == "verdict" and "unhealthy" in (event.get("to"), data.get("verdict"))

    def _deploy(self, deploy_id: str) -> dict | None:
        from chainpipe.core.services.deploys import show_deploy

        try:
            with UnitOfWork(self.settings, write=False) as uow:
                return show_deploy(uow, None, deploy_id)
        except Exception:  # noqa: BLE001 - the notice still goes out with what the event says
            return None

    def _post(self, text_: str, blocks_: list[dict]) -> str:
        resp = self.client.chat_postMessage(channel=self.channel, text=text_, blocks=blocks_)
        return f"ok: posted {resp.get('ts')}"

    def _sync_gates(self, pipeline_id: str, *, only: str | None = None, may_post: bool = False,
                    entered: str | None = None) -> str:
        """Update the gates' messages; post one for a gate that has none when it is open now, or
        when this event entered its stage (even if the gate was decided before we got here)."""
        if not may_post and self._messaged is not None and pipeline_id not in self._messaged:
            return "skipped: no gate message to post or update"
        with UnitOfWork(self.settings, write=False) as uow:
            # A gate with no message yet is only posted by an event that may post: for any other
            # event its notice (and the holds) need not be read at all.
            gates = [g for g in outbox.pipeline_gates(uow, pipeline_id)
                     if only in (None, g["id"]) and (may_post or g["message"]["ts"])]
            if not gates:
                return "skipped: no gate message to post or update"
            notices = {g["id"]: outbox.gate_notice(uow, g["id"]) for g in gates}
            held = held_blocks(protection.requests_of(uow, pipeline_id))
        done = []
        for gate_id, notice in notices.items():
            text_, blocks_ = blocks.gate_message(notice)
            blocks_ = blocks_ + held
            where = notice["message"]
            rendered = json.dumps(blocks_, sort_keys=True)
            if (where["ts"] or "").startswith(outbox.POSTING):
                # Another drainer is posting this gate's message right now; come back after the
                # lease and update it, so what this event changed is shown.
                raise GateMessageBusy(gate_id)
            if where["ts"]:
                if self._shown.get(where["ts"]) == rendered:
                    continue
                self.client.chat_update(channel=where["channel"], ts=where["ts"], text=text_, blocks=blocks_)
                self._shown[where["ts"]] = rendered
                done.append(f"updated {gate_id}")
            elif may_post and (notice["open"] or entered == notice["gate"]["stage"]):
                with UnitOfWork(self.settings) as uow:
                    if not outbox.reserve_gate_message(uow, gate_id):
                        raise GateMessageBusy(gate_id)
                try:
                    resp = self.client.chat_postMessage(channel=self.channel, text=text_, blocks=blocks_)
                except Exception:
                    with UnitOfWork(self.settings) as uow:
                        outbox.release_gate_message(uow, gate_id)
                    raise
                with UnitOfWork(self.settings) as uow:
                    outbox.record_gate_message(uow, gate_id, resp["channel"], resp["ts"])
                if self._messaged is not None:
                    self._messaged.add(pipeline_id)
                self._shown[resp["ts"]] = rendered
                done.append(f"posted {gate_id}")
        return "ok: " + ", ".join(done) if done else "skipped: no gate message to post or update"


def wait_until_idle(notifier: Notifier, timeout: float = 10.0) -> None:
    """Drain until nothing is left (tests and one-shot use)."""
    deadline = time.monotonic() + timeout
    while notifier.drain_once() and time.monotonic() < deadline:
        pass
