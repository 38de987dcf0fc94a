"""Gate message buttons and the reject modal. Decisions go through the same grammar commands
(and so the same core services and policies) as the CLI; refusals come back ephemeral."""

from __future__ import annotations

import json

from slack_bolt import App

from bot import blocks
from bot.runtime import Runtime, log_crash, slack_actor
from core.errors import PipeError
from core.grammar import COMMANDS, parse_args


def _decide(runtime: Runtime, name: str, user: str, pipeline_id: str, gate: str, reason: str | None = None) -> str:
    """Run approve/reject as the Slack user; returns the line to show them."""
    words = [pipeline_id, "--gate", gate] + (["--reason", reason] if reason else [])
    command = COMMANDS[name]
    try:
        result = runtime.run(command, parse_args(command, words), slack_actor(user))
    except PipeError as exc:
        return blocks.error_text(exc.message)
    except Exception as exc:  # noqa: BLE001 - crash → short line, traceback in the log
        return blocks.error_text(f"internal error (reference {log_crash(exc, name + ' button')})")
    if not result.get("changed", True):
        return f"You already decided gate {gate} of {pipeline_id}; nothing changed."
    if name == "reject":
        return f"You rejected gate {gate} of {pipeline_id}; the pipeline is {result.get('pipeline_status')}."
    have = len(result.get("approvals", []))
    return f"You approved gate {gate} of {pipeline_id} ({have} of {result['required_approvals']}; {result['status']})."


def register(app: App, runtime: Runtime) -> None:
    @app.action(blocks.APPROVE)
    def approve_button(ack, body, action, respond):
        ack()
        target = json.loads(action["value"])
        line = _decide(runtime, "approve", body["user"]["id"], target["pipeline_id"], target["gate"])
        respond(response_type="ephemeral", replace_original=False, text=line)

    @app.action(blocks.REJECT)
    def reject_button(ack, body, action, client):
        ack()
        target = json.loads(action["value"])
        channel = (body.get("channel") or {}).get("id")
        client.views_open(trigger_id=body["trigger_id"],
                          view=blocks.reject_modal(target["pipeline_id"], target["gate"], channel))

    @app.view(blocks.REJECT_MODAL)
    def reject_submitted(ack, body, view, client):
        state = view["state"]["values"].get(blocks.REASON_BLOCK, {}).get(blocks.REASON_INPUT, {})
        reason = (state.get("value") or "").strip()
        if not reason:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: "A reason is required to reject a gate."})
            return
        ack()
        meta = json.loads(view["private_metadata"])
        user = body["user"]["id"]
        line = _decide(runtime, "reject", user, meta["pipeline_id"], meta["gate"], reason)
        if meta.get("channel"):
            client.chat_postEphemeral(channel=meta["channel"], user=user, text=line)
        else:
            client.chat_postMessage(channel=user, text=line)
