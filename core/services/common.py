"""Loading helpers shared by the use cases (no use case lives here).

The statements are built once at import (SQLAlchemy caches their compiled form) and return
`Record`s whose changes the unit of work writes back (core/records.py).
"""

from __future__ import annotations

import json
from typing import NamedTuple

from chainpipe.core.catalogue import GATE_KINDS, STAGES, resolve_stage, unknown
from chainpipe.core.errors import GateNotApproved, InvalidInput
from chainpipe.core.machine import GATE, PIPELINE, STAGE, fire
from chainpipe.core.models import Approval, Artifact, Gate, Pipeline, Stage
from chainpipe.core.records import Record
from chainpipe.core.rules.evidence import Covered, covered_from
from chainpipe.core.uow import PIPELINES, Actor, Also, UnitOfWork
from sqlalchemy import bindparam, select

STAGE_T, GATE_T, APPROVAL_T, ARTIFACT_T = Stage.__table__, Gate.__table__, Approval.__table__, Artifact.__table__
_STAGES = select(STAGE_T).where(STAGE_T.c.pipeline_id == bindparam("p")).order_by(STAGE_T.c.position)
_GATES = select(GATE_T).where(GATE_T.c.pipeline_id == bindparam("p")).order_by(GATE_T.c.seq)
_ARTIFACT_VERSIONS = (select(ARTIFACT_T.c.name, ARTIFACT_T.c.version, ARTIFACT_T.c.digest)
                      .where(ARTIFACT_T.c.pipeline_id == bindparam("p")).order_by(ARTIFACT_T.c.seq))
_STAGE_PLAN = (STAGE_T.c.seq, STAGE_T.c.name, STAGE_T.c.position, STAGE_T.c.status)  # what moving needs
_GATE_COLUMNS = [c.name for c in GATE_T.c]
_APPROVAL_COLUMNS = [c.name for c in APPROVAL_T.c]
_DECISIONS = (APPROVAL_T, APPROVAL_T.c.gate_id == GATE_T.c.id)
# What the writers read right after locking a pipeline (UnitOfWork.get_pipeline_with).
AT_STAGE = Also(  # the stage the pipeline is at: its current stage, or its first before it starts
    (STAGE_T.c.seq, STAGE_T.c.name, STAGE_T.c.status),
    ((STAGE_T, (STAGE_T.c.pipeline_id == PIPELINES.c.id) & ((STAGE_T.c.name == PIPELINES.c.current_stage) | (
        PIPELINES.c.current_stage.is_(None) & (STAGE_T.c.position == 0)))),))
GATES = Also(  # its gates, each with every decision on it
    (*GATE_T.c, *APPROVAL_T.c), ((GATE_T, GATE_T.c.pipeline_id == PIPELINES.c.id), _DECISIONS),
    (GATE_T.c.seq, APPROVAL_T.c.seq))
# Every gate guards one of its pipeline's stages (templates are checked when they load), so the
# stages joined with the gates guarding each have them all.
LAYOUT = Also(  # its stages, the gates guarding each, every decision on those
    (*_STAGE_PLAN, *GATE_T.c, *APPROVAL_T.c),
    ((STAGE_T, STAGE_T.c.pipeline_id == PIPELINES.c.id),
     (GATE_T, (GATE_T.c.pipeline_id == STAGE_T.c.pipeline_id) & (GATE_T.c.stage == STAGE_T.c.name)), _DECISIONS),
    (STAGE_T.c.position, GATE_T.c.seq, APPROVAL_T.c.seq))
STAGES_AND_GATES = Also(  # the same without the decisions: what moving between stages needs
    (*_STAGE_PLAN, *GATE_T.c), LAYOUT.joins[:2], LAYOUT.order[:2])


class Layout(NamedTuple):
    stages: list[Record]  # in order
    gates: list[Record]  # in the order they were created
    decisions: dict[str, list[Record]]  # gate id -> every decision on it, oldest first


def stages_of(uow: UnitOfWork, pipeline_id: str) -> list[Record]:
    return uow.records(STAGE_T, _STAGES, {"p": pipeline_id})


def gates_of(uow: UnitOfWork, pipeline_id: str) -> list[Record]:
    return uow.records(GATE_T, _GATES, {"p": pipeline_id})


def layout(uow: UnitOfWork, pipeline_id: str) -> Layout:
    """The pipeline's stages (what moving between them needs: seq, name, position, status) and its
    gates, in one read (no decisions: ``STAGES_AND_GATES``)."""
    return collect(uow, uow.rows_of(pipeline_id, STAGES_AND_GATES), with_stages=True)


def gates_and_decisions(uow: UnitOfWork, pipeline_id: str) -> tuple[list[Record], dict[str, list[Record]]]:
    """The pipeline's gates and every decision on each (gate id -> approvals, oldest first), in one read."""
    _, gates, decisions = collect(uow, uow.rows_of(pipeline_id, GATES))
    return gates, decisions


