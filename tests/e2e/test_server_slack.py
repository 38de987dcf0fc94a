"""Signed Slack requests over HTTP to a real `pipe-server` process; the fake Slack records what
the server sends back (response_url replies, gate messages and their updates)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import httpx
from chainpipe.bot import blocks

from tests.e2e.conftest import BIN
from tests.fakes import slack as fake

FORM = "application/x-www-form-urlencoded"


def post(server, body: str, **sign_kw) -> httpx.Response:
    return httpx.post(server.url + "/slack/events", content=body, headers=fake.headers_for(body, FORM, **sign_kw),
                      timeout=5)


class Slack:
    """A Slack client of the server: sends /pipe and button clicks, returns the replies."""

    def __init__(self, server, fake_slack):
        self.server, self.fake, self.n = server, fake_slack, 0

    def _url(self):
        self.n += 1
        return self.fake.response_url(f"e{self.n}")

    def pipe(self, text: str, user: str = "U0ALICE") -> str:
        url = self._url()
        resp = post(self.server, fake.slash_body(text, user_id=user, response_url=url))
        assert resp.status_code == 200, resp.text
        if resp.content:
            return resp.json()["text"]
        path = url.removeprefix(self.fake.base)
        return self.fake.wait_for("response_url", lambda c: c.path == path)[0].params["text"]

    def click(self, action_id: str, value: str, user: str) -> str:
        url = self._url()
        body = fake.block_actions_body(action_id=action_id, value=value, user_id=user, response_url=url)
        assert post(self.server, body).status_code == 200
        path = url.removeprefix(self.fake.base)
        return self.fake.wait_for("response_url", lambda c: c.path == path)[0].params["text"]


def _id(text: str, prefix: str) -> str:
    return re.search(rf"{prefix}-[0-9a-f]{{12}}", text).group(0)


def test_signed_slash_commands_are_acked_fast_and_unverified_ones_get_401(pipe_server, fake_slack):
    server = pipe_server()
    fake_slack.wait_for("auth.test")  # the token is checked at start-up
    sneaky = fake.slash_body("create --name sneaky", user_id="U0EVE", response_url=fake_slack.response_url("x"))
    assert post(server, sneaky, secret="forged").status_code == 401
    assert post(server, sneaky, timestamp=int(time.time()) - 301).status_code == 401
    latencies = []
    for n in range(5):  # five requests (each its own body: the same one again would be a replay)
        body = fake.slash_body("create --name fast --json", user_id="U0ALICE",
                               response_url=fake_slack.response_url(f"a{n}"))
        started = time.perf_counter()
        resp = post(server, body)
        latencies.append(time.perf_counter() - started)
        assert resp.status_code == 200 and resp.content == b""
    assert max(latencies) < 1.0, latencies  # Slack's limit is 3 s
    replies = fake_slack.wait_for("response_url", count=5)
    assert all(c.path.startswith("/response/a") for c in fake_slack.calls_to("response_url"))  # none for forgeries
    assert json.loads(replies[0].params["text"][3:-3])["created_by"] == "slack:U0ALICE"
    median, worst = sorted(latencies)[2] * 1000, max(latencies) * 1000
    print(f"\nslash-command ack over HTTP: median {median:.1f} ms, max {worst:.1f} ms")


def test_the_seed_walkthrough_from_slack_with_the_approve_button(pipe_server, fake_slack):
    server = pipe_server()
    slack = Slack(server, fake_slack)
    pid = _id(slack.pipe('create --name "用户认证" --template feature'), "pipe")
    slack.pipe(f"start {pid}")
    slack.pipe(f"stage {pid} code")
    slack.pipe(f"stage {pid} review")
    [post_] = fake_slack.wait_for("chat.postMessage", lambda c: "Gate code-review" in c.params["text"])
    buttons = [b for b in post_.params["blocks"] if b["type"] == "actions"][0]["elements"]
    assert slack.click(buttons[0]["action_id"], buttons[0]["value"], user="U0BOB").startswith("You approved")
    [update] = fake_slack.wait_for("chat.update", lambda c: "Approved" in json.dumps(c.params["blocks"]))
    assert update.params["ts"] == next(iter(fake_slack.messages))
    assert not [b for b in update.params["blocks"] if b["type"] == "actions"]
    slack.pipe(f"artifact-add {pid} --name build --type binary --uri https://x.test/b --digest sha256:{'b' * 64}")
    dep = _id(slack.pipe(f"deploy {pid} --strategy canary --target production --artifact build"), "dep")
    slack.pipe(f"monitor-record {pid} --metric error_rate --value 0.02")
    assert "rolled-back" in slack.pipe(f"rollback {dep} --reason 'error rate'")
    stats = json.loads(slack.pipe("stats --json")[3:-3])
    assert stats
    fake_slack.wait_for("chat.postMessage", lambda c: dep in c.params["text"] and "rolled back" in c.params["text"])


def test_a_cli_decision_reaches_slack_and_survives_a_restart(pipe_server, fake_slack):
    from tests.adapters.test_slack_gates import at_review, cli

    env = pipe_server.env
    server = pipe_server()
    pid = at_review(env)  # the same use cases the CLI runs, from this (another) process
    fake_slack.wait_for("chat.postMessage", lambda c: "Gate code-review" in c.params["text"])

    server.stop()  # a decision taken while the server is down reaches Slack when it is back
    cli(env, f"approve {pid} --gate code-review --reason lgtm", actor="dave")
    restarted = pipe_server()
    [update] = fake_slack.wait_for("chat.update")
    assert "dave" in json.dumps(update.params["blocks"]) and "lgtm" in json.dumps(update.params["blocks"])

    # while it runs, a decision committed elsewhere reaches Slack within a poll or two
    cli(env, f"stage {pid} code --reason rework")
    started = time.perf_counter()
    cli(env, f"stage {pid} review")
    fake_slack.wait_for("chat.update", lambda c: any(b["type"] == "actions" for b in c.params["blocks"]))
    took = (time.perf_counter() - started) * 1000
    print(f"\noutbox delivery latency (commit → chat.update, poll 0.2 s): {took:.0f} ms")
    time.sleep(0.3)
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if "Gate code-review" in c.params["text"]]) == 1
    restarted.stop()


def test_the_server_refuses_to_start_without_its_settings(server_env, tmp_path):
    env = {k: v for k, v in server_env.items() if k != "SLACK_SIGNING_SECRET"}
    done = subprocess.run([str(BIN / "pipe-server"), "--port", "1"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "pipe-server: missing SLACK_SIGNING_SECRET (see docs/slack.md; set PIPE_SERVER_API_ONLY=1 to serve only "
        "the JSON API)"]


def test_button_value_is_the_gate_it_names(fake_slack):
    assert json.loads(blocks.gate_value("pipe-0123456789ab", "code-review")) == {
        "pipeline_id": "pipe-0123456789ab", "gate": "code-review"}
