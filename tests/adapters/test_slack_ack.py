"""Slack's ack never waits on the database: while another transaction holds the database (a
writer's lock on SQLite, the replay table locked on PostgreSQL), a signed slash command, a button
click and an App Home event are still acked at once; their work — the replay record first, then
the command — runs once the database lets go, and runs once."""

from __future__ import annotations

import contextlib
import json
import threading
import time

from chainpipe.bot import blocks
from chainpipe.core.config import load_settings
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import text

from tests.adapters.test_slack_gates import at_review, cli
from tests.fakes import slack as fake

FAST = 1.0  # seconds; the database stays held for HOLD, far longer
HOLD = 3.0


@contextlib.contextmanager
def database_held(env):
    """Another transaction holding what every Slack request's record needs, until the block ends."""
    uow = UnitOfWork(load_settings(env)).__enter__()
    try:
        conn = uow.conn  # a writer: on SQLite, BEGIN IMMEDIATE, which every other writer waits behind
        if uow.dialect == "postgresql":
            conn.execute(text("LOCK TABLE seen_slack_requests IN ACCESS EXCLUSIVE MODE"))
        yield
    finally:
        uow.__exit__(None, None, None)


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def release_after(env, seconds: float):
    """Hold the database on a thread for ``seconds``; returns (started event, thread)."""
    held = threading.Event()

    def hold():
        with database_held(env):
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(10)
    return thread


def test_a_slash_command_is_acked_while_the_database_is_held(slack, slack_env):
    body = fake.slash_body("create --name held", user_id="U0ALICE", response_url=slack.fake.response_url("h"))
    holder = release_after(slack_env, HOLD)
    resp, took = timed(lambda: slack.dispatch(body))
    assert resp.status == 200 and resp.body == "" and took < FAST, took
    assert holder.is_alive()  # still held: the ack did not wait for it
    [reply] = slack.fake.wait_for("response_url", lambda c: c.path == "/response/h", timeout=HOLD + 10)
    assert "held" in reply.params["text"]
    assert [p["name"] for p in cli(slack_env, "list")] == ["held"]


def test_help_and_parse_errors_are_still_the_ack_itself(slack, slack_env):
    holder = release_after(slack_env, HOLD)
    for words, expected in (("help", "create"), ("create --bogus", "no such option")):
        body = fake.slash_body(words, user_id="U0ALICE", response_url=slack.fake.response_url("x"))
        resp, took = timed(lambda b=body: slack.dispatch(b))
        assert resp.status == 200 and took < FAST, took
        assert expected in json.loads(resp.body)["text"]
    assert holder.is_alive()


def test_a_button_click_is_acked_while_the_database_is_held_and_decides_once(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    body = fake.block_actions_body(action_id=blocks.APPROVE, value=blocks.gate_value(pid, "code-review"),
                                   user_id="U0BOB", response_url=fake_slack.response_url("b"))
    stamp = int(time.time())
    holder = release_after(slack_env, HOLD)
    for _ in range(2):  # the click, and a replay of it while the first still waits for the database
        resp, took = timed(lambda: slack.dispatch(body, timestamp=stamp))
        assert resp.status == 200 and took < FAST, took
    assert holder.is_alive()
    [reply] = fake_slack.wait_for("response_url", lambda c: c.path == "/response/b", timeout=HOLD + 10)
    assert reply.params["text"].startswith("You approved")
    time.sleep(0.3)  # had the replay run, its reply would be on its way by now
    assert len(fake_slack.calls_to("response_url")) == 1
    assert len(cli(slack_env, f"show {pid}")["gates"][0]["decisions"]) == 1


def test_app_home_is_acked_while_the_database_is_held(slack, slack_env, fake_slack):
    holder = release_after(slack_env, HOLD)
    event = fake.app_home_opened_body(user_id="U0ALICE")
    resp, took = timed(lambda: slack.dispatch(event, content_type="application/json"))
    assert resp.status == 200 and took < FAST, took
    assert holder.is_alive()
    [call] = fake_slack.wait_for("views.publish", timeout=HOLD + 10)
    assert call.params["user_id"] == "U0ALICE"
