"""Gate messages, the Approve / Reject buttons and the reject modal, and the outbox that keeps
the messages in step with decisions taken anywhere (Slack, CLI, API)."""

from __future__ import annotations

import json
import threading

from chainpipe.bot import blocks
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import COMMANDS, parse_args

from tests.adapters.conftest import gate_message_calls

CHANNEL = "C0PIPE"


def cli(env, line: str, actor: str = "carol"):
    """Run a command as the CLI would (same grammar, same dispatch), on the test database."""
    import shlex

    words = shlex.split(line)
    command = COMMANDS[words[0]]
    return execute(command, parse_args(command, words[1:]), Actor(actor, "cli"), load_settings(env))


def at_review(env, creator: str = "carol") -> str:
    pid = cli(env, "create --name auth", creator)["id"]
    cli(env, f"start {pid}")
    cli(env, f"artifact-add {pid} --name build --type docker-image --uri reg.test/app@sha256:{'a' * 64}")
    cli(env, f"stage {pid} review")
    return pid


def actions_of(message_blocks) -> list[dict]:
    return [b for b in message_blocks or [] if b["type"] == "actions"]


def test_reaching_a_gated_stage_posts_the_gate_message_with_artifacts_and_buttons(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    slack.drain()
    [post] = gate_message_calls(fake_slack)
    assert post.params["channel"] == CHANNEL
    text = json.dumps(post.params["blocks"])
    assert pid in text and "review" in text and "`build` v1 (docker-image)" in text and "sha256:" + "a" * 64 in text
    [buttons] = actions_of(post.params["blocks"])
    approve, reject = buttons["elements"]
    assert approve["action_id"] == blocks.APPROVE and approve["confirm"]["confirm"]["text"] == "Approve"
    assert reject["action_id"] == blocks.REJECT and "confirm" not in reject
    assert json.loads(approve["value"]) == {"pipeline_id": pid, "gate": "code-review"}
    shown = cli(slack_env, f"show {pid}")
    assert shown  # the ts is stored on the gate row:
    from chainpipe.core.services.notifications import pipeline_gates
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(load_settings(slack_env), write=False) as uow:
        [gate] = pipeline_gates(uow, pid)
    assert gate["message"] == {"channel": CHANNEL, "ts": post.params and fake_slack.messages and gate["message"]["ts"]}
    assert gate["message"]["ts"] in fake_slack.messages


def test_start_on_a_gated_first_stage_posts_the_gate_message(slack, slack_env, fake_slack, config_file):
    config_file('[templates.quick]\nstages = ["review", "deploy"]\n[templates.quick.gates]\ncode-review = "review"\n')
    slack = slack.rebuild()
    pid = cli(slack_env, "create --name q --template quick")["id"]
    cli(slack_env, f"start {pid}")
    slack.drain()
    assert len(gate_message_calls(fake_slack)) == 1


def test_approve_button_decides_as_the_slack_user_and_the_message_loses_its_buttons(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    slack.drain()
    [post] = gate_message_calls(fake_slack)
    resp, path = slack.click(blocks.APPROVE, blocks.gate_value(pid, "code-review"), user="U0BOB")
    assert resp.status == 200 and resp.body == ""
    reply = slack.reply(path)
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert reply["text"].startswith("You approved gate code-review")
    gate = cli(slack_env, f"show {pid}")["gates"][0]
    assert gate["status"] == "approved" and gate["decided_by"] == "slack:U0BOB"
    assert [d["principal"] for d in gate["decisions"]] == ["slack:U0BOB"]  # proven by the signature
    slack.drain()
    [update] = fake_slack.calls_to("chat.update")
    assert update.params["ts"] == fake_slack.calls_to("chat.postMessage")[0].params.get("ts", update.params["ts"])
    assert actions_of(update.params["blocks"]) == []
    summary = json.dumps(update.params["blocks"])
    assert "Approved* by slack:U0BOB" in summary and "(slack)" in summary
    assert fake_slack.messages[update.params["ts"]]["blocks"] == update.params["blocks"]
    assert post.params["channel"] == update.params["channel"]


def test_double_click_records_one_decision(slack, slack_env):
    pid = at_review(slack_env)
    value = blocks.gate_value(pid, "code-review")
    first = slack.reply(slack.click(blocks.APPROVE, value, user="U0BOB")[1])
    second = slack.reply(slack.click(blocks.APPROVE, value, user="U0BOB")[1])
    assert first["text"].startswith("You approved") and second["text"].startswith("You already decided")
    assert len(cli(slack_env, f"show {pid}")["gates"][0]["decisions"]) == 1


def test_reject_opens_a_modal_that_requires_a_reason_then_rejects(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    slack.drain()
    resp, _ = slack.click(blocks.REJECT, blocks.gate_value(pid, "code-review"), user="U0BOB")
    assert resp.status == 200
    [opened] = fake_slack.wait_for("views.open")
    view = opened.params["view"]
    assert opened.params["trigger_id"] == "1337.99.U0BOB"
    assert view["callback_id"] == blocks.REJECT_MODAL
    assert [b for b in view["blocks"] if b["type"] == "input"][0]["block_id"] == blocks.REASON_BLOCK

    empty = slack.submit(view, "   ", user="U0BOB")
    assert empty.status == 200
    assert json.loads(empty.body) == {"response_action": "errors",
                                      "errors": {"reason": "A reason is required to reject a gate."}}
    assert cli(slack_env, f"show {pid}")["gates"][0]["status"] == "pending"

    done = slack.submit(view, "tests are red", user="U0BOB")
    assert done.status == 200 and done.body == ""
    [note] = fake_slack.wait_for("chat.postEphemeral")
    assert note.params["user"] == "U0BOB" and note.params["channel"] == CHANNEL
    assert note.params["text"].startswith("You rejected gate code-review")
    shown = cli(slack_env, f"show {pid}")
    assert shown["status"] == "failed" and shown["gates"][0]["reason"] == "tests are red"
    slack.drain()
    [update] = fake_slack.calls_to("chat.update")
    assert actions_of(update.params["blocks"]) == []
    assert "Rejected* by slack:U0BOB" in json.dumps(update.params["blocks"]) and "tests are red" in json.dumps(
        update.params["blocks"])


def test_unauthorised_approver_gets_an_ephemeral_refusal(slack, slack_env, fake_slack, config_file):
    config_file('[gates.code-review]\napprovers = ["alice"]\n[identities]\n"slack:U0ALICE" = "alice"\n')
    slack = slack.rebuild()
    pid = at_review(slack_env)
    slack.drain()
    reply = slack.reply(slack.click(blocks.APPROVE, blocks.gate_value(pid, "code-review"), user="U0MALLORY")[1])
    assert reply["response_type"] == "ephemeral"
    assert reply["text"] == ":warning: slack:U0MALLORY may not decide gate code-review; allowed: alice"
    assert cli(slack_env, f"show {pid}")["gates"][0]["status"] == "pending"
    slack.drain()
    assert fake_slack.calls_to("chat.update") == []
    ok = slack.reply(slack.click(blocks.APPROVE, blocks.gate_value(pid, "code-review"), user="U0ALICE")[1])
    assert ok["text"].startswith("You approved")


def test_unauthorised_rejecter_is_refused_after_the_modal(slack, slack_env, fake_slack, config_file):
    config_file('[gates.code-review]\napprovers = ["alice"]\n')
    slack = slack.rebuild()
    pid = at_review(slack_env)
    view = blocks.reject_modal(pid, "code-review", CHANNEL)
    slack.submit(view, "no", user="U0MALLORY")
    [note] = fake_slack.wait_for("chat.postEphemeral")
    assert note.params["text"].startswith(":warning: slack:U0MALLORY may not decide gate code-review")
    assert cli(slack_env, f"show {pid}")["status"] == "running"


def test_self_approval_is_refused_when_the_policy_forbids_it(slack, slack_env, config_file):
    config_file('[gates.code-review]\nforbid_self_approval = true\n[identities]\n"slack:U0ALICE" = "alice"\n')
    slack = slack.rebuild()
    pid = at_review(slack_env, creator="alice")  # created in the CLI as alice, approved in Slack as alice
    reply = slack.reply(slack.click(blocks.APPROVE, blocks.gate_value(pid, "code-review"), user="U0ALICE")[1])
    assert reply["text"] == (f":warning: self-approval is not allowed: alice created pipeline {pid} "
                             "and cannot decide code-review")
    other = slack.reply(slack.click(blocks.APPROVE, blocks.gate_value(pid, "code-review"), user="U0BOB")[1])
    assert other["text"].startswith("You approved")


def test_a_cli_decision_updates_the_slack_message(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    slack.drain()
    cli(slack_env, f"approve {pid} --gate code-review --reason lgtm", actor="dave")
    slack.drain()
    [update] = fake_slack.calls_to("chat.update")
    text = json.dumps(update.params["blocks"])
    assert actions_of(update.params["blocks"]) == [] and "dave" in text and "(cli)" in text and "lgtm" in text


def test_rework_reopens_the_gate_and_brings_the_buttons_back(slack, slack_env, fake_slack):
    pid = at_review(slack_env)
    cli(slack_env, f"approve {pid} --gate code-review")
    slack.drain()
    cli(slack_env, f"stage {pid} code --reason 'found a bug'")
    cli(slack_env, f"stage {pid} review")
    slack.drain()
    ts = gate_message_calls(fake_slack)[0]
    assert len(gate_message_calls(fake_slack)) == 1  # one message per gate, updated in place
    latest = fake_slack.messages[fake_slack.calls_to("chat.update")[-1].params["ts"]]
    assert actions_of(latest["blocks"]) and ts


def click_approve_together(slack, pid: str, users: list[str]) -> list[str]:
    """Press Approve as each user at the same instant (one thread each); the sorted reply texts."""
    value = blocks.gate_value(pid, "code-review")
    barrier = threading.Barrier(len(users))
    paths = []

    def click(user):
        barrier.wait()
        paths.append(slack.click(blocks.APPROVE, value, user=user)[1])

    threads = [threading.Thread(target=click, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(slack.reply(p)["text"] for p in paths)


def test_two_approvers_at_the_same_instant_both_count(slack, slack_env, fake_slack, config_file):
    config_file("[gates.code-review]\nrequired_approvals = 2\n")
    slack = slack.rebuild()
    pid = at_review(slack_env)
    replies = click_approve_together(slack, pid, ["U0BOB", "U0CAROL"])
    assert all(r.startswith("You approved") for r in replies), replies
    gate = cli(slack_env, f"show {pid}")["gates"][0]
    assert gate["status"] == "approved"
    assert sorted(d["person"] for d in gate["decisions"]) == ["slack:U0BOB", "slack:U0CAROL"]


def test_the_same_person_twice_at_the_same_instant_is_one_record(slack, slack_env, config_file):
    config_file("[gates.code-review]\nrequired_approvals = 2\n")
    slack = slack.rebuild()
    pid = at_review(slack_env)
    replies = click_approve_together(slack, pid, ["U0BOB", "U0BOB"])
    assert replies[0].startswith("You already decided") and replies[1].startswith("You approved"), replies
    gate = cli(slack_env, f"show {pid}")["gates"][0]
    assert gate["status"] == "pending" and len(gate["decisions"]) == 1
