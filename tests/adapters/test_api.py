"""The JSON API in process (Starlette's test client): the contract in docs/architecture.md."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from core.actor import Actor
from core.config import load_settings
from core.grammar import COMMANDS
from core.services.tokens import create_token, revoke_token
from core.uow import UnitOfWork


@pytest.fixture
def api_env(env):
    return env | {"PIPE_SERVER_API_ONLY": "1"}


@pytest.fixture
def server(api_env, config_file):
    from bot.server import create_asgi_app
    from bot.settings import load_bot_settings

    app = create_asgi_app(load_settings(api_env), load_bot_settings(api_env))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.app_ref = app
        yield client


def make_token(env, name: str = "ci", **kw) -> str:
    with UnitOfWork(load_settings(env)) as uow:
        return create_token(uow, Actor("admin"), name, **kw)["token"]


@pytest.fixture
def token(api_env):
    return make_token(api_env)


def call(server, name: str, body=None, token: str | None = None, **headers):
    hdrs = {"Authorization": f"Bearer {token}"} if token else {}
    hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
    content = body if isinstance(body, (str, bytes)) else json.dumps(body or {})
    return server.post(f"/api/v1/commands/{name}", content=content, headers=hdrs)


def test_a_command_runs_as_the_token_and_returns_the_cli_json(server, token):
    resp = call(server, "create", {"name": "auth", "template": "feature"}, token)
    assert resp.status_code == 200
    created = resp.json()["result"]
    assert created["name"] == "auth" and created["created_by"] == "token:ci" and created["status"] == "created"
    shown = call(server, "show", {"pipeline_id": created["id"]}, token).json()["result"]
    assert shown["id"] == created["id"] and len(shown["stages"]) == 7


def test_grammar_defaults_and_types_apply(server, token):
    for i in range(3):
        call(server, "create", {"name": f"p{i}"}, token)
    assert len(call(server, "list", {"limit": 2}, token).json()["result"]) == 2
    assert len(call(server, "list", {"limit": "2"}, token).json()["result"]) == 2
    assert len(call(server, "list", {}, token).json()["result"]) == 3


@pytest.mark.parametrize("body, status, message", [
    ({"pipeline_id": "pipe-000000000000"}, 404, "pipeline not found: pipe-000000000000"),
    ({}, 422, "start: missing parameter pipeline_id"),
    ({"pipeline_id": "pipe-000000000000", "colour": "red"}, 422,
     "start: unknown parameter colour; expected: pipeline_id"),
    ([1, 2], 422, "the request body must be a JSON object of the command's parameters"),
])
def test_domain_and_input_errors_are_json_with_the_cli_message(server, token, body, status, message):
    resp = call(server, "start", body, token)
    assert resp.status_code == status
    assert resp.json()["message"] == message and "error" in resp.json()


def test_a_refused_transition_is_409(server, token):
    pid = call(server, "create", {"name": "x"}, token).json()["result"]["id"]
    call(server, "start", {"pipeline_id": pid}, token)
    resp = call(server, "deploy", {"pipeline_id": pid, "strategy": "canary", "target": "prod"}, token)
    assert resp.status_code == 409
    assert resp.json() == {"error": "gate not approved",
                           "message": "gate not approved: code-review (status pending, guards stage review)"}


def test_unknown_command_is_404_and_bad_json_is_400(server, token):
    assert call(server, "frobnicate", {}, token).status_code == 404
    assert call(server, "frobnicate", {}, token).json()["error"] == "not found"
    resp = call(server, "list", "{not json", token)
    assert resp.status_code == 400 and resp.json()["error"] == "bad request"


@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer cp_wrong", "Basic abc", "Bearer " + "x" * 300])
def test_missing_or_wrong_tokens_are_401_json(server, auth):
    headers = {"Authorization": auth} if auth else {}
    resp = server.post("/api/v1/commands/list", content="{}", headers=headers)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert server.get("/api/v1/commands", headers=headers).status_code == 401


def test_a_revoked_token_is_401(server, api_env, token):
    assert call(server, "list", {}, token).status_code == 200
    with UnitOfWork(load_settings(api_env)) as uow:
        revoke_token(uow, Actor("admin"), "ci")
    resp = call(server, "list", {}, token)
    assert resp.status_code == 401 and resp.json()["message"] == "invalid or revoked token"


def test_the_actor_header_needs_a_token_allowed_to_use_it(server, api_env, token):
    resp = call(server, "create", {"name": "x"}, token, X_Pipe_Actor="github:octocat")
    assert resp.status_code == 403 and "may not name the actor" in resp.json()["message"]
    assert call(server, "list", {}, token).json()["result"] == []
    ci = make_token(api_env, "gha", allow_actor_header=True)
    resp = call(server, "create", {"name": "x"}, ci, X_Pipe_Actor="github:octocat", X_Pipe_Surface="github",
                X_Pipe_Run_Url="https://github.test/o/r/actions/runs/1")
    pid = resp.json()["result"]["id"]
    assert resp.json()["result"]["created_by"] == "github:octocat"
    [event] = call(server, "audit", {"pipeline_id": pid}, ci).json()["result"]
    assert (event["actor"], event["surface"], event["run_url"]) == (
        "github:octocat", "github", "https://github.test/o/r/actions/runs/1")


def test_an_unknown_surface_is_refused(server, token):
    resp = call(server, "list", {}, token, X_Pipe_Surface="slack")
    assert resp.status_code == 422 and "X-Pipe-Surface" in resp.json()["message"]


def test_a_crash_is_500_with_a_reference_and_no_traceback(server, token, caplog):
    def boom(*a, **kw):
        raise RuntimeError("secret internals")

    server.app_ref.state.runtime.run = boom
    resp = call(server, "list", {}, token)
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"] == "internal error" and body["reference"].startswith("err-")
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert any(body["reference"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_commands_are_listed_with_their_parameters(server, token):
    listed = server.get("/api/v1/commands", headers={"Authorization": f"Bearer {token}"}).json()["commands"]
    assert [c["name"] for c in listed] == list(COMMANDS)
    approve = next(c for c in listed if c["name"] == "approve")
    assert [p["name"] for p in approve["params"]] == ["pipeline_id", "gate", "reason"]


def test_the_served_openapi_document_is_the_generated_one(server):
    from bot.api import openapi_document

    assert server.get("/api/v1/openapi.json").json() == openapi_document()


def test_the_openapi_document_is_valid_and_covers_every_command():
    from openapi_spec_validator import validate

    from bot.api import openapi_document

    doc = openapi_document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for name, command in COMMANDS.items():
        op = doc["paths"][f"/api/v1/commands/{name}"]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == {p.name for p in command.params}
        assert set(schema.get("required", [])) == {p.name for p in command.params if p.required}


def test_healthz_needs_no_token(server):
    resp = server.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok", "slack": False}


def test_unknown_routes_are_json_404(server):
    resp = server.get("/nope")
    assert resp.status_code == 404 and resp.json()["error"] == "not found"
