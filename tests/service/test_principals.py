"""Principals: every change names who proved it; a service can't decide a gate unless a policy
names it; one principal gives one decision per round; tokens come in two kinds."""

from __future__ import annotations

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.errors import Conflict, NotAllowed, NotFound
from chainpipe.core.models import Approval, AuditEvent
from chainpipe.core.services.gates import approve_gate, reject_gate
from chainpipe.core.services.queries import show_pipeline
from chainpipe.core.services.tokens import create_token, find_token, revoke_token, rotate_token
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select

from tests.service.helpers import running_pipeline

CI = Actor("token:ci", "api", principal="token:ci", on_behalf_of="github:octocat", service=True)
SCANNER = Actor("token:scanner", "api", principal="token:scanner", service=True)


def at_review(run, actor, template="security-audit"):
    from chainpipe.core.services.pipelines import advance_stage

    pid = running_pipeline(run, actor, template=template)
    run(advance_stage, actor, pid, "review")
    return pid


def rows(settings, model, pid):
    with UnitOfWork(settings, write=False) as uow:
        found = list(uow.session.exec(select(model).where(model.pipeline_id == pid).order_by(model.seq)))
        uow.session.expunge_all()
        return found


def test_every_change_records_its_principal_and_the_claim_beside_the_person(run, settings, alice):
    pid = at_review(run, CI)
    audit = rows(settings, AuditEvent, pid)
    assert {(a.actor, a.principal, a.on_behalf_of) for a in audit} == {("token:ci", "token:ci", "github:octocat")}
    assert audit[0].principal == "token:ci"


def test_a_service_token_cannot_decide_a_gate_and_nothing_changes(run, settings, alice):
    pid = at_review(run, alice)
    before = len(rows(settings, AuditEvent, pid))
    with pytest.raises(NotAllowed, match="service token ci may not decide gate code-review"):
        run(approve_gate, CI, pid, "code-review")
    with pytest.raises(NotAllowed, match="service token ci may not decide gate code-review"):
        run(reject_gate, CI, pid, "code-review", "nope")
    assert len(rows(settings, AuditEvent, pid)) == before and rows(settings, Approval, pid) == []


def test_a_service_named_in_service_approvers_decides_that_gate_only(run, env, config_file, alice):
    config_file('[gates.security-review]\nservice_approvers = ["scanner"]\n')
    run.reload(env)
    pid = at_review(run, alice)
    view = run(approve_gate, SCANNER, pid, "security-review")
    assert view["status"] == "approved" and view["approvals"][0]["principal"] == "token:scanner"
    with pytest.raises(NotAllowed, match="service token scanner may not decide gate code-review"):
        run(approve_gate, SCANNER, pid, "code-review")


def test_one_principal_cannot_approve_twice_as_two_people(run, env, config_file, alice):
    config_file("[gates.code-review]\nrequired_approvals = 2\n")
    run.reload(env)
    pid = at_review(run, alice, template="feature")
    bot = dict(surface="api", principal="token:shared")
    run(approve_gate, Actor("bob", **bot), pid, "code-review")
    with pytest.raises(NotAllowed, match="token:shared already decided gate code-review in this round as bob"):
        run(approve_gate, Actor("carol", **bot), pid, "code-review")
    gate = run(show_pipeline, alice, pid)["gates"][0]
    assert gate["status"] == "pending"


def test_an_administrator_on_the_database_is_recorded_as_such(run, settings, alice, bob):
    pid = at_review(run, alice, template="feature")
    run(approve_gate, bob, pid, "code-review")
    (approval,) = rows(settings, Approval, pid)
    assert approval.person == "bob" and approval.principal.startswith("os:")


def test_personal_and_service_tokens_and_name_reuse(run, alice):
    personal = run(create_token, alice, "alice-laptop", person="alice")
    assert personal["kind"] == "personal" and personal["person"] == "alice"
    service = run(create_token, alice, "ci")
    assert service["kind"] == "service" and service["person"] is None
    with pytest.raises(Conflict, match="a token named ci already exists"):
        run(create_token, alice, "ci")
    run(revoke_token, alice, "ci")
    again = run(create_token, alice, "ci")
    assert again["active"] and again["id"] != service["id"]
    with UnitOfWork(run.settings) as uow:
        assert find_token(uow, service["token"]) is None
        assert find_token(uow, again["token"])["name"] == "ci"


def test_rotation_issues_a_new_secret_of_the_same_kind_and_the_old_one_stops(run, alice):
    old = run(create_token, alice, "alice-laptop", person="alice")
    new = run(rotate_token, alice, "alice-laptop")
    assert new["token"] != old["token"] and new["kind"] == "personal" and new["person"] == "alice"
    with UnitOfWork(run.settings) as uow:
        assert find_token(uow, old["token"]) is None
        assert find_token(uow, new["token"])["person"] == "alice"
    with pytest.raises(NotFound):
        run(rotate_token, alice, "nobody")
