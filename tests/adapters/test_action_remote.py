"""Remote mode: the entrypoint talks to the team server's JSON API with the standard library alone
(cli/remote.py on cli/api_client.py), here a fake server over real HTTP (tests/fakes/api.py): the
contract's headers and bodies, retries on 502/503/504 and connection failures, no retry on a read
timeout, 401 and refusals as annotations, await-gate on `gate-status`, and deploys the step changed
mirrored to a fake GitHub through the same mapping the outbox consumer uses."""

from __future__ import annotations

import hashlib

import pytest
from chainpipe.cli import action
from chainpipe.cli.remote import RemoteClient, RemoteError

from tests.fakes.api import Answer, FakeApi

TOKEN = "pat_9f3c1e0b7a"
PID, DID = "pipe-0123456789ab", "dep-0123456789ab"


@pytest.fixture
def server():
    fake = FakeApi().start()
    yield fake
    fake.stop()


@pytest.fixture
def run(tmp_path, capsys, server):
    """Run the entrypoint in-process with a runner-like environment; returns (code, stdout, outputs)."""
    (tmp_path / "output").touch()
    (tmp_path / "summary").touch()

    def call(env_extra: dict | None = None, **inputs):
        env = {"GITHUB_ACTOR": "octocat", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "77",
               "GITHUB_SERVER_URL": "https://github.com", "GITHUB_SHA": "f" * 40,
               "GITHUB_WORKSPACE": str(tmp_path), "GITHUB_OUTPUT": str(tmp_path / "output"),
               "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "PIPE_ACTION_SERVER_TIMEOUT": "3",
               "PIPE_ACTION_SERVER_URL": server.url, "PIPE_ACTION_TOKEN": TOKEN} | (env_extra or {})
        env |= {action.env_name(k.replace("_", "-")): v for k, v in inputs.items()}
        code = action.main(env)
        out = capsys.readouterr().out
        from tests.adapters.test_action_entrypoint import parse_outputs

        return code, out, parse_outputs((tmp_path / "output").read_text())

    return call


def ok(result: dict) -> Answer:
    return Answer(200, {"result": result})


def paths(server) -> list[str]:
    return [seen.path for seen in server.seen]


ARTIFACT = {"id": "art-0123456789ab", "pipeline_id": PID, "name": "app.bin", "version": 3, "type": "binary",
            "stage": "code", "digest": None, "size": None}


def test_artifact_is_hashed_on_the_runner_and_sent_with_the_contracts_headers(run, tmp_path, server):
    (tmp_path / "app.bin").write_bytes(b"binary" * 100)
    digest = "sha256:" + hashlib.sha256(b"binary" * 100).hexdigest()
    server.answer(ok(ARTIFACT | {"digest": digest, "size": 600}))
    code, out, outputs = run(command="artifact", pipeline_id=PID, path="app.bin", type="binary")
    assert code == 0, out
    assert outputs == {"pipeline-id": PID, "artifact-id": ARTIFACT["id"], "artifact-version": "3", "digest": digest}
    [request] = server.seen
    assert request.path == "/api/v1/commands/artifact-add"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-pipe-actor"] == "github:octocat"
    assert request.headers["x-pipe-surface"] == "github"
    assert request.headers["x-pipe-run-url"] == "https://github.com/acme/shop/actions/runs/77"
    assert request.headers["user-agent"] == "chainpipe-action"
    assert request.json() == {"pipeline_id": PID, "name": "app.bin", "type": "binary", "digest": digest, "size": 600}
    assert out.splitlines()[0] == f"::add-mask::{TOKEN}"


def test_503_twice_is_retried_and_then_succeeds(run, server):
    server.answer(Answer(503, {"error": "unavailable", "message": "db down"}),
                  Answer(502, b"", headers={"Retry-After": "0"}),
                  ok({"id": DID, "pipeline_id": PID, "status": "succeeded", "strategy": "canary", "target": "prod",
                      "external_id": None}))
    code, out, outputs = run(command="deploy-status", deploy_id=DID, status="success")
    assert code == 0, out
    assert len(server.seen) == 3 and outputs["status"] == "succeeded"
    assert server.seen[-1].json() == {"deploy_id": DID, "status": "succeeded", "reason": "job success"}


