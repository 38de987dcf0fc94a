"""What the server tells the outside world, read from the audit log (the outbox).

The notifier claims audit events for a consumer (e.g. ``slack``) by inserting an ``OutboxDelivery``
row per event — unique on (consumer, audit_seq), so two replicas never claim the same event — then
delivers them and records the outcome. A claim that is never finished (the process died between
claim and post) goes stale after a lease and is claimed again: delivery is at least once, and with
a live claimant exactly once.

``OutboxDelivery.result`` is ``claimed`` → ``ok`` | ``skipped`` | ``retry <n>: <error>`` → … →
``failed: <error>``; ``delivered_at`` is the time of the row's last change.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from chainpipe.core.aggregates import upsert
from chainpipe.core.models import Artifact, AuditEvent, Gate, OutboxDelivery
from chainpipe.core.rules.gates import gate_state
from chainpipe.core.services.common import gates_of
from chainpipe.core.uow import UnitOfWork
from chainpipe.core.views import artifact_view, audit_view, gate_view, pipeline_view
from sqlalchemy import and_, bindparam, func, or_, update
from sqlmodel import select

MAX_ATTEMPTS = 5
# Events committed out of seq order (PostgreSQL sequences) can appear below the highest delivered
# seq; scanning this far back catches them without scanning the whole log on every poll.
LOOKBACK = 1000


def high_water(uow: UnitOfWork, consumer: str) -> int:
    return uow.conn.execute(_HIGH_WATER, {"consumer": consumer}).scalar() or 0


def claim_events(uow: UnitOfWork, consumer: str, *, after: int = 0, limit: int = 50, lease_seconds: float = 30.0,
                 pipeline_id: str | None = None):
    """Claim up to ``limit`` undelivered events with seq > ``after``; returns them as audit views.

    With ``pipeline_id`` only that pipeline's events are claimed: a workflow run drains what
    concerns its own pipeline and leaves the rest to other claimants.

    One read of the candidates, one ``INSERT … ON CONFLICT DO NOTHING … RETURNING`` for the events
    never claimed (a row another claimant inserted first is not returned, so it is not ours), a
    conditional update per stale claim or due retry, one commit.
    """
    now = uow.now()
    stale_before = now - timedelta(seconds=lease_seconds)
    params = {"consumer": consumer, "after": after, "stale_before": stale_before, "limit": limit}
    if pipeline_id is None:
        rows = uow.conn.execute(_CLAIMABLE, params).all()
    else:
        rows = uow.conn.execute(_CLAIMABLE_OF_PIPELINE, params | {"pipeline_id": pipeline_id}).all()
    fresh = [row.seq for row in rows if row.claim is None]
    ours = _insert_claims(uow, consumer, fresh, now) if fresh else set()
    claimed = []
    for row in rows:
        if row.claim is None:
            ok = row.seq in ours
        else:
            ok = _reclaim(uow, row.claim, row.claim_result, stale_before, now)
        if ok:
            claimed.append(audit_view(row) | {"attempt": _attempt(row.claim_result)})
    uow.commit()
    return claimed


_DELIVERY = OutboxDelivery.__table__
_CANDIDATES = (
    select(*(AuditEvent.__table__.c[name] for name in (
        "seq", "at", "actor", "surface", "entity", "entity_id", "pipeline_id", "action", "from_state",
        "to_state", "reason", "run_url", "data", "principal", "on_behalf_of")),
        _DELIVERY.c.seq.label("claim"), _DELIVERY.c.result.label("claim_result"))
    .join(_DELIVERY, and_(_DELIVERY.c.consumer == bindparam("consumer"), _DELIVERY.c.audit_seq == AuditEvent.seq),
          isouter=True)
    .order_by(AuditEvent.seq)
)
# Never delivered, or claimed / due for a retry and older than the lease (statements built once).
_CLAIMABLE = _CANDIDATES.where(
    AuditEvent.seq > bindparam("after"),
    or_(_DELIVERY.c.seq.is_(None),
        and_(or_(_DELIVERY.c.result == "claimed", _DELIVERY.c.result.like("retry %")),
             _DELIVERY.c.delivered_at < bindparam("stale_before"))),
).limit(bindparam("limit"))
_CLAIMABLE_OF_PIPELINE = _CLAIMABLE.where(AuditEvent.pipeline_id == bindparam("pipeline_id"))
_HIGH_WATER = select(func.max(_DELIVERY.c.audit_seq)).where(_DELIVERY.c.consumer == bindparam("consumer"))


def _attempt(result: str | None) -> int:
    if not (result or "").startswith("retry "):
        return 1
    return int(result.split()[1].rstrip(":")) + 1


def _insert_claims(uow: UnitOfWork, consumer: str, seqs: list[int], now) -> set[int]:
    """Insert a claim per event in one statement; the seqs whose claim is ours.

    In seq order, so two claimants inserting overlapping batches on PostgreSQL wait for each other
    in one order (the later one's conflicting rows become no-ops once the first commits). One
    statement per dialect, compiled once: SQLAlchemy sends the rows as one multi-row INSERT.
    """
    rows = [{"consumer": consumer, "audit_seq": seq, "delivered_at": now, "result": "claimed"} for seq in seqs]
    return set(uow.conn.execute(_claim_statement(uow.dialect), rows).scalars())


@cache
def _claim_statement(dialect: str):
    return (upsert(_DELIVERY, dialect).on_conflict_do_nothing(index_elements=["consumer", "audit_seq"])
            .returning(_DELIVERY.c.audit_seq))


def _reclaim(uow: UnitOfWork, claim: int, result: str, stale_before, now) -> bool:
    # A conditional update: of two replicas re-claiming one stale row, only one changes it.
    changed = uow.conn.execute(
        update(_DELIVERY)
        .where(_DELIVERY.c.seq == claim, _DELIVERY.c.result == result, _DELIVERY.c.delivered_at < stale_before)
        .values(delivered_at=now, result="claimed")
    )
    return changed.rowcount == 1


def finish_deliveries(uow: UnitOfWork, consumer: str, outcomes: list[tuple[int, str, int]]) -> list[str]:
    """Record how delivering events went, ``(audit_seq, outcome, attempt)`` each, in one transaction
    (one executemany UPDATE); the results recorded, in order."""
    now = uow.now()
    results = [_result_of(outcome, attempt) for _, outcome, attempt in outcomes]
    if outcomes:
        uow.conn.execute(_FINISH, [{"c": consumer, "s": seq, "r": result, "at": now}
                                   for (seq, _, _), result in zip(outcomes, results, strict=True)])
    uow.commit()
    return results


_FINISH = (
    update(_DELIVERY)
    .where(_DELIVERY.c.consumer == bindparam("c"), _DELIVERY.c.audit_seq == bindparam("s"))
    .values(result=bindparam("r"), delivered_at=bindparam("at"))
)


def _result_of(outcome: str, attempt: int) -> str:
    if outcome.startswith(("ok", "skipped")):
        result = outcome
    elif attempt >= MAX_ATTEMPTS:
        result = f"failed: {outcome}"
    else:
        result = f"retry {attempt}: {outcome}"
    return result[:500]


def delivery_results(uow: UnitOfWork, consumer: str) -> dict[int, str]:
    rows = uow.session.exec(select(OutboxDelivery).where(OutboxDelivery.consumer == consumer))
    return {r.audit_seq: r.result for r in rows}


# --- gate messages ---------------------------------------------------------------------------


def gate_notice(uow: UnitOfWork, gate_id: str) -> dict | None:
    """Everything a gate message shows: pipeline, gate with its decisions, latest artifacts."""
    from chainpipe.core.services.gates import _decisions

    gate = uow.session.exec(select(Gate).where(Gate.id == gate_id)).first()
    if gate is None:
        return None
    pipeline = uow.get_pipeline(gate.pipeline_id)
    latest: dict[str, Artifact] = {}
    for a in uow.session.exec(select(Artifact).where(Artifact.pipeline_id == pipeline.id).order_by(Artifact.seq)):
        latest[a.name] = a
    return {
        "pipeline": pipeline_view(pipeline),
        "gate": gate_view(gate, _decisions(uow, gate)),
        "artifacts": [artifact_view(a) for a in latest.values()],
        "message": {"channel": gate.message_channel, "ts": gate.message_ts},
        "open": gate_state(pipeline, gate) == "open",
    }


def pipelines_with_gate_messages(uow: UnitOfWork, pipeline_ids) -> set[str]:
    """Of ``pipeline_ids``, those with a gate whose message is posted (or being posted), in one read:
    an event of any other pipeline has no message to update."""
    ids = sorted(set(pipeline_ids))
    return set(uow.conn.execute(_MESSAGED, {"ids": ids}).scalars()) if ids else set()


_GATES = Gate.__table__
_MESSAGED = (select(_GATES.c.pipeline_id).distinct()
             .where(_GATES.c.pipeline_id.in_(bindparam("ids", expanding=True)), _GATES.c.message_ts.is_not(None)))


def pipeline_gates(uow: UnitOfWork, pipeline_id: str) -> list[dict]:
    return [gate_view(g) | {"message": {"channel": g.message_channel, "ts": g.message_ts}}
            for g in gates_of(uow, pipeline_id)]


POSTING = "posting:"
POSTING_LEASE = timedelta(seconds=60)


def reserve_gate_message(uow: UnitOfWork, gate_id: str) -> bool:
    """Take the right to post a gate's message (a conditional update: one drainer wins).

    The reservation is ``message_ts = "posting:<epoch>"``; one older than POSTING_LEASE was left
    by a drainer that died before posting, and can be taken over.
    """
    gate = uow.session.exec(select(Gate).where(Gate.id == gate_id)).first()
    current = gate.message_ts if gate else None
    if current is not None and not _abandoned(uow, current):
        return False
    taken = uow.session.execute(
        update(Gate).where(Gate.id == gate_id, Gate.message_ts.is_(None) if current is None
                           else Gate.message_ts == current)
        .values(message_ts=f"{POSTING}{uow.now().timestamp():.0f}")
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    uow.commit()
    return taken


def _abandoned(uow: UnitOfWork, ts: str) -> bool:
    if not ts.startswith(POSTING):
        return False
    return uow.now().timestamp() - float(ts[len(POSTING):]) > POSTING_LEASE.total_seconds()


def release_gate_message(uow: UnitOfWork, gate_id: str) -> None:
    uow.session.execute(update(Gate).where(Gate.id == gate_id, Gate.message_ts.like(POSTING + "%"))
                        .values(message_ts=None).execution_options(synchronize_session=False))
    uow.commit()


def record_gate_message(uow: UnitOfWork, gate_id: str, channel: str, ts: str) -> None:
    gate = uow.session.exec(select(Gate).where(Gate.id == gate_id)).first()
    gate.message_channel, gate.message_ts = channel, ts
    uow.commit()

