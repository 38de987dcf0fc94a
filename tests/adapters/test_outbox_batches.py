"""The outbox drain's cost per batch, not per event: one INSERT claims a batch, one UPDATE records
its outcomes; a post that reached Slack is recorded before the next event is delivered."""

from __future__ import annotations

import pytest
from chainpipe.core.config import load_settings
from chainpipe.core.db import get_engine
from chainpipe.core.services import notifications as outbox
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from tests.adapters.conftest import gate_message_calls
from tests.adapters.test_slack_gates import at_review, cli
from tests.adapters.test_slack_outbox import notifier_for, results


def outbox_writes(slack_env, run) -> list[tuple[str, int]]:
    """Each statement that wrote outbox_deliveries while ``run()`` ran: its verb and how many
    parameter sets it carried."""
    seen: list[tuple[str, int]] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE") and "outbox_deliveries" in statement:
            seen.append((verb, len(parameters) if executemany else 1))

    engine = get_engine(load_settings(slack_env).database_url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen


def test_a_batch_is_claimed_in_one_statement_and_recorded_in_one(slack, slack_env):
    slack.notifier.stop()
    for _ in range(4):
        cli(slack_env, "create --name quiet")  # nothing to post: each event is a skip
    drainer = notifier_for(slack, slack_env, batch=50)
    handled = []
    writes = outbox_writes(slack_env, lambda: handled.append(drainer.drain_once()))
    assert handled == [4]
    # one multi-row INSERT … RETURNING (its 4 rows' values in one statement); one executemany UPDATE
    assert [verb for verb, _ in writes] == ["INSERT", "UPDATE"] and writes[1] == ("UPDATE", 4)
    assert set(results(slack_env).values()) == {"skipped: no gate message to post or update"}
    assert drainer.drain_once() == 0
    drainer.stop()


def test_a_post_is_recorded_before_the_next_event_is_delivered(slack, slack_env, monkeypatch):
    slack.notifier.stop()
    at_review(slack_env)  # reaching the gated stage posts the gate message
    cli(slack_env, "create --name later")  # and one more event after it
    drainer = notifier_for(slack, slack_env, batch=50)
    deliver, posted = drainer.deliver, []

    def deliver_until_a_post(ev):  # the database is lost right after the first post
        if posted:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        outcome = deliver(ev)
        if outcome.startswith("ok"):
            posted.append(ev["seq"])
        return outcome

    monkeypatch.setattr(drainer, "deliver", deliver_until_a_post)
    with pytest.raises(OperationalError):
        drainer.drain_once()
    recorded = results(slack_env)
    assert len(posted) == 1 and recorded[posted[0]].startswith("ok: posted")
    # The skips before the post were recorded with it; what follows is still only claimed (its
    # lease brings it back), so a crash here never posts the gate message twice.
    assert "claimed" not in [r for seq, r in recorded.items() if seq <= posted[0]]
    assert {r for seq, r in recorded.items() if seq > posted[0]} == {"claimed"}
    drainer.stop()


def test_outcomes_of_a_batch_keep_their_attempts(slack, slack_env):
    slack.notifier.stop()
    cli(slack_env, "create --name a")
    cli(slack_env, "create --name b")
    settings = load_settings(slack_env)
    with UnitOfWork(settings) as uow:
        first, second = outbox.claim_events(uow, "slack", lease_seconds=0.0)
    with UnitOfWork(settings) as uow:
        recorded = outbox.finish_deliveries(uow, "slack", [(first["seq"], "slack error: x", first["attempt"]),
                                                           (second["seq"], "ok: posted 1", second["attempt"])])
    assert recorded == ["retry 1: slack error: x", "ok: posted 1"]
    assert results(slack_env) == {first["seq"]: "retry 1: slack error: x", second["seq"]: "ok: posted 1"}
    with UnitOfWork(settings) as uow:  # the retry is due at once (lease 0): claimed again, attempt 2
        [again] = outbox.claim_events(uow, "slack", lease_seconds=0.0)
    assert again["seq"] == first["seq"] and again["attempt"] == 2


def test_an_event_that_cannot_post_reads_no_gate_notice_until_a_message_exists(slack, slack_env, fake_slack,
                                                                                monkeypatch):
    slack.notifier.stop()
    pid = cli(slack_env, "create --name quiet")["id"]
    drainer = notifier_for(slack, slack_env)
    read = []
    gate_notice = outbox.gate_notice
    monkeypatch.setattr(outbox, "gate_notice", lambda uow, gate_id: read.append(gate_id) or gate_notice(uow, gate_id))
    assert drainer.drain_once() == 1
    # The create: its gate has no message, and a create may not post one.
    assert read == [] and not gate_message_calls(fake_slack)
    cli(slack_env, f"start {pid}")
    cli(slack_env, f"stage {pid} review")
    drainer.drain_once()
    assert read and len(fake_slack.calls_to("chat.postMessage")) == 1  # reaching the gate posts
    read.clear()
    cli(slack_env, f"approve {pid} --gate code-review")
    assert drainer.drain_once() == 1
    assert read and len(fake_slack.calls_to("chat.update")) == 1  # a gate with a message is updated
    drainer.stop()


def test_a_batch_reads_which_pipelines_have_gate_messages_once_and_sees_what_it_posts(slack, slack_env, fake_slack,
                                                                                      monkeypatch):
    slack.notifier.stop()
    for _ in range(5):
        cli(slack_env, "create --name quiet")  # events that can neither post nor find a message
    pid = at_review(slack_env)  # its events post the gate message, in the same batch
    cli(slack_env, f"approve {pid} --gate code-review")
    drainer = notifier_for(slack, slack_env, batch=50)
    reads, gates_read = [], outbox.pipeline_gates
    monkeypatch.setattr(outbox, "pipeline_gates", lambda uow, p: reads.append(p) or gates_read(uow, p))
    checked, with_messages = [], outbox.pipelines_with_gate_messages
    monkeypatch.setattr(outbox, "pipelines_with_gate_messages",
                        lambda uow, ids: checked.append(sorted(set(ids))) or with_messages(uow, ids))
    assert drainer.drain_once() == 10
    assert len(checked) == 1 and pid in checked[0] and len(checked[0]) == 6  # one read for the whole batch
    # Gates read: auth's start and stage (events that may post; the stage posts the message) and its
    # approval, which knows of the message posted earlier in this batch. Never the quiet pipelines'
    # gates, nor auth's for its create and artifact (no message yet, and they may not post one).
    assert reads == [pid] * 3 and len(gate_message_calls(fake_slack)) == 1
    drainer.stop()
