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
from functools import cache

from chainpipe.core.clock import iso, new_id
from chainpipe.core.errors import InvalidInput, NotFound
from chainpipe.core.models import MonitorEvent, Pipeline, UTCDateTime, VerdictEvent
from chainpipe.core.records import Record
from chainpipe.core.rules.metrics import (
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
from chainpipe.core.services.deploys import apply_rollback
from chainpipe.core.services.dora import deployment_changed
from chainpipe.core.uow import DEPLOYS, PIPELINES, Actor, Also, UnitOfWork
from chainpipe.core.views import monitor_event_view
from sqlalchemy import bindparam, func, literal, select, text, tuple_

TREND_POINTS = 10
EVIDENCE_MAX = 20
# Deploys whose metrics may serve as the next deploy's baseline, and how many to look back over.
BASELINE_DEPLOY_STATUSES = ("in-progress", "succeeded")
BASELINE_DEPLOY_LOOKBACK = 5
ROLLBACK_FROM = ("in-progress", "succeeded")
WENT_OUT = ("succeeded", "rolled-back")  # with a verdict, only these statuses have DORA facts
EVENTS, VERDICTS = MonitorEvent.__table__, VerdictEvent.__table__
MAX_SEQ = 2**31 - 1


# ---- reading the events ----------------------------------------------------------------------------

_LATEST_DEPLOY = select(DEPLOYS).where(DEPLOYS.c.pipeline_id == bindparam("p")).order_by(DEPLOYS.c.seq.desc()).limit(1)
_DEPLOY_COLUMNS = [c.name for c in DEPLOYS.c]
_EARLIER = DEPLOYS.alias("earlier")
LATEST_DEPLOY = Also(tuple(DEPLOYS.c), ((DEPLOYS, DEPLOYS.c.seq == select(func.max(_EARLIER.c.seq)).where(
    _EARLIER.c.pipeline_id == PIPELINES.c.id).correlate(PIPELINES).scalar_subquery()),))


def latest_deploy(uow: UnitOfWork, pipeline_id: str) -> Record | None:
    return uow.record(DEPLOYS, _LATEST_DEPLOY, {"p": pipeline_id})


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
    return [r[0] for r in uow.conn.execute(_METRICS_SQL, {"p": pipeline_id})]


@cache
def _slice_statement(by: str, inclusive: bool, oldest: bool):
    """Events of one (``by``, metric), bounded by seq, newest (or oldest) first, LIMIT :n.

    The bounds are row values over the whole (by, metric, seq) index key rather than equalities:
    with equalities PostgreSQL may walk the primary key backwards and filter, which for a deploy
    with many events costs a scan of everything recorded since; a row-value range over the index
    key can only be served by that index, in its order, on both databases.
    """
    key = (EVENTS.c[by], EVENTS.c.metric, EVENTS.c.seq)
    high = tuple_(bindparam("key"), bindparam("metric"), bindparam("seq"))
    upper = tuple_(*key) <= high if inclusive else tuple_(*key) < high
    lower = tuple_(*key) >= tuple_(bindparam("key"), bindparam("metric"), literal(-1))
    order = [c if oldest else c.desc() for c in key]
    return select(EVENTS).where(lower, upper).order_by(*order).limit(bindparam("n"))


def _slice(uow: UnitOfWork, by, key: str, metric: str, limit: int, *, below: int | None = None,
           upto: int | None = None, oldest: bool = False) -> list:
    """Events of one (pipeline or deploy, metric), newest first (or oldest first), seq-bounded."""
    stmt = _slice_statement(by.key, below is None, oldest)
    seq = below if below is not None else (upto if upto is not None else MAX_SEQ)
    return list(uow.conn.execute(stmt, {"key": key, "metric": metric, "seq": seq, "n": limit}))


def latest_values(uow: UnitOfWork, pipeline_id: str) -> list[dict]:
    """The newest event of each of the pipeline's metrics (for `show`): one index seek per metric."""
    rows = (_slice(uow, MonitorEvent.pipeline_id, pipeline_id, metric, 1) for metric in metrics_of(uow, pipeline_id))
    return [monitor_event_view(r[0]) for r in rows if r]


def _window(rule: MetricRule, rows: list) -> list:
    """Rows are newest first; a duration window keeps those within it of the newest."""
    if rule.baseline_seconds and rows:
        since = rows[0].recorded_at - timedelta(seconds=rule.baseline_seconds)
        rows = [r for r in rows if r.recorded_at >= since]
    return rows


# The baseline candidates in one read: the pipeline's events of the metric recorded before the
# deploy (before its first event of the metric, and no later than its creation), newest first; and
# the newest events of the first of the few previous deploys to the same target (that did not fail
# or roll back) having any, for when the pipeline has none. Row-value bounds: see _slice_statement.
_BASELINE_SQL = """
SELECT * FROM (
  SELECT 'pipeline' AS source, e.deploy_id, e.id, e.seq, e.value, e.recorded_at FROM monitor_events e
  WHERE (e.pipeline_id, e.metric, e.seq) >= (:p, :m, -1)
    AND (e.pipeline_id, e.metric, e.seq) < (:p, :m, COALESCE(:first, (
          SELECT MIN(f.seq) FROM monitor_events f WHERE f.deploy_id = :d AND f.metric = :m), :max))
    AND e.recorded_at <= :created
  ORDER BY e.pipeline_id DESC, e.metric DESC, e.seq DESC LIMIT :n
) AS here
UNION ALL
SELECT * FROM (
  SELECT 'previous-deploy', e.deploy_id, e.id, e.seq, e.value, e.recorded_at FROM monitor_events e
  WHERE (e.deploy_id, e.metric, e.seq) >= ((SELECT id FROM earlier), :m, -1)
    AND (e.deploy_id, e.metric, e.seq) <= ((SELECT id FROM earlier), :m, :max)
  ORDER BY e.deploy_id DESC, e.metric DESC, e.seq DESC LIMIT :n
) AS before
"""
_EARLIER = """
WITH earlier AS (
  SELECT id FROM (
    SELECT d.id, d.created_at, d.seq FROM deploys d
    WHERE d.target = :t AND d.created_at <= :created AND d.seq < :dseq AND d.status IN ({statuses})
    ORDER BY d.created_at DESC, d.seq DESC LIMIT {lookback}
  ) AS recent
  WHERE EXISTS (SELECT 1 FROM monitor_events x WHERE x.deploy_id = recent.id AND x.metric = :m)
  ORDER BY created_at DESC, seq DESC LIMIT 1
)"""
_BASELINE = text(
    _EARLIER.format(statuses=", ".join(f"'{s}'" for s in BASELINE_DEPLOY_STATUSES), lookback=BASELINE_DEPLOY_LOOKBACK)
    + _BASELINE_SQL
).bindparams(bindparam("created", type_=UTCDateTime()), bindparam("first", type_=EVENTS.c.seq.type),
             bindparam("max", MAX_SEQ)).columns(recorded_at=UTCDateTime())


def find_baseline(uow: UnitOfWork, dep, metric: str, rule: MetricRule, first_seq: int | None = None) -> dict | None:
    """The events the deploy is compared with, newest first, and where they came from. ``first_seq``:
    the seq of the deploy's first event of the metric when the caller has it (else it is looked up)."""
    rows = list(uow.conn.execute(_BASELINE, {
        "p": dep.pipeline_id, "m": metric, "d": dep.id, "first": first_seq, "created": dep.created_at,
        "n": rule.baseline_window, "t": dep.target, "dseq": dep.seq,
    }))
    for source in ("pipeline", "previous-deploy"):
        found = _window(rule, [r for r in rows if r.source == source])
        if found:
            return {"source": source, "deploy_id": found[0].deploy_id if source != "pipeline" else None,
                    "rows": found}
    return None


def assess(uow: UnitOfWork, pipeline_id: str, dep, metric: str, rule: MetricRule | None,
           *, latest=None, with_trend: bool = True) -> dict:
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
        baseline = find_baseline(uow, dep, metric, rule)
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
    if deploy:
        pipeline = uow.get_pipeline(pipeline_id, lock=True)
        dep = uow.get_deploy(deploy)
        if dep.pipeline_id != pipeline.id:
            raise InvalidInput(f"deploy {deploy} belongs to pipeline {dep.pipeline_id}, not {pipeline.id}")
    else:
        pipeline, rows = uow.get_pipeline_with(pipeline_id, LATEST_DEPLOY)
        dep = uow.track(Record(DEPLOYS, dict(zip(_DEPLOY_COLUMNS, rows[0], strict=True)))) if rows[0][0] else None
    row = uow.insert(EVENTS, {
        "id": new_id("mon"), "pipeline_id": pipeline.id, "deploy_id": dep.id if dep else None, "metric": metric,
        "value": number, "unit": unit, "actor": uow.settings.person(actor.name), "surface": actor.surface,
        "run_url": actor.run_url, "recorded_at": uow.now(),
    })
    assessed = assess(uow, pipeline.id, dep, metric, uow.settings.metric_rules.get(metric), latest=row,
                      with_trend=False)
    verdict = _record_verdict(uow, actor, pipeline, dep, assessed)
    rollback = _auto_rollback(uow, actor, pipeline, dep, assessed)
    if verdict["changed"] and verdict["verdict"] == "unhealthy" and dep is not None \
            and dep.status in WENT_OUT:
        deployment_changed(uow, dep)  # a deployment judged unhealthy has failed (DORA)
    view = monitor_event_view(row) | {"verdict": verdict, "rollback": rollback}
    uow.commit()
    return view


_LAST_VERDICT = (select(VERDICTS.c.verdict)
                 .where(VERDICTS.c.pipeline_id == bindparam("p"), VERDICTS.c.metric == bindparam("m"))
                 .order_by(VERDICTS.c.seq.desc()).limit(1))
_LAST_VERDICT_OF = {True: _LAST_VERDICT.where(VERDICTS.c.deploy_id == bindparam("d")),
                    False: _LAST_VERDICT.where(VERDICTS.c.deploy_id.is_(None))}


def _record_verdict(uow: UnitOfWork, actor: Actor, pipeline: Pipeline, dep, a: dict) -> dict:
    """Append a VerdictEvent (and its audit event) when the metric's verdict for the deploy changes."""
    params = {"p": pipeline.id, "m": a["metric"]} | ({"d": dep.id} if dep else {})
    previous = uow.conn.execute(_LAST_VERDICT_OF[dep is not None], params).scalar() or "unknown"
    summary = {"metric": a["metric"], "verdict": a["verdict"], "previous": previous, "changed": False,
               "reason": a["reason"], "regression": a["regression"], "regression_reason": a["regression_reason"],
               "baseline": a["baseline"], "verdict_event_id": None}
    if a["verdict"] == previous or a["verdict"] == "unknown":
        return summary
    event = uow.insert(VERDICTS, {
        "id": new_id("vrd"), "pipeline_id": pipeline.id, "deploy_id": dep.id if dep else None,
        "metric": a["metric"], "previous": previous, "verdict": a["verdict"], "regression": a["regression"],
        "reason": f"{a['metric']}: {a['reason']}; {a['regression_reason']}", "evidence": json.dumps(a["evidence"]),
        "at": uow.now(),
    })
    uow.audit(actor, "verdict", event.id, a["verdict"], pipeline_id=pipeline.id, from_state=previous,
              to_state=a["verdict"], reason=event.reason,
              data={"metric": a["metric"], "deploy_id": event.deploy_id, "value": a["latest"],
                    "baseline": a["baseline"], "regression": a["regression"], "evidence": a["evidence"]})
    return summary | {"changed": True, "verdict_event_id": event.id}


def _auto_rollback(uow: UnitOfWork, actor: Actor, pipeline: Pipeline, dep, a: dict) -> dict | None:
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
    stmt = select(EVENTS).where(EVENTS.c.pipeline_id == pipeline_id)
    if metric:
        stmt = stmt.where(EVENTS.c.metric == check_metric(metric))
    rows = uow.conn.execute(stmt.order_by(EVENTS.c.seq.desc()).limit(max(1, limit)))
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
