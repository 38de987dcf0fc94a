"""Gate decisions. A gate guards the exit of its stage; nobody, on any surface, gets past it
without the approvals its policy asks for."""

from __future__ import annotations

import json
from typing import NamedTuple

from chainpipe.core.errors import Conflict, InvalidInput, NotAllowed
from chainpipe.core.machine import GATE, PIPELINE, fire
from chainpipe.core.records import Record
from chainpipe.core.rules.evidence import approval_refusal
from chainpipe.core.rules.gates import can_decide, gate_state
from chainpipe.core.services.common import (
    APPROVAL_T,
    AT_STAGE,
    GATES,
    approved_now,
    approvers_by_gate,
    at_stage,
    collect,
    fail_stage,
    gates_and_decisions,
    get_gate,
    latest_artifacts,
)
from chainpipe.core.uow import Actor, UnitOfWork
from chainpipe.core.views import gate_view
from sqlalchemy import bindparam, select

_DECISIONS = select(APPROVAL_T).where(APPROVAL_T.c.gate_id == bindparam("g")).order_by(APPROVAL_T.c.seq)


class _Loaded(NamedTuple):
    pipeline: Record
    stage: Record | None  # the stage the pipeline is at, when asked for
    gate: Record
    decisions: list[Record]  # the gate's, oldest first
    everyone: tuple[list[Record], dict[str, list[Record]]]  # every gate, and every gate's decisions
    person: str


def _load(uow: UnitOfWork, actor: Actor, pipeline_id: str, gate_name: str, *, with_stage: bool = False) -> _Loaded:
    """Lock the pipeline, read its gates with their decisions, and refuse unless the actor's person
    may decide the gate now."""
    if with_stage:
        pipeline, rows = uow.get_pipeline_with(pipeline_id, AT_STAGE)
        stage = at_stage(uow, rows)
        gates, decisions = gates_and_decisions(uow, pipeline.id)
    else:
        pipeline, rows = uow.get_pipeline_with(pipeline_id, GATES)
        stage, (_, gates, decisions) = None, collect(uow, rows)
    gate = get_gate(gates, pipeline, gate_name)
    person = uow.settings.person(actor.name)
    can_decide(pipeline, gate, person, uow.settings.policy(gate.name), service=actor.service_name).require()
    return _Loaded(pipeline, stage, gate, decisions[gate.id], (gates, decisions), person)


def _separate(uow: UnitOfWork, gate, person: str, everyone: tuple) -> None:
    """Refuse an approval that would let one person approve two gates the policy keeps apart."""
    separation = uow.settings.separation
    if separation.distinct:
        refusal = approval_refusal(person, gate.name, approvers_by_gate(approved_now(*everyone)), separation)
        if refusal is not None:
            raise refusal


def _one_decision_per_principal(decisions: list, gate, actor: Actor, person: str) -> None:
    """A principal speaks for one person per round: a token or a Slack user can't approve twice as two people.

    A direct-database administrator (``os:``) is exempt, and recorded as what it is."""
    if actor.administrator:
        return
    for a in decisions:
        if a.round == gate.round and a.principal == actor.principal and a.person != person:
            raise NotAllowed(f"{actor.principal} already decided gate {gate.name} in this round as {a.person}; "
                             "one principal gives one decision")


def _decisions(uow: UnitOfWork, gate) -> list[Record]:
    return uow.records(APPROVAL_T, _DECISIONS, {"g": gate.id})


def _mine(decisions: list, gate, person: str):
    return next((a for a in decisions if a.round == gate.round and a.person == person), None)


def _record(uow: UnitOfWork, actor: Actor, person: str, gate, decision: str, reason: str | None) -> Record:
    covered = [c.as_dict() for c in latest_artifacts(uow, gate.pipeline_id)]
    return uow.insert(APPROVAL_T, {
        "gate_id": gate.id, "pipeline_id": gate.pipeline_id, "round": gate.round, "decision": decision,
        "actor": actor.name, "person": person, "surface": actor.surface, "reason": reason, "run_url": actor.run_url,
        "created_at": uow.now(), "principal": actor.principal, "on_behalf_of": actor.on_behalf_of,
        "covered": json.dumps(covered, sort_keys=True),
    })


def approve_gate(uow: UnitOfWork, actor: Actor, pipeline_id: str, gate: str, reason: str | None = None) -> dict:
    pipeline, _, row, decisions, everyone, person = _load(uow, actor, pipeline_id, gate)
    _one_decision_per_principal(decisions, row, actor, person)
    mine = _mine(decisions, row, person)
    if mine is not None and mine.decision == "rejected":
        raise Conflict(f"{person} already rejected gate {row.name} in this round")
    if mine is not None or row.status == "approved":
        return gate_view(row, decisions) | {"changed": False}
    _separate(uow, row, person, everyone)
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
    pipeline, stage, row, decisions, _, person = _load(uow, actor, pipeline_id, gate, with_stage=True)
    _one_decision_per_principal(decisions, row, actor, person)
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
    fail_stage(uow, stage)
    uow.audit(actor, "pipeline", pipeline.id, "fail", pipeline_id=pipeline.id, from_state=p_before,
              to_state=p_after, reason=failure)
    view = gate_view(row, decisions) | {"changed": True, "pipeline_status": pipeline.status}
    uow.commit()
    return view


def gate_status(uow: UnitOfWork, actor: Actor, pipeline_id: str, gate: str) -> dict:
    """One gate's decisions and where it stands (``gate_state``): what a client waiting on it polls."""
    pipeline = uow.get_pipeline(pipeline_id)
    gates, decisions = gates_and_decisions(uow, pipeline.id)
    row = get_gate(gates, pipeline, gate)
    return gate_view(row, decisions[row.id]) | {
        "pipeline_status": pipeline.status, "current_stage": pipeline.current_stage,
        "state": gate_state(pipeline, row),
    }
