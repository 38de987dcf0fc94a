"""Monitoring events are append-only: recorded, listed, judged; never edited or deleted.

Judging a metric (docs/monitoring.md has the user-facing version):
  verdict     the latest value of the deploy against the rule's absolute thresholds (inclusive):
              ``unhealthy`` / ``degraded`` / ``healthy``; ``unknown`` without thresholds or events.
  baseline    the mean of the same metric's events on the pipeline recorded before the deploy (the
              rule's ``baseline_window``); when there are none, the window of the previous deploy to
              the same target that did not fail or roll back.
  regression  the latest value is worse than the baseline by more than the rule's ``tolerance``.
Every reading uses the (deploy_id, metric, seq) / (pipeline_id, metric, seq) indexes with a LIMIT,
so the cost does not grow with the number of stored events.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import text, tuple_
from sqlmodel import select

from core.clock import iso, new_id
from core.errors import InvalidInput, NotFound
from core.models import Deploy, MonitorEvent, Pipeline, VerdictEvent
from core.rules.metrics import (
    MetricRule,
    change,
    check_metric,
    judge,
    parse_value,
    regression,
    sparkline,
    verdict_reason,
    worst,
)
from core.services.deploys import apply_rollback
from core.uow import Actor, UnitOfWork
from core.views import monitor_event_view

TREND_POINTS = 10
EVIDENCE_MAX = 20
# Deploys whose metrics may serve as the next deploy's baseline, and how many to look back over.
BASELINE_DEPLOY_STATUSES = ("in-progress", "succeeded")
BASELINE_DEPLOY_LOOKBACK = 5
ROLLBACK_FROM = ("in-progress", "succeeded")


# ---- reading the events ----------------------------------------------------------------------------

def latest_deploy(uow: UnitOfWork, pipeline_id: str) -> Deploy | None:
    stmt = select(Deploy).where(Deploy.pipeline_id == pipeline_id).order_by(Deploy.seq.desc()).limit(1)
    return uow.session.exec(stmt).first()


_METRICS_SQL = text("""
WITH RECURSIVE m(metric) AS (
  SELECT MIN(metric) FROM monitor_events WHERE pipeline_id = :p
  UNION ALL
  SELECT (SELECT MIN(e.metric) FROM monitor_events e WHERE e.pipeline_id = :p AND e.metric > m.metric)
  FROM m WHERE m.metric IS NOT NULL
)
SELECT metric FROM m WHERE metric IS NOT NULL
""")


def metrics_of(uow: UnitOfWork, pipeline_id: str) -> list[str]:
    """The pipeline's distinct metric names: one index seek per name, not a scan of its events."""
    return [r[0] for r in uow.session.execute(_METRICS_SQL, {"p": pipeline_id})]


MAX_SEQ = 2**31 - 1


def _slice(uow: UnitOfWork, by, key: str, metric: str, limit: int, *, below: int | None = None,
           upto: int | None = None, oldest: bool = False, where=()) -> list[MonitorEvent]:
    """Events of one (pipeline or deploy, metric), newest first (or oldest first), seq-bounded.

    The bounds are row values over the whole (by, metric, seq) index key rather than equalities:
    with equalities PostgreSQL may walk the primary key backwards and filter, which for a deploy
    with many events costs a scan of everything recorded since; a row-value range over the index
    key can only be served by that index, in its order, on both databases.
    """
    key_cols = (by, MonitorEvent.metric, MonitorEvent.seq)
    high = (key, metric, below) if below is not None else (key, metric, upto if upto is not None else MAX_SEQ)
    upper = tuple_(*key_cols) < tuple_(*high) if below is not None else tuple_(*key_cols) <= tuple_(*high)
    order = [c if oldest else c.desc() for c in key_cols]
    stmt = select(MonitorEvent).where(tuple_(*key_cols) >= tuple_(key, metric, -1), upper, *where)
    return list(uow.session.exec(stmt.order_by(*order).limit(limit)))


def latest_values(uow: UnitOfWork, pipeline_id: str) -> list[dict]:
    """The newest event of each of the pipeline's metrics (for `show`): one index seek per metric."""
    rows = (_slice(uow, MonitorEvent.pipeline_id, pipeline_id, metric, 1) for metric in metrics_of(uow, pipeline_id))
    return [monitor_event_view(r[0]) for r in rows if r]


def _window(rule: MetricRule, rows: list[MonitorEvent]) -> list[MonitorEvent]:
    """Rows are newest first; a duration window keeps those within it of the newest."""
    if rule.baseline_seconds and rows:
        since = rows[0].recorded_at - timedelta(seconds=rule.baseline_seconds)
        rows = [r for r in rows if r.recorded_at >= since]
    return rows