def test_a_server_that_stays_unavailable_is_one_annotation_after_the_retries(run, server):
    server.default = Answer(503, {"error": "unavailable", "message": "the database is unavailable"})
    code, out, _ = run(command="metric", pipeline_id=PID, metric="cpu", value="0.5", env_extra={
        "PIPE_ACTION_SERVER_TIMEOUT": "1"})
    assert code == 2 and len(server.seen) > 1 and set(paths(server)) == {"/api/v1/commands/monitor-record"}
    assert f"::error title=chainpipe metric%3A server unavailable::{server.url} is unavailable (503" in out


def test_connection_failures_are_retried_until_the_timeout():
    slept = []
    client = RemoteClient(FakeApi.closed_port(), TOKEN, timeout=2, sleep=slept.append)
    with pytest.raises(RemoteError, match="cannot reach .* \\(connection refused\\) after [0-9]+ attempts"):
        client.run("rollback", {"deploy_id": DID})
    assert len(slept) >= 2 and slept[:3] == [0.25, 0.5, 1.0]


def test_a_read_timeout_is_not_retried_because_the_write_may_have_happened(run, server):
    server.answer(Answer(200, {"result": {}}, delay=1.5))
    code, out, _ = run(command="deploy", pipeline_id=PID, strategy="canary", target="prod",
                       env_extra={"PIPE_ACTION_SERVER_TIMEOUT": "0.5"})
    assert code == 2 and len(server.seen) == 1
    assert "server timeout::" in out and "may or may not have been recorded" in out


def test_a_wrong_token_is_a_401_annotation_that_names_no_secret(run, server):
    server.answer(Answer(401, {"error": "unauthorized", "message": "bad token"}))
    code, out, _ = run(command="stage", pipeline_id=PID, stage="review")
    assert code == 2
    errors = [line for line in out.splitlines() if line.startswith("::error")]
    assert errors == ["::error title=chainpipe stage%3A unauthorized::the server refused the token (401): "
                      "check the action's token input"]
    assert TOKEN not in "\n".join(out.splitlines()[1:])


def test_a_refusal_carries_the_servers_title_and_message(run, server):
    server.answer(Answer(409, {"error": "gate not approved",
                               "message": "gate not approved: code-review (status pending, guards stage review)"}))
    code, out, _ = run(command="deploy", pipeline_id=PID, strategy="canary", target="prod")
    assert code == 1
    assert "::error title=chainpipe deploy%3A gate not approved::gate not approved: code-review" in out


def gate(state: str, status: str = "pending", pipeline_status: str = "running") -> Answer:
    return ok({"id": "gate-0123456789ab", "pipeline_id": PID, "name": "code-review", "status": status,
               "state": state, "pipeline_status": pipeline_status})


def test_await_gate_asks_the_server_for_the_one_gates_state(run, server):
    server.answer(gate("waiting"), gate("open"), gate("approved", status="approved"))
    code, out, outputs = run(command="await-gate", pipeline_id=PID, gate="code-review", poll_interval="0.01s",
                             timeout="5s")
    assert code == 0 and len(server.seen) == 3 and outputs == {"pipeline-id": PID, "status": "approved"}
    assert set(paths(server)) == {"/api/v1/commands/gate-status"}
    assert server.seen[-1].json() == {"pipeline_id": PID, "gate": "code-review"}
    assert f"gate code-review of {PID}: pending (waiting)" in out and f"gate code-review of {PID}: approved" in out


def test_await_gate_stops_waiting_when_the_pipeline_ended_without_the_gate(run, server):
    server.answer(gate("open"), gate("closed", pipeline_status="cancelled"))
    code, out, outputs = run(command="await-gate", pipeline_id=PID, gate="code-review", poll_interval="0.01s",
                             timeout="5s")
    assert code == 1 and len(server.seen) == 2 and outputs["status"] == "pending"
    assert (f"::error title=gate can no longer be approved::pipeline {PID} is cancelled; gate code-review is pending"
            in out)


