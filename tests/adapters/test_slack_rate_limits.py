"""Slack delivery that respects Slack: the notifier's Web API client waits out rate limits
(``Retry-After``) and retries dropped connections and 5xx answers, so a burst slows down instead of
losing or doubling messages."""

from __future__ import annotations

import time

from chainpipe.bot.app import web_client
from chainpipe.bot.notifier import wait_until_idle
from chainpipe.bot.settings import load_bot_settings
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.notifications import delivery_results
from chainpipe.core.services.pipelines import create_pipeline, start_pipeline
from chainpipe.core.uow import UnitOfWork

from tests.adapters.test_slack_gates import cli

QUICK = '[templates.quick]\nstages = ["review", "deploy"]\n[templates.quick.gates]\ncode-review = "review"\n'
BURST = 200
ALICE = Actor("alice", "cli")


def test_a_burst_of_200_gate_messages_through_a_rate_limit_posts_each_once(slack, slack_env, fake_slack,
                                                                           config_file):
    config_file(QUICK)
    slack = slack.rebuild()
    pids = []
    settings = load_settings(slack_env)
    for n in range(BURST):  # through the services: the burst is the subject here, not the CLI
        with UnitOfWork(settings) as uow:
            pid = create_pipeline(uow, ALICE, f"burst-{n}", "quick")["id"]
            start_pipeline(uow, ALICE, pid)
        pids.append(pid)
    fake_slack.limit("chat.postMessage", burst=40, retry_after=1)
    started = time.monotonic()
    wait_until_idle(slack.notifier, timeout=120)
    took = time.monotonic() - started

    posts = fake_slack.calls_to("chat.postMessage")
    limited = [c for c in posts if c.status == 429]
    delivered = [c for c in posts if c.status == 200]
    assert limited, "the burst never reached the rate limit"
    assert len(delivered) == BURST, (len(delivered), len(limited), [c.status for c in posts][-5:])
    assert sorted(next(p for p in pids if p in c.params["text"]) for c in delivered) == sorted(pids)
    statuses = [c.status for c in posts]
    pauses = [i for i, status in enumerate(statuses) if status == 429 and statuses[i - 1] != 429]
    assert len(pauses) == BURST // 40 - 1  # a burst of 40, a pause, … : Retry-After was honoured
    assert took >= 1.0 * (BURST // 40 - 1)
    with UnitOfWork(load_settings(slack_env), write=False) as uow:
        results = delivery_results(uow, "slack")
    unfinished = [r for r in results.values() if not r.startswith(("ok", "skipped"))]
    assert not unfinished, unfinished[:3]
    wait_until_idle(slack.notifier)
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if c.status == 200]) == BURST


def test_a_503_is_retried_and_the_message_posted_once(slack, slack_env, fake_slack, config_file):
    config_file(QUICK)
    slack = slack.rebuild()
    pid = cli(slack_env, "create --name flaky --template quick")["id"]
    cli(slack_env, f"start {pid}")
    fake_slack.down = True
    threshold = len(fake_slack.calls)

    def back_up():
        fake_slack.wait_for("chat.postMessage", lambda c: c.status == 503)
        fake_slack.down = False

    import threading

    threading.Thread(target=back_up, daemon=True).start()
    wait_until_idle(slack.notifier)
    posts = fake_slack.calls_to("chat.postMessage")
    assert [c.status for c in posts][-1] == 200 and len(fake_slack.calls) > threshold, [c.status for c in posts]
    assert [c.status for c in posts].count(200) == 1
    assert 503 in [c.status for c in posts]


def test_the_web_client_has_slacks_retry_handlers(slack_env):
    from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
    from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

    kinds = {type(h) for h in web_client(load_bot_settings(slack_env)).retry_handlers}
    assert {RateLimitErrorRetryHandler, ConnectionErrorRetryHandler, ServerErrorRetryHandler} <= kinds
