"""Replay protection: a signed Slack request runs once. The same body with the same timestamp and
signature — sent again by an attacker who captured it, or retried by Slack — is answered 200 and
runs nothing; the record is in the database, so it holds for every app on that database."""

from __future__ import annotations

import threading
import time

from chainpipe.bot import blocks
from chainpipe.bot.verify import WINDOW, remember_request
from chainpipe.core.config import load_settings
from chainpipe.core.models import SeenSlackRequest
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import func, select

from tests.adapters.test_slack_gates import at_review, cli
from tests.fakes import slack as fake


def refusals(caplog, rule: str) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "chainpipe.refusal"]
    return [line for line in lines if f"rule={rule}" in line]


def logged_refusals(caplog, rule: str, count: int, timeout: float = 5.0) -> list[str]:
    """The refusal lines once ``count`` are there: a replay is acked first and refused right after."""
    deadline = time.monotonic() + timeout
    while len(lines := refusals(caplog, rule)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return lines


def seen_rows(env) -> int:
    with UnitOfWork(load_settings(env), write=False) as uow:
        return uow.session.execute(select(func.count()).select_from(SeenSlackRequest)).scalar()


def test_the_same_signed_slash_command_twice_creates_one_pipeline(slack, slack_env, caplog):
    body = fake.slash_body("create --name once --json", user_id="U0ALICE", response_url=slack.fake.response_url("c"))
    stamp = int(time.time())
    first = slack.dispatch(body, timestamp=stamp)
    assert first.status == 200 and first.body == ""
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/c")
    again = slack.dispatch(body, timestamp=stamp)
    assert again.status == 200 and again.body == ""
    assert [p["name"] for p in cli(slack_env, "list")] == ["once"]
    [line] = logged_refusals(caplog, "replay", 1)
    assert "principal=slack:U0ALICE" in line and 'command="/pipe create"' in line
    time.sleep(0.2)  # had the replay run, its reply would be on its way by now
    assert len(slack.fake.calls_to("response_url")) == 1


def test_a_slack_retry_of_an_accepted_request_runs_nothing(slack, slack_env, caplog):
    pid = at_review(slack_env)
    body = fake.slash_body(f"artifact-add {pid} --name report --type report --uri https://x.test/r",
                           user_id="U0ALICE", response_url=slack.fake.response_url("a"))
    stamp = int(time.time())
    assert slack.dispatch(body, timestamp=stamp).status == 200
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/a")
    for retry in (1, 2):
        assert slack.dispatch(body, timestamp=stamp, retry=retry).status == 200
    versions = [a["version"] for a in cli(slack_env, f"artifacts {pid} --all-versions") if a["name"] == "report"]
    assert versions == [1]  # one version, not three
    assert sorted(line.split("retry=")[1] for line in logged_refusals(caplog, "replay", 2)) == ["1", "2"]


def test_the_same_signed_button_click_twice_decides_and_replies_once(slack, slack_env, fake_slack, caplog):
    pid = at_review(slack_env)
    body = fake.block_actions_body(action_id=blocks.APPROVE, value=blocks.gate_value(pid, "code-review"),
                                   user_id="U0BOB", response_url=fake_slack.response_url("b"))
    stamp = int(time.time())
    assert slack.dispatch(body, timestamp=stamp).status == 200
    fake_slack.wait_for("response_url", lambda c: c.path == "/response/b")
    assert slack.dispatch(body, timestamp=stamp).status == 200
    [line] = logged_refusals(caplog, "replay", 1)
    assert "principal=slack:U0BOB" in line and 'command="button gate_approve"' in line
    time.sleep(0.2)
    assert len(fake_slack.calls_to("response_url")) == 1
    assert len(cli(slack_env, f"show {pid}")["gates"][0]["decisions"]) == 1


def test_a_new_signature_of_the_same_words_is_a_new_request(slack, slack_env):
    body = fake.slash_body("create --name twice", user_id="U0ALICE", response_url=slack.fake.response_url("n"))
    now = int(time.time())
    for stamp in (now - 1, now):
        assert slack.dispatch(body, timestamp=stamp).status == 200
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/n", count=2)
    assert [p["name"] for p in cli(slack_env, "list")] == ["twice", "twice"]


def test_the_same_request_at_the_same_instant_runs_once(slack, slack_env):
    body = fake.slash_body("create --name race", user_id="U0ALICE", response_url=slack.fake.response_url("r"))
    stamp = int(time.time())
    barrier = threading.Barrier(4)
    statuses = []

    def send():
        barrier.wait()
        statuses.append(slack.dispatch(body, timestamp=stamp).status)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/r")
    time.sleep(0.2)
    assert [p["name"] for p in cli(slack_env, "list")] == ["race"]
    assert seen_rows(slack_env) == 1


def test_a_second_app_on_the_same_database_refuses_the_replay(slack, slack_env):
    body = fake.slash_body("create --name replica --json", user_id="U0ALICE", response_url=slack.fake.response_url("x"))
    stamp = int(time.time())
    assert slack.dispatch(body, timestamp=stamp).status == 200
    slack.fake.wait_for("response_url", lambda c: c.path == "/response/x")
    other = slack.rebuild()  # a fresh Bolt app, as a restarted server or another replica would be
    assert other.dispatch(body, timestamp=stamp).status == 200
    time.sleep(0.2)
    assert len(cli(slack_env, "list")) == 1


def test_old_records_are_pruned_and_recent_ones_kept(slack_env, config_file):
    settings = load_settings(slack_env)
    now = int(time.time())
    assert remember_request(settings, now - WINDOW - 3600, "v0=old", prune_every=10**9)
    assert remember_request(settings, now - 10, "v0=recent", prune_every=10**9)
    assert seen_rows(slack_env) == 2
    assert remember_request(settings, now, "v0=new", prune_every=1)  # this insert prunes
    with UnitOfWork(settings, write=False) as uow:
        kept = sorted(uow.session.execute(select(SeenSlackRequest.signature)).scalars())
    assert kept == ["v0=new", "v0=recent"]
    assert not remember_request(settings, now - 10, "v0=recent")
