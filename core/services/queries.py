"""Read-only use cases: show, list, export, stats, audit."""

from __future__ import annotations

from chainpipe.core.aggregates import COUNTS
from chainpipe.core.catalogue import DEPLOY_STATUSES, DEPLOY_STRATEGIES, PIPELINE_STATUSES, check_choice
from chainpipe.core.clock import iso
from chainpipe.core.errors import InvalidInput
from chainpipe.core.models import Approval, Artifact, AuditEvent, Deploy, MonitorEvent, Pipeline
from chainpipe.core.services.artifacts import list_artifacts
from chainpipe.core.services.audit import export_chain
from chainpipe.core.services.common import gates_of, stages_of
from chainpipe.core.services.monitoring import latest_values
from chainpipe.core.uow import Actor, UnitOfWork
from chainpipe.core.views import (
    artifact_view,
    audit_view,
    deploy_view,
    gate_view,
    monitor_event_view,
    pipeline_view,
    stage_view,
)
from sqlmodel import select


def _gates_with_decisions(uow: UnitOfWork, pipeline_id: str) -> list[dict]:
    approvals = list(uow.session.exec(
        select(Approval).where(Approval.pipeline_id == pipeline_id).order_by(Approval.seq)
    ))
    return [gate_view(g, [a for a in approvals if a.gate_id == g.id]) for g in gates_of(uow, pipeline_id)]


def show_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    pipeline = uow.get_pipeline(pipeline_id)
    deploys = uow.session.exec(
        select(Deploy).where(Deploy.pipeline_id == pipeline_id).order_by(Deploy.seq.desc()).limit(5)
    )
    return pipeline_view(pipeline) | {
        "stages": [stage_view(s) for s in stages_of(uow, pipeline_id)],
        "gates": _gates_with_decisions(uow, pipeline_id),
        "artifacts": list_artifacts(uow, actor, pipeline_id),
        "recent_deploys": [deploy_view(d) for d in deploys],
        "metrics": latest_values(uow, pipeline_id),
    }


def list_pipelines(
    uow: UnitOfWork, actor: Actor, status: str | None = None, template: str | None = None, limit: int = 20,
) -> list[dict]:
    if limit < 1 or limit > 1000:
        raise InvalidInput(f"--limit must be between 1 and 1000, got {limit}")
    stmt = select(Pipeline)
    if status:
        stmt = stmt.where(Pipeline.status == check_choice("status", status, PIPELINE_STATUSES))
    if template:
        stmt = stmt.where(Pipeline.template == check_choice("template", template, sorted(uow.settings.templates)))
    rows = uow.session.exec(stmt.order_by(Pipeline.seq.desc()).limit(limit))
    return [pipeline_view(p) for p in rows]


def export_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str, format: str = "json") -> dict | str:
    check_choice("format", format, ("json", "markdown"))
    pipeline = uow.get_pipeline(pipeline_id)

    def rows(model, order):
        return uow.session.exec(select(model).where(model.pipeline_id == pipeline_id).order_by(order))

    data = pipeline_view(pipeline) | {
        "exported_at": iso(uow.now()),
        "stages": [stage_view(s) for s in stages_of(uow, pipeline_id)],
        "gates": _gates_with_decisions(uow, pipeline_id),
        "artifacts": [artifact_view(a) for a in rows(Artifact, Artifact.seq)],
        "deploys": [deploy_view(d) for d in rows(Deploy, Deploy.seq)],
        "monitor_events": [monitor_event_view(e) for e in rows(MonitorEvent, MonitorEvent.seq)],
        "audit": [audit_view(e) for e in rows(AuditEvent, AuditEvent.seq)],
        "audit_chain": export_chain(uow, f"pipeline:{pipeline_id}"),
    }
    if format == "markdown":
        from chainpipe.core.markdown import pipeline_markdown

        return pipeline_markdown(data)
    return data


def pipeline_ids(uow: UnitOfWork, actor: Actor, prefix: str = "", limit: int = 50) -> list[str]:
    """Ids starting with ``prefix``, newest first (shell completion)."""
    stmt = select(Pipeline.id).where(Pipeline.id.startswith(prefix, autoescape=True))
    return list(uow.session.exec(stmt.order_by(Pipeline.seq.desc()).limit(limit)))


def audit_log(uow: UnitOfWork, actor: Actor, pipeline_id: str, limit: int = 50) -> list[dict]:
    uow.get_pipeline(pipeline_id)
    stmt = select(AuditEvent).where(AuditEvent.pipeline_id == pipeline_id).order_by(AuditEvent.seq.desc())
    return [audit_view(e) for e in uow.session.exec(stmt.limit(max(1, limit)))]


_COUNTS = select(COUNTS.c.name, COUNTS.c.key, COUNTS.c.n)


def pipeline_stats(
    uow: UnitOfWork, actor: Actor, since: str | None = None, until: str | None = None,
    target: str | None = None, explain: bool = False,
) -> dict:
    """Counts from the counters the write paths keep and the DORA figures of the window
    (core/aggregates.py): a few rows read, however long the history."""
    from chainpipe.core.services.dora import DEFINITIONS, dora_figures

    dora = dora_figures(uow, since=since, until=until, target=target)
    if explain:
        dora["definitions"] = dict(DEFINITIONS)
    stored: dict[str, dict[str, int]] = {}
    for name, key, n in uow.conn.execute(_COUNTS):
        stored.setdefault(name, {})[key] = n

    def counts(name: str, keys=()) -> dict:
        found = stored.get(name, {})
        return {k: found.get(k, 0) for k in keys} | {k: n for k, n in found.items() if k not in keys and n}

    by_status = counts("pipelines.status", PIPELINE_STATUSES)
    deploys_by_status = counts("deploys.status", DEPLOY_STATUSES)
    return {
        "pipelines": {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_template": counts("pipelines.template", sorted(uow.settings.templates)),
        },
        "deploys": {
            "total": sum(deploys_by_status.values()),
            "by_strategy": counts("deploys.strategy", list(DEPLOY_STRATEGIES)),
            "by_status": deploys_by_status,
        },
        "gate_decisions": counts("approvals.decision", ("approved", "rejected")),
        "artifacts": counts("artifacts").get("", 0),
        "monitor_events": counts("monitor_events").get("", 0),
        "dora": dora,
    }