def find_baseline(uow: UnitOfWork, dep: Deploy, metric: str, rule: MetricRule, first_seq: int | None) -> dict | None:
    """The events the deploy is compared with, newest first, and where they came from."""
    rows = _window(rule, _slice(uow, MonitorEvent.pipeline_id, dep.pipeline_id, metric, rule.baseline_window,
                                below=first_seq, where=[MonitorEvent.recorded_at <= dep.created_at]))
    if rows:
        return {"source": "pipeline", "deploy_id": None, "rows": rows}
    earlier = uow.session.exec(
        select(Deploy).where(Deploy.target == dep.target, Deploy.created_at <= dep.created_at,
                             Deploy.seq < dep.seq, Deploy.status.in_(BASELINE_DEPLOY_STATUSES))
        .order_by(Deploy.created_at.desc(), Deploy.seq.desc()).limit(BASELINE_DEPLOY_LOOKBACK)
    )
    for prev in earlier:
        rows = _window(rule, _slice(uow, MonitorEvent.deploy_id, prev.id, metric, rule.baseline_window))
        if rows:
            return {"source": "previous-deploy", "deploy_id": prev.id, "rows": rows}
    return None


def assess(uow: UnitOfWork, pipeline_id: str, dep: Deploy | None, metric: str, rule: MetricRule | None,
           *, latest: MonitorEvent | None = None, with_trend: bool = True) -> dict:
    """One metric of one deploy (or of the pipeline, before any deploy): the monitor-status row.

    ``latest``: the newest event when the caller already holds it (monitor-record just wrote it);
    ``with_trend=False`` skips the sparkline read, which recording does not need.
    """
    by, key = (MonitorEvent.deploy_id, dep.id) if dep else (MonitorEvent.pipeline_id, pipeline_id)
    if latest is None:
        last = _slice(uow, by, key, metric, 1)
        latest = last[0] if last else None
    baseline = None
    if dep is not None and rule is not None:
        first = _slice(uow, by, key, metric, 1, oldest=True)[0].seq if latest else None
        baseline = find_baseline(uow, dep, metric, rule, first)
    base_value = sum(r.value for r in baseline["rows"]) / len(baseline["rows"]) if baseline else None
    value = latest.value if latest else None
    verdict = judge(rule, value) if latest else "unknown"
    flag, why = regression(rule, value, base_value)
    if dep is None and latest is not None and rule is not None:
        why = "no deploy yet, so nothing to compare with"
    trend = []
    if latest is not None and with_trend:
        trend = [r.value for r in reversed(_slice(uow, MonitorEvent.pipeline_id, pipeline_id, metric, TREND_POINTS,
                                                  upto=latest.seq))]
    return {
        "metric": metric,
        "unit": latest.unit if latest else None,
        "latest": value,
        "event_id": latest.id if latest else None,
        "deploy_id": dep.id if dep else None,
        "recorded_at": iso(latest.recorded_at) if latest else None,
        "baseline": base_value,
        "baseline_events": len(baseline["rows"]) if baseline else 0,
        "baseline_source": baseline["source"] if baseline else None,
        "baseline_deploy_id": baseline["deploy_id"] if baseline else None,
        "change": change(value, base_value),
        "verdict": verdict,
        "reason": verdict_reason(rule, value, verdict),
        "regression": flag,
        "regression_reason": why,
        "trend": sparkline(trend),
        "trend_values": trend,
        "rule": rule.as_dict() if rule else None,
        "evidence": ([latest.id] if latest else []) + [r.id for r in (baseline["rows"] if baseline else [])][
            :EVIDENCE_MAX],
    }


# ---- use cases -----------------------------------------------------------------------------------

def record_metric(
    uow: UnitOfWork, actor: Actor, pipeline_id: str, metric: str, value,
    deploy: str | None = None, unit: str | None = None,
) -> dict:
    check_metric(metric)
    number = parse_value(value)
    pipeline = uow.get_pipeline(pipeline_id, lock=True)
    if deploy:
        dep = uow.get_deploy(deploy)
        if dep.pipeline_id != pipeline.id:
            raise InvalidInput(f"deploy {deploy} belongs to pipeline {dep.pipeline_id}, not {pipeline.id}")
    else:
        dep = latest_deploy(uow, pipeline.id)
    row = MonitorEvent(
        id=new_id("mon"), pipeline_id=pipeline.id, deploy_id=dep.id if dep else None, metric=metric,
        value=number, unit=unit, actor=uow.settings.person(actor.name), surface=actor.surface,
        run_url=actor.run_url, recorded_at=uow.now(),
    )
    uow.add(row)
    uow.session.flush()  # the assessment below reads this event back
    assessed = assess(uow, pipeline.id, dep, metric, uow.settings.metric_rules.get(metric), latest=row,
                      with_trend=False)
    verdict = _record_verdict(uow, actor, pipeline, dep, assessed)
    rollback = _auto_rollback(uow, actor, pipeline, dep, assessed)
    view = monitor_event_view(row) | {"verdict": verdict, "rollback": rollback}
    uow.commit()
    return view


