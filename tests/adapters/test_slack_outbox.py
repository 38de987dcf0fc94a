"""The outbox: audit events from any process reach Slack at least once, each once per consumer,
also after a restart, with a crash between claim and post, and with two drainers at once."""

from __future__ import annotations

import threading
import time

from chainpipe.bot.notifier import Notifier
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services import notifications as outbox
from chainpipe.core.uow import UnitOfWork

from tests.adapters.conftest import age_claims, gate_message_calls
from tests.adapters.test_slack_gates import at_review, cli


def notifier_for(slack, slack_env, **kw) -> Notifier:
    from chainpipe.bot.app import web_client
    from chainpipe.bot.settings import load_bot_settings

    bot = load_bot_settings(slack_env)
    return Notifier(load_settings(slack_env), web_client(bot), bot.channel, **{"lease": 0.5} | kw)


def results(slack_env) -> dict[int, str]:
    with UnitOfWork(load_settings(slack_env), write=False) as uow:
        return outbox.delivery_results(uow, "slack")


def test_each_event_is_delivered_once_even_after_a_restart(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    slack.drain()
    first = len(fake_slack.calls)
    assert len(gate_message_calls(fake_slack)) == 1
    assert slack.drain() == 0
    slack.notifier.stop()
    restarted = notifier_for(slack, slack_env)
    assert restarted.drain_once() == 0 and len(fake_slack.calls) == first
    cli(slack_env, f"approve {pid} --gate code-review")
    assert restarted.drain_once() == 1
    assert len(fake_slack.calls_to("chat.update")) == 1
    assert all(r.startswith(("ok", "skipped")) for r in results(slack_env).values())
    restarted.stop()


def test_a_claim_left_by_a_crash_is_delivered_after_the_lease(slack, slack_env, fake_slack):
    at_review(slack_env)
    slack.notifier.stop()
    drainer = notifier_for(slack, slack_env, lease=30)  # a lease no slow machine outlives by accident
    with UnitOfWork(load_settings(slack_env)) as uow:  # a drainer claims, then dies before posting
        claimed = outbox.claim_events(uow, "slack", lease_seconds=30)
    assert claimed and set(results(slack_env).values()) == {"claimed"}
    assert drainer.drain_once() == 0  # still leased to the dead drainer
    age_claims(load_settings(slack_env), "slack", seconds=29)
    assert drainer.drain_once() == 0  # one second of the lease left
    age_claims(load_settings(slack_env), "slack", seconds=2)
    assert drainer.drain_once() == len(claimed)
    assert len(gate_message_calls(fake_slack)) == 1
    drainer.stop()



def test_a_slack_error_is_retried(slack, slack_env, fake_slack):
    at_review(slack_env)
    fake_slack.fail["chat.postMessage"] = "ratelimited"
    slack.notifier.drain_once()
    assert any(r.startswith("retry 1: slack error: ratelimited") for r in results(slack_env).values())
    time.sleep(0.6)
    slack.drain()
    assert len(gate_message_calls(fake_slack)) == 2  # the refused one, then the retry
    assert len(fake_slack.messages) == 1
    assert all(r.startswith(("ok", "skipped")) for r in results(slack_env).values())


def test_two_drainers_at_once_deliver_each_event_once(slack, slack_env, fake_slack):
    pids = [at_review(slack_env) for _ in range(5)]
    slack.notifier.stop()
    drainers = [notifier_for(slack, slack_env, batch=3) for _ in range(2)]
    barrier = threading.Barrier(2)

    def drain(n):
        barrier.wait()
        for _ in range(20):
            n.drain_once()

    threads = [threading.Thread(target=drain, args=(n,)) for n in drainers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posts = gate_message_calls(fake_slack)
    assert len(posts) == len(pids)
    assert sorted(p for p in pids if any(p in str(c.params["blocks"]) for c in posts)) == sorted(pids)
    for n in drainers:
        n.stop()


def test_concurrent_claims_never_overlap(slack, slack_env):
    for _ in range(3):
        at_review(slack_env)
    settings = load_settings(slack_env)
    barrier = threading.Barrier(2)
    got: list[list[int]] = []

    def claim():
        barrier.wait()
        with UnitOfWork(settings) as uow:
            got.append([e["seq"] for e in outbox.claim_events(uow, "slack", limit=100)])

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(results(slack_env))


def test_deploys_rollbacks_and_unhealthy_verdicts_are_posted(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    cli(slack_env, f"approve {pid} --gate code-review")
    dep = cli(slack_env, f"deploy {pid} --strategy canary --target production --artifact build")
    cli(slack_env, f"rollback {dep['id']} --reason 'error rate'")
    with UnitOfWork(load_settings(slack_env)) as uow:
        uow.audit(Actor("monitor", "cli"), "verdict", "ver-000000000001", "change", pipeline_id=pid,
                  from_state="healthy", to_state="unhealthy", reason="error_rate 0.2 > 0.1",
                  data={"metric": "error_rate", "value": 0.2, "regression": True})
        uow.commit()
    slack.drain()
    texts = [c.params["text"] for c in fake_slack.calls_to("chat.postMessage")]
    recorded = [t for t in texts if dep["id"] in t and "recorded" in t]
    rolled = [t for t in texts if dep["id"] in t and "rolled back" in t]
    alerts = [t for t in texts if "error_rate is *unhealthy*" in t]
    assert len(recorded) == 1 and "canary to *production*" in recorded[0] and "`build` v1" in recorded[0]
    assert len(rolled) == 1 and len(alerts) == 1 and "regression" in alerts[0]


def test_events_older_than_the_max_age_are_skipped(slack, slack_env, fake_slack):
    at_review(slack_env)
    slack.notifier.stop()
    late = notifier_for(slack, slack_env, max_age_hours=1e-9)
    late.drain_once()
    late.stop()
    assert fake_slack.calls_to("chat.postMessage") == []
    assert all(r.startswith("skipped: older") for r in results(slack_env).values())


def test_an_unhealthy_metric_from_the_cli_is_posted_once(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    cli(slack_env, f"approve {pid} --gate code-review")
    cli(slack_env, f"deploy {pid} --strategy canary --target production --status succeeded")
    cli(slack_env, f"monitor-record {pid} --metric error_rate --value 0.5")
    cli(slack_env, f"monitor-record {pid} --metric error_rate --value 0.6")  # still unhealthy: no new verdict
    slack.drain()
    alerts = [c for c in fake_slack.calls_to("chat.postMessage") if "error_rate is *unhealthy*" in c.params["text"]]
    assert len(alerts) == 1 and pid in alerts[0].params["text"]
