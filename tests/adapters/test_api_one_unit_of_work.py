"""One unit of work per API request: the token is looked up inside the command's own transaction,
so a token revoked a moment ago is refused on the very next request, and a stranger's body is never
parsed, bound or run. Counted by instrumenting ``UnitOfWork`` in process, on both databases."""

from __future__ import annotations

import time

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.models import ApiToken
from chainpipe.core.services.tokens import revoke_token
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import select, update

from tests.adapters import test_api
from tests.adapters.test_api import call, make_token

# The JSON API's own fixtures (a server on the test database, a service token "ci").
api_env, server, token = test_api.api_env, test_api.server, test_api.token


class Opened:
    """Every unit of work entered while it is installed: (write?, thread)."""

    def __init__(self, monkeypatch):
        self.units: list[bool] = []
        enter = UnitOfWork.__enter__

        def counting(uow):
            self.units.append(uow.write)
            return enter(uow)

        monkeypatch.setattr(UnitOfWork, "__enter__", counting)

    def during(self, fn):
        self.units.clear()
        result = fn()
        return result, list(self.units)


@pytest.fixture
def opened(monkeypatch):
    return Opened(monkeypatch)


def last_used(env, name: str = "ci"):
    with UnitOfWork(load_settings(env), write=False) as uow:
        return uow.session.execute(select(ApiToken.last_used_at).where(ApiToken.name == name)).scalar()


def age_last_used(env, name: str = "ci") -> None:
    """As if the token were last used long ago: the next request records its use again."""
    with UnitOfWork(load_settings(env)) as uow:
        uow.session.execute(update(ApiToken).where(ApiToken.name == name).values(last_used_at=None))
        uow.commit()


def test_a_write_request_opens_one_writer_and_records_the_tokens_use_in_it(server, api_env, token, opened):
    assert last_used(api_env) is None
    resp, units = opened.during(lambda: call(server, "create", {"name": "one"}, token))
    assert resp.status_code == 200 and units == [True]
    assert last_used(api_env) is not None  # written by the command's own transaction
    resp, units = opened.during(lambda: call(server, "create", {"name": "two"}, token))
    assert resp.status_code == 200 and units == [True]


def test_a_read_request_opens_one_reader(server, api_env, token, opened):
    call(server, "create", {"name": "seen"}, token)  # the token's use is fresh now
    for name, body in (("list", {}), ("stats", {}), ("templates", {})):
        resp, units = opened.during(lambda n=name, b=body: call(server, n, b, token))
        assert resp.status_code == 200, resp.text
        assert units == [False], name
    resp, units = opened.during(lambda: server.get("/api/v1/commands", headers={"Authorization": f"Bearer {token}"}))
    assert resp.status_code == 200 and units == [False]


def test_a_reads_token_use_is_written_after_the_response(server, api_env, token):
    age_last_used(api_env)
    assert call(server, "list", {}, token).status_code == 200
    for _ in range(500):  # the background write lands a moment later
        if last_used(api_env) is not None:
            break
        time.sleep(0.01)
    assert last_used(api_env) is not None


def test_a_token_revoked_a_moment_ago_is_refused_on_the_next_request(server, api_env, token):
    assert call(server, "create", {"name": "before"}, token).status_code == 200
    with UnitOfWork(load_settings(api_env)) as uow:
        revoke_token(uow, Actor("admin"), "ci")
    for name, body in (("create", {"name": "after"}), ("list", {}), ("templates", {})):
        resp = call(server, name, body, token)
        assert resp.status_code == 401 and resp.json()["message"] == "invalid or revoked token", name
    other = make_token(api_env, "other")
    assert [p["name"] for p in call(server, "list", {}, other).json()["result"]] == ["before"]


@pytest.mark.parametrize("auth", [None, "Bearer", "Basic abc", "Bearer not-a-token", "Bearer cp_" + "x" * 300])
def test_a_malformed_or_missing_token_is_refused_before_the_database_and_the_body(server, opened, auth):
    headers = {"Authorization": auth} if auth else {}
    resp, units = opened.during(lambda: server.post("/api/v1/commands/create", content="[" * 50_000, headers=headers))
    assert resp.status_code == 401 and units == []


def test_a_forged_token_with_a_hostile_body_is_refused_and_runs_nothing(server, api_env, token, opened, monkeypatch):
    import chainpipe.bot.api

    parsed = []
    real = chainpipe.bot.api.parse_body
    monkeypatch.setattr(chainpipe.bot.api, "parse_body", lambda raw: parsed.append(raw) or real(raw))
    body = b'{"name": "' + b"x" * 900_000 + b'"}'
    resp, units = opened.during(lambda: call(server, "create", body, "cp_forged"))
    assert resp.status_code == 401 and resp.json()["message"] == "invalid or revoked token"
    assert parsed == [] and units == [True]  # looked up in the command's transaction, which then ended
    assert call(server, "list", {}, token).json()["result"] == []


def test_error_codes_are_unchanged(server, api_env, token):
    laptop = make_token(api_env, "laptop", person="alice")
    assert call(server, "list", "{not json", token).status_code == 400
    assert call(server, "list", {"limit": -1}, token).status_code == 422
    assert call(server, "create", {"name": "x"}, laptop, X_Pipe_Actor="github:octocat").status_code == 403
    assert call(server, "show", {"pipeline_id": "pipe-000000000000"}, token).status_code == 404
    assert call(server, "list", {}, token, X_Pipe_Surface="fax").status_code == 422