def test_a_message_holding_a_newline_stays_one_annotation_line(capsys):
    from chainpipe.cli.action_report import annotate

    annotate("error", "refused\n::warning::forged", title="chainpipe: x\r\ny")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("::error title=chainpipe%3A x")
    assert "%0A" not in out and "%0D" not in out  # the runner would turn those back into line breaks


def test_server_url_without_a_token_is_a_configuration_error(run):
    code, out, _ = run(command="stage", pipeline_id=PID, stage="review", token="")
    assert code == 2 and "server-url needs a token" in out


def test_a_bad_server_timeout_is_a_configuration_error(run, server):
    code, out, _ = run(command="stage", pipeline_id=PID, stage="review", env_extra={
        "PIPE_ACTION_SERVER_TIMEOUT": "soon"})
    assert code == 2 and "PIPE_ACTION_SERVER_TIMEOUT must be a number of seconds" in out and server.seen == []


def test_the_client_refuses_a_url_without_a_scheme():
    with pytest.raises(RemoteError, match="must start with https://"):
        RemoteClient("pipe.example.com", TOKEN)


RECORDED = {"id": DID, "pipeline_id": PID, "strategy": "canary", "target": "production", "ref": "f" * 40,
            "status": "in-progress", "artifact": None, "external_id": None}


def test_remote_mode_mirrors_the_deploy_it_changed_and_stores_the_deployment_id_on_the_server(run, github, tmp_path,
                                                                                             server):
    server.answer(ok(RECORDED), ok(RECORDED | {"external_id": "1001", "changed": True}))
    mirrored = {"github_token": github.token, "env_extra": {"GITHUB_API_URL": github.url}}
    code, out, outputs = run(command="deploy", pipeline_id=PID, strategy="canary", target="production", **mirrored)
    assert code == 0, out
    [deployment] = github.deployments.values()
    assert paths(server) == ["/api/v1/commands/deploy", "/api/v1/commands/deploy-link"]
    assert server.seen[-1].json() == {"deploy_id": DID, "external_id": str(deployment["id"])}
    assert deployment["payload"]["chainpipe"]["deploy_id"] == DID and deployment["ref"] == "f" * 40
    assert f"| GitHub deployment | {deployment['id']} |" in (tmp_path / "summary").read_text()
    assert out.splitlines()[:2] == [f"::add-mask::{TOKEN}", f"::add-mask::{github.token}"]

    linked = RECORDED | {"external_id": str(deployment["id"])}
    server.answer(ok(linked | {"status": "succeeded", "changed": True}),
                  ok(linked | {"status": "succeeded", "changed": False}))
    assert run(command="deploy-status", deploy_id=DID, status="success", **mirrored)[0] == 0
    assert run(command="deploy-status", deploy_id=DID, status="success", **mirrored)[0] == 0  # reported twice
    statuses = github.statuses[deployment["id"]]
    assert [s["state"] for s in statuses] == ["in_progress", "success"]
    assert {s["target_url"] for s in statuses} == {"https://github.com/acme/shop/actions/runs/77"}
    assert paths(server).count("/api/v1/commands/deploy-link") == 1


def test_remote_mode_warns_when_github_fails_and_the_deploy_stands(run, github, server):
    server.answer(ok(RECORDED))
    github.fail_with = 500
    code, out, outputs = run(command="deploy", pipeline_id=PID, strategy="canary", target="production",
                             github_token=github.token, env_extra={"GITHUB_API_URL": github.url})
    assert code == 0 and outputs["deploy-id"] == DID
    assert f"::warning title=GitHub deployment::deploy {DID} recorded, but not mirrored to GitHub" in out
    assert github.token not in "\n".join(out.splitlines()[2:])


def test_without_a_repository_to_mirror_to_the_step_records_and_warns_once(run, server):
    server.answer(ok(RECORDED))
    code, out, outputs = run(command="deploy", pipeline_id=PID, strategy="canary", target="production",
                             github_token="ghs_x", env_extra={"GITHUB_REPOSITORY": ""})
    assert code == 0 and outputs["deploy-id"] == DID
    warnings = [line for line in out.splitlines() if line.startswith("::warning")]
    assert warnings == ["::warning title=GitHub deployment::deploys not mirrored to GitHub: GITHUB_REPOSITORY "
                        "(owner/name) is needed to mirror deploys"]
