"""The one place where Slack turns an error into the line a person sees (ephemeral):

    lost database          → ":warning: database unavailable, try again"
    PipeError              → ":warning: <its message>" (one line; a policy refusal is also logged)
    anything else          → ":warning: internal error err-…: <class>", traceback in the log

Every listener ends in ``error_line``; Bolt's error handler (``on_error``) uses it too.
"""

from __future__ import annotations

from chainpipe.bot import blocks
from chainpipe.bot.outage import MESSAGE as OUTAGE_MESSAGE
from chainpipe.bot.outage import is_outage
from chainpipe.bot.runtime import log_crash, log_refusal
from chainpipe.core.crash import crash_line
from chainpipe.core.errors import NotAllowed, PipeError
from chainpipe.core.text import one_line


def error_line(exc: BaseException, principal: str | None, command: str | None) -> str:
    if is_outage(exc):
        return blocks.error_text(OUTAGE_MESSAGE)
    if isinstance(exc, PipeError):
        if isinstance(exc, NotAllowed):
            log_refusal("slack", principal, exc.title, command, detail=exc.message)
        return blocks.error_text(one_line(exc.message))
    ref = log_crash(exc, f"slack {command or 'request'} from {principal or 'unknown'}")
    return blocks.error_text(crash_line(ref, exc))


def describe(body) -> tuple[str | None, str | None]:
    """Who a Slack request says it is from and what it asks, for log lines: ``("slack:U…", "/pipe create")``.

    Read defensively: before verification the body is whatever the sender chose."""
    if not isinstance(body, dict):
        return None, None
    user = body.get("user_id") or (body.get("user") if isinstance(body.get("user"), dict) else {}).get("id")
    principal = f"slack:{user}" if isinstance(user, str) and user else None
    if isinstance(body.get("command"), str):
        words = str(body.get("text") or "").split()
        return principal, " ".join([body["command"], *words[:1]])
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return principal, f"button {actions[0].get('action_id')}"
    view = body.get("view")
    if isinstance(view, dict):
        return principal, f"view {view.get('callback_id')}"
    return principal, body.get("type") if isinstance(body.get("type"), str) else None


def on_error(error, body, respond):
    """Bolt's error handler: whatever escaped a listener or a middleware gets the same one line."""
    principal, command = describe(body)
    line = error_line(error, principal, command)
    try:
        respond(response_type="ephemeral", replace_original=False, text=line)
    except Exception:  # noqa: BLE001 - no response_url, or Slack unreachable; the log has the crash
        pass
