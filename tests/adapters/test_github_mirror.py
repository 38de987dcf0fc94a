"""Deploys mirrored as GitHub Deployments, against a fake GitHub API served over real HTTP
(PyGithub uses requests, which respx cannot see): the mapping from deploy events, and the Action in
direct mode, which drains the `github` outbox for its pipeline after its step."""

from __future__ import annotations

import pytest
from chainpipe.cli import action
from chainpipe.gh.mirror import DeploymentMirror, MirrorError, environment_flags, mirror_event

RUN_URL = "https://github.com/acme/shop/actions/runs/77"




@pytest.fixture
def mirror(github):
    return DeploymentMirror(github.token, "acme/shop", api_url=github.url, run_url=RUN_URL, throttle=False)


DEPLOY = {"id": "dep-0123456789ab", "pipeline_id": "pipe-0123456789ab", "strategy": "canary",
          "target": "production", "ref": "f" * 40, "status": "in-progress"}


def test_a_deploy_becomes_a_deployment_with_an_in_progress_status(github, mirror):
    external_id = mirror.open(DEPLOY)
    [create] = github.writes("deployment")
    assert create.path == "/repos/acme/shop/deployments"
    assert create.headers["authorization"] == f"token {github.token}" or \
        create.headers["authorization"] == f"Bearer {github.token}"
    assert create.body == {
        "ref": "f" * 40, "task": "deploy", "auto_merge": False, "required_contexts": [],
        "environment": "production", "description": "canary deploy dep-0123456789ab of pipeline pipe-0123456789ab",
        "payload": {"chainpipe": {"deploy_id": "dep-0123456789ab", "pipeline_id": "pipe-0123456789ab",
                                  "strategy": "canary"}},
        "production_environment": True, "transient_environment": False,
    }
    [status] = github.writes("status")
    assert status.path == f"/repos/acme/shop/deployments/{external_id}/statuses"
    assert status.body == {"state": "in_progress", "description": "chainpipe: in-progress",
                           "environment": "production", "target_url": RUN_URL}


@pytest.mark.parametrize("deploy_status, state", [
    ("succeeded", "success"), ("failed", "failure"), ("rolled-back", "inactive"), ("pending", "pending")])
def test_statuses_follow_the_deploy(github, mirror, deploy_status, state):
    external_id = mirror.open(DEPLOY)
    assert mirror.follow(external_id, DEPLOY | {"status": deploy_status}) == state
    assert [s["state"] for s in github.statuses[int(external_id)]] == ["in_progress", state]


def test_a_status_github_shows_already_is_not_added_again(github, mirror):
    external_id = mirror.open(DEPLOY)
    assert mirror.follow(external_id, DEPLOY) is None
    assert mirror.follow(external_id, DEPLOY | {"status": "succeeded"}) == "success"
    assert mirror.follow(external_id, DEPLOY | {"status": "succeeded"}) is None
    assert [s["state"] for s in github.statuses[int(external_id)]] == ["in_progress", "success"]


def test_a_deployment_created_before_its_id_was_stored_is_found_again_not_created_twice(github, mirror):
    first = mirror.open(DEPLOY)
    assert mirror.open(DEPLOY | {"status": "succeeded"}) == first
    assert list(github.deployments) == [int(first)]
    assert [s["state"] for s in github.statuses[int(first)]] == ["in_progress", "success"]
    other = mirror.open(DEPLOY | {"id": "dep-ffffffffffff"})  # same ref and target, another deploy
    assert other != first and len(github.deployments) == 2


