"""The JSON API in process (Starlette's test client): the contract in docs/architecture.md."""

from __future__ import annotations

import json

import pytest
from chainpipe.bot.api import MAX_BODY
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.grammar import COMMANDS
from chainpipe.core.services.tokens import create_token, revoke_token
from chainpipe.core.uow import UnitOfWork
from starlette.testclient import TestClient


@pytest.fixture
def api_env(env):
    return env | {"PIPE_SERVER_API_ONLY": "1"}


@pytest.fixture
def server(api_env, config_file):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings

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
    ({}, 422, "start: missing argument PIPELINE_ID"),
    ({"pipeline_id": "pipe-000000000000", "colour": "red"}, 422,
     "start: unknown parameter 'colour'; expected: pipeline_id"),
    ([1, 2], 422, "start: the values must be an object of the command's parameters"),
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
    assert resp.json() == {"error": "gate not approved", "request_id": resp.headers["x-request-id"],
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


def test_a_personal_token_acts_as_its_person_and_names_nobody_else(server, api_env):
    laptop = make_token(api_env, "alice-laptop", person="alice")
    resp = call(server, "create", {"name": "x"}, laptop, X_Pipe_Actor="github:octocat")
    assert resp.status_code == 403 and "may not name another actor" in resp.json()["message"]
    assert call(server, "list", {}, laptop).json()["result"] == []
    created = call(server, "create", {"name": "x"}, laptop).json()["result"]
    assert created["created_by"] == "alice"
    [event] = call(server, "audit", {"pipeline_id": created["id"]}, laptop).json()["result"]
    assert (event["actor"], event["principal"], event["on_behalf_of"]) == ("alice", "token:alice-laptop", None)


def test_a_service_token_keeps_the_claimed_actor_as_on_behalf_of(server, api_env):
    ci = make_token(api_env, "gha")
    resp = call(server, "create", {"name": "x"}, ci, X_Pipe_Actor="github:octocat", X_Pipe_Surface="github",
                X_Pipe_Run_Url="https://github.test/o/r/actions/runs/1")
    pid = resp.json()["result"]["id"]
    assert resp.json()["result"]["created_by"] == "token:gha"
    [event] = call(server, "audit", {"pipeline_id": pid}, ci).json()["result"]
    assert (event["actor"], event["principal"], event["on_behalf_of"], event["surface"], event["run_url"]) == (
        "token:gha", "token:gha", "github:octocat", "github", "https://github.test/o/r/actions/runs/1")
    bad = call(server, "create", {"name": "y"}, ci, X_Pipe_Actor="github:\x1b[31mocto")
    assert bad.status_code == 422 and bad.json()["message"].startswith("X-Pipe-Actor must not contain control")


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
    assert body["message"] == f"internal error {body['reference']}: RuntimeError"
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert any(body["reference"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_commands_are_listed_with_their_parameters(server, token):
    listed = server.get("/api/v1/commands", headers={"Authorization": f"Bearer {token}"}).json()["commands"]
    assert [c["name"] for c in listed] == list(COMMANDS)
    approve = next(c for c in listed if c["name"] == "approve")
    assert [p["name"] for p in approve["params"]] == ["pipeline_id", "gate", "reason"]


def test_the_served_openapi_document_is_the_generated_one(server):
    from chainpipe.bot.api import openapi_document

    assert server.get("/api/v1/openapi.json").json() == openapi_document()


def test_the_openapi_document_is_valid_and_covers_every_command():
    from chainpipe.bot.api import openapi_document
    from openapi_spec_validator import validate

    doc = openapi_document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for name, command in COMMANDS.items():
        op = doc["paths"][f"/api/v1/commands/{name}"]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == {p.name for p in command.params}
        assert set(schema.get("required", [])) == {p.name for p in command.params if p.required}


def test_health_checks_need_no_token(server):
    assert server.get("/healthz/live").json() == {"status": "ok"}
    for path in ("/healthz/ready", "/healthz"):
        resp = server.get(path)
        assert resp.status_code == 200 and resp.json() == {"status": "ok", "slack": False}


def test_a_lost_database_is_503_with_retry_after_and_one_log_line_per_outage(server, token, caplog, monkeypatch):
    import chainpipe.bot.api
    from sqlalchemy.exc import OperationalError

    def dropped(*args, **kwargs):  # what the driver raises for every query while the database is gone
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    with monkeypatch.context() as lost:
        lost.setattr(chainpipe.bot.api.Admission, "token", dropped)
        for _ in range(3):
            resp = call(server, "list", {}, token)
            assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
            assert resp.json() == {"error": "unavailable", "message": "database unavailable, try again",
                                   "request_id": resp.headers["x-request-id"]}
    assert call(server, "list", {}, token).status_code == 200
    assert call(server, "list", {}, token).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "chainpipe.server"]
    assert len(lines) == 2 and not [r for r in caplog.records if r.exc_info]
    assert lines[0] == ("database unavailable: server closed the connection unexpectedly; "
                        "answering 503 until it is back")
    assert lines[1].startswith("database available again after ") and "(3 attempts refused meanwhile)" in lines[1]


def test_the_core_database_unavailable_error_is_503_too(server, token):
    from chainpipe.core.errors import ConfigError

    def down(*a, **kw):
        raise ConfigError("database unavailable: connection refused")

    server.app_ref.state.runtime.run = down
    resp = call(server, "list", {}, token)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"


def refusal_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chainpipe.refusal"]


def test_refused_tokens_and_policies_are_logged_as_one_line_each(server, api_env, token, caplog):
    laptop = make_token(api_env, "laptop", person="alice")
    call(server, "list", {}, "cp_wrong")
    call(server, "create", {"name": "x"}, laptop, X_Pipe_Actor="github:octocat")
    assert refusal_lines(caplog) == [
        'refused surface=api principal=anonymous rule=unauthorized command=list detail="invalid or revoked token"',
        'refused surface=api principal=token:laptop rule="not allowed" command=create '
        'detail="token laptop is personal: it acts as alice and may not name another actor (X-Pipe-Actor)"',
    ]
    assert call(server, "list", {}, token).json()["result"] == []


def test_unknown_routes_are_json_404(server):
    resp = server.get("/nope")
    assert resp.status_code == 404 and resp.json()["error"] == "not found"


# --- hostile bodies: each a 4xx with one line, never a 500, and nothing changed ---------------------

HOSTILE = [
    ("[" * 50_000, 400, "the request body is nested too deeply"),
    ('{"name": ' + "[" * 50_000, 400, "the request body is nested too deeply"),
    (b'{"name": "caf\xe9"}', 400, "the request body is not UTF-8"),
    (b"\xff\xfe{}", 400, "the request body is not UTF-8"),
    ("{nope", 400, "the request body is not valid JSON"),
    ("\ufeff{}", 400, "the request body is not valid JSON"),
    ("[1, 2]", 422, "create: the values must be an object of the command's parameters"),
    ("null", 422, "create: the values must be an object of the command's parameters"),
    ('"create"', 422, "create: the values must be an object of the command's parameters"),
    ('{"name": "a\\u0000b"}', 422, "--name must not contain control characters (such as NUL or newlines)"),
    ('{"name": "\\ud800"}', 422, "--name is not valid UTF-8 text"),
    ('{"name": {"nested": true}}', 422, "--name must be text, got dict"),
    ('{"name": "' + "x" * 5000 + '"}', 422, "--name is at most 200 characters, got 5000"),
]


@pytest.mark.parametrize("body, status, message", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_body_is_a_4xx_with_one_line_and_changes_nothing(server, token, body, status, message):
    resp = call(server, "create", body, token)
    assert (resp.status_code, resp.json()["message"]) == (status, message)
    assert "\n" not in resp.text
    assert call(server, "list", {}, token).json()["result"] == []


@pytest.mark.parametrize("limit", [10**30, "99999999999999999999", "1" * 5000, -1, 1.5, True])
def test_out_of_range_numbers_are_422_not_a_database_error(server, token, limit):
    resp = call(server, "list", {"limit": limit}, token)
    assert resp.status_code == 422 and resp.json()["error"] == "invalid input"


def test_a_body_over_the_cap_is_413_before_it_is_read(server, token):
    resp = call(server, "create", b'{"name": "' + b"x" * MAX_BODY + b'"}', token)
    assert resp.status_code == 413 and resp.json() == {
        "error": "too large", "message": f"the request body is larger than {MAX_BODY} bytes",
        "request_id": resp.headers["x-request-id"]}
    assert call(server, "list", {}, token).json()["result"] == []


def test_a_streamed_body_without_a_length_stops_being_read_at_the_cap():
    import asyncio

    from chainpipe.bot.api import Refused, read_body
    from starlette.requests import Request

    sent = []

    async def receive():
        sent.append(1)  # 4 MiB offered, 64 KiB at a time, no Content-Length
        return {"type": "http.request", "body": b" " * 65536, "more_body": len(sent) < 64}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    with pytest.raises(Refused) as refused:
        asyncio.run(read_body(request))
    assert refused.value.status == 413
    assert len(sent) == MAX_BODY // 65536 + 1  # it stopped reading once the cap was passed


def test_a_stranger_gets_401_whatever_the_body(server):
    resp = server.post("/api/v1/commands/create", content="[" * 50_000)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
