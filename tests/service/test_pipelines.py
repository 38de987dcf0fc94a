"""Pipeline lifecycle: creation from templates, transitions, stage moves and gates guarding exits."""

from __future__ import annotations

import pytest
from chainpipe.core.errors import GateNotApproved, InvalidInput, InvalidTransition, NotFound
from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.pipelines import (
    advance_stage,
    cancel_pipeline,
    complete_pipeline,
    create_pipeline,
    fail_pipeline,
    pause_pipeline,
    resume_pipeline,
    retry_pipeline,
    start_pipeline,
)
from chainpipe.core.services.queries import audit_log, show_pipeline

from tests.service.helpers import new_pipeline, running_pipeline


def _stages(run, actor, pid):
    return {s["name"]: s["status"] for s in run(show_pipeline, actor, pid)["stages"]}


@pytest.mark.parametrize("template,stages,gates", [
    ("feature", 7, ["code-review"]),
    ("bugfix", 5, ["code-review"]),
    ("refactor", 6, ["code-review"]),
    ("security-audit", 3, ["code-review", "security-review"]),
])
def test_create_builds_stages_and_gates_from_the_template(run, alice, template, stages, gates):
    p = run(create_pipeline, alice, name="用户认证", template=template)
    assert p["id"].startswith("pipe-") and len(p["id"]) == 17
    assert p["status"] == "created" and p["current_stage"] is None and p["created_by"] == "alice"
    shown = run(show_pipeline, alice, p["id"])
    assert len(shown["stages"]) == stages and all(s["status"] == "pending" for s in shown["stages"])
    assert [g["name"] for g in shown["gates"]] == gates


def test_create_refuses_unknown_template_and_empty_name(run, alice):
    with pytest.raises(InvalidInput, match="unknown template: nightly; allowed: bugfix, feature"):
        run(create_pipeline, alice, name="x", template="nightly")
    with pytest.raises(InvalidInput, match="non-empty --name"):
        run(create_pipeline, alice, name="  ")


def test_start_makes_the_first_stage_current(run, alice):
    pid = new_pipeline(run, alice, "bugfix")
    p = run(start_pipeline, alice, pid)
    assert p["status"] == "running" and p["current_stage"] == "code"
    assert _stages(run, alice, pid)["code"] == "running"


def test_pause_resume_cancel(run, alice):
    pid = running_pipeline(run, alice)
    assert run(pause_pipeline, alice, pid)["status"] == "paused"
    with pytest.raises(InvalidTransition, match="can't pause a pipeline that is paused; allowed from: running"):
        run(pause_pipeline, alice, pid)
    assert run(resume_pipeline, alice, pid)["status"] == "running"
    cancelled = run(cancel_pipeline, alice, pid, reason="superseded")
    assert cancelled["status"] == "cancelled" and cancelled["reason"] == "superseded"
    with pytest.raises(InvalidTransition, match="that is cancelled"):
        run(resume_pipeline, alice, pid)


def test_unknown_pipeline_is_not_found(run, alice):
    with pytest.raises(NotFound, match="pipeline not found: pipe-000000000000"):
        run(start_pipeline, alice, "pipe-000000000000")


def test_stage_forward_completes_the_left_stage_and_skips_jumped_ones(run, alice):
    pid = running_pipeline(run, alice)
    p = run(advance_stage, alice, pid, "coding")
    assert p["current_stage"] == "code" and p["changed"] is True
    assert _stages(run, alice, pid) == {"requirements": "completed", "architecture": "skipped", "code": "running",
                                         "test": "pending", "review": "pending", "deploy": "pending",
                                         "monitor": "pending"}


def test_naming_the_current_stage_is_a_no_op(run, alice):
    pid = running_pipeline(run, alice)
    before = len(run(audit_log, alice, pid))
    assert run(advance_stage, alice, pid, "req")["changed"] is False
    assert len(run(audit_log, alice, pid)) == before


def test_a_stage_outside_the_template_is_refused(run, alice):
    pid = running_pipeline(run, alice, "security-audit")
    with pytest.raises(InvalidInput, match="stage deploy is not part of pipeline .* its stages: code, test, review"):
        run(advance_stage, alice, pid, "deploy")


