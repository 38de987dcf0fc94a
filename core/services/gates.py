"""Gate decisions. A gate guards the exit of its stage; nobody, on any surface, gets past it
without the approvals its policy asks for."""

from __future__ import annotations

from sqlmodel import select

from core.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from core.machine import GATE, PIPELINE, STAGE, fire
from core.models import Approval, Gate, Pipeline
from core.services.common import find_gate, gates_of, stages_of
from core.uow import Actor, UnitOfWork
from core.views import gate_view


def _load(uow: UnitOfWork, pipeline_id: str, gate_name: str, doing: str) -> tuple[Pipeline, Gate]:
    pipeline = uow.get_pipeline(pipeline_id, lock=True)
    gate = find_gate(gates_of(uow, pipeline.id), pipeline, gate_name)
    if pipeline.status != "running":
        raise InvalidTransition(
            f"can't {doing} gate {gate.name} of a pipeline that is {pipeline.status}; allowed from: running"
        )
    if pipeline.current_stage != gate.stage:
        raise InvalidTransition(
            f"gate {gate.name} guards stage {gate.stage}, but pipeline {pipeline.id} is at stage "
            f"{pipeline.current_stage}; move it there first (pipe stage {pipeline.id} {gate.stage})"
        )
    return pipeline, gate


def check_policy(uow: UnitOfWork, person: str, pipeline: Pipeline, gate: Gate) -> None:
    """Raise NotAllowed unless ``person`` may decide ``gate`` of ``pipeline``."""
    policy = uow.settings.policy(gate.name)
    if not policy.open_to_anyone:
        members = set(policy.approvers)
        for group in policy.groups:
            members.update(uow.settings.group_members(group))
        if person not in members:
            names = ", ".join(list(policy.approvers) + [f"group {g}" for g in policy.groups])
            raise NotAllowed(f"{person} may not decide gate {gate.name}; allowed: {names}")
    if policy.forbid_self_approval and person == pipeline.created_by:
        raise NotAllowed(
            f"self-approval is not allowed: {person} created pipeline {pipeline.id} and cannot decide {gate.name}"
        )


def _decisions(uow: UnitOfWork, gate: Gate) -> list[Approval]:
    return list(uow.session.exec(select(Approval).where(Approval.gate_id == gate.id).order_by(Approval.seq)))


def _mine(decisions: list[Approval], gate: Gate, person: str) -> Approval | None:
    return next((a for a in decisions if a.round == gate.round and a.person == person), None)


def _record(uow: UnitOfWork, actor: Actor, person: str, gate: Gate, decision: str, reason: str | None) -> Approval:
    row = Approval(
        gate_id=gate.id, pipeline_id=gate.pipeline_id, round=gate.round, decision=decision,
        actor=actor.name, person=person, surface=actor.surface, reason=reason, run_url=actor.run_url,
        created_at=uow.now(),
    )
    uow.add(row)
    return row


def approve_gate(uow: UnitOfWork, actor: Actor, pipeline_id: str, gate: str, reason: str | None = None) -> dict:
    pipeline, row = _load(uow, pipeline_id, gate, "approve")
    person = uow.settings.person(actor.name)
    check_policy(uow, person, pipeline, row)
    decisions = _decisions(uow, row)
    mine = _mine(decisions, row, person)
    if mine is not None and mine.decision == "rejected":
        raise Conflict(f"{person} already rejected gate {row.name} in this round")
    if mine is not None or row.status == "approved":
        return gate_view(row, decisions) | {"changed": False}
    decisions.append(_record(uow, actor, person, row, "approved", reason))
    count = sum(1 for a in decisions if a.round == row.round and a.decision == "approved")
    data = {"gate": row.name, "approvals": count, "required": row.required_approvals}
    if count >= row.required_approvals:
        before, after = fire(GATE, row, "approve")
        row.decided_at, row.decided_by, row.reason = uow.now(), person, reason
    else:
        before = after = row.status
    uow.audit(actor, "gate", row.id, "approve", pipeline_id=pipeline.id, from_state=before, to_state=after,
              reason=reason, data=data)
    view = gate_view(row, decisions) | {"changed": True}
    uow.commit()
    return view


def reject_gate(uow: UnitOfWork, actor: Actor, pipeline_id: str, gate: str, reason: str) -> dict:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reject needs a --reason")
    pipeline, row = _load(uow, pipeline_id, gate, "reject")
    person = uow.settings.person(actor.name)
    check_policy(uow, person, pipeline, row)
    decisions = _decisions(uow, row)
    if _mine(decisions, row, person) is not None:
        raise Conflict(f"{person} already decided gate {row.name} in this round")
    decisions.append(_record(uow, actor, person, row, "rejected", reason))
    before, after = fire(GATE, row, "reject")
    now = uow.now()
    row.decided_at, row.decided_by, row.reason = now, person, reason
    uow.audit(actor, "gate", row.id, "reject", pipeline_id=pipeline.id, from_state=before, to_state=after,
              reason=reason, data={"gate": row.name})
    failure = f"gate {row.name} rejected: {reason}"
    p_before, p_after = fire(PIPELINE, pipeline, "fail")
    pipeline.reason, pipeline.updated_at = failure, now
    for stage in stages_of(uow, pipeline.id):
        if stage.name == pipeline.current_stage and stage.status == "running":
            fire(STAGE, stage, "fail")
            stage.finished_at = now
    uow.audit(actor, "pipeline", pipeline.id, "fail", pipeline_id=pipeline.id, from_state=p_before,
              to_state=p_after, reason=failure)
    view = gate_view(row, decisions) | {"changed": True, "pipeline_status": pipeline.status}
    uow.commit()
    return view
