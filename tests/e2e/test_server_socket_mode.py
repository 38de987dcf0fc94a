"""A real `pipe-server` over Socket Mode with JSON logs: the fake Socket Mode server hands it a slash
command, `/metrics` counts it, and every log line on stderr is a JSON object — the refusal of an
API call carrying the caller's request id."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import slack as fake
from tests.fakes.socket_mode import envelope_of


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_socket_mode_with_json_logs_and_metrics(pipe_server, fake_slack, socket_fake):
    server = pipe_server(SLACK_APP_TOKEN=fake.APP_TOKEN, SLACK_SIGNING_SECRET="", PIPE_LOG_FORMAT="json")
    socket_fake.wait_connected()
    body = fake.slash_body("create --name over-the-socket --json", user_id="U0ALICE",
                           response_url=fake_slack.response_url("s"))
    envelope = socket_fake.send("slash_commands", envelope_of(body)[1])
    assert socket_fake.wait_ack(envelope) == {"envelope_id": envelope}
    [reply] = fake_slack.wait_for("response_url", lambda c: c.path == "/response/s")
    assert "over-the-socket" in reply.params["text"]

    refused = httpx.post(server.url + "/api/v1/commands/list", json={}, headers={"X-Request-Id": "e2e-7"})
    assert refused.status_code == 401 and refused.json()["request_id"] == "e2e-7"
    assert refused.headers["x-request-id"] == "e2e-7"
    assert httpx.post(server.url + "/slack/events", content="x").status_code == 404  # HTTP is off

    found = samples(httpx.get(server.url + "/metrics").text)
    socket_key = (("command", "/pipe create"), ("status", "200"), ("surface", "slack-socket"))
    assert found[("pipe_requests_total", socket_key)] == 1
    assert found[("pipe_socket_mode_connected", ())] == 1
    assert found[("pipe_outbox_backlog_events", (("consumer", "slack"),))] >= 0

    server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]  # every line is JSON
    [refusal] = [line for line in lines if line["logger"] == "chainpipe.refusal"]
    assert refusal["request_id"] == "e2e-7" and "rule=unauthorized" in refusal["message"]
