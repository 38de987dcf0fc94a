"""Approvals are bound to what was reviewed; separation of duties keeps approvers and deployers apart."""

from __future__ import annotations

import pytest
from chainpipe.core.errors import GateNotApproved, NotAllowed
from chainpipe.core.services.artifacts import add_artifact
from chainpipe.core.services.deploys import record_deploy
from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.pipelines import advance_stage
from chainpipe.core.services.queries import export_pipeline, show_pipeline

from tests.service.helpers import running_pipeline

DIGEST1, DIGEST2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def at_review(run, actor, template="feature"):
    pid = running_pipeline(run, actor, template=template)
    run(advance_stage, actor, pid, "review")
    return pid


def build(run, actor, pid, digest):
    return run(add_artifact, actor, pid, name="build.zip", type="binary", digest=digest, size=10)


def gate(run, actor, pid, name="code-review"):
    return next(g for g in run(show_pipeline, actor, pid)["gates"] if g["name"] == name)


def test_a_new_version_of_a_reviewed_artifact_reopens_the_gate_and_binds_the_deploy(run, alice, bob):
    pid = at_review(run, alice)
    build(run, alice, pid, DIGEST1)
    run(approve_gate, bob, pid, "code-review")
    assert gate(run, alice, pid)["approvals"][0]["covered"] == [
        {"name": "build.zip", "version": 1, "digest": DIGEST1}]
    build(run, alice, pid, DIGEST2)
    reopened = gate(run, alice, pid)
    assert reopened["status"] == "pending" and reopened["round"] == 2
    audit = run(export_pipeline, alice, pid, "json")["audit"]
    reopen = next(a for a in audit if a["action"] == "reopen")
    assert reopen["reason"] == "artifact build.zip changed from v1 to v2 after approval"
    with pytest.raises(GateNotApproved, match="gate not approved: code-review"):
        run(record_deploy, alice, pid, strategy="canary", target="prod", artifact="build.zip@2")
    run(approve_gate, bob, pid, "code-review")
    with pytest.raises(GateNotApproved, match="build.zip@1 was not reviewed: gate code-review approved build.zip@2"):
        run(record_deploy, alice, pid, strategy="canary", target="prod", artifact="build.zip@1")
    dep = run(record_deploy, alice, pid, strategy="canary", target="prod", artifact="build.zip@2")
    assert dep["evidence"] == {"reviewed": [f"build.zip@2 {DIGEST2}"], "built_after_review": []}


def test_an_artifact_first_added_after_approval_is_built_after_review_as_in_the_walkthrough(run, alice, bob):
    pid = at_review(run, alice)
    run(approve_gate, bob, pid, "code-review")
    build(run, alice, pid, DIGEST1)
    assert gate(run, alice, pid)["status"] == "approved"
    dep = run(record_deploy, alice, pid, strategy="canary", target="production", artifact="build.zip")
    assert dep["evidence"] == {"reviewed": [], "built_after_review": [f"build.zip@1 {DIGEST1}"]}


def test_the_policy_can_keep_a_gate_approved_across_new_versions(run, env, config_file, alice, bob):
    config_file("[gates.code-review]\nreopen_on_new_artifact = false\n")
    run.reload(env)
    pid = at_review(run, alice)
    build(run, alice, pid, DIGEST1)
    run(approve_gate, bob, pid, "code-review")
    build(run, alice, pid, DIGEST2)
    assert gate(run, alice, pid)["status"] == "approved"
    with pytest.raises(GateNotApproved, match="build.zip@2 was not reviewed: gate code-review approved build.zip@1"):
        run(record_deploy, alice, pid, strategy="canary", target="prod", artifact="build.zip@2")


def test_partial_approvals_of_an_older_version_stop_counting(run, env, config_file, alice, bob, carol):
    config_file("[gates.code-review]\nrequired_approvals = 2\n")
    run.reload(env)
    pid = at_review(run, alice)
    build(run, alice, pid, DIGEST1)
    run(approve_gate, bob, pid, "code-review")
    build(run, alice, pid, DIGEST2)
    run(approve_gate, carol, pid, "code-review")
    state = gate(run, alice, pid)
    assert state["status"] == "pending" and [a["person"] for a in state["approvals"]] == ["carol"]


def test_one_person_may_not_approve_both_gates_kept_apart(run, env, config_file, alice, bob, carol):
    config_file('[separation]\ndistinct = [["code-review", "security-review"]]\n')
    run.reload(env)
    pid = at_review(run, alice, template="security-audit")
    run(approve_gate, bob, pid, "code-review")
    with pytest.raises(NotAllowed, match=r"separation of duties \(\[separation\] distinct code-review / "
                                         r"security-review\): bob approved code-review"):
        run(approve_gate, bob, pid, "security-review")
    assert gate(run, alice, pid, "security-review")["approvals"] == []
    assert run(approve_gate, carol, pid, "security-review")["status"] == "approved"


def test_the_deployer_may_not_be_an_approver(run, env, config_file, alice, bob):
    config_file("[separation]\ndeployer_not_approver = true\n")
    run.reload(env)
    pid = at_review(run, alice)
    run(approve_gate, bob, pid, "code-review")
    with pytest.raises(NotAllowed, match=r"deployer_not_approver\): bob approved code-review"):
        run(record_deploy, bob, pid, strategy="canary", target="prod")
    assert run(record_deploy, alice, pid, strategy="canary", target="prod")["status"] == "in-progress"
