"""The server as operators see it: ``/metrics`` (requests, latency, outbox backlog and failures,
database errors), request ids in headers, error bodies and log lines, JSON logs, and readiness that
includes the notifier."""

from __future__ import annotations

import io
import json
import logging

import pytest
from chainpipe.bot.observability import configure_logging
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.adapters.test_slack_gates import at_review
from tests.fakes import slack as fake


@pytest.fixture
def server_env(slack_env):
    return slack_env | {"PIPE_OUTBOX_LEASE_SECONDS": "0.2"}


@pytest.fixture
def server(server_env, config_file):
    """pipe-server in process, its notifier drained by hand (``server.app_ref.state.notifier``)."""
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.config import load_settings

    app = create_asgi_app(load_settings(server_env), load_bot_settings(server_env), start_notifier=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.app_ref = app
        yield client


def scrape(server) -> dict[tuple, float]:
    """``{(sample name, (label, value), …): value}`` from ``GET /metrics``."""
    resp = server.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def backlog(server, consumer: str = "slack") -> tuple[float, float]:
    found = scrape(server)
    return (found[("pipe_outbox_backlog_events", ("consumer", consumer))],
            found[("pipe_outbox_oldest_undelivered_age_seconds", ("consumer", consumer))])


@pytest.fixture
def no_client_retries(monkeypatch):
    """Slack's 503s given back to the notifier at once: the client's own backoff (retried 503s,
    tests/adapters/test_slack_rate_limits.py) would add seconds of sleep and nothing to what is counted."""
    from chainpipe.bot import app

    monkeypatch.setattr(app, "SERVER_ERROR_RETRIES", 0)


def test_the_outbox_backlog_grows_while_slack_is_down_and_drains_after(no_client_retries, server, server_env,
                                                                      fake_slack):
    import time

    from chainpipe.bot.notifier import wait_until_idle

    notifier = server.app_ref.state.notifier
    assert backlog(server) == (0, 0)
    fake_slack.down = True
    at_review(server_env)
    waiting, age = backlog(server)
    assert waiting >= 4 and age >= 0  # create, start, artifact, stage: none delivered yet
    wait_until_idle(notifier)  # the gate message fails (503) and is given back
    waiting_after, _ = backlog(server)
    assert 1 <= waiting_after < waiting  # what had nothing to say is done; the gate message waits
    found = scrape(server)
    assert found[("pipe_outbox_delivery_failures_total", ("consumer", "slack"))] >= 1
    time.sleep(0.3)
    at_review(server_env, creator="dave")
    assert backlog(server)[0] > waiting_after
    fake_slack.down = False
    time.sleep(0.3)  # the failed claim's lease runs out
    wait_until_idle(notifier)
    assert backlog(server) == (0, 0)
    posted = [c for c in fake_slack.calls_to("chat.postMessage") if c.status == 200]
    assert len(posted) == 2  # one gate message per pipeline, each once


def test_requests_are_counted_by_surface_command_and_status_with_latency(server):
    assert server.post("/api/v1/commands/list", json={}).status_code == 401
    assert server.post("/api/v1/commands/no-such-command", json={}).status_code == 404
    body = fake.slash_body("create --name x", user_id="U0EVE", response_url="http://x.test/r")
    assert server.post("/slack/events", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
                       ).status_code == 401
    odd = fake.slash_body("$(rm -rf) now", user_id="U0EVE", response_url="http://x.test/r")
    server.post("/slack/events", content=odd, headers={"Content-Type": "application/x-www-form-urlencoded"})
    found = scrape(server)
    requests = {k[1:]: v for k, v in found.items() if k[0] == "pipe_requests_total"}
    assert requests[(("command", "list"), ("status", "401"), ("surface", "api"))] == 1
    assert requests[(("command", "-"), ("status", "404"), ("surface", "api"))] == 1  # unknown names make no label
    assert requests[(("command", "/pipe create"), ("status", "401"), ("surface", "slack"))] == 1
    assert requests[(("command", "/pipe ?"), ("status", "401"), ("surface", "slack"))] == 1
    assert found[("pipe_request_duration_seconds_count", ("command", "list"), ("surface", "api"))] == 1
    assert not [k for k in requests if "rm" in str(k)]


def test_database_errors_are_counted(server):
    from chainpipe.bot.outage import DatabaseUnavailable
    from sqlalchemy.exc import OperationalError

    outage = server.app_ref.state.runtime.outage
    before = scrape(server)[("pipe_database_errors_total",)]

    def lost():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    for _ in range(3):
        with pytest.raises(DatabaseUnavailable):
            outage.call(lost)
    assert scrape(server)[("pipe_database_errors_total",)] == before + 3


def test_a_request_id_is_echoed_kept_when_plain_and_replaced_when_hostile(server):
    mine = server.post("/api/v1/commands/list", json={}, headers={"X-Request-Id": "trace-42.a:b"})
    assert mine.headers["x-request-id"] == "trace-42.a:b" and mine.json()["request_id"] == "trace-42.a:b"
    for hostile in ("x" * 200, "a b", "id\u202e", ""):
        resp = server.post("/api/v1/commands/list", json={}, headers={"X-Request-Id": hostile.encode("utf-8")})
        assert resp.headers["x-request-id"].startswith("req-") and resp.json()["request_id"] == resp.headers[
            "x-request-id"]
    first, second = (server.get("/healthz/live").headers["x-request-id"] for _ in range(2))
    assert first != second


@pytest.fixture
def json_log():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_a_crash_shows_a_reference_and_the_json_log_line_has_it_with_the_request_id(server, server_env, json_log,
                                                                                    monkeypatch):
    from chainpipe.core.actor import Actor
    from chainpipe.core.config import load_settings
    from chainpipe.core.services.tokens import create_token
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(load_settings(server_env)) as uow:
        token = create_token(uow, Actor("admin"), "ci")["token"]
    runtime = server.app_ref.state.runtime
    monkeypatch.setattr(runtime, "run", lambda *a, **k: {}["boom"])
    resp = server.post("/api/v1/commands/list", json={}, headers={"Authorization": f"Bearer {token}",
                                                                   "X-Request-Id": "crash-1"})
    assert resp.status_code == 500
    body = resp.json()
    assert body["request_id"] == "crash-1" and body["reference"].startswith("err-") and "Traceback" not in resp.text
    [line] = [r for r in json_log() if body["reference"] in r["message"]]
    assert line["request_id"] == "crash-1" and line["level"] == "error" and "KeyError" in line["traceback"]


def test_pipe_server_refuses_an_unknown_log_format_in_one_line(monkeypatch, capsys, server_env):
    from chainpipe.bot.server import main

    for key, value in (server_env | {"PIPE_LOG_FORMAT": "xml"}).items():
        monkeypatch.setenv(key, value)
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "pipe-server: PIPE_LOG_FORMAT must be one of text, json, got 'xml'\n"


def test_readiness_fails_when_the_notifier_is_not_running(server_env, config_file):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.config import load_settings

    app = create_asgi_app(load_settings(server_env), load_bot_settings(server_env))
    with TestClient(app) as client:
        assert client.get("/healthz/ready").status_code == 200
        assert scrape(client)[("pipe_notifier_up",)] == 1
        app.state.notifier.stop()  # as if its thread had died
        resp = client.get("/healthz/ready")
        assert resp.status_code == 503 and resp.json()["message"] == "the Slack notifier is not running"
        assert resp.headers["retry-after"] == "30"
        assert scrape(client)[("pipe_notifier_up",)] == 0


def test_an_error_outside_the_routes_translation_still_names_the_request(json_log):
    from chainpipe.bot import api
    from chainpipe.bot.observability import RequestMetrics
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    seen = []

    async def broken(request):
        raise LookupError("outside every translation")

    app = Starlette(routes=[Route("/broken", broken)], exception_handlers={Exception: api.crash},
                    middleware=[Middleware(RequestMetrics, observe=lambda *a: seen.append(a))])
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/broken", headers={"X-Request-Id": "outside-1"})
    assert resp.status_code == 500 and resp.json()["request_id"] == "outside-1" and "Traceback" not in resp.text
    [line] = [r for r in json_log() if resp.json()["reference"] in r["message"]]
    assert line["request_id"] == "outside-1" and "LookupError" in line["traceback"]
    assert [(s[0], s[2]) for s in seen] == [("web", 500)]


METRICS_TOKEN = "m3tr1cs-" + "7" * 24


def test_with_a_metrics_token_the_scrape_needs_it(server_env, config_file):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.config import load_settings

    env = server_env | {"PIPE_METRICS_TOKEN": METRICS_TOKEN}
    app = create_asgi_app(load_settings(env), load_bot_settings(env), start_notifier=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        for headers in ({}, {"Authorization": "Bearer " + METRICS_TOKEN[:-1] + "8"}, {"Authorization": METRICS_TOKEN},
                        {"Authorization": "Basic " + METRICS_TOKEN}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["message"] == "GET /metrics needs the bearer token set in PIPE_METRICS_TOKEN"
            assert METRICS_TOKEN not in refused.text
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200 and "pipe_requests_total" in scraped.text
        assert client.get("/healthz/live").status_code == 200  # the health checks stay open for probes


@pytest.mark.parametrize("value", ["short", "has a space in it 0123456789", "tab\there-0123456789abcdef"])
def test_a_weak_or_malformed_metrics_token_stops_start_up_without_echoing_it(server_env, value):
    from chainpipe.bot.settings import SettingsError, load_bot_settings

    with pytest.raises(SettingsError) as raised:
        load_bot_settings(server_env | {"PIPE_METRICS_TOKEN": value})
    assert str(raised.value).startswith("PIPE_METRICS_TOKEN must be at least 16 printable characters")
    assert value not in str(raised.value)
