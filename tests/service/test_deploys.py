"""Deploy records: gated, strategies validated, status reported, idempotent rollback."""

from __future__ import annotations

import pytest
from chainpipe.core.errors import GateNotApproved, InvalidInput, InvalidTransition, NotFound
from chainpipe.core.services.artifacts import add_artifact
from chainpipe.core.services.deploys import list_deploys, record_deploy, rollback_deploy, show_deploy, update_deploy
from chainpipe.core.services.pipelines import pause_pipeline
from chainpipe.core.services.queries import audit_log, show_pipeline

from tests.service.helpers import at_review_approved, running_pipeline


def test_deploy_is_refused_while_code_review_is_pending(run, alice):
    pid = running_pipeline(run, alice)
    with pytest.raises(GateNotApproved, match="gate not approved: code-review"):
        run(record_deploy, alice, pid, strategy="canary", target="production")
    assert run(list_deploys, alice, pid) == []


def test_deploy_moves_the_pipeline_into_its_deploy_stage(run, alice):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production", ref="abc123")
    assert dep["id"].startswith("dep-") and dep["status"] == "in-progress" and dep["ref"] == "abc123"
    assert run(show_pipeline, alice, pid)["current_stage"] == "deploy"


def test_security_audit_without_a_deploy_stage_still_needs_both_gates(run, alice):
    pid = at_review_approved(run, alice, "security-audit")
    dep = run(record_deploy, alice, pid, strategy="blue-green", target="staging")
    assert dep["status"] == "in-progress" and run(show_pipeline, alice, pid)["current_stage"] == "review"


@pytest.mark.parametrize("strategy", ["blue-green", "canary", "rolling", "recreate", "shadow", "dark-launch"])
def test_all_six_strategies_are_accepted(run, alice, strategy):
    pid = at_review_approved(run, alice)
    assert run(record_deploy, alice, pid, strategy=strategy, target="prod")["strategy"] == strategy


def test_bad_strategy_status_or_state_is_refused(run, alice):
    pid = at_review_approved(run, alice)
    with pytest.raises(InvalidInput, match="unknown strategy: big-bang; allowed: blue-green, canary"):
        run(record_deploy, alice, pid, strategy="big-bang", target="prod")
    with pytest.raises(InvalidInput, match="unknown deploy status: rolled-back"):
        run(record_deploy, alice, pid, strategy="canary", target="prod", status="rolled-back")
    run(pause_pipeline, alice, pid)
    with pytest.raises(InvalidTransition,
                       match="can't record a deploy of a pipeline that is paused; allowed from: running; resume it"):
        run(record_deploy, alice, pid, strategy="canary", target="prod")


def test_a_deploy_links_an_artifact_version(run, alice):
    pid = at_review_approved(run, alice)
    for _ in range(2):
        run(add_artifact, alice, pid, name="img", type="docker-image", uri="ghcr.io/acme/img")
    assert run(record_deploy, alice, pid, strategy="canary", target="p", artifact="img")["artifact"]["version"] == 2
    assert run(record_deploy, alice, pid, strategy="canary", target="p", artifact="img@1")["artifact"]["version"] == 1
    with pytest.raises(NotFound):
        run(record_deploy, alice, pid, strategy="canary", target="p", artifact="nope")


def test_status_updates_follow_the_table_and_repeat_harmlessly(run, alice):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="rolling", target="prod", status="pending")
    assert run(update_deploy, alice, dep["id"], status="in-progress")["status"] == "in-progress"
    done = run(update_deploy, alice, dep["id"], status="succeeded")
    assert done["status"] == "succeeded" and done["finished_at"]
    assert run(update_deploy, alice, dep["id"], status="succeeded")["changed"] is False
    with pytest.raises(InvalidTransition, match="can't fail a deploy that is succeeded"):
        run(update_deploy, alice, dep["id"], status="failed")


def test_rollback_is_idempotent(run, alice, bob):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")
    first = run(rollback_deploy, alice, dep["id"], reason="error spike")
    assert first["status"] == "rolled-back" and first["changed"] is True and first["rolled_back_by"] == "alice"
    again = run(rollback_deploy, bob, dep["id"], reason="me too")
    assert again["changed"] is False
    assert {k: v for k, v in again.items() if k != "changed"} == {k: v for k, v in first.items() if k != "changed"}
    assert [e["action"] for e in run(audit_log, alice, pid) if e["entity"] == "deploy"] == ["rollback", "record"]


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_rolling_back_a_pending_or_failed_deploy_is_an_error(run, alice, status):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production", status=status)
    with pytest.raises(InvalidTransition, match=f"can't rollback a deploy that is {status}; allowed from: "
                                                "in-progress, succeeded"):
        run(rollback_deploy, alice, dep["id"])
    assert run(show_deploy, alice, dep["id"])["status"] == status


def test_deploys_are_listed_newest_first(run, alice):
    pid = at_review_approved(run, alice)
    ids = [run(record_deploy, alice, pid, strategy="canary", target=t)["id"] for t in ("a", "b", "c")]
    assert [d["id"] for d in run(list_deploys, alice, pid)] == ids[::-1]
    with pytest.raises(NotFound, match="deploy not found: dep-x"):
        run(show_deploy, alice, "dep-x")


def test_rolling_back_keeps_when_the_deploy_finished(run, alice, clock):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")
    clock.advance(minutes=30)
    rolled = run(rollback_deploy, alice, dep["id"], reason="error spike")
    assert rolled["finished_at"] == dep["finished_at"]
    assert rolled["rolled_back_at"] != dep["finished_at"] and rolled["rolled_back_at"].startswith("2026-11-02T09:30")
