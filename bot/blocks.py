"""Block Kit builders: every message and view the bot sends is shaped here, nowhere else."""

from __future__ import annotations

import json

from chainpipe.bot.web.links import pipeline_url
from chainpipe.core.grammar import COMMANDS, usage

APPROVE = "gate_approve"
REJECT = "gate_reject"
REJECT_MODAL = "gate_reject_modal"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
LIMIT = 2900  # Slack's section text limit is 3000 characters
TEXT_LIMIT = 38000  # a message's top-level text is cut by Slack at 40 000

ICONS = {"approved": ":white_check_mark:", "rejected": ":x:", "pending": ":hourglass_flowing_sand:"}


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text)}]}


def _clip(text: str, limit: int = LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 40] + "\n… (truncated; use --json via the API or CLI)"


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text[:150]}


# --- gate messages ---------------------------------------------------------------------------


def gate_value(pipeline_id: str, gate: str) -> str:
    return json.dumps({"pipeline_id": pipeline_id, "gate": gate}, separators=(",", ":"))


def gate_message(notice: dict) -> tuple[str, list[dict]]:
    """The gate message: pipeline, stage, artifacts, decisions; buttons only while it can be decided."""
    p, g = notice["pipeline"], notice["gate"]
    state = g["status"]
    title = f"{ICONS.get(state, '')} Gate *{g['name']}* of pipeline *{p['name']}* (`{p['id']}`) — stage *{g['stage']}*"
    lines = [title.strip(), f"Template `{p['template']}` · pipeline {p['status']} at stage {p['current_stage'] or '-'}"]
    link = pipeline_url(p["id"])
    if link:
        lines.append(f"<{link}|Open pipeline {p['id']} in the web view>")
    blocks = [_section("\n".join(lines))]
    blocks.append(_section(artifact_lines(notice["artifacts"])))
    blocks.append(_section(decision_summary(g)))
    if notice["open"]:
        blocks.append(gate_buttons(p["id"], g["name"], p["name"]))
    text = f"Gate {g['name']} of {p['name']} ({p['id']}): {state}"
    return text, blocks


def artifact_lines(artifacts: list[dict]) -> str:
    if not artifacts:
        return "*Artifacts:* none recorded"
    rows = []
    for a in artifacts:
        digest = f" `{a['digest']}`" if a.get("digest") else " (no digest)"
        rows.append(f"• `{a['name']}` v{a['version']} ({a['type']}){digest}")
    return "*Artifacts:*\n" + "\n".join(rows)


def decision_summary(g: dict) -> str:
    decisions = [d for d in g.get("decisions", []) if d["round"] == g["round"]]
    rows = []
    for d in decisions:
        why = f" — {d['reason']}" if d.get("reason") else ""
        icon = ICONS.get(d["decision"], "")
        rows.append(f"{icon} {d['decision']} by *{d['person']}* ({d['surface']}) at {d['at']}{why}")
    approvals = sum(1 for d in decisions if d["decision"] == "approved")
    if g["status"] == "approved":
        head = f"*Approved* by {g['decided_by']} at {g['decided_at']}"
    elif g["status"] == "rejected":
        head = f"*Rejected* by {g['decided_by']} at {g['decided_at']}: {g['reason']}"
    else:
        head = f"*Waiting for approval* ({approvals} of {g['required_approvals']})"
    return "\n".join([head, *rows])


def gate_buttons(pipeline_id: str, gate: str, name: str) -> dict:
    value = gate_value(pipeline_id, gate)
    confirm = {
        "title": _plain("Approve this gate?"),
        "text": {"type": "mrkdwn", "text": f"Approve *{gate}* of *{name}* (`{pipeline_id}`) as yourself."},
        "confirm": _plain("Approve"),
        "deny": _plain("Cancel"),
    }
    return {
        "type": "actions",
        "block_id": "gate_actions",
        "elements": [
            {"type": "button", "action_id": APPROVE, "text": _plain("Approve"), "style": "primary",
             "value": value, "confirm": confirm},
            {"type": "button", "action_id": REJECT, "text": _plain("Reject"), "style": "danger", "value": value},
        ],
    }


def reject_modal(pipeline_id: str, gate: str, channel: str | None) -> dict:
    meta = {"pipeline_id": pipeline_id, "gate": gate, "channel": channel}
    return {
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "private_metadata": json.dumps(meta, separators=(",", ":")),
        "title": _plain("Reject gate"),
        "submit": _plain("Reject"),
        "close": _plain("Cancel"),
        "blocks": [
            _section(f"Reject *{gate}* of `{pipeline_id}`. The pipeline fails until someone runs retry."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": _plain("Reason"),
                "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True,
                            "min_length": 1, "max_length": 2000},
            },
        ],
    }