def at_stage(uow: UnitOfWork, rows: list) -> Record | None:
    """The stage row ``AT_STAGE`` read, as a Record (None when there is none)."""
    return uow.track(Record(STAGE_T, dict(zip(("seq", "name", "status"), rows[0], strict=True)))) \
        if rows and rows[0][0] is not None else None


def collect(uow: UnitOfWork, rows, *, with_stages: bool = False) -> Layout:
    """Split the rows ``LAYOUT`` or ``STAGES_AND_GATES`` (``with_stages``) or ``GATES`` read into
    tracked Records; rows without decision columns give no decisions."""
    stage_columns = [c.name for c in _STAGE_PLAN] if with_stages else []
    stages: dict[int, Record] = {}
    gates: dict[str, Record] = {}
    decisions: dict[str, list[Record]] = {}
    ns, ng = len(stage_columns), len(_GATE_COLUMNS)
    for row in rows:
        stage, gate, approval = row[:ns], row[ns:ns + ng], row[ns + ng:]
        if stage and stage[0] not in stages:
            stages[stage[0]] = uow.track(Record(STAGE_T, dict(zip(stage_columns, stage, strict=True))))
        gate_id = gate[1]
        if gate_id is not None and gate_id not in gates:
            gates[gate_id] = uow.track(Record(GATE_T, dict(zip(_GATE_COLUMNS, gate, strict=True))))
            decisions[gate_id] = []
        if approval and approval[0] is not None:
            decisions[gate_id].append(Record(APPROVAL_T, dict(zip(_APPROVAL_COLUMNS, approval, strict=True))))
    return Layout(list(stages.values()), sorted(gates.values(), key=lambda g: g.seq), decisions)


def fail_stage(uow: UnitOfWork, stage: Record | None) -> None:
    """The stage a failing pipeline is at fails with it, when it was running."""
    if stage is not None and stage.status == "running":
        fire(STAGE, stage, "fail")
        stage.finished_at = uow.now()


def latest_artifacts(uow: UnitOfWork, pipeline_id: str) -> list[Covered]:
    """The latest version of each artifact of the pipeline, in first-added order."""
    latest: dict[str, Covered] = {}
    for name, version, digest in uow.conn.execute(_ARTIFACT_VERSIONS, {"p": pipeline_id}):
        latest[name] = Covered(name, version, digest)
    return list(latest.values())


def current_approvals(uow: UnitOfWork, pipeline_id: str) -> list[tuple]:
    """The approvals that count now, as (gate, approval) pairs: each gate's current round, approved."""
    return approved_now(*gates_and_decisions(uow, pipeline_id))


def approved_now(gates: list[Record], decisions: dict[str, list[Record]]) -> list[tuple]:
    """(gate, approval) for the approvals of each gate's current round, in the order they were given."""
    pairs = [(g, a) for g in gates for a in decisions[g.id] if a.round == g.round and a.decision == "approved"]
    return sorted(pairs, key=lambda pair: pair[1].seq)


def approvers_by_gate(pairs: list[tuple]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for gate, approval in pairs:
        out.setdefault(gate.name, set()).add(approval.person)
    return out


def covered_by_gate(pairs: list[tuple], *, approved_only: bool = True) -> dict[str, list[Covered]]:
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
        raise unknown("gate", name, GATE_KINDS)
    have = ", ".join(g.name for g in gates) or "none"
    raise InvalidInput(f"pipeline {pipeline.id} has no gate {name}; its gates: {have}")


def require_gates_approved(gates: list[Gate], stages: set[str] | None = None) -> None:
    """Raise for the first gate (guarding one of ``stages``, or any) that is not approved."""
    for gate in gates:
        if (stages is None or gate.stage in stages) and gate.status != "approved":
            raise GateNotApproved(f"gate not approved: {gate.name} (status {gate.status}, guards stage {gate.stage})")


def move_stage(uow: UnitOfWork, actor: Actor, pipeline: Pipeline, target: str, reason: str | None, *,
               found: Layout | None = None) -> bool:
    """Move a running pipeline to ``target`` (forward or back). Returns False when already there.

    Forward: the stage left becomes completed, stages jumped over skipped; refused while a gate
    guarding any of them is not approved. Back (rework): stages from the target on are re-opened
    and so is every gate guarding the target stage or a later one. ``found``: the pipeline's
    layout, when the caller has read it already.
    """
    fire(PIPELINE, pipeline, "stage")
    stages, gates, _ = found or layout(uow, pipeline.id)
    by_name = {s.name: s for s in stages}
    current, dest = by_name[pipeline.current_stage], by_name[target]
    if current.name == dest.name:
        return False
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
