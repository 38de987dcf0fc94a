"""Deploy records. The orchestrator records deploys; an external executor (usually the GitHub
Action) does the work and reports status. Rollback is idempotent."""

from __future__ import annotations

import json

from chainpipe.core.catalogue import DEPLOY_STATUSES, DEPLOY_STRATEGIES, check_choice
from chainpipe.core.clock import new_id
from chainpipe.core.errors import InvalidInput
from chainpipe.core.machine import DEPLOY, PIPELINE, fire
from chainpipe.core.records import Record
from chainpipe.core.rules.evidence import deploy_evidence, deploy_refusal, deployer_refusal, reviewed_versions
from chainpipe.core.services.artifacts import get_artifact
from chainpipe.core.services.common import (
    LAYOUT,
    approved_now,
    approvers_by_gate,
    collect,
    covered_by_gate,
    latest_artifacts,
    move_stage,
    require_gates_approved,
)
from chainpipe.core.services.dora import deployment_changed
from chainpipe.core.uow import DEPLOYS, Actor, UnitOfWork
from chainpipe.core.views import deploy_view
from sqlalchemy import bindparam, select

_DEPLOYS_OF = select(DEPLOYS).where(DEPLOYS.c.pipeline_id == bindparam("p")).order_by(DEPLOYS.c.seq.desc())

INITIAL_STATUSES = ("pending", "in-progress", "succeeded", "failed")
# deploy-update --status X fires this trigger
STATUS_TRIGGERS = {"pending": "restart", "in-progress": "start", "succeeded": "succeed", "failed": "fail",
                   "rolled-back": "rollback"}
FINISHED = ("succeeded", "failed", "rolled-back")


def record_deploy(
    uow: UnitOfWork, actor: Actor, pipeline_id: str, strategy: str, target: str,
    artifact: str | None = None, ref: str | None = None, status: str = "in-progress",
) -> dict:
    check_choice("strategy", strategy, list(DEPLOY_STRATEGIES))
    check_choice("deploy status", status, INITIAL_STATUSES)
    target = (target or "").strip()
    if not target:
        raise InvalidInput("a deploy needs a non-empty --target")
    pipeline, rows = uow.get_pipeline_with(pipeline_id, LAYOUT)
    fire(PIPELINE, pipeline, "deploy")
    found = collect(uow, rows, with_stages=True)
    require_gates_approved(found.gates)
    art = get_artifact(uow, pipeline.id, artifact) if artifact else None
    evidence = _review_evidence(uow, actor, pipeline.id, art, approved_now(found.gates, found.decisions))
    positions = {s.name: s.position for s in found.stages}
    if "deploy" in positions and positions["deploy"] > positions[pipeline.current_stage]:
        move_stage(uow, actor, pipeline, "deploy", None, found=found)
    now = uow.now()
    row = Record(DEPLOYS, {
        "id": new_id("dep"), "pipeline_id": pipeline.id, "strategy": strategy, "target": target,
        "artifact_id": art.id if art else None, "artifact_name": art.name if art else None,
        "artifact_version": art.version if art else None, "ref": ref, "status": DEPLOY.initial,
        "created_by": uow.settings.person(actor.name), "surface": actor.surface, "run_url": actor.run_url,
        "created_at": now, "updated_at": now, "finished_at": None, "evidence": json.dumps(evidence, sort_keys=True),
    })
    if status != DEPLOY.initial:
        fire(DEPLOY, row, STATUS_TRIGGERS[status])
    if status in FINISHED:
        row.finished_at = now
    row = uow.insert(DEPLOYS, row.as_dict())
    if row.status == "succeeded":
        deployment_changed(uow, row)
    uow.audit(actor, "deploy", row.id, "record", pipeline_id=pipeline.id, to_state=row.status,
              data={"strategy": strategy, "target": target, "ref": ref,
                    "artifact": f"{art.name}@{art.version}" if art else None})
    view = deploy_view(row)
    uow.commit()
    return view


def _review_evidence(uow: UnitOfWork, actor: Actor, pipeline_id: str, art, pairs: list[tuple]) -> dict:
    """Refuse a deploy of an unreviewed version or by one of the approvers (when the policy says so);
    return what was reviewed and what was built after review, for the deploy record."""
    covered = covered_by_gate(pairs)
    reviewed = reviewed_versions(covered)
    refusal = (deploy_refusal(art.name, art.version, reviewed) if art else None) or deployer_refusal(
        uow.settings.person(actor.name), approvers_by_gate(pairs), uow.settings.separation)
    if refusal is not None:
        raise refusal
    return deploy_evidence(latest_artifacts(uow, pipeline_id), reviewed, covered)


def update_deploy(uow: UnitOfWork, actor: Actor, deploy_id: str, status: str, reason: str | None = None) -> dict:
    check_choice("deploy status", status, DEPLOY_STATUSES)
    if status == "rolled-back":
        return rollback_deploy(uow, actor, deploy_id, reason)
    row = uow.get_deploy(deploy_id, lock=True)
    if row.status == status:
        # Executors retry; reporting the same status twice is not an error.
        return deploy_view(row) | {"changed": False}
    before, after = fire(DEPLOY, row, STATUS_TRIGGERS[status])
    row.updated_at = uow.now()
    if after in FINISHED:
        row.finished_at = row.updated_at
    if after == "succeeded":
        deployment_changed(uow, row)
    uow.audit(actor, "deploy", row.id, "update", pipeline_id=row.pipeline_id, from_state=before, to_state=after,
              reason=reason)
    view = deploy_view(row) | {"changed": True}
    uow.commit()
    return view


def rollback_deploy(uow: UnitOfWork, actor: Actor, deploy_id: str, reason: str | None = None) -> dict:
    view = apply_rollback(uow, actor, uow.get_deploy(deploy_id, lock=True), reason)
    if view["changed"]:
        uow.commit()
    return view


def apply_rollback(uow: UnitOfWork, actor: Actor, row: Record, reason: str | None = None) -> dict:
    """The rollback step inside the caller's unit of work (which holds the pipeline lock); no commit."""
    if row.status == "rolled-back":
        return deploy_view(row) | {"changed": False}
    before, after = fire(DEPLOY, row, "rollback")
    now = uow.now()
    # finished_at stays when the deploy finished (DORA's lead time and restore time read it)
    row.updated_at = row.rolled_back_at = now
    row.finished_at = row.finished_at or now
    row.rolled_back_by, row.rollback_reason = uow.settings.person(actor.name), reason
    deployment_changed(uow, row)
    uow.audit(actor, "deploy", row.id, "rollback", pipeline_id=row.pipeline_id, from_state=before, to_state=after,
              reason=reason, data={"target": row.target})
    return deploy_view(row) | {"changed": True}


def list_deploys(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> list[dict]:
    uow.get_pipeline(pipeline_id)
    return [deploy_view(d) for d in uow.conn.execute(_DEPLOYS_OF, {"p": pipeline_id})]


def show_deploy(uow: UnitOfWork, actor: Actor, deploy_id: str) -> dict:
    return deploy_view(uow.get_deploy(deploy_id))
