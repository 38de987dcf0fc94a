"""Pipeline lifecycle use cases: create, start, pause, resume, stage, complete, fail, retry, cancel."""

from __future__ import annotations

from chainpipe.core.catalogue import check_choice
from chainpipe.core.clock import new_id
from chainpipe.core.errors import InvalidInput
from chainpipe.core.machine import GATE, PIPELINE, STAGE, check, fire
from chainpipe.core.models import Pipeline
from chainpipe.core.services.common import (
    AT_STAGE,
    GATE_T,
    STAGE_T,
    STAGES_AND_GATES,
    at_stage,
    collect,
    fail_stage,
    gates_of,
    move_stage,
    reopen_gate,
    require_gates_approved,
    stages_of,
    template_stage,
)
from chainpipe.core.uow import PIPELINES, Actor, UnitOfWork
from chainpipe.core.views import pipeline_view


def create_pipeline(uow: UnitOfWork, actor: Actor, name: str, template: str = "feature") -> dict:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a pipeline needs a non-empty --name")
    if len(name) > 200:
        raise InvalidInput("a pipeline name is at most 200 characters")
    tpl = uow.settings.templates.get(check_choice("template", template, sorted(uow.settings.templates)))
    now, pid = uow.now(), new_id("pipe")
    pipeline = uow.insert(PIPELINES, {
        "id": pid, "name": name, "template": tpl.name, "status": PIPELINE.initial,
        "created_by": uow.settings.person(actor.name), "created_at": now, "updated_at": now,
    })
    uow.insert_many(STAGE_T, [{"id": new_id("stg"), "pipeline_id": pid, "name": stage, "position": position,
                               "status": STAGE.initial} for position, stage in enumerate(tpl.stages)])
    if tpl.gates:
        uow.insert_many(GATE_T, [{"id": new_id("gate"), "pipeline_id": pid, "name": gate, "stage": stage,
                                  "status": GATE.initial,
                                  "required_approvals": uow.settings.policy(gate).required_approvals}
                                 for gate, stage in tpl.gates.items()])
    uow.new_chain(f"pipeline:{pid}")
    uow.audit(actor, "pipeline", pid, "create", pipeline_id=pid, to_state=pipeline.status,
              data={"name": name, "template": tpl.name})
    view = pipeline_view(pipeline)
    uow.commit()
    return view


def _transition(uow: UnitOfWork, actor: Actor, pipeline_id: str, trigger: str, reason: str | None = None):
    return _fire(uow, actor, uow.get_pipeline(pipeline_id, lock=True), trigger, reason)


def _fire(uow: UnitOfWork, actor: Actor, pipeline, trigger: str, reason: str | None = None):
    before, after = fire(PIPELINE, pipeline, trigger)
    pipeline.updated_at = uow.now()
    uow.audit(actor, "pipeline", pipeline.id, trigger, pipeline_id=pipeline.id,
              from_state=before, to_state=after, reason=reason)
    return pipeline


def start_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    pipeline, rows = uow.get_pipeline_with(pipeline_id, AT_STAGE)
    first = at_stage(uow, rows)
    _fire(uow, actor, pipeline, "start")
    fire(STAGE, first, "enter")
    first.started_at = pipeline.started_at = uow.now()
    pipeline.current_stage = first.name
    return _done(uow, pipeline)


def pause_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    return _done(uow, _transition(uow, actor, pipeline_id, "pause"))


def resume_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    return _done(uow, _transition(uow, actor, pipeline_id, "resume"))


def cancel_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str, reason: str | None = None) -> dict:
    pipeline = _transition(uow, actor, pipeline_id, "cancel", reason)
    pipeline.finished_at = uow.now()
    pipeline.reason = reason
    return _done(uow, pipeline)


def fail_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str, reason: str) -> dict:
    if not (reason or "").strip():
        raise InvalidInput("fail needs a --reason")
    pipeline, rows = uow.get_pipeline_with(pipeline_id, AT_STAGE)
    stage = at_stage(uow, rows)
    _fire(uow, actor, pipeline, "fail", reason)
    fail_stage(uow, stage)
    pipeline.reason = reason
    return _done(uow, pipeline)


def retry_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    pipeline, rows = uow.get_pipeline_with(pipeline_id, AT_STAGE)
    stage = at_stage(uow, rows)
    _fire(uow, actor, pipeline, "retry")
    if stage is not None and stage.status == "failed":
        fire(STAGE, stage, "retry")
        stage.finished_at = None
    for gate in gates_of(uow, pipeline.id):
        if gate.status == "rejected":
            reopen_gate(uow, actor, gate, "retry")
    pipeline.reason = None
    return _done(uow, pipeline)


def complete_pipeline(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    pipeline = uow.get_pipeline(pipeline_id, lock=True)
    check(PIPELINE, pipeline, "complete")
    require_gates_approved(gates_of(uow, pipeline.id))
    now = uow.now()
    stages = stages_of(uow, pipeline.id)
    current = next(s for s in stages if s.name == pipeline.current_stage)  # running ⇒ there is one
    for stage in stages:
        if stage is current:
            fire(STAGE, stage, "complete")
            stage.finished_at = now
        elif stage.position > current.position and stage.status == "pending":
            fire(STAGE, stage, "skip")
    pipeline = _fire(uow, actor, pipeline, "complete")
    pipeline.finished_at = now
    return _done(uow, pipeline)


def advance_stage(uow: UnitOfWork, actor: Actor, pipeline_id: str, stage: str, reason: str | None = None) -> dict:
    pipeline, rows = uow.get_pipeline_with(pipeline_id, STAGES_AND_GATES)
    target = template_stage(uow, pipeline, stage)
    moved = move_stage(uow, actor, pipeline, target, reason, found=collect(uow, rows, with_stages=True))
    view = pipeline_view(pipeline) | {"changed": moved}
    uow.commit()
    return view


def _done(uow: UnitOfWork, pipeline: Pipeline) -> dict:
    view = pipeline_view(pipeline)
    uow.commit()
    return view
