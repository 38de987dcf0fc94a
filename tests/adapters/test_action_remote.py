"""Remote mode: the entrypoint talks to the team server's JSON API through httpx (mocked with
respx): the contract's headers and bodies, retries on 502/503/504 and connection failures, no retry
on a read timeout, 401 and refusals as annotations, await-gate on `gate-status`, and deploys the step
changed mirrored to a fake GitHub through the same mapping the outbox consumer uses."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import respx

from cli import action
from cli.remote import RemoteClient, RemoteError
from tests.fakes.github import fake_github

SERVER = "https://pipe.example.com"
TOKEN = "pat_9f3c1e0b7a"
PID, DID = "pipe-0123456789ab", "dep-0123456789ab"


@pytest.fixture
def run(tmp_path, capsys):
    """Run the entrypoint in-process with a runner-like environment; returns (code, stdout, outputs)."""
    (tmp_path / "output").touch()
    (tmp_path / "summary").touch()

    def call(env_extra: dict | None = None, **inputs):
        env = {"GITHUB_ACTOR": "octocat", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "77",
               "GITHUB_SERVER_URL": "https://github.com", "GITHUB_SHA": "f" * 40,
               "GITHUB_WORKSPACE": str(tmp_path), "GITHUB_OUTPUT": str(tmp_path / "output"),
               "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "PIPE_ACTION_RETRY_BACKOFF": "0",
               "PIPE_ACTION_SERVER_URL": SERVER, "PIPE_ACTION_TOKEN": TOKEN} | (env_extra or {})
        env |= {action.env_name(k.replace("_", "-")): v for k, v in inputs.items()}
        code = action.main(env)
        out = capsys.readouterr().out
        from tests.adapters.test_action_entrypoint import parse_outputs

        return code, out, parse_outputs((tmp_path / "output").read_text())

    return call


def api(name: str) -> str:
    return f"{SERVER}/api/v1/commands/{name}"


ARTIFACT = {"id": "art-0123456789ab", "pipeline_id": PID, "name": "app.bin", "version": 3, "type": "binary",
            "stage": "code", "digest": None, "size": None}


@respx.mock
def test_artifact_is_hashed_on_the_runner_and_sent_with_the_contracts_headers(run, tmp_path):
    (tmp_path / "app.bin").write_bytes(b"binary" * 100)
    digest = "sha256:" + hashlib.sha256(b"binary" * 100).hexdigest()
    route = respx.post(api("artifact-add")).respond(200, json={"result": ARTIFACT | {"digest": digest, "size": 600}})
    code, out, outputs = run(command="artifact", pipeline_id=PID, path="app.bin", type="binary")
    assert code == 0, out
    assert outputs == {"pipeline-id": PID, "artifact-id": ARTIFACT["id"], "artifact-version": "3", "digest": digest}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Pipe-Actor"] == "github:octocat"
    assert request.headers["X-Pipe-Surface"] == "github"
    assert request.headers["X-Pipe-Run-Url"] == "https://github.com/acme/shop/actions/runs/77"
    assert json.loads(request.content) == {"pipeline_id": PID, "name": "app.bin", "type": "binary",
                                           "digest": digest, "size": 600}
    assert out.splitlines()[0] == f"::add-mask::{TOKEN}"


@respx.mock
def test_503_twice_is_retried_and_then_succeeds(run):
    route = respx.post(api("deploy-update")).mock(side_effect=[
        httpx.Response(503), httpx.Response(502, headers={"Retry-After": "0"}),
        httpx.Response(200, json={"result": {"id": DID, "pipeline_id": PID, "status": "succeeded",
                                             "strategy": "canary", "target": "prod", "external_id": None}})])
    code, out, outputs = run(command="deploy-status", deploy_id=DID, status="success")
    assert code == 0, out
    assert route.call_count == 3 and outputs["status"] == "succeeded"
    assert json.loads(route.calls.last.request.content) == {"deploy_id": DID, "status": "succeeded",
                                                            "reason": "job success"}


@respx.mock
def test_a_server_that_stays_unavailable_is_one_annotation_after_the_retries(run):
    route = respx.post(api("monitor-record")).respond(503)
    code, out, _ = run(command="metric", pipeline_id=PID, metric="cpu", value="0.5")
    assert code == 1 and route.call_count == 4
    assert "::error title=chainpipe metric%3A server unavailable::https://pipe.example.com is unavailable (503)" in out


@respx.mock
def test_connection_failures_are_retried(run):
    route = respx.post(api("rollback")).mock(side_effect=[
        httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
        httpx.Response(200, json={"result": {"id": DID, "pipeline_id": PID, "status": "rolled-back",
                                             "strategy": "canary", "target": "prod", "changed": False}})])
    code, out, outputs = run(command="rollback", deploy_id=DID)
    assert code == 0 and route.call_count == 3 and outputs["status"] == "rolled-back"


@respx.mock
def test_a_read_timeout_is_not_retried_because_the_write_may_have_happened(run):
    route = respx.post(api("deploy")).mock(side_effect=httpx.ReadTimeout("no answer"))
    code, out, _ = run(command="deploy", pipeline_id=PID, strategy="canary", target="prod")
    assert code == 1 and route.call_count == 1
    assert "server timeout::https://pipe.example.com did not answer in time" in out


@respx.mock
def test_a_wrong_token_is_a_401_annotation_that_names_no_secret(run):
    respx.post(api("stage")).respond(401, json={"error": "unauthorized", "message": "bad token"})
    code, out, _ = run(command="stage", pipeline_id=PID, stage="review")
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("::error")]
    assert errors == ["::error title=chainpipe stage%3A unauthorized::the server refused the token (401): "
                      "check the action's token input"]
    assert TOKEN not in "\n".join(out.splitlines()[1:])


@respx.mock
def test_a_refusal_carries_the_servers_title_and_message(run):
    respx.post(api("deploy")).respond(409, json={
        "error": "gate not approved",
        "message": "gate not approved: code-review (status pending, guards stage review)"})
    code, out, _ = run(command="deploy", pipeline_id=PID, strategy="canary", target="prod")
    assert code == 1
    assert "::error title=chainpipe deploy%3A gate not approved::gate not approved: code-review" in out


def gate(state: str, status: str = "pending", pipeline_status: str = "running") -> httpx.Response:
    return httpx.Response(200, json={"result": {"id": "gate-0123456789ab", "pipeline_id": PID, "name": "code-review",
                                                "status": status, "state": state,
                                                "pipeline_status": pipeline_status}})


@respx.mock
def test_await_gate_asks_the_server_for_the_one_gates_state(run):
    route = respx.post(api("gate-status")).mock(side_effect=[
        gate("waiting"), gate("open"), gate("approved", status="approved")])
    code, out, outputs = run(command="await-gate", pipeline_id=PID, gate="code-review", poll_interval="0.01s",
                             timeout="5s")
    assert code == 0 and route.call_count == 3 and outputs == {"pipeline-id": PID, "status": "approved"}
    assert json.loads(route.calls.last.request.content) == {"pipeline_id": PID, "gate": "code-review"}
    assert f"gate code-review of {PID}: pending (waiting)" in out and f"gate code-review of {PID}: approved" in out


@respx.mock
def test_await_gate_stops_waiting_when_the_pipeline_ended_without_the_gate(run):
    route = respx.post(api("gate-status")).mock(side_effect=[gate("open"), gate("closed", pipeline_status="cancelled")])
    code, out, outputs = run(command="await-gate", pipeline_id=PID, gate="code-review", poll_interval="0.01s",
                             timeout="5s")
    assert code == 1 and route.call_count == 2 and outputs["status"] == "pending"
    assert (f"::error title=gate can no longer be approved::pipeline {PID} is cancelled; gate code-review is pending"
            in out)


def test_a_message_holding_a_newline_stays_one_annotation_line(capsys):
    from cli.action_report import annotate

    annotate("error", "refused\n::warning::forged", title="chainpipe: x\r\ny")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("::error title=chainpipe%3A x")
    assert "%0A" not in out and "%0D" not in out  # the runner would turn those back into line breaks


def test_server_url_without_a_token_is_a_configuration_error(run):
    code, out, _ = run(command="stage", pipeline_id=PID, stage="review", token="")
    assert code == 2 and "server-url needs a token" in out


def test_the_client_refuses_a_url_without_a_scheme():
    with pytest.raises(RemoteError, match="must start with https://"):
        RemoteClient("pipe.example.com", TOKEN)


@respx.mock
def test_the_client_sleeps_with_exponential_backoff():
    respx.post(api("show")).respond(504)
    slept = []
    client = RemoteClient(SERVER, TOKEN, retries=3, backoff=0.5, sleep=slept.append)
    with pytest.raises(RemoteError, match="unavailable"):
        client.run("show", {"pipeline_id": PID})
    assert slept == [0.5, 1.0, 2.0]




@pytest.fixture
def github(monkeypatch):
    with fake_github(monkeypatch) as fake:
        yield fake


RECORDED = {"id": DID, "pipeline_id": PID, "strategy": "canary", "target": "production", "ref": "f" * 40,
            "status": "in-progress", "artifact": None, "external_id": None}


@respx.mock
def test_remote_mode_mirrors_the_deploy_it_changed_and_stores_the_deployment_id_on_the_server(run, github, tmp_path):
    respx.post(api("deploy")).respond(200, json={"result": RECORDED})
    link = respx.post(api("deploy-link")).mock(side_effect=lambda request: httpx.Response(200, json={
        "result": RECORDED | {"external_id": json.loads(request.content)["external_id"], "changed": True}}))
    mirrored = {"github_token": github.token, "env_extra": {"GITHUB_API_URL": github.url}}
    code, out, outputs = run(command="deploy", pipeline_id=PID, strategy="canary", target="production", **mirrored)
    assert code == 0, out
    [deployment] = github.deployments.values()
    assert json.loads(link.calls.last.request.content) == {"deploy_id": DID, "external_id": str(deployment["id"])}
    assert deployment["payload"]["chainpipe"]["deploy_id"] == DID and deployment["ref"] == "f" * 40
    assert f"| GitHub deployment | {deployment['id']} |" in (tmp_path / "summary").read_text()
    assert out.splitlines()[:2] == [f"::add-mask::{TOKEN}", f"::add-mask::{github.token}"]

    linked = RECORDED | {"external_id": str(deployment["id"])}
    respx.post(api("deploy-update")).mock(side_effect=[
        httpx.Response(200, json={"result": linked | {"status": "succeeded", "changed": True}}),
        httpx.Response(200, json={"result": linked | {"status": "succeeded", "changed": False}})])
    assert run(command="deploy-status", deploy_id=DID, status="success", **mirrored)[0] == 0
    assert run(command="deploy-status", deploy_id=DID, status="success", **mirrored)[0] == 0  # reported twice
    statuses = github.statuses[deployment["id"]]
    assert [s["state"] for s in statuses] == ["in_progress", "success"]
    assert {s["target_url"] for s in statuses} == {"https://github.com/acme/shop/actions/runs/77"}
    assert link.call_count == 1


@respx.mock
def test_remote_mode_warns_when_github_fails_and_the_deploy_stands(run, github):
    respx.post(api("deploy")).respond(200, json={"result": RECORDED})
    github.fail_with = 500
    code, out, outputs = run(command="deploy", pipeline_id=PID, strategy="canary", target="production",
                             github_token=github.token, env_extra={"GITHUB_API_URL": github.url})
    assert code == 0 and outputs["deploy-id"] == DID
    assert f"::warning title=GitHub deployment::deploy {DID} recorded, but not mirrored to GitHub" in out
    assert github.token not in "\n".join(out.splitlines()[2:])


@respx.mock
def test_without_a_repository_to_mirror_to_the_step_records_and_warns_once(run):
    respx.post(api("deploy")).respond(200, json={"result": RECORDED})
    code, out, outputs = run(command="deploy", pipeline_id=PID, strategy="canary", target="production",
                             github_token="ghs_x", env_extra={"GITHUB_REPOSITORY": ""})
    assert code == 0 and outputs["deploy-id"] == DID
    warnings = [line for line in out.splitlines() if line.startswith("::warning")]
    assert warnings == ["::warning title=GitHub deployment::deploys not mirrored to GitHub: GITHUB_REPOSITORY "
                        "(owner/name) is needed to mirror deploys"]
