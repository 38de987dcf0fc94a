"""Read models: rows turned into plain, JSON-ready dicts. The ``--json`` shapes are defined here."""

from __future__ import annotations

import json

from chainpipe.core.clock import iso
from chainpipe.core.models import Approval, Artifact, AuditEvent, Deploy, Gate, MonitorEvent, Pipeline, Stage


def pipeline_view(p: Pipeline) -> dict:
    return {
        "id": p.id,
        "name": p.name,
        "template": p.template,
        "status": p.status,
        "current_stage": p.current_stage,
        "created_by": p.created_by,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "started_at": iso(p.started_at),
        "finished_at": iso(p.finished_at),
        "reason": p.reason,
    }


def stage_view(s: Stage) -> dict:
    return {
        "id": s.id,
        "name": s.name,
        "position": s.position,
        "status": s.status,
        "started_at": iso(s.started_at),
        "finished_at": iso(s.finished_at),
    }


def approval_view(a: Approval) -> dict:
    return {
        "decision": a.decision,
        "actor": a.actor,
        "person": a.person,
        "surface": a.surface,
        "reason": a.reason,
        "round": a.round,
        "run_url": a.run_url,
        "at": iso(a.created_at),
        "principal": a.principal,
        "on_behalf_of": a.on_behalf_of,
        "covered": json.loads(a.covered or "[]"),
    }


def gate_view(g: Gate, approvals: list[Approval] | None = None) -> dict:
    view = {
        "id": g.id,
        "pipeline_id": g.pipeline_id,
        "name": g.name,
        "stage": g.stage,
        "status": g.status,
        "round": g.round,
        "required_approvals": g.required_approvals,
        "decided_at": iso(g.decided_at),
        "decided_by": g.decided_by,
        "reason": g.reason,
    }
    if approvals is not None:
        decisions = [approval_view(a) for a in approvals]
        view["approvals"] = [v for a, v in zip(approvals, decisions, strict=True)
                             if a.round == g.round and a.decision == "approved"]
        view["decisions"] = decisions
    return view


def artifact_view(a: Artifact) -> dict:
    return {
        "id": a.id,
        "pipeline_id": a.pipeline_id,
        "name": a.name,
        "version": a.version,
        "type": a.type,
        "stage": a.stage,
        "path": a.path,
        "uri": a.uri,
        "digest": a.digest,
        "size": a.size,
        "created_by": a.created_by,
        "surface": a.surface,
        "run_url": a.run_url,
        "created_at": iso(a.created_at),
    }


def deploy_view(d: Deploy) -> dict:
    return {
        "id": d.id,
        "pipeline_id": d.pipeline_id,
        "strategy": d.strategy,
        "target": d.target,
        "status": d.status,
        "artifact": (
            {"id": d.artifact_id, "name": d.artifact_name, "version": d.artifact_version}
            if d.artifact_id
            else None
        ),
        "ref": d.ref,
        "created_by": d.created_by,
        "surface": d.surface,
        "run_url": d.run_url,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "finished_at": iso(d.finished_at),
        "rolled_back_at": iso(d.rolled_back_at),
        "rolled_back_by": d.rolled_back_by,
        "rollback_reason": d.rollback_reason,
        "external_id": d.external_id,
        "evidence": json.loads(d.evidence) if d.evidence else None,
    }


def monitor_event_view(e: MonitorEvent) -> dict:
    return {
        "id": e.id,
        "pipeline_id": e.pipeline_id,
        "deploy_id": e.deploy_id,
        "metric": e.metric,
        "value": e.value,
        "unit": e.unit,
        "actor": e.actor,
        "surface": e.surface,
        "run_url": e.run_url,
        "recorded_at": iso(e.recorded_at),
    }


def audit_view(e: AuditEvent) -> dict:
    return {
        "seq": e.seq,
        "at": iso(e.at),
        "actor": e.actor,
        "surface": e.surface,
        "entity": e.entity,
        "entity_id": e.entity_id,
        "pipeline_id": e.pipeline_id,
        "action": e.action,
        "from": e.from_state,
        "to": e.to_state,
        "reason": e.reason,
        "run_url": e.run_url,
        "data": json.loads(e.data or "{}"),
        "principal": e.principal,
        "on_behalf_of": e.on_behalf_of,
    }
