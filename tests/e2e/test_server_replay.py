"""Replay protection across replicas: two real `pipe-server` processes on one database. A signed
slash command or button click sent to both (as an attacker who captured it would) runs once."""

from __future__ import annotations

import time

from chainpipe.bot import blocks

from tests.adapters.test_slack_gates import at_review, cli
from tests.e2e.test_server_slack import post
from tests.fakes import slack as fake


def replays_logged(server) -> int:
    return server.log().count("rule=replay")


def test_a_captured_slash_command_and_click_run_once_on_two_replicas(pipe_server, fake_slack):
    env = pipe_server.env
    first, second = pipe_server(), pipe_server()
    pid = at_review(env)
    stamp = int(time.time())

    command = fake.slash_body(f"artifact-add {pid} --name report --type report --uri https://x.test/r",
                              user_id="U0ALICE", response_url=fake_slack.response_url("cmd"))
    assert post(first, command, timestamp=stamp).status_code == 200
    fake_slack.wait_for("response_url", lambda c: c.path == "/response/cmd")
    again = post(second, command, timestamp=stamp)
    assert again.status_code == 200 and again.content == b""

    click = fake.block_actions_body(action_id=blocks.APPROVE, value=blocks.gate_value(pid, "code-review"),
                                    user_id="U0BOB", response_url=fake_slack.response_url("click"))
    assert post(second, click, timestamp=stamp).status_code == 200
    [reply] = fake_slack.wait_for("response_url", lambda c: c.path == "/response/click")
    assert reply.params["text"].startswith("You approved"), reply.params
    assert post(first, click, timestamp=stamp, retry=1).status_code == 200  # a "retry" to the other one

    time.sleep(0.3)  # had a replay run, its reply would have been posted by now
    # The refusals, from each process (a replay is acked first and refused right after).
    assert replays_logged(first) == 1 and replays_logged(second) == 1
    assert [c.path for c in fake_slack.calls_to("response_url")] == ["/response/cmd", "/response/click"]
    reports = [a for a in cli(env, f"artifacts {pid} --all-versions") if a["name"] == "report"]
    assert [a["version"] for a in reports] == [1]
    gate = cli(env, f"show {pid}")["gates"][0]
    assert gate["status"] == "approved" and len(gate["decisions"]) == 1