def test_events_map_to_deployments_and_statuses(github, mirror):
    record = {"action": "record", "run_url": RUN_URL}
    created = mirror_event(mirror, record, DEPLOY)
    assert created.outcome.startswith("ok") and created.external_id == str(next(iter(github.deployments)))
    linked = DEPLOY | {"external_id": created.external_id}
    assert mirror_event(mirror, record, linked).outcome == "skipped: GitHub shows it already"
    rolled = mirror_event(mirror, {"action": "rollback"}, linked | {"status": "rolled-back"})
    assert rolled.outcome == "ok: inactive" and rolled.external_id is None
    unlinked = mirror_event(mirror, {"action": "update"}, DEPLOY | {"id": "dep-eeeeeeeeeeee", "status": "failed"})
    assert unlinked.missing and not unlinked.failed
    assert mirror_event(mirror, {"action": "link"}, linked).outcome == "skipped: link is not mirrored"
    assert len(github.deployments) == 1
    assert [s["state"] for s in github.statuses[int(created.external_id)]] == ["in_progress", "inactive"]


def test_a_deploy_without_a_ref_is_not_sent_to_github(github, mirror):
    refused = mirror_event(mirror, {"action": "record"}, DEPLOY | {"ref": None})
    assert refused.failed and "has no ref" in refused.outcome
    assert not github.requests


def test_environment_flags_tell_production_and_short_lived_environments_apart():
    assert environment_flags("production-eu") == {"production_environment": True, "transient_environment": False}
    assert environment_flags("pr-123") == {"production_environment": False, "transient_environment": True}
    assert environment_flags("staging") == {"production_environment": False, "transient_environment": False}


def test_github_errors_are_mirror_errors_that_name_no_token(github, mirror):
    with pytest.raises(MirrorError, match="of dep-0123456789ab: 404 Not Found") as info:
        mirror.follow("999", DEPLOY)
    assert github.token not in str(info.value)
    bad = DeploymentMirror("wrong", "acme/shop", api_url=github.url, throttle=False)
    with pytest.raises(MirrorError, match="401 Bad credentials"):
        bad.open(DEPLOY)


# --- through the entrypoint: the deployment id is stored on the deploy ---------------------------

@pytest.fixture
def pipeline(env, config_file):
    from chainpipe.core.actor import Actor
    from chainpipe.core.config import load_settings
    from chainpipe.core.dispatch import execute
    from chainpipe.core.grammar import get_command

    settings = load_settings(env)

    def call(command, /, **values):
        cmd = get_command(command)
        return execute(cmd, {p.name: p.default for p in cmd.params} | values, Actor("alice", "cli"), settings)

    pid = call("create", name="shop", template="bugfix")["id"]
    call("start", pipeline_id=pid)
    call("stage", pipeline_id=pid, stage="review")
    call("approve", pipeline_id=pid, gate="code-review")
    call.pid, call.settings_env = pid, env
    return call


@pytest.fixture
def step(env, github, tmp_path, capsys, monkeypatch):

    def call(**inputs):
        (tmp_path / "output").write_text("")
        (tmp_path / "summary").write_text("")
        runner = {"GITHUB_ACTOR": "octocat", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "77",
                  "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
                  "GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": github.url, "GITHUB_SHA": "a" * 40,
                  "GITHUB_OUTPUT": str(tmp_path / "output"), "PIPE_DATA_DIR": env["PIPE_DATA_DIR"],
                  "PIPE_CONFIG": env["PIPE_CONFIG"], "PIPE_ACTION_DATABASE_URL": env["PIPE_DATABASE_URL"],
                  "PIPE_ACTION_GITHUB_TOKEN": github.token}
        code = action.main(runner | {action.env_name(k.replace("_", "-")): v for k, v in inputs.items()})
        from tests.adapters.test_action_entrypoint import parse_outputs

        return code, capsys.readouterr().out, parse_outputs((tmp_path / "output").read_text())

    return call


