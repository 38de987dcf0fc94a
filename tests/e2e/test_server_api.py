"""The JSON API with httpx against a live `pipe-server` (API-only mode), tokens made by `pipe token`."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import pipe_cli


def test_the_api_over_http_with_a_token_from_the_cli(pipe_server):
    env = pipe_server.env | {"PIPE_ACTOR": "admin"}
    made = pipe_cli(env, "token", "create", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    server = pipe_server(PIPE_SERVER_API_ONLY="1", SLACK_SIGNING_SECRET="", SLACK_BOT_TOKEN="")
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok", "slack": False}
    assert httpx.get(server.url + "/healthz/live").json() == {"status": "ok"}
    assert httpx.post(server.url + "/slack/events", content="x").status_code == 404

    with httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as api:
        created = api.post("/commands/create", json={"name": "auth"},
                           headers={"X-Pipe-Actor": "github:octocat", "X-Pipe-Surface": "github"})
        assert created.status_code == 200, created.text
        pid = created.json()["result"]["id"]
        assert created.json()["result"]["created_by"] == "token:ci"
        [event] = api.post("/commands/audit", json={"pipeline_id": pid}).json()["result"]
        assert (event["principal"], event["on_behalf_of"]) == ("token:ci", "github:octocat")
        assert api.post("/commands/start", json={"pipeline_id": pid}).json()["result"]["status"] == "running"
        refused = api.post("/commands/complete", json={"pipeline_id": pid})
        assert refused.status_code == 409 and refused.json()["error"] == "gate not approved"
        assert api.post("/commands/list", content=b"{oops").status_code == 400
        assert len(api.get("/commands").json()["commands"]) > 30

        from chainpipe.bot.api import openapi_document  # validated in tests/adapters/test_api.py

        assert api.get("/openapi.json").json() == openapi_document()

    wrong = httpx.post(server.url + "/api/v1/commands/list", json={}, headers={"Authorization": "Bearer cp_nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    from chainpipe.core.actor import Actor
    from chainpipe.core.config import load_settings
    from chainpipe.core.services.tokens import revoke_token
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(load_settings(env)) as uow:
        revoke_token(uow, Actor("admin"), "ci")
    revoked = httpx.post(server.url + "/api/v1/commands/list", json={}, headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401


def test_pipe_server_prints_its_installed_version():
    import subprocess
    from importlib.metadata import version

    from tests.e2e.conftest import BIN

    done = subprocess.run([str(BIN / "pipe-server"), "--version"], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"pipe-server {version('chainpipe')}\n", "")
