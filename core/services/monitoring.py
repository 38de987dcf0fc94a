"""Monitoring events are append-only: recorded, listed, judged; never edited or deleted."""

from __future__ import annotations

import math
import re

from sqlalchemy import func
from sqlmodel import select

from core.clock import new_id
from core.config import MetricRule
from core.errors import InvalidInput, NotFound
from core.models import Deploy, MonitorEvent
from core.uow import Actor, UnitOfWork
from core.views import monitor_event_view

METRIC_RE = re.compile(r"^[a-z][a-z0-9_.]*$")
VERDICT_RANK = {"unknown": 0, "healthy": 1, "degraded": 2, "unhealthy": 3}


def parse_value(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"--value must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"--value must be a finite number, got {value!r}")
    return number


def check_metric(metric: str) -> str:
    if not METRIC_RE.match(metric or "") or len(metric) > 100:
        raise InvalidInput(f"metric name must match [a-z][a-z0-9_.]* (e.g. error_rate), got {metric!r}")
    return metric


def latest_deploy(uow: UnitOfWork, pipeline_id: str) -> Deploy | None:
    stmt = select(Deploy).where(Deploy.pipeline_id == pipeline_id).order_by(Deploy.seq.desc()).limit(1)
    return uow.session.exec(stmt).first()


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
    view = monitor_event_view(row)
    uow.commit()
    return view


def list_events(
    uow: UnitOfWork, actor: Actor, pipeline_id: str, metric: str | None = None, limit: int = 100,
) -> list[dict]:
    uow.get_pipeline(pipeline_id)
    stmt = select(MonitorEvent).where(MonitorEvent.pipeline_id == pipeline_id)
    if metric:
        stmt = stmt.where(MonitorEvent.metric == check_metric(metric))
    rows = uow.session.exec(stmt.order_by(MonitorEvent.seq.desc()).limit(max(1, limit)))
    return [monitor_event_view(e) for e in rows]


def judge(rule: MetricRule | None, value: float) -> str:
    """Health verdict of one value against absolute thresholds (inclusive)."""
    if rule is None or (rule.degraded is None and rule.unhealthy is None):
        return "unknown"
    worse = (lambda v, t: v >= t) if rule.direction == "lower" else (lambda v, t: v <= t)
    if rule.unhealthy is not None and worse(value, rule.unhealthy):
        return "unhealthy"
    if rule.degraded is not None and worse(value, rule.degraded):
        return "degraded"
    return "healthy"


def monitor_status(uow: UnitOfWork, actor: Actor, pipeline_id: str, deploy: str | None = None) -> dict:
    uow.get_pipeline(pipeline_id)
    scope = MonitorEvent.pipeline_id == pipeline_id
    if deploy:
        if uow.get_deploy(deploy).pipeline_id != pipeline_id:
            raise NotFound(f"deploy {deploy} is not a deploy of pipeline {pipeline_id}")
        scope = scope & (MonitorEvent.deploy_id == deploy)
    last = select(func.max(MonitorEvent.seq)).where(scope).group_by(MonitorEvent.metric)
    rows = uow.session.exec(select(MonitorEvent).where(MonitorEvent.seq.in_(last)).order_by(MonitorEvent.metric))
    metrics = []
    for e in rows:
        rule = uow.settings.metric_rules.get(e.metric)
        metrics.append({
            "metric": e.metric, "latest": e.value, "unit": e.unit, "verdict": judge(rule, e.value),
            "event_id": e.id, "deploy_id": e.deploy_id, "recorded_at": monitor_event_view(e)["recorded_at"],
            "rule": rule.as_dict() if rule else None,
        })
    overall = max((m["verdict"] for m in metrics), key=VERDICT_RANK.__getitem__, default="unknown")
    return {"pipeline_id": pipeline_id, "deploy_id": deploy, "verdict": overall, "metrics": metrics}
