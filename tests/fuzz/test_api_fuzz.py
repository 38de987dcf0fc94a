"""The JSON API on random and hostile bodies for every grammar command, and on hostile bytes."""

from __future__ import annotations

import json

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.tokens import create_token
from chainpipe.core.uow import UnitOfWork
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.fuzz.strategies import invocation
from tests.fuzz.test_cli_fuzz import fingerprint

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80), st.floats(),
              st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10)


@pytest.fixture
def api(env, config_file):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings

    api_env = env | {"PIPE_SERVER_API_ONLY": "1"}
    with UnitOfWork(load_settings(api_env)) as uow:
        token = create_token(uow, Actor("admin"), "fuzz", person="alice")["token"]
    app = create_asgi_app(load_settings(api_env), load_bot_settings(api_env), start_notifier=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def call(client, headers, name, body: bytes):
    return client.post(f"/api/v1/commands/{name}", content=body, headers=headers)


@pytest.fixture
def prepared_api(api):
    client, headers = api

    def run(command, **values):
        response = call(client, headers, command, json.dumps(values).encode())
        assert response.status_code == 200, response.text
        return response.json()["result"]

    pid = run("create", name="fuzz")["id"]
    fresh = run("create", name="fresh")["id"]
    run("start", pipeline_id=pid)
    run("stage", pipeline_id=pid, stage="review")
    other = run("create", name="deployed")["id"]
    run("start", pipeline_id=other)
    run("stage", pipeline_id=other, stage="review")
    run("approve", pipeline_id=other, gate="code-review")
    dep = run("deploy", pipeline_id=other, strategy="canary", target="prod")["id"]
    return {"pid": pid, "fresh": fresh, "dep": dep}


def assert_answer(response, url, before, what):
    assert response.status_code != 500, (what, response.text)
    if response.status_code != 200:
        body = response.json()
        assert set(body) >= {"error", "message"} and "\n" not in body["message"], (what, body)
        assert fingerprint(url) == before, what


@pytest.mark.fuzz
def test_no_body_for_any_command_is_a_500_and_a_refusal_changes_nothing(api, prepared_api, env):
    client, headers = api
    url = env["PIPE_DATABASE_URL"]

    @given(st.data())
    def check(data):
        command, values = data.draw(invocation(prepared_api))
        if data.draw(st.integers(0, 4)) == 0:  # JSON of any shape in place of a parameter
            values[data.draw(st.sampled_from([p.name for p in command.params] or ["x"]))] = data.draw(JSON_VALUES)
        body = json.dumps(values, ensure_ascii=False).encode("utf-8", "surrogatepass")
        before = fingerprint(url)
        assert_answer(call(client, headers, command.name, body), url, before, (command.name, values))

    check()


@pytest.mark.fuzz
def test_hostile_bytes_are_a_4xx(api, env):
    client, headers = api
    url = env["PIPE_DATABASE_URL"]

    @given(st.one_of(st.binary(max_size=200), st.sampled_from([b"[" * 50_000, b"{" * 50_000, b'{"name": "\\ud800"}',
                                                               b'{"limit": 99999999999999999999}', b"\xff\xfe",
                                                               b'{"name": "a\\u0000b"}'])),
           st.sampled_from(["create", "list", "show", "artifact-add", "stats"]))
    def check(body, name):
        before = fingerprint(url)
        assert_answer(call(client, headers, name, body), url, before, (name, body[:40]))

    check()