def _record_verdict(uow: UnitOfWork, actor: Actor, pipeline: Pipeline, dep: Deploy | None, a: dict) -> dict:
    """Append a VerdictEvent (and its audit event) when the metric's verdict for the deploy changes."""
    stmt = select(VerdictEvent).where(
        VerdictEvent.pipeline_id == pipeline.id, VerdictEvent.metric == a["metric"],
        VerdictEvent.deploy_id == dep.id if dep else VerdictEvent.deploy_id.is_(None),
    ).order_by(VerdictEvent.seq.desc()).limit(1)
    last = uow.session.exec(stmt).first()
    previous = last.verdict if last else "unknown"
    summary = {"metric": a["metric"], "verdict": a["verdict"], "previous": previous, "changed": False,
               "reason": a["reason"], "regression": a["regression"], "regression_reason": a["regression_reason"],
               "baseline": a["baseline"], "verdict_event_id": None}
    if a["verdict"] == previous or a["verdict"] == "unknown":
        return summary
    event = VerdictEvent(
        id=new_id("vrd"), pipeline_id=pipeline.id, deploy_id=dep.id if dep else None, metric=a["metric"],
        previous=previous, verdict=a["verdict"], regression=a["regression"],
        reason=f"{a['metric']}: {a['reason']}; {a['regression_reason']}",
        evidence=json.dumps(a["evidence"]), at=uow.now(),
    )
    uow.add(event)
    uow.audit(actor, "verdict", event.id, a["verdict"], pipeline_id=pipeline.id, from_state=previous,
              to_state=a["verdict"], reason=event.reason,
              data={"metric": a["metric"], "deploy_id": event.deploy_id, "value": a["latest"],
                    "baseline": a["baseline"], "regression": a["regression"], "evidence": a["evidence"]})
    return summary | {"changed": True, "verdict_event_id": event.id}


def _auto_rollback(uow: UnitOfWork, actor: Actor, pipeline: Pipeline, dep: Deploy | None, a: dict) -> dict | None:
    """Roll back once: the pipeline row lock is held, so the status read here is the final word."""
    if a["verdict"] != "unhealthy" or dep is None or dep.status not in ROLLBACK_FROM:
        return None
    if not uow.settings.auto_rollback.applies(dep.target, pipeline.template):
        return None
    reason = (f"auto_rollback: {a['metric']} unhealthy ({a['reason']}); "
              f"evidence: {', '.join(a['evidence'][:5])}")
    return apply_rollback(uow, actor, dep, reason)


def list_events(
    uow: UnitOfWork, actor: Actor, pipeline_id: str, metric: str | None = None, limit: int = 100,
) -> list[dict]:
    uow.get_pipeline(pipeline_id)
    stmt = select(MonitorEvent).where(MonitorEvent.pipeline_id == pipeline_id)
    if metric:
        stmt = stmt.where(MonitorEvent.metric == check_metric(metric))
    rows = uow.session.exec(stmt.order_by(MonitorEvent.seq.desc()).limit(max(1, limit)))
    return [monitor_event_view(e) for e in rows]


def monitor_status(uow: UnitOfWork, actor: Actor, pipeline_id: str, deploy: str | None = None) -> dict:
    uow.get_pipeline(pipeline_id)
    if deploy:
        dep = uow.get_deploy(deploy)
        if dep.pipeline_id != pipeline_id:
            raise NotFound(f"deploy {deploy} is not a deploy of pipeline {pipeline_id}")
    else:
        dep = latest_deploy(uow, pipeline_id)
    rules = uow.settings.metric_rules
    metrics = [assess(uow, pipeline_id, dep, m, rules.get(m)) for m in metrics_of(uow, pipeline_id)]
    overall = worst(m["verdict"] for m in metrics)
    culprit = next((m for m in metrics if m["verdict"] == overall and overall != "unknown"), None)
    return {
        "pipeline_id": pipeline_id,
        "deploy_id": dep.id if dep else None,
        "deploy_status": dep.status if dep else None,
        "target": dep.target if dep else None,
        "verdict": overall,
        "reason": f"{culprit['metric']}: {culprit['reason']}" if culprit else None,
        "regression": any(m["regression"] for m in metrics),
        "metrics": metrics,
    }
