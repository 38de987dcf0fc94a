"""The `github` outbox consumer against a fake GitHub API: each deploy change is mirrored once, a
GitHub outage is retried after the lease without putting statuses out of order, a Deployment made
just before a crash is found again rather than made twice, and old history is not replayed."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import get_command
from chainpipe.core.services import notifications as outbox
from chainpipe.core.uow import UnitOfWork
from chainpipe.gh import outbox as github_outbox
from chainpipe.gh.mirror import DeploymentMirror

from tests.adapters.conftest import age_claims

REF = "b" * 40




@pytest.fixture
def mirror(github):
    return DeploymentMirror(github.token, "acme/shop", api_url=github.url, throttle=False)


@pytest.fixture
def settings(env, config_file):
    return load_settings(env)


@pytest.fixture
def run(settings):
    """Grammar commands as a person at the terminal would run them (also the consumer's runner)."""
    actor = Actor("alice", "cli")

    def call(command: str, values: dict):
        return execute(get_command(command), values, actor, settings)

    return call


@pytest.fixture
def ready(run):
    """A pipeline whose gates are approved, ready for deploys."""
    def make() -> str:
        pid = run("create", {"name": "shop", "template": "bugfix"})["id"]
        run("start", {"pipeline_id": pid})
        run("stage", {"pipeline_id": pid, "stage": "review"})
        run("approve", {"pipeline_id": pid, "gate": "code-review"})
        return pid

    return make


def deploy(run, pid: str, **values) -> dict:
    return run("deploy", {"pipeline_id": pid, "strategy": "canary", "target": "production", "ref": REF} | values)


def results(settings) -> dict[int, str]:
    with UnitOfWork(settings, write=False) as uow:
        return outbox.delivery_results(uow, github_outbox.CONSUMER)


def states(github, external_id) -> list[str]:
    return [s["state"] for s in github.statuses[int(external_id)]]


def test_each_deploy_change_is_mirrored_once_however_often_the_outbox_is_drained(settings, run, ready, mirror, github):
    pid = ready()
    dep = deploy(run, pid)
    [created] = github_outbox.drain(settings, mirror, run, pipeline_id=pid)
    assert created.external_id and run("deploy-show", {"deploy_id": dep["id"]})["external_id"] == created.external_id
    assert github_outbox.drain(settings, mirror, run, pipeline_id=pid) == []
    run("deploy-update", {"deploy_id": dep["id"], "status": "succeeded"})
    [updated] = github_outbox.drain(settings, mirror, run)
    assert updated.outcome == "ok: success"
    assert states(github, created.external_id) == ["in_progress", "success"]
    assert len(github.deployments) == 1
    assert all(r.startswith(("ok", "skipped")) for r in results(settings).values())


def test_a_github_outage_is_retried_after_the_lease_and_github_ends_up_showing_the_deploy_as_it_is(
        settings, run, ready, mirror, github):
    pid = ready()
    dep = deploy(run, pid)
    github.fail_with = 503
    [failed] = github_outbox.drain(settings, mirror, run, lease_seconds=30)
    assert failed.failed and "503" in failed.outcome
    assert any(r.startswith("retry 1: GitHub refused") for r in results(settings).values())
    run("deploy-update", {"deploy_id": dep["id"], "status": "succeeded"})
    github.fail_with = None
    [skipped] = github_outbox.drain(settings, mirror, run, lease_seconds=30)  # the record is still leased
    assert skipped.missing and not github.deployments
    age_claims(settings, github_outbox.CONSUMER, seconds=31)
    [retried] = github_outbox.drain(settings, mirror, run, lease_seconds=30)
    assert retried.external_id and states(github, retried.external_id) == ["success"]
    assert all(r.startswith(("ok", "skipped")) for r in results(settings).values())


def test_a_deployment_made_just_before_a_crash_is_linked_not_made_twice(settings, run, ready, mirror, github):
    pid = ready()
    dep = deploy(run, pid)
    with UnitOfWork(settings) as uow:  # a drainer claims, creates the Deployment, and dies before linking
        [claimed] = [e for e in outbox.claim_events(uow, github_outbox.CONSUMER, pipeline_id=pid, lease_seconds=0.3,
                                                    limit=100) if e["action"] == "record"]
    first = mirror.open(dep)
    time.sleep(0.4)
    mirrored = github_outbox.drain(settings, mirror, run, pipeline_id=pid, lease_seconds=0.3)
    assert [m.external_id for m in mirrored] == [first]
    assert list(github.deployments) == [int(first)] and states(github, first) == ["in_progress"]
    assert run("deploy-show", {"deploy_id": dep["id"]})["external_id"] == first
    assert results(settings)[claimed["seq"]].startswith("ok")


def test_a_first_drain_does_not_replay_old_history(settings, run, ready, mirror, github):
    pid = ready()
    deploy(run, pid)
    assert github_outbox.drain(settings, mirror, run, max_age=timedelta(0)) == []
    assert not github.requests
    assert "skipped: older than the outbox max age" in results(settings).values()


def test_the_github_consumer_does_not_take_the_slack_notifiers_events(settings, run, ready, mirror):
    pid = ready()
    deploy(run, pid)
    github_outbox.drain(settings, mirror, run, pipeline_id=pid)
    with UnitOfWork(settings) as uow:
        slack = outbox.claim_events(uow, "slack", pipeline_id=pid, limit=100)
    assert {e["action"] for e in slack} >= {"create", "approve", "record", "link"}


def test_events_that_are_not_deploy_changes_are_recorded_together_in_one_statement(settings, run, ready, mirror,
                                                                                   github):
    from sqlalchemy import event as sa_event

    pid = ready()  # create, start, stage, approve: nothing to mirror
    updates = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE") and "outbox_deliveries" in statement:
            updates.append(len(parameters) if executemany else 1)

    engine = UnitOfWork(settings).engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        assert github_outbox.drain(settings, mirror, run, pipeline_id=pid) == []
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    skipped = [r for r in results(settings).values() if r == "skipped: not a deploy change"]
    assert len(skipped) >= 4 and updates == [len(skipped)] and not github.requests
