"""Every Slack request is verified: a forged signature or a stale timestamp gets 401 and runs nothing."""

from __future__ import annotations

import time

import pytest

from bot import blocks
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
