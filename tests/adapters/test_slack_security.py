"""Every Slack request is verified: a forged signature or a stale timestamp gets 401 and runs nothing."""

from __future__ import annotations

import time

import pytest
from chainpipe.bot import blocks

from tests.adapters.test_slack_gates import at_review, cli
from tests.fakes import slack as fake


@pytest.mark.parametrize("sign_kw", [
    {"secret": "not-the-signing-secret"},
    {"timestamp": int(time.time()) - 6 * 60},
], ids=["forged-signature", "stale-timestamp"])
def test_unverified_slash_commands_are_refused_and_run_nothing(slack, slack_env, sign_kw):
    resp, _ = slack.command('create --name sneaky --json', **sign_kw)
    assert resp.status == 401
    assert cli(slack_env, "list") == []


def test_unverified_button_clicks_are_refused(slack, slack_env):
    pid = at_review(slack_env)
    body = fake.block_actions_body(action_id=blocks.APPROVE, value=blocks.gate_value(pid, "code-review"),
                                   user_id="U0BOB", response_url=slack.fake.response_url())
    assert slack.dispatch(body, secret="forged").status == 401
    assert slack.dispatch(body, timestamp=int(time.time()) - 301).status == 401
    assert cli(slack_env, f"show {pid}")["gates"][0]["status"] == "pending"


def test_a_request_without_signature_headers_is_refused(slack):
    from slack_bolt import BoltRequest

    body = fake.slash_body("list", user_id="U0X", response_url=slack.fake.response_url())
    resp = slack.app.dispatch(BoltRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"}))
    assert resp.status == 401


def test_a_fresh_signature_within_five_minutes_is_accepted(slack):
    resp, _ = slack.command("help", timestamp=int(time.time()) - 4 * 60)
    assert resp.status == 200


def refusal_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chainpipe.refusal"]


def seen_requests(env) -> int:
    from chainpipe.core.config import load_settings
    from chainpipe.core.models import SeenSlackRequest
    from chainpipe.core.uow import UnitOfWork
    from sqlalchemy import func, select

    with UnitOfWork(load_settings(env), write=False) as uow:
        return uow.session.execute(select(func.count()).select_from(SeenSlackRequest)).scalar()


HOSTILE_TIMESTAMPS = ["abc", "", " 1700000000", "1e9", "-1", "+1700000000", "1_700_000_000", "١٧٠٠٠٠٠٠٠٠",
                      "9" * 13, "9" * 5000, "0x6553f100", str(int(time.time())) + "\n"]


@pytest.mark.parametrize("stamp", HOSTILE_TIMESTAMPS, ids=range(len(HOSTILE_TIMESTAMPS)))
def test_a_hostile_timestamp_is_401_with_one_line_and_runs_nothing(slack, slack_env, caplog, stamp):
    # Signed with the real secret over the hostile timestamp: only the timestamp is wrong.
    resp, _ = slack.command("create --name sneaky --json", timestamp=stamp)
    assert resp.status == 401
    import json

    body = json.loads(resp.body)
    assert body["error"] == "unauthorized" and "\n" not in body["message"]
    assert cli(slack_env, "list") == [] and seen_requests(slack_env) == 0
    [line] = refusal_lines(caplog)
    assert line.startswith("refused surface=slack principal=unverified rule=") and "claimed=slack:U0ALICE" in line


def test_a_missing_timestamp_is_401(slack, slack_env):
    from slack_bolt import BoltRequest

    body = fake.slash_body("create --name sneaky", user_id="U0X", response_url=slack.fake.response_url())
    headers = {k.lower(): v for k, v in fake.headers_for(body, "application/x-www-form-urlencoded").items()
               if k != "X-Slack-Request-Timestamp"}
    assert slack.app.dispatch(BoltRequest(body=body, headers=headers)).status == 401
    assert cli(slack_env, "list") == []


@pytest.mark.parametrize("sign_kw, rule", [
    ({"secret": "not-the-signing-secret"}, "bad signature"),
    ({"timestamp": int(time.time()) - 6 * 60}, "stale timestamp"),
    ({"timestamp": "soon"}, "bad timestamp"),
])
def test_each_refusal_is_one_structured_log_line_and_no_row(slack, slack_env, caplog, sign_kw, rule):
    slack.command("create --name sneaky", user="U0EVE", **sign_kw)
    assert refusal_lines(caplog) == [
        f'refused surface=slack principal=unverified rule="{rule}" command="/pipe create" claimed=slack:U0EVE']
    assert seen_requests(slack_env) == 0 and cli(slack_env, "list") == []
    assert not [r for r in caplog.records if "body" in r.getMessage()]  # the refused body is not logged


def test_a_policy_refusal_from_a_button_is_logged_with_the_principal(slack, slack_env, config_file, caplog):
    config_file('[gates.code-review]\napprovers = ["alice"]\n')
    slack = slack.rebuild()
    pid = at_review(slack_env)
    slack.reply(slack.click(blocks.APPROVE, blocks.gate_value(pid, "code-review"), user="U0MALLORY")[1])
    [line] = refusal_lines(caplog)
    assert line.startswith('refused surface=slack principal=slack:U0MALLORY rule="not allowed" command=approve ')
    assert cli(slack_env, f"show {pid}")["gates"][0]["status"] == "pending"


@pytest.fixture
def slack_server(slack_env, config_file):
    """The whole ASGI server with Slack on, in process (the notifier is not started)."""
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.config import load_settings
    from starlette.testclient import TestClient

    app = create_asgi_app(load_settings(slack_env), load_bot_settings(slack_env), start_notifier=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post_signed(client, body: str | bytes, **sign_kw):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    headers = fake.headers_for(text, "application/x-www-form-urlencoded", **sign_kw)
    return client.post("/slack/events", content=body, headers=headers)


@pytest.mark.parametrize("body", [
    "payload=" + "%5B" * 50_000,
    "payload=%5B1%5D",
    "payload=%7Bnope",
    "{" + '"a":' * 20_000,
    "payload=null",
], ids=["nested", "list", "bad-json", "nested-json", "null"])
def test_an_unreadable_slack_body_is_400_and_runs_nothing(slack_server, slack_env, caplog, body):
    resp = post_signed(slack_server, body)
    assert resp.status_code == 400 and resp.json() == {"error": "bad request",
                                                       "message": "the body is not a Slack request",
                                                       "request_id": resp.headers["x-request-id"]}
    assert [r.getMessage() for r in caplog.records if r.name == "chainpipe.refusal"][0].startswith(
        'refused surface=slack principal=unverified rule="unreadable body"')
    assert cli(slack_env, "list") == [] and seen_requests(slack_env) == 0


def test_a_slack_body_over_the_cap_is_413(slack_server, slack_env):
    body = fake.slash_body("create --name " + "x" * (1024 * 1024), user_id="U0X", response_url="http://x.test/r")
    resp = post_signed(slack_server, body)
    assert resp.status_code == 413 and resp.json()["error"] == "too large"
    assert cli(slack_env, "list") == []


def test_a_non_numeric_timestamp_over_http_is_401(slack_server, slack_env):
    body = fake.slash_body("create --name sneaky", user_id="U0X", response_url="http://x.test/r")
    resp = post_signed(slack_server, body, timestamp="abc")
    assert resp.status_code == 401 and resp.json() == {"error": "unauthorized",
                                                       "message": "Slack request refused: bad timestamp"}
    assert cli(slack_env, "list") == []
