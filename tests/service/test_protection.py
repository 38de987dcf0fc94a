"""Protection-rule requests as the services keep them (SQLite and PostgreSQL): one row per callback,
the pipeline found by its workflow run, the answer fixed once from the gates, claimed by one
claimant at a time, retried with growing backoff, and audited without breaking the hash chain."""

from __future__ import annotations

from datetime import timedelta

from chainpipe.core.actor import Actor
from chainpipe.core.services import protection
from chainpipe.core.services.audit import verify_audit
from chainpipe.core.services.gates import approve_gate, reject_gate
from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline
from chainpipe.core.uow import UnitOfWork

RUN_URL = "https://github.com/acme/shop/actions/runs/9001"
APP = Actor("github-app:77", "github", RUN_URL, principal="github-app:77", service=True)
CALLBACK = "https://api.github.com/repos/acme/shop/actions/runs/9001/deployment_protection_rule"


def held(run, pid: str, callback: str = CALLBACK) -> dict:
    return run(protection.record_request, APP, pid, callback_url=callback, installation_id=77,
               repository="acme/shop", environment="production", run_id=9001, run_url=RUN_URL, ref="main",
               sha="c" * 40)


def at_review(run, actor) -> str:
    pid = run(create_pipeline, Actor("ci", "github", RUN_URL), name="shop", template="bugfix")["id"]
    run(start_pipeline, actor, pid)
    run(advance_stage, actor, pid, "review")
    return pid


def in_uow(settings, fn, *args, **kw):
    with UnitOfWork(settings) as uow:
        return fn(uow, *args, **kw)


def test_the_pipeline_is_found_by_the_run_that_created_it_and_its_repository_by_the_run_url(run, settings, alice):
    pid = at_review(run, alice)
    assert in_uow(settings, protection.run_pipeline, RUN_URL) == pid
    assert in_uow(settings, protection.run_pipeline, RUN_URL.replace("9001", "9002")) is None
    assert in_uow(settings, protection.pipeline_repository, pid) == ("acme/shop", None)
    held(run, pid)
    assert in_uow(settings, protection.pipeline_repository, pid) == ("acme/shop", 77)


def test_one_request_per_callback_however_often_github_sends_it(run, settings, alice):
    pid = at_review(run, alice)
    first, again = held(run, pid), held(run, pid)
    assert (first["new"], again["new"], first["id"]) == (True, False, again["id"])
    assert len(in_uow(settings, protection.requests_of, pid)) == 1


def test_the_answer_is_fixed_once_and_a_later_decision_does_not_change_it(run, settings, alice, bob):
    pid = at_review(run, alice)
    held(run, pid)
    assert in_uow(settings, protection.decide_requests, pid) == []  # the gate is pending
    run(approve_gate, bob, pid, "code-review")
    [decided] = in_uow(settings, protection.decide_requests, pid)
    assert decided["answer"] == "approved" and "code-review by bob" in decided["comment"]
    assert in_uow(settings, protection.decide_requests, pid) == []
    assert in_uow(settings, protection.pipelines_awaiting) == []


def test_a_due_answer_is_claimed_by_one_claimant_until_its_lease_runs_out(run, settings, alice, bob):
    pid = at_review(run, alice)
    held(run, pid)
    run(reject_gate, bob, pid, "code-review", "no tests")
    in_uow(settings, protection.decide_requests, pid)
    [claimed] = in_uow(settings, protection.claim_due_answers, lease_seconds=60)
    assert claimed["answer"] == "rejected" and "no tests" in claimed["comment"]
    assert in_uow(settings, protection.claim_due_answers, lease_seconds=60) == []  # a second replica: nothing
    with UnitOfWork(settings) as uow:  # the first claimant died: after the lease it is due again
        row = uow.session.get(protection.DeploymentRequest, int(claimed["id"].removeprefix("ghreq-")))
        row.next_attempt_at = uow.now() - timedelta(seconds=1)
        uow.commit()
    assert [c["id"] for c in in_uow(settings, protection.claim_due_answers)] == [claimed["id"]]


def test_failures_back_off_twice_as_long_each_time_and_success_settles_it_in_the_audit(run, settings, alice, bob):
    pid = at_review(run, alice)
    request = held(run, pid)
    run(approve_gate, bob, pid, "code-review")
    in_uow(settings, protection.decide_requests, pid)
    waits = []
    for _ in range(3):
        with UnitOfWork(settings) as uow:
            before = uow.now()
            view = protection.finish_answer(uow, APP, request["id"], error="GitHub answered 502")
            row = uow.session.get(protection.DeploymentRequest, int(request["id"].removeprefix("ghreq-")))
            waits.append(round((row.next_attempt_at - before).total_seconds()))
    assert waits == [2, 4, 8] and view["last_error"] == "GitHub answered 502" and not view["answered"]
    health = in_uow(settings, protection.protection_health)
    assert health["held"] == 1 and health["failing"][0]["attempts"] == 3
    done = in_uow(settings, protection.finish_answer, APP, request["id"])
    assert done["answered"] and done["last_error"] is None
    assert in_uow(settings, protection.claim_due_answers) == []
    assert in_uow(settings, protection.protection_health) == {"held": 0, "failing": []}
    assert verify_audit(settings, pipeline_id=pid)["ok"]


def test_a_refusal_github_will_not_change_is_settled_as_refused_not_retried(run, settings, alice, bob):
    pid = at_review(run, alice)
    request = held(run, pid)
    run(approve_gate, bob, pid, "code-review")
    in_uow(settings, protection.decide_requests, pid)
    view = in_uow(settings, protection.finish_answer, APP, request["id"], error="GitHub answered 422", final=True)
    assert view["answered"] and view["last_error"] == "GitHub answered 422"
    assert in_uow(settings, protection.claim_due_answers) == []
