"""Socket Mode: the same Bolt app and listeners, reached over a WebSocket that the server opens to
(a local fake of) Slack. The HTTP scenarios below are imported and run again with ``slack`` bound
to a Socket Mode harness: the slash command, the buttons and the reject modal behave as over HTTP.
Then what only Socket Mode has: redelivered envelopes run once, dropped connections come back
(with backoff while Slack is away), and a wrong app token stops start-up with one line."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from chainpipe.bot.settings import SettingsError, load_bot_settings
from chainpipe.bot.socket_mode import Backoff, SocketMode

from tests.adapters.conftest import SlackHarness
from tests.adapters.test_slack_commands import (  # noqa: F401 - collected again, over Socket Mode
    test_errors_are_one_ephemeral_line,
    test_help_lists_every_command_and_help_for_one_shows_its_options,
    test_identities_map_the_slack_user_to_a_person,
    test_parse_errors_are_answered_in_the_ack,
    test_slash_command_creates_a_pipeline_as_the_slack_user,
    test_the_ack_is_immediate_and_empty_and_the_reply_is_ephemeral,
)
from tests.adapters.test_slack_gates import (  # noqa: F401 - collected again, over Socket Mode
    at_review,
    cli,
    test_approve_button_decides_as_the_slack_user_and_the_message_loses_its_buttons,
    test_double_click_records_one_decision,
    test_reject_opens_a_modal_that_requires_a_reason_then_rejects,
    test_self_approval_is_refused_when_the_policy_forbids_it,
    test_unauthorised_approver_gets_an_ephemeral_refusal,
    test_unauthorised_rejecter_is_refused_after_the_modal,
)
from tests.fakes import slack as fake
from tests.fakes.socket_mode import envelope_of


class SocketHarness(SlackHarness):
    """``SlackHarness`` with every request sent as a Socket Mode envelope; the ack stands in for the
    HTTP response (status 200, its payload as the body)."""

    def __init__(self, app, notifier, fake_slack, socket_fake, socket):
        super().__init__(app, notifier, fake_slack)
        self.socket_fake, self.socket = socket_fake, socket

    def dispatch(self, body: str, content_type: str = "", **_signing):
        kind, payload = envelope_of(body)
        ack = self.socket_fake.wait_ack(self.socket_fake.send(kind, payload))
        return SimpleNamespace(status=200, body=json.dumps(ack["payload"]) if ack.get("payload") else "")


@pytest.fixture
def socket_env(slack_env):
    return slack_env | {"SLACK_APP_TOKEN": fake.APP_TOKEN}


@pytest.fixture
def slack(socket_env, fake_slack, socket_fake, config_file):
    """The Bolt app over Socket Mode on the test database; its notifier is drained by hand."""
    from chainpipe.bot.app import create_app, web_client
    from chainpipe.bot.notifier import Notifier
    from chainpipe.bot.runtime import Runtime
    from chainpipe.core.config import load_settings

    built = []

    def build(backoff: Backoff | None = None):
        for old in built:
            old.notifier.stop()
            old.socket.close()
        core, bot = load_settings(socket_env), load_bot_settings(socket_env)
        assert bot.socket_mode and not bot.http_events
        client = web_client(bot)
        app = create_app(bot, Runtime(core), client)
        socket = SocketMode(app, bot.app_token, ping_interval=0.3,
                            backoff=backoff or Backoff(first=0.1, limit=0.5))
        socket.start()
        socket_fake.wait_connected(socket_fake.connections + 1)
        harness = SocketHarness(app, Notifier(core, client, bot.channel, lease=0.5), fake_slack, socket_fake, socket)
        harness.rebuild = build
        built.append(harness)
        return harness

    yield build()
    for harness in built:
        harness.notifier.stop()
        harness.socket.close()


def slash(text: str, slack, user: str = "U0ALICE", name: str = "s") -> dict:
    return envelope_of(fake.slash_body(text, user_id=user, response_url=slack.fake.response_url(name)))[1]


def refusals(caplog, rule: str) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "chainpipe.refusal"]
    return [line for line in lines if f"rule={rule}" in line]


# --- each envelope once ------------------------------------------------------------------------------


def test_a_redelivered_envelope_is_acked_and_runs_nothing(slack, socket_env, socket_fake, caplog):
    payload = slash("create --name once --json", slack, name="once")
    envelope = socket_fake.send("slash_commands", payload)
    socket_fake.wait_ack(envelope)
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/once")
    socket_fake.send("slash_commands", payload, envelope_id=envelope)  # Slack did not see the ack
    assert socket_fake.wait_ack(envelope, count=2) == {"envelope_id": envelope}
    time.sleep(0.2)  # had it run, its reply would be on its way by now
    assert [p["name"] for p in cli(socket_env, "list")] == ["once"]
    assert len(slack.fake.calls_to("response_url")) == 1
    [line] = refusals(caplog, "replay")
    assert f"envelope={envelope}" in line and "principal=slack:U0ALICE" in line


def test_a_redelivered_click_after_a_restart_decides_once(slack, socket_env, socket_fake):
    from chainpipe.bot import blocks

    pid = at_review(socket_env)
    body = fake.block_actions_body(action_id=blocks.APPROVE, value=blocks.gate_value(pid, "code-review"),
                                   user_id="U0BOB", response_url=slack.fake.response_url("b"))
    payload = envelope_of(body)[1]
    envelope = socket_fake.send("interactive", payload)
    socket_fake.wait_ack(envelope)
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/b")
    slack.rebuild()  # a restarted server (or another replica) on the same database gets the redelivery
    socket_fake.send("interactive", payload, envelope_id=envelope)
    socket_fake.wait_ack(envelope, count=2)
    time.sleep(0.2)
    assert len(cli(socket_env, f"show {pid}")["gates"][0]["decisions"]) == 1
    assert len(slack.fake.calls_to("response_url")) == 1


def test_the_same_envelope_on_two_connections_at_once_runs_once(slack, socket_env, socket_fake):
    from chainpipe.bot.verify import remember_envelope
    from chainpipe.core.config import load_settings

    settings = load_settings(socket_env)
    barrier, firsts = threading.Barrier(4), []

    def race():
        barrier.wait()
        firsts.append(remember_envelope(settings, "1d3e-race"))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(firsts) == [False, False, False, True]


def test_long_envelope_ids_are_told_apart_by_their_whole_value(slack, socket_env):
    from chainpipe.bot.verify import remember_envelope
    from chainpipe.core.config import load_settings

    settings = load_settings(socket_env)
    first, second = "e" * 100 + "1", "e" * 100 + "2"
    assert remember_envelope(settings, first) and remember_envelope(settings, second)
    assert not remember_envelope(settings, first) and not remember_envelope(settings, second)


# --- the connection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("warn", [True, False], ids=["disconnect-message", "dropped"])
def test_a_closed_connection_is_opened_again_and_commands_keep_working(slack, socket_fake, warn):
    opened = len(slack.fake.calls_to("apps.connections.open"))
    socket_fake.drop(warn=warn)
    socket_fake.wait_connected(socket_fake.connections + 1)
    assert len(slack.fake.calls_to("apps.connections.open")) > opened
    assert "once-more" in slack.run("create --name once-more")


def test_while_slack_is_away_reconnection_backs_off_then_connects(slack, socket_fake):
    slack = slack.rebuild(backoff=Backoff(first=0.2, limit=5.0, jitter=lambda: 1.0))
    socket_fake.refuse = True
    start = len(slack.fake.calls_to("apps.connections.open"))
    socket_fake.drop(warn=False)
    attempts = slack.fake.wait_for("apps.connections.open", count=start + 5, timeout=15)[start:]
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[2] >= 0.4 and gaps[3] >= 0.8, gaps  # 0.2 s doubling, not one attempt per ping (0.3 s)
    socket_fake.refuse = False
    socket_fake.wait_connected(socket_fake.connections + 1, timeout=15)
    assert "back" in slack.run("create --name back")


def test_the_backoff_doubles_up_to_its_limit_and_resets_after_a_success():
    backoff = Backoff(first=1.0, limit=8.0, jitter=lambda: 1.0)
    delays = []
    for _ in range(6):
        delays.append(backoff.delay())
        backoff.failed()
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    backoff.succeeded()
    assert backoff.delay() == 0.0
    assert Backoff(first=1.0, jitter=lambda: 0.0).delay() == 0.0
    halved = Backoff(first=2.0, jitter=lambda: 0.0)
    halved.failed()
    assert halved.delay() == 1.0  # jitter keeps at least half


# --- settings and the server ------------------------------------------------------------------------------


@pytest.mark.parametrize("env, message", [
    ({"PIPE_SLACK_MODE": "socket"}, "PIPE_SLACK_MODE=socket needs SLACK_APP_TOKEN"),
    ({"PIPE_SLACK_MODE": "both"}, "PIPE_SLACK_MODE=both needs SLACK_APP_TOKEN"),
    ({"SLACK_APP_TOKEN": "xoxb-123-456-secretvalue"}, "SLACK_APP_TOKEN is a bot token"),
    ({"SLACK_APP_TOKEN": "not-a-token-secretvalue"}, "SLACK_APP_TOKEN is not an app-level token"),
    ({"PIPE_SLACK_MODE": "carrier-pigeon"}, "PIPE_SLACK_MODE must be one of http, socket, both"),
])
def test_a_missing_or_malformed_app_token_stops_start_up_with_one_line(monkeypatch, capsys, slack_env, env,
                                                                       message):
    from chainpipe.bot.server import main

    for key, value in (slack_env | env).items():
        monkeypatch.setenv(key, value)
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err and "Traceback" not in err
    assert "secretvalue" not in err


def test_socket_mode_needs_no_signing_secret_and_http_mode_still_does(slack_env):
    socket_only = {k: v for k, v in slack_env.items() if k != "SLACK_SIGNING_SECRET"}
    bot = load_bot_settings(socket_only | {"SLACK_APP_TOKEN": fake.APP_TOKEN})
    assert (bot.slack_mode, bot.signing_secret, bot.app_token) == ("socket", None, fake.APP_TOKEN)
    with pytest.raises(SettingsError, match="missing SLACK_SIGNING_SECRET"):
        load_bot_settings(socket_only | {"SLACK_APP_TOKEN": fake.APP_TOKEN, "PIPE_SLACK_MODE": "both"})
    assert load_bot_settings(slack_env).slack_mode == "http"


def test_a_rejected_app_token_stops_the_server_before_it_listens(slack_env, socket_fake):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.core.config import load_settings

    bot = load_bot_settings(slack_env | {"SLACK_APP_TOKEN": "xapp-1-A0PIPE-1-revoked"})
    with pytest.raises(Exception, match="invalid_auth"):
        create_asgi_app(load_settings(slack_env), bot, start_notifier=False)


def test_the_server_over_socket_mode_runs_commands_and_turns_http_slack_requests_away(socket_env, socket_fake,
                                                                                       fake_slack):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.core.config import load_settings
    from starlette.testclient import TestClient

    env = {k: v for k, v in socket_env.items() if k != "SLACK_SIGNING_SECRET"}
    app = create_asgi_app(load_settings(env), load_bot_settings(env))
    with TestClient(app) as http:
        socket_fake.wait_connected()
        deadline = time.monotonic() + 5  # the fake sees the socket open a moment before the client says hello
        while http.get("/healthz/ready").json()["socket_mode"] != "connected" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get("/healthz/ready").json()["socket_mode"] == "connected"
        # An HTTP request signed with the empty key (no secret is configured) runs nothing.
        body = fake.slash_body("create --name forged", user_id="U0EVE", response_url=fake_slack.response_url("f"))
        refused = http.post("/slack/events", content=body,
                            headers=fake.headers_for(body, "application/x-www-form-urlencoded", secret=""))
        assert refused.status_code == 404 and "Socket Mode" in refused.json()["message"]
        envelope = socket_fake.send("slash_commands", envelope_of(fake.slash_body(
            "create --name over-the-socket", user_id="U0ALICE", response_url=fake_slack.response_url("s")))[1])
        socket_fake.wait_ack(envelope)
        fake_slack.wait_for("response_url", lambda c: c.path == "/response/s")
    assert [p["name"] for p in cli(env, "list")] == ["over-the-socket"]


def test_without_a_signing_secret_the_guard_refuses_every_http_request(slack_env):
    from chainpipe.bot.runtime import Runtime
    from chainpipe.bot.verify import SlackGuard
    from chainpipe.core.config import load_settings
    from slack_bolt import BoltRequest
    from slack_bolt.response import BoltResponse

    body = fake.slash_body("create --name forged", user_id="U0EVE", response_url="https://x.test/r")
    headers = {k.lower(): v for k, v in fake.headers_for(body, "application/x-www-form-urlencoded", secret="").items()}
    ran = []
    resp = SlackGuard(None, Runtime(load_settings(slack_env))).process(
        req=BoltRequest(body=body, headers=headers), resp=BoltResponse(status=200), next=lambda: ran.append(1))
    assert resp.status == 401 and ran == []
    assert cli(slack_env, "list") == []
