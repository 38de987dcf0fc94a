"""Loading helpers shared by the use cases (no use case lives here)."""

from __future__ import annotations

import json

from sqlmodel import select

from core.catalogue import GATE_KINDS, STAGES, resolve_stage
from core.errors import GateNotApproved, InvalidInput
from core.machine import GATE, PIPELINE, STAGE, fire
from core.models import Approval, Artifact, Gate, Pipeline, Stage
from core.rules.evidence import Covered, covered_from
from core.uow import Actor, UnitOfWork


def stages_of(uow: UnitOfWork, pipeline_id: str) -> list[Stage]:
    return list(uow.session.exec(select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)))


def gates_of(uow: UnitOfWork, pipeline_id: str) -> list[Gate]:
    return list(uow.session.exec(select(Gate).where(Gate.pipeline_id == pipeline_id).order_by(Gate.seq)))


def latest_artifacts(uow: UnitOfWork, pipeline_id: str) -> list[Covered]:
    """The latest version of each artifact of the pipeline, in first-added order."""
    latest: dict[str, Covered] = {}
    stmt = select(Artifact.name, Artifact.version, Artifact.digest).where(Artifact.pipeline_id == pipeline_id)
    for name, version, digest in uow.session.exec(stmt.order_by(Artifact.seq)):
        latest[name] = Covered(name, version, digest)
    return list(latest.values())


def current_approvals(uow: UnitOfWork, pipeline_id: str) -> list[tuple[Gate, Approval]]:
    """The approvals that count now: each gate's current round, decision approved."""
    stmt = (select(Gate, Approval).join(Approval, (Approval.gate_id == Gate.id) & (Approval.round == Gate.round))
            .where(Gate.pipeline_id == pipeline_id, Approval.decision == "approved").order_by(Approval.seq))
    return list(uow.session.exec(stmt))


def approvers_by_gate(pairs: list[tuple[Gate, Approval]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for gate, approval in pairs:
        out.setdefault(gate.name, set()).add(approval.person)
    return out


def covered_by_gate(pairs: list[tuple[Gate, Approval]], *, approved_only: bool = True) -> dict[str, list[Covered]]:
    out: dict[str, list[Covered]] = {}
    for gate, approval in pairs:
        if gate.status == "approved" or not approved_only:
            out.setdefault(gate.name, []).extend(covered_from(json.loads(approval.covered or "[]")))
    return out


def template_stage(uow: UnitOfWork, pipeline: Pipeline, name: str) -> str:
    """Resolve a stage name or alias and check that the pipeline's template has it."""
    stage = resolve_stage(name)
    template = uow.settings.templates.get(pipeline.template)
    stages = template.stages if template else STAGES
    if stage not in stages:
        raise InvalidInput(
            f"stage {stage} is not part of pipeline {pipeline.id} (template {pipeline.template}); "
            f"its stages: {', '.join(stages)}"
        )
    return stage


def get_gate(gates: list[Gate], pipeline: Pipeline, name: str) -> Gate:
    for gate in gates:
        if gate.name == name:
            return gate
    if name not in GATE_KINDS:
        raise InvalidInput(f"unknown gate: {name}; allowed: {', '.join(GATE_KINDS)}")
    have = ", ".join(g.name for g in gates) or "none"
    raise InvalidInput(f"pipeline {pipeline.id} has no gate {name}; its gates: {have}")


def require_gates_approved(gates: list[Gate], stages: set[str] | None = None) -> None:
    """Raise for the first gate (guarding one of ``stages``, or any) that is not approved."""
    for gate in gates:
        if (stages is None or gate.stage in stages) and gate.status != "approved":
            raise GateNotApproved(f"gate not approved: {gate.name} (status {gate.status}, guards stage {gate.stage})")


def move_stage(uow: UnitOfWork, actor: Actor, pipeline: Pipeline, target: str, reason: str | None) -> bool:
    """Move a running pipeline to ``target`` (forward or back). Returns False when already there.

    Forward: the stage left becomes completed, stages jumped over skipped; refused while a gate
    guarding any of them is not approved. Back (rework): stages from the target on are re-opened
    and so is every gate guarding the target stage or a later one.
    """
    fire(PIPELINE, pipeline, "stage")
    stages = stages_of(uow, pipeline.id)
    by_name = {s.name: s for s in stages}
    current, dest = by_name[pipeline.current_stage], by_name[target]
    if current.name == dest.name:
        return False
    gates = gates_of(uow, pipeline.id)
    now = uow.now()
    if dest.position > current.position:
        left = [s for s in stages if current.position <= s.position < dest.position]
        require_gates_approved(gates, {s.name for s in left})
        for s in left:
            fire(STAGE, s, "complete" if s is current else "skip")
            s.finished_at = now
    else:
        reopened = [s for s in stages if dest.position < s.position <= current.position]
        for s in reopened:
            if s.status != "pending":
                fire(STAGE, s, "reopen")
                s.started_at = s.finished_at = None
        later = {s.name for s in stages if s.position >= dest.position}
        why = reason or f"rework: moved back to {target}"
        for gate in gates:
            if gate.stage in later and gate.status != "pending":
                reopen_gate(uow, actor, gate, why)
    fire(STAGE, dest, "enter")
    dest.started_at, dest.finished_at = now, None
    uow.audit(
        actor, "pipeline", pipeline.id, "stage", pipeline_id=pipeline.id,
        from_state=current.name, to_state=dest.name, reason=reason,
    )
    pipeline.current_stage = dest.name
    pipeline.updated_at = now
    return True


def reopen_gate(uow: UnitOfWork, actor: Actor, gate: Gate, why: str) -> None:
    before, after = fire(GATE, gate, "reopen")
    gate.round += 1
    gate.decided_at = gate.decided_by = gate.reason = None
    uow.audit(
        actor, "gate", gate.id, "reopen", pipeline_id=gate.pipeline_id,
        from_state=before, to_state=after, reason=why, data={"gate": gate.name, "round": gate.round},
    )