def test_the_action_mirrors_a_deploy_and_its_statuses_and_stores_the_deployment_id(step, pipeline, github,
                                                                                    tmp_path):
    code, out, outputs = step(command="deploy", pipeline_id=pipeline.pid, strategy="blue-green", target="prod")
    assert code == 0, out
    deploy_id = outputs["deploy-id"]
    [external_id] = [str(i) for i in github.deployments]
    assert f"| GitHub deployment | {external_id} |" in (tmp_path / "summary").read_text()
    assert pipeline("deploy-show", deploy_id=deploy_id)["external_id"] == external_id
    assert github.deployments[int(external_id)]["ref"] == "a" * 40
    assert github.deployments[int(external_id)]["environment"] == "prod"

    assert step(command="deploy-status", deploy_id=deploy_id, status="success")[0] == 0
    assert step(command="rollback", deploy_id=deploy_id)[0] == 0
    assert step(command="rollback", deploy_id=deploy_id)[0] == 0  # idempotent: no second inactive status
    assert [s["state"] for s in github.statuses[int(external_id)]] == ["in_progress", "success", "inactive"]
    assert all(s["target_url"] == RUN_URL for s in github.statuses[int(external_id)])
    audit = pipeline("audit", pipeline_id=pipeline.pid)
    assert any(e["action"] == "link" and e["data"] == {"external_id": external_id} for e in audit)


def test_when_github_fails_the_deploy_stands_and_the_run_gets_a_warning(step, pipeline, github):
    github.fail_with = 500
    code, out, outputs = step(command="deploy", pipeline_id=pipeline.pid, strategy="canary", target="production")
    assert code == 0
    assert "::warning title=GitHub deployment::deploy " + outputs["deploy-id"] + " recorded, but not mirrored" in out
    assert pipeline("deploy-show", deploy_id=outputs["deploy-id"])["external_id"] is None
    assert not github.deployments


def test_a_metric_that_trips_auto_rollback_marks_the_github_deployment_inactive(step, pipeline, github, config_file):
    config_file("[monitor]\nauto_rollback = true\n")
    code, out, outputs = step(command="deploy", pipeline_id=pipeline.pid, strategy="canary", target="production")
    assert code == 0, out
    [external_id] = [str(i) for i in github.deployments]
    code, out, _ = step(command="metric", pipeline_id=pipeline.pid, metric="error_rate", value="0.5")
    assert code == 0, out
    assert f"::warning title=automatic rollback::deploy {outputs['deploy-id']} rolled back: auto_rollback:" in out
    assert pipeline("deploy-show", deploy_id=outputs["deploy-id"])["status"] == "rolled-back"
    assert [s["state"] for s in github.statuses[int(external_id)]] == ["in_progress", "inactive"]


def test_a_step_mirrors_deploys_recorded_elsewhere_for_its_own_pipeline_only(step, pipeline, github):
    other = pipeline("create", name="other", template="bugfix")["id"]
    for command, values in (("start", {}), ("stage", {"stage": "review"}), ("approve", {"gate": "code-review"})):
        pipeline(command, pipeline_id=other, **values)
    from_cli = pipeline("deploy", pipeline_id=pipeline.pid, strategy="rolling", target="staging", ref="c" * 40)
    pipeline("deploy-update", deploy_id=from_cli["id"], status="succeeded")
    elsewhere = pipeline("deploy", pipeline_id=other, strategy="rolling", target="staging", ref="d" * 40)

    code, out, _ = step(command="stage", pipeline_id=pipeline.pid, stage="deploy")
    assert code == 0, out
    [deployment] = github.deployments.values()
    assert deployment["payload"]["chainpipe"]["deploy_id"] == from_cli["id"]
    assert [s["state"] for s in github.statuses[deployment["id"]]] == ["success"]  # as it is now
    assert pipeline("deploy-show", deploy_id=from_cli["id"])["external_id"] == str(deployment["id"])
    assert pipeline("deploy-show", deploy_id=elsewhere["id"])["external_id"] is None
    from chainpipe.core.config import load_settings
    from chainpipe.core.services import notifications as outbox
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(load_settings(pipeline.settings_env), write=False) as uow:
        delivered = outbox.delivery_results(uow, "github")
        seqs = {e["seq"] for e in pipeline("audit", pipeline_id=other, limit=100)}
    assert delivered and not seqs & set(delivered)  # the other pipeline's events are left to their own claimant
