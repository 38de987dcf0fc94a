"""Approval gates: the decision rules and their policies."""

from __future__ import annotations

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from chainpipe.core.services.gates import approve_gate, reject_gate
from chainpipe.core.services.pipelines import advance_stage, retry_pipeline
from chainpipe.core.services.queries import show_pipeline

from tests.service.helpers import running_pipeline


@pytest.fixture
def at_review(run, alice):
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    return pid


def test_approve_records_who_from_where_when_and_why(run, alice, bob, at_review):
    gate = run(approve_gate, Actor("bob", "slack"), at_review, "code-review", reason="LGTM")
    assert gate["status"] == "approved" and gate["decided_by"] == "bob" and gate["changed"] is True
    [decision] = gate["decisions"]
    assert decision["decision"] == "approved" and decision["surface"] == "slack" and decision["reason"] == "LGTM"
    assert decision["at"] == "2026-11-02T09:00:00Z"


def test_approving_twice_by_the_same_person_is_idempotent(run, alice, at_review):
    run(approve_gate, alice, at_review, "code-review")
    again = run(approve_gate, alice, at_review, "code-review")
    assert again["changed"] is False and len(again["decisions"]) == 1


def test_a_gate_can_only_be_decided_at_its_stage(run, alice):
    pid = running_pipeline(run, alice)
    with pytest.raises(InvalidTransition, match="gate code-review guards stage review, but pipeline .* is at stage "
                                                "requirements"):
        run(approve_gate, alice, pid, "code-review")


def test_unknown_gates_are_refused_with_the_allowed_names(run, alice, at_review):
    with pytest.raises(InvalidInput, match="unknown gate: qa; allowed: code-review, security-review"):
        run(approve_gate, alice, at_review, "qa")
    with pytest.raises(InvalidInput, match="has no gate security-review; its gates: code-review"):
        run(approve_gate, alice, at_review, "security-review")


def test_reject_needs_a_reason_and_fails_the_pipeline(run, alice, at_review):
    with pytest.raises(InvalidInput, match="reason"):
        run(reject_gate, alice, at_review, "code-review", reason="")
    gate = run(reject_gate, alice, at_review, "code-review", reason="安全问题")
    assert gate["status"] == "rejected" and gate["pipeline_status"] == "failed"
    p = run(show_pipeline, alice, at_review)
    assert p["status"] == "failed" and p["reason"] == "gate code-review rejected: 安全问题"
    with pytest.raises(InvalidTransition, match="that is failed; allowed from: running"):
        run(approve_gate, alice, at_review, "code-review")


def test_retry_reopens_a_rejected_gate_for_a_new_round(run, alice, bob, at_review):
    run(reject_gate, alice, at_review, "code-review", reason="needs tests")
    run(retry_pipeline, alice, at_review)
    gate = run(show_pipeline, alice, at_review)["gates"][0]
    assert gate["status"] == "pending" and gate["round"] == 2
    assert run(approve_gate, alice, at_review, "code-review")["status"] == "approved"
    assert [d["decision"] for d in run(show_pipeline, alice, at_review)["gates"][0]["decisions"]] == [
        "rejected", "approved"]


def test_security_audit_needs_both_gates_each_with_its_own_trail(run, alice, bob):
    pid = running_pipeline(run, alice, "security-audit")
    run(advance_stage, alice, pid, "review")
    run(approve_gate, alice, pid, "code-review", reason="code ok")
    from chainpipe.core.errors import GateNotApproved
    from chainpipe.core.services.pipelines import complete_pipeline

    with pytest.raises(GateNotApproved, match="gate not approved: security-review"):
        run(complete_pipeline, alice, pid)
    run(approve_gate, bob, pid, "security-review", reason="threat model ok")
    gates = {g["name"]: g for g in run(show_pipeline, alice, pid)["gates"]}
    assert gates["code-review"]["decided_by"] == "alice" and gates["security-review"]["decided_by"] == "bob"
    assert run(complete_pipeline, alice, pid)["status"] == "completed"


def _policy(run, env, config_file, text):
    config_file(text)
    run.reload(env)


def test_only_listed_approvers_or_group_members_may_decide(run, env, config_file, alice):
    _policy(run, env, config_file,
            '[groups]\nleads = ["carol"]\n[gates.code-review]\napprovers = ["bob"]\ngroups = ["leads"]\n')
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    with pytest.raises(NotAllowed, match="mallory may not decide gate code-review; allowed: bob, group leads"):
        run(approve_gate, Actor("mallory"), pid, "code-review")
    with pytest.raises(NotAllowed):
        run(reject_gate, Actor("mallory"), pid, "code-review", reason="no")
    assert run(show_pipeline, alice, pid)["gates"][0]["decisions"] == []
    assert run(approve_gate, Actor("carol"), pid, "code-review")["status"] == "approved"


def test_self_approval_can_be_forbidden_across_surfaces(run, env, config_file, alice):
    _policy(run, env, config_file, '[identities]\n"slack:U1" = "alice"\n[gates.code-review]\n'
                                   'forbid_self_approval = true\n')
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    with pytest.raises(NotAllowed, match="self-approval is not allowed: alice created pipeline"):
        run(approve_gate, Actor("slack:U1", "slack"), pid, "code-review")
    assert run(approve_gate, Actor("bob"), pid, "code-review")["status"] == "approved"


def test_a_gate_can_require_n_distinct_approvals(run, env, config_file, alice, bob):
    _policy(run, env, config_file, "[gates.code-review]\nrequired_approvals = 2\n")
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    first = run(approve_gate, alice, pid, "code-review")
    assert first["status"] == "pending" and len(first["approvals"]) == 1
    assert run(approve_gate, alice, pid, "code-review")["changed"] is False
    second = run(approve_gate, bob, pid, "code-review")
    assert second["status"] == "approved" and [a["person"] for a in second["approvals"]] == ["alice", "bob"]


def test_a_person_who_approved_cannot_also_reject_in_the_same_round(run, env, config_file, alice):
    _policy(run, env, config_file, "[gates.code-review]\nrequired_approvals = 2\n")
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    run(approve_gate, alice, pid, "code-review")
    with pytest.raises(Conflict, match="already decided"):
        run(reject_gate, alice, pid, "code-review", reason="changed my mind")


def test_gate_status_tells_a_waiting_client_where_one_gate_stands(run, alice, bob):
    from chainpipe.core.services.gates import gate_status
    from chainpipe.core.services.pipelines import create_pipeline, pause_pipeline, resume_pipeline, start_pipeline

    pid = run(create_pipeline, alice, name="s", template="bugfix")["id"]
    run(start_pipeline, alice, pid)
    assert run(gate_status, alice, pid, "code-review")["state"] == "waiting"
    run(advance_stage, alice, pid, "review")
    assert run(gate_status, alice, pid, "code-review")["state"] == "open"
    run(pause_pipeline, alice, pid)
    assert run(gate_status, alice, pid, "code-review")["state"] == "waiting"
    run(resume_pipeline, alice, pid)
    run(approve_gate, bob, pid, "code-review")
    status = run(gate_status, alice, pid, "code-review")
    assert status["state"] == "approved" and [a["person"] for a in status["approvals"]] == ["bob"]


def test_a_mistyped_gate_gets_a_did_you_mean(run, alice):
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    with pytest.raises(InvalidInput, match=r"^unknown gate: code-reveiw; did you mean code-review\?$"):
        run(approve_gate, alice, pid, "code-reveiw")
    with pytest.raises(InvalidInput, match=r"^unknown gate: qa; allowed: code-review, security-review$"):
        run(approve_gate, alice, pid, "qa")
