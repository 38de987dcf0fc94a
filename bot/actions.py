"""Gate message buttons and the reject modal, as plain listeners (registered in
``bot.app.register``). Decisions go through the same grammar commands (and so the same core
services and policies) as the CLI; refusals come back ephemeral.

Each listener acks first and does its work after the ack (``bot.verify.after_ack``: the replay
record, then the decision), so the ack never waits on the database.

A button's ``value`` (and the modal's ``private_metadata``) arrives signed by Slack but was
written by whoever posted the message; it is read as data and checked before anything runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chainpipe.bot import blocks
from chainpipe.bot.runtime import slack_actor
from chainpipe.bot.slack_errors import error_line
from chainpipe.bot.verify import after_ack
from chainpipe.core.errors import InvalidInput
from chainpipe.core.grammar import COMMANDS
from chainpipe.core.text import one_line

MAX_VALUE = 2000  # Slack's limit for a button value
MAX_CHANNEL = 64


@dataclass(frozen=True)
class GateTarget:
    pipeline_id: str
    gate: str
    channel: str | None = None


def gate_target(raw) -> GateTarget:
    """The gate a button value (or the reject modal's metadata) names, or a one-line refusal."""
    refused = InvalidInput("this button does not name a gate; use /pipe approve or /pipe reject instead")
    if not isinstance(raw, str) or len(raw) > MAX_VALUE:
        raise refused
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise refused from None
    if not isinstance(data, dict):
        raise refused
    pipeline_id, gate, channel = data.get("pipeline_id"), data.get("gate"), data.get("channel")
    if not (isinstance(pipeline_id, str) and pipeline_id and isinstance(gate, str) and gate):
        raise refused  # their length and characters are checked when the command binds them
    if channel is not None and not (isinstance(channel, str) and len(channel) <= MAX_CHANNEL):
        raise refused
    return GateTarget(pipeline_id, gate, channel or None)


def decide(runtime, name: str, user: str, target: GateTarget, reason: str | None = None) -> str:
    """Run approve/reject as the Slack user; returns the line to show them. The raw values are
    bound by the command (``Command.bind``), as every surface's are."""
    values = {"pipeline_id": target.pipeline_id, "gate": target.gate, "reason": reason}
    try:
        result = runtime.run(COMMANDS[name], values, slack_actor(user))
    except Exception as exc:  # noqa: BLE001 - the translator tells a refusal from a crash
        return error_line(exc, f"slack:{user}", name)
    what = f"gate {target.gate} of {target.pipeline_id}"
    if not result.get("changed", True):
        line = f"You already decided {what}; nothing changed."
    elif name == "reject":
        line = f"You rejected {what}; the pipeline is {result.get('pipeline_status')}."
    else:
        have = len(result.get("approvals", []))
        line = f"You approved {what} ({have} of {result['required_approvals']}; {result['status']})."
    return one_line(line)


def _target(raw, user: str, name: str, tell) -> GateTarget | None:
    """The gate ``raw`` names, or None once the person has been told why it names none."""
    try:
        return gate_target(raw)
    except InvalidInput as exc:
        tell(error_line(exc, f"slack:{user}", name))
        return None


def approve_button(ack, body, action, respond, context):
    ack()
    user = body["user"]["id"]

    def tell(line: str) -> None:
        respond(response_type="ephemeral", replace_original=False, text=line)

    def work() -> None:
        if (target := _target(action.get("value"), user, "approve", tell)) is not None:
            tell(decide(context["runtime"], "approve", user, target))

    after_ack(context, work, tell)


def reject_button(ack, body, action, client, respond, context=None):
    ack()

    def tell(line: str) -> None:
        respond(response_type="ephemeral", replace_original=False, text=line)

    def work() -> None:
        if (target := _target(action.get("value"), body["user"]["id"], "reject", tell)) is not None:
            channel = (body.get("channel") or {}).get("id")
            client.views_open(trigger_id=body["trigger_id"],
                              view=blocks.reject_modal(target.pipeline_id, target.gate, channel))

    after_ack(context, work, tell)


def reject_submitted(ack, body, view, client, context):
    state = view["state"]["values"].get(blocks.REASON_BLOCK, {}).get(blocks.REASON_INPUT, {})
    reason = (state.get("value") or "").strip()
    if not reason:
        ack(response_action="errors", errors={blocks.REASON_BLOCK: "A reason is required to reject a gate."})
        return
    ack()
    user = body["user"]["id"]

    def tell(line: str) -> None:  # a modal has no response_url: a direct message
        client.chat_postMessage(channel=user, text=line)

    def work() -> None:
        if (target := _target(view.get("private_metadata"), user, "reject", tell)) is None:
            return
        line = decide(context["runtime"], "reject", user, target, reason)
        if target.channel:
            client.chat_postEphemeral(channel=target.channel, user=user, text=line)
        else:
            tell(line)

    after_ack(context, work, tell)
