"""The listeners called directly, as plain functions, with hand-written fakes of Bolt's ``ack`` /
``respond`` / ``client`` and of the runtime: what each one answers for a result, a refusal, a
crash, a lost database and a button value that names no gate. No Slack app, no database."""

from __future__ import annotations

import json
import logging

import pytest
from chainpipe.bot import actions, blocks, commands
from chainpipe.bot.outage import DatabaseUnavailable
from chainpipe.core.errors import ConfigError, NotAllowed, NotFound


class Recorder:
    """Stands in for ``ack``, ``respond`` or a client method: records each call's keyword arguments."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)

    @property
    def text(self) -> str:
        [call] = self.calls
        return call["text"]


class FakeClient:
    def __init__(self):
        self.views_open, self.chat_postEphemeral, self.chat_postMessage = Recorder(), Recorder(), Recorder()


class FakeRuntime:
    """Answers every command with ``result``, or raises ``error``; records what it was asked."""

    def __init__(self, result=None, error: Exception | None = None):
        self.result, self.error, self.asked = result, error, []

    def run(self, command, values, actor):
        self.asked.append((command.name, values, actor))
        if self.error is not None:
            raise self.error
        return self.result


def slash(runtime, text: str, user: str = "U0ALICE"):
    ack, respond = Recorder(), Recorder()
    commands.pipe_command(ack=ack, body={"text": text, "user_id": user}, respond=respond,
                          context={"runtime": runtime})
    return ack, respond


def click(runtime, value, user: str = "U0BOB"):
    ack, respond = Recorder(), Recorder()
    actions.approve_button(ack=ack, body={"user": {"id": user}}, action={"value": value}, respond=respond,
                           context={"runtime": runtime})
    return ack, respond


def test_a_slash_command_is_acked_empty_and_answered_through_respond():
    runtime = FakeRuntime(result=[{"id": "pipe-0123456789ab", "status": "created"}])
    ack, respond = slash(runtime, "list --limit 5 --json")
    assert ack.calls == [{}]
    assert respond.calls == [{"response_type": "ephemeral",
                              "text": blocks.json_reply([{"id": "pipe-0123456789ab", "status": "created"}])}]
    [(name, values, actor)] = runtime.asked
    assert (name, values["limit"], actor.name, actor.surface) == ("list", 5, "slack:U0ALICE", "slack")
    assert (actor.principal, actor.service, actor.administrator) == ("slack:U0ALICE", False, False)


def test_a_parse_error_is_the_ack_and_runs_nothing():
    runtime = FakeRuntime()
    ack, respond = slash(runtime, "list --limit many")
    assert ack.calls == [{"response_type": "ephemeral", "text": ":warning: --limit must be a whole number, got 'many'"}]
    assert respond.calls == [] and runtime.asked == []


def test_a_refusal_echoes_what_was_typed_on_one_line():
    ack, respond = slash(FakeRuntime(error=NotFound("pipeline not found: pipe-1\n<!channel>")), "show pipe-1")
    assert respond.text == ":warning: pipeline not found: pipe-1\\n<!channel>"


def test_a_crash_shows_the_reference_that_the_log_holds_with_its_traceback(caplog):
    ack, respond = slash(FakeRuntime(error=KeyError("secret internals")), "list")
    line = respond.text
    assert line.startswith(":warning: internal error err-") and line.endswith(": KeyError")
    assert "secret internals" not in line
    ref = line.split()[3].rstrip(":")
    [record] = [r for r in caplog.records if ref in r.getMessage()]
    assert record.exc_info and record.levelno == logging.ERROR
    assert "slack list from slack:U0ALICE" in record.getMessage()


@pytest.mark.parametrize("error", [DatabaseUnavailable("connection refused"),
                                   ConfigError("database unavailable: connection refused")])
def test_a_lost_database_is_a_try_again_line_not_a_crash(error, caplog):
    ack, respond = slash(FakeRuntime(error=error), "list")
    assert respond.text == ":warning: database unavailable, try again"
    assert not [r for r in caplog.records if r.exc_info]


def test_a_policy_refusal_is_logged_as_one_structured_line(caplog):
    refusal = NotAllowed("slack:U0EVE may not decide gate code-review; allowed: alice")
    ack, respond = click(FakeRuntime(error=refusal), blocks.gate_value("pipe-0123456789ab", "code-review"), "U0EVE")
    assert respond.calls == [{"response_type": "ephemeral", "replace_original": False,
                              "text": ":warning: " + refusal.message}]
    [line] = [r.getMessage() for r in caplog.records if r.name == "chainpipe.refusal"]
    assert line == ('refused surface=slack principal=slack:U0EVE rule="not allowed" command=approve '
                    'detail="slack:U0EVE may not decide gate code-review; allowed: alice"')


def test_a_button_hands_its_raw_values_to_the_command():
    runtime = FakeRuntime(result={"changed": True, "approvals": [{}], "required_approvals": 2, "status": "pending"})
    ack, respond = click(runtime, blocks.gate_value("pipe-0123456789ab", "code-review"))
    assert ack.calls == [{}]
    assert runtime.asked[0][:2] == ("approve", {"pipeline_id": "pipe-0123456789ab", "gate": "code-review",
                                                "reason": None})
    assert respond.text == "You approved gate code-review of pipe-0123456789ab (1 of 2; pending)."


MALFORMED = ["", "not json", "[1, 2]", "null", '"pipe-0123456789ab"', '{"pipeline_id": "pipe-0123456789ab"}',
             '{"pipeline_id": 7, "gate": "code-review"}', '{"pipeline_id": "", "gate": "code-review"}',
             '{"pipeline_id": "p", "gate": "g", "channel": ["C1"]}', "[" * 50_000, "x" * 5000, None]


@pytest.mark.parametrize("value", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_approve_value_is_refused_clearly_and_runs_nothing(value):
    runtime = FakeRuntime()
    ack, respond = click(runtime, value)
    assert ack.calls == [{}] and runtime.asked == []
    assert respond.text == ":warning: this button does not name a gate; use /pipe approve or /pipe reject instead"


@pytest.mark.parametrize("value", MALFORMED[:4], ids=range(4))
def test_a_malformed_reject_value_opens_no_modal(value):
    ack, respond, client = Recorder(), Recorder(), FakeClient()
    actions.reject_button(ack=ack, body={"user": {"id": "U0BOB"}, "trigger_id": "t"}, action={"value": value},
                          client=client, respond=respond)
    assert client.views_open.calls == []
    assert respond.text.startswith(":warning: this button does not name a gate")


def test_malformed_modal_metadata_is_refused_in_a_direct_message():
    view = blocks.reject_modal("pipe-0123456789ab", "code-review", "C0PIPE")
    view = {**view, "private_metadata": "{oops", "state": {"values": {
        blocks.REASON_BLOCK: {blocks.REASON_INPUT: {"value": "no"}}}}}
    runtime, client = FakeRuntime(), FakeClient()
    actions.reject_submitted(ack=Recorder(), body={"user": {"id": "U0BOB"}}, view=view, client=client,
                             context={"runtime": runtime})
    assert runtime.asked == [] and client.chat_postEphemeral.calls == []
    [sent] = client.chat_postMessage.calls
    assert sent["channel"] == "U0BOB" and sent["text"].startswith(":warning: this button does not name a gate")


def test_the_reject_modal_carries_the_gate_to_the_command():
    view = blocks.reject_modal("pipe-0123456789ab", "code-review", "C0PIPE")
    view = {**view, "state": {"values": {blocks.REASON_BLOCK: {blocks.REASON_INPUT: {"value": " tests red "}}}}}
    runtime = FakeRuntime(result={"changed": True, "pipeline_status": "failed"})
    client = FakeClient()
    actions.reject_submitted(ack=Recorder(), body={"user": {"id": "U0BOB"}}, view=view, client=client,
                             context={"runtime": runtime})
    assert runtime.asked[0][:2] == ("reject", {"pipeline_id": "pipe-0123456789ab", "gate": "code-review",
                                               "reason": "tests red"})
    [note] = client.chat_postEphemeral.calls
    assert note == {"channel": "C0PIPE", "user": "U0BOB",
                    "text": "You rejected gate code-review of pipe-0123456789ab; the pipeline is failed."}
    assert json.loads(view["private_metadata"])["gate"] == "code-review"