def test_stage_needs_a_running_pipeline(run, alice):
    pid = new_pipeline(run, alice)
    with pytest.raises(InvalidTransition, match="that is created; allowed from: running"):
        run(advance_stage, alice, pid, "code")


def test_leaving_a_gated_stage_is_refused_until_the_gate_is_approved(run, alice):
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    with pytest.raises(GateNotApproved, match="^gate not approved: code-review"):
        run(advance_stage, alice, pid, "deploy")
    assert run(show_pipeline, alice, pid)["current_stage"] == "review"
    run(approve_gate, alice, pid, "code-review")
    assert run(advance_stage, alice, pid, "deploy")["current_stage"] == "deploy"


def test_jumping_over_a_gated_stage_is_refused(run, alice):
    pid = running_pipeline(run, alice)
    with pytest.raises(GateNotApproved, match="gate not approved: code-review"):
        run(advance_stage, alice, pid, "monitor")
    assert _stages(run, alice, pid)["requirements"] == "running"


def test_going_back_reopens_gates_guarding_the_target_or_later_and_records_why(run, alice):
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    run(approve_gate, alice, pid, "code-review")
    run(advance_stage, alice, pid, "deploy")
    run(advance_stage, alice, pid, "code", reason="security finding")
    shown = run(show_pipeline, alice, pid)
    gate = shown["gates"][0]
    assert gate["status"] == "pending" and gate["round"] == 2 and gate["approvals"] == []
    assert {s["name"]: s["status"] for s in shown["stages"]}["review"] == "pending"
    reopen = [e for e in run(audit_log, alice, pid) if e["action"] == "reopen"]
    assert reopen and reopen[0]["reason"] == "security finding"
    run(advance_stage, alice, pid, "review")
    with pytest.raises(GateNotApproved):
        run(advance_stage, alice, pid, "deploy")


def test_going_back_to_a_stage_before_the_gate_still_reopens_it(run, alice):
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    run(approve_gate, alice, pid, "code-review")
    run(advance_stage, alice, pid, "test")
    assert run(show_pipeline, alice, pid)["gates"][0]["status"] == "pending"


def test_complete_is_refused_while_a_gate_is_pending(run, alice):
    pid = running_pipeline(run, alice)
    with pytest.raises(GateNotApproved, match="gate not approved: code-review"):
        run(complete_pipeline, alice, pid)
    assert run(show_pipeline, alice, pid)["status"] == "running"


def test_complete_skips_the_stages_after_the_current_one(run, alice):
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    run(approve_gate, alice, pid, "code-review")
    p = run(complete_pipeline, alice, pid)
    assert p["status"] == "completed" and p["finished_at"]
    stages = _stages(run, alice, pid)
    assert stages["review"] == "completed" and stages["deploy"] == stages["monitor"] == "skipped"


def test_fail_needs_a_reason_and_retry_resumes_the_stage(run, alice):
    pid = running_pipeline(run, alice)
    with pytest.raises(InvalidInput, match="reason"):
        run(fail_pipeline, alice, pid, reason=" ")
    failed = run(fail_pipeline, alice, pid, reason="测试未通过")
    assert failed["status"] == "failed" and failed["reason"] == "测试未通过"
    assert _stages(run, alice, pid)["requirements"] == "failed"
    retried = run(retry_pipeline, alice, pid)
    assert retried["status"] == "running" and retried["reason"] is None
    assert _stages(run, alice, pid)["requirements"] == "running"


def test_every_change_writes_an_audit_record_with_actor_and_surface(run, alice):
    pid = running_pipeline(run, alice)
    run(pause_pipeline, alice, pid)
    events = run(audit_log, alice, pid)
    assert [e["action"] for e in events] == ["pause", "start", "create"]
    assert events[0] | {"at": None, "seq": None} == events[0] | {
        "at": None, "seq": None, "actor": "alice", "surface": "cli", "entity": "pipeline", "from": "running",
        "to": "paused"}
