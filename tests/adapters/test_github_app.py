"""The GitHub App in the server, in process: signed webhooks (and forged ones), each delivery once,
a deployment protection rule held on a pipeline's gates and answered through its outbox row once
the gates are decided — from anywhere — with GitHub outages retried, and deploys from every surface
mirrored as GitHub Deployments by the server. GitHub is the fake in tests/fakes/github.py, which
refuses anything its REST description does not allow."""

from __future__ import annotations

import json
import time

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import get_command
from chainpipe.core.models import AuditEvent, DeploymentRequest, Pipeline, SeenGitHubDelivery
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select
from starlette.testclient import TestClient

from tests.fakes import slack as fake_slack_module
from tests.fakes.github import (
    APP_ID,
    INSTALLATION_ID,
    WEBHOOK_SECRET,
    app_key,
    protection_rule_payload,
    webhook_headers,
)

CONFIG = """
[github]
repositories = ["acme/shop"]
[github.environments.production]
template = "bugfix"
[github.environments.staging]
"""
RUN_ID = 9001
RUN_URL = f"https://github.com/acme/shop/actions/runs/{RUN_ID}"


@pytest.fixture
def app_env(env, fake_slack, github, config_file):
    config_file(CONFIG)
    slack = fake_slack_module
    return env | {"SLACK_SIGNING_SECRET": slack.SIGNING_SECRET, "SLACK_BOT_TOKEN": slack.BOT_TOKEN,
                  "SLACK_API_URL": fake_slack.api_url, "PIPE_SLACK_CHANNEL": "C0PIPE",
                  "GITHUB_APP_ID": APP_ID, "GITHUB_APP_PRIVATE_KEY": app_key()[0],
                  "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET, "GITHUB_API_URL": github.url,
                  "PIPE_OUTBOX_LEASE_SECONDS": "0.2"}