# --- channel notices -------------------------------------------------------------------------


def deploy_notice(event: dict, deploy: dict | None) -> tuple[str, list[dict]]:
    icon = {"record": ":rocket:", "update": ":satellite:", "rollback": ":rewind:"}.get(event["action"], ":rocket:")
    d = deploy or {}
    what = {"record": "recorded", "update": f"is {event['to']}", "rollback": "rolled back"}.get(event["action"],
                                                                                            event["action"])
    art = d.get("artifact")
    artifact = f" · artifact `{art['name']}` v{art['version']}" if art else ""
    text = (f"{icon} Deploy `{event['entity_id']}` of `{event['pipeline_id']}` {what} — "
            f"{d.get('strategy', '?')} to *{d.get('target', '?')}* (status {d.get('status', event['to'])}){artifact}")
    ctx = f"by {event['actor']} ({event['surface']}) at {event['at']}"
    if event.get("reason"):
        ctx += f" — {event['reason']}"
    if event.get("run_url"):
        ctx += f" · <{event['run_url']}|run>"
    return text, [_section(text), _context(ctx)]


def alert_notice(event: dict) -> tuple[str, list[dict]]:
    data = event.get("data") or {}
    metric = data.get("metric") or event["entity_id"]
    verdict = event.get("to") or data.get("verdict") or event["action"]
    text = f":rotating_light: `{event['pipeline_id']}`: {metric} is *{verdict}*"
    if data.get("value") is not None:
        text += f" (value {data['value']})"
    if data.get("regression"):
        text += " — regression against the pre-deploy baseline"
    ctx = event.get("reason") or f"recorded at {event['at']}"
    return text, [_section(text), _context(ctx)]


# --- slash command replies -------------------------------------------------------------------


def help_text(name: str | None = None) -> str:
    if name and name in COMMANDS:
        c = COMMANDS[name]
        lines = [f"*/pipe {usage(c)}*", c.help, ""]
        for p in c.params:
            lines.append(f"• `{p.label}` {p.help}" + (" (required)" if p.required and not p.positional else ""))
        lines.append("• `--json` reply with the JSON the CLI prints")
        return "\n".join(lines)
    groups: dict[str, list[str]] = {}
    for c in COMMANDS.values():
        groups.setdefault(c.group, []).append(f"`{c.name}` {c.help}")
    lines = ["*/pipe* — the same commands and options as the `pipe` CLI (you act as yourself; no `--as`)."]
    for group, rows in groups.items():
        lines.append(f"\n*{group}*\n" + "\n".join(rows))
    lines.append("\n`/pipe help <command>` shows its options.")
    return "\n".join(lines)


def error_text(message: str) -> str:
    return f":warning: {message}"


def json_reply(result) -> str:
    body = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    if len(body) > TEXT_LIMIT:
        body = body[: TEXT_LIMIT] + "\n… (truncated; use the API or CLI for the full JSON)"
    return f"```{body}```"


def summary(command: str, result) -> str:
    """A readable mrkdwn summary of any command's result."""
    if isinstance(result, list):
        if not result:
            return f"`{command}`: nothing to show"
        rows = [f"• {_one_line(item)}" for item in result[:25]]
        more = f"\n… and {len(result) - 25} more" if len(result) > 25 else ""
        return _clip(f"*{command}* ({len(result)})\n" + "\n".join(rows) + more)
    if isinstance(result, dict):
        lines = [f"*{command}*"]
        for key, value in result.items():
            if value is None or value == [] or value == {}:
                continue
            if isinstance(value, list):
                lines.append(f"*{key}*: " + "; ".join(_one_line(v) for v in value[:10])
                             + (" …" if len(value) > 10 else ""))
            elif isinstance(value, dict):
                lines.append(f"*{key}*: " + _one_line(value))
            else:
                lines.append(f"*{key}*: {value}")
        return _clip("\n".join(lines))
    return _clip(f"*{command}*: {result}")


def _one_line(item) -> str:
    if not isinstance(item, dict):
        return str(item)
    keys = ("id", "name", "status", "stage", "version", "decision", "person", "metric", "value", "verdict",
            "action", "target", "strategy")
    parts = [f"{k}={item[k]}" for k in keys if item.get(k) is not None]
    if not parts:
        parts = [f"{k}={v}" for k, v in list(item.items())[:6] if not isinstance(v, (dict, list))]
    return ", ".join(parts)