@pytest.fixture
def server(app_env):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings

    app = create_asgi_app(load_settings(app_env), load_bot_settings(app_env), start_notifier=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.worker, client.notifier = app.state.github, app.state.notifier
        client.settings = load_settings(app_env)
        yield client


def send(server, payload, *, event="deployment_protection_rule", delivery=None, secret=WEBHOOK_SECRET,
         signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = webhook_headers(body, event=event, delivery=delivery, secret=secret)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return server.post("/github/webhook", content=body, headers=headers)


def held_payload(github, **kw):
    github.hold(kw.get("repository", "acme/shop"), kw.get("run_id", RUN_ID), kw.get("environment", "production"))
    return protection_rule_payload(api_url=github.url, run_id=RUN_ID, **kw)


def cli(settings, command: str, actor: str = "alice", **values):
    return execute(get_command(command), values, Actor(actor, "cli"), settings)


def approved_by_the_run(settings) -> str:
    """A pipeline the workflow run created with the Action (its URL recorded), approved by dave."""
    action = Actor("github:octocat", "github", RUN_URL, principal="token:ci", service=True)
    pid = execute(get_command("create"), {"name": "shop", "template": "bugfix"}, action, settings)["id"]
    execute(get_command("start"), {"pipeline_id": pid}, action, settings)
    execute(get_command("stage"), {"pipeline_id": pid, "stage": "review"}, action, settings)
    cli(settings, "approve", "dave", pipeline_id=pid, gate="code-review")
    return pid


def counts(settings) -> dict:
    with UnitOfWork(settings, write=False) as uow:
        return {model.__name__: len(list(uow.session.exec(select(model))))
                for model in (SeenGitHubDelivery, DeploymentRequest, Pipeline, AuditEvent)}


def test_unsigned_and_wrongly_signed_webhooks_get_401_and_record_nothing(server, github):
    payload = held_payload(github)
    before = counts(server.settings)
    assert send(server, payload, secret="not-the-secret-0123456789").status_code == 401
    assert send(server, payload, signature="").status_code == 401
    assert send(server, payload, signature="sha1=" + "0" * 40).status_code == 401
    tampered = server.post("/github/webhook", content=json.dumps(payload | {"environment": "staging"}).encode(),
                           headers=webhook_headers(json.dumps(payload).encode()))
    assert tampered.status_code == 401 and tampered.json()["error"] == "unauthorized"
    server.worker.drain_once()
    assert counts(server.settings) == before
    assert github.reviews == [] and github.tokens_issued() == 0


def test_events_other_than_the_protection_rule_are_accepted_and_ignored(server, github):
    before = counts(server.settings)
    resp = send(server, {"zen": "Keep it logically awesome."}, event="push")
    assert (resp.status_code, resp.json()["status"]) == (202, "ignored")
    assert send(server, {"zen": "hi"}, event="ping").json() == {"status": "pong"}
    assert counts(server.settings) == before


def test_a_protection_rule_creates_a_pipeline_from_the_template_and_posts_its_gate_in_slack(server, github,
                                                                                           fake_slack):
    resp = send(server, held_payload(github, ref="release/1.2", sha="d" * 40))
    assert resp.status_code == 202, resp.text
    pid = resp.json()["pipeline_id"]
    with UnitOfWork(server.settings, write=False) as uow:
        pipeline = uow.get_pipeline(pid)
        assert (pipeline.template, pipeline.current_stage, pipeline.created_by) == ("bugfix", "review",
                                                                                    f"github-app:{INSTALLATION_ID}")
    server.notifier.drain_once()
    [post] = fake_slack.calls_to("chat.postMessage")
    shown = json.dumps(post.params["blocks"])
    assert "Gate code-review" in post.params["text"]
    assert "*production*" in shown and "release/1.2" in shown and "ddddddd" in shown and RUN_URL in shown
    assert "waiting for the gates" in shown
    server.worker.drain_once()
    assert github.reviews == []  # nobody decided: GitHub keeps holding the job


def test_an_approval_from_the_cli_answers_github_once_naming_the_approvers(server, github, fake_slack):
    pid = send(server, held_payload(github)).json()["pipeline_id"]
    server.notifier.drain_once()  # the gate message is posted
    cli(server.settings, "approve", "dave", pipeline_id=pid, gate="code-review", reason="lgtm")
    for _ in range(3):
        server.worker.drain_once()
    [review] = github.reviews
    assert (review["state"], review["environment_name"], review["run_id"]) == ("approved", "production", RUN_ID)
    assert "code-review by dave" in review["comment"] and pid in review["comment"]
    server.notifier.drain_once()
    [update] = fake_slack.calls_to("chat.update")[-1:]
    assert "GitHub was told: approved" in json.dumps(update.params["blocks"])


def test_a_rejection_answers_rejected_with_its_reason(server, github):
    pid = send(server, held_payload(github)).json()["pipeline_id"]
    cli(server.settings, "reject", "erin", pipeline_id=pid, gate="code-review", reason="breaks the login page")
    server.worker.drain_once()
    server.worker.drain_once()
    [review] = github.reviews
    assert review["state"] == "rejected"
    assert "erin" in review["comment"] and "breaks the login page" in review["comment"]


def test_a_delivery_runs_once_and_a_second_delivery_of_the_same_rule_holds_nothing_new(server, github):
    payload = held_payload(github)
    first = send(server, payload, delivery="d-1")
    assert send(server, payload, delivery="d-1").json()["status"] == "duplicate"
    again = send(server, payload, delivery="d-2")  # GitHub re-sent the rule itself
    assert first.json()["request"] == again.json()["request"]
    c = counts(server.settings)
    assert (c["SeenGitHubDelivery"], c["DeploymentRequest"], c["Pipeline"]) == (2, 1, 1)


def test_the_pipeline_the_workflow_run_created_is_used_and_answered_at_once_when_already_approved(server, github):
    pid = approved_by_the_run(server.settings)
    resp = send(server, held_payload(github))
    assert resp.json()["pipeline_id"] == pid
    server.worker.drain_once()
    [review] = github.reviews
    assert review["state"] == "approved" and "dave" in review["comment"]
    assert counts(server.settings)["Pipeline"] == 1


def test_a_run_of_an_unconfigured_repository_or_environment_is_ignored_with_202(server, github, caplog):
    before = counts(server.settings)
    other_repo = send(server, held_payload(github, repository="acme/other"))
    other_env = send(server, held_payload(github, environment="qa"))
    no_template = send(server, held_payload(github, environment="staging"))  # listed, no template, no pipeline
    assert [r.status_code for r in (other_repo, other_env, no_template)] == [202, 202, 202]
    assert {r.json()["status"] for r in (other_repo, other_env, no_template)} == {"ignored"}
    after = counts(server.settings)
    assert (after["DeploymentRequest"], after["Pipeline"], after["AuditEvent"]) == (0, 0, before["AuditEvent"])
    assert len([r for r in caplog.records if "github webhook ignored" in r.getMessage()]) == 3


def test_a_signed_payload_whose_callback_is_elsewhere_gets_no_token_and_records_nothing(server, github):
    payload = held_payload(github)
    payload["deployment_callback_url"] = f"https://evil.test/repos/acme/shop/actions/runs/{RUN_ID}/" \
                                         "deployment_protection_rule"
    before = counts(server.settings)
    assert send(server, payload).status_code == 400
    server.worker.drain_once()
    assert counts(server.settings) == before and github.tokens_issued() == 0
    assert [r for r in github.requests if "evil" in r.path] == []


def test_a_github_outage_is_retried_with_backoff_visible_in_health_and_answered_once(server, github, monkeypatch):
    from chainpipe.core.services import protection

    monkeypatch.setattr(protection, "MAX_BACKOFF", protection.timedelta(0))  # retry at once in the test
    github.fail_reviews = 2
    pid = send(server, held_payload(github)).json()["pipeline_id"]
    cli(server.settings, "approve", "dave", pipeline_id=pid, gate="code-review")
    server.worker.drain_once()
    health = server.get("/healthz/ready").json()["github"]["protection_rules"]
    assert health["held"] == 1 and "502" in health["failing"][0]["error"]
    for _ in range(4):
        server.worker.drain_once()
    assert len(github.reviews) == 1
    assert len([r for r in github.requests if r.path.endswith("deployment_protection_rule")]) == 3
    with UnitOfWork(server.settings, write=False) as uow:
        [row] = uow.session.exec(select(DeploymentRequest)).all()
        assert (row.attempts, row.last_error, row.answered_at is not None) == (3, None, True)
    assert server.get("/healthz/ready").json()["github"]["protection_rules"] == {"held": 0, "failing": []}
    assert github.tokens_issued() == 1  # the installation token is cached between attempts


def test_deploys_and_rollbacks_from_the_cli_are_mirrored_by_the_server(server, github):
    pid = approved_by_the_run(server.settings)
    cli(server.settings, "artifact-add", pipeline_id=pid, name="build", type="binary", uri="https://x.test/b",
        digest="sha256:" + "b" * 64)
    dep = cli(server.settings, "deploy", pipeline_id=pid, strategy="canary", target="production", ref="e" * 40,
              artifact="build")
    server.worker.drain_once()
    cli(server.settings, "deploy-update", deploy_id=dep["id"], status="succeeded")
    server.worker.drain_once()
    cli(server.settings, "rollback", deploy_id=dep["id"], reason="error rate")
    server.worker.drain_once()
    server.worker.drain_once()
    [deployment] = github.deployments.values()
    assert deployment["environment"] == "production" and deployment["ref"] == "e" * 40
    assert [s["state"] for s in github.statuses[deployment["id"]]] == ["in_progress", "success", "inactive"]
    with UnitOfWork(server.settings, write=False) as uow:
        link = uow.session.exec(select(AuditEvent).where(AuditEvent.entity == "deploy",
                                                         AuditEvent.action == "link")).first()
        assert link is not None and link.principal == f"github-app:{INSTALLATION_ID}"


def test_installation_tokens_are_cached_until_shortly_before_they_expire(github):
    from chainpipe.gh.app import REFRESH_MARGIN, GitHubApp

    real = time.time()
    now = [real]
    app = GitHubApp(APP_ID, app_key()[0], api_url=github.url, clock=lambda: now[0])
    first = app.token(INSTALLATION_ID)
    assert app.token(INSTALLATION_ID) == first and github.tokens_issued() == 1
    now[0] = real + 3600 - REFRESH_MARGIN + 1  # within the margin: a fresh one
    assert app.token(INSTALLATION_ID) != first and github.tokens_issued() == 2


def test_an_app_key_github_does_not_know_gets_no_token(github):
    from chainpipe.gh.app import GitHubApp
    from chainpipe.gh.mirror import MirrorError
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(MirrorError, match="no token for installation 77: 401"):
        GitHubApp(APP_ID, other, api_url=github.url).token(INSTALLATION_ID)
    assert github.tokens_issued() == 0


def test_old_deliveries_are_forgotten_while_recent_ones_still_refuse_a_replay(server):
    from datetime import timedelta

    from chainpipe.bot.github_webhook import KEEP_DELIVERIES, remember_delivery

    assert remember_delivery(server.settings, "old", "deployment_protection_rule")
    with UnitOfWork(server.settings) as uow:
        row = uow.session.exec(select(SeenGitHubDelivery).where(SeenGitHubDelivery.delivery == "old")).one()
        row.received_at = uow.now() - KEEP_DELIVERIES - timedelta(minutes=1)
        uow.commit()
    assert remember_delivery(server.settings, "recent", "deployment_protection_rule")
    assert remember_delivery(server.settings, "next", "deployment_protection_rule", prune_every=1)
    assert not remember_delivery(server.settings, "recent", "deployment_protection_rule")
    with UnitOfWork(server.settings, write=False) as uow:
        kept = {r.delivery for r in uow.session.exec(select(SeenGitHubDelivery))}
    assert kept == {"recent", "next"}
