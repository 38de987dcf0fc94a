"""The bot's App Home tab: on ``app_home_opened`` it publishes (``views.publish``) what waits for the
viewing person — the open gates they may decide — their recent decisions, and the last deploy to
each target. The Slack user is mapped to a person by ``[identities]``, as for every other request.

The listener is a plain function registered in ``bot.app.register``; the runtime comes from the
request context (``bot.verify.SlackGuard``). Bolt acknowledges events itself.
"""

from __future__ import annotations

from chainpipe.bot.slack_errors import error_line
from chainpipe.bot.web.links import pipeline_url
from chainpipe.core.config import Settings
from chainpipe.core.services.pages import home
from chainpipe.core.uow import UnitOfWork

ICONS = {"healthy": ":large_green_circle:", "degraded": ":large_orange_diamond:", "unhealthy": ":red_triangle:",
         "unknown": ":white_circle:"}


def app_home_opened(event, client, context):
    if event.get("tab", "home") != "home":
        return
    user = event.get("user")
    runtime = context["runtime"]
    principal = f"slack:{user}"
    try:
        data = runtime.outage.call(read_home, runtime.settings, runtime.settings.person(principal))
        view = home_view(data)
    except Exception as exc:  # noqa: BLE001 - the translator tells a refusal from a crash
        view = _view([_section(error_line(exc, principal, "app_home_opened"))])
    client.views_publish(user_id=user, view=view)


def read_home(settings: Settings, person: str) -> dict:
    with UnitOfWork(settings, write=False) as uow:
        return home(uow, person)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _view(blocks: list[dict]) -> dict:
    return {"type": "home", "blocks": blocks[:100]}


def _escape(text) -> str:
    """Slack mrkdwn treats &, < and > as markup; names typed by people are shown as text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pipeline(p: dict) -> str:
    url = pipeline_url(p["id"])
    name = f"*{_escape(p['name'])}*"
    return f"<{url}|{_escape(p['name'])}>" if url else name


def home_view(data: dict) -> dict:
    header = {"type": "header", "text": {"type": "plain_text", "text": f"Waiting for {data['person']}"[:150]}}
    waiting = [f"• {_pipeline(w['pipeline'])} (`{w['pipeline']['id']}`): gate *{_escape(w['gate'])}* at stage "
               f"{_escape(w['stage'])} — `/pipe approve {w['pipeline']['id']} {w['gate']}`" for w in data["waiting"]]
    decisions = [f"• {d['decision']} *{_escape(d['gate'])}* of `{d['pipeline_id']}` at {d['at']}"
                 + (f" — {_escape(d['reason'])}" if d.get("reason") else "") for d in data["decisions"]]
    deploys = [f"• *{_escape(d['target'])}*: `{d['id']}` of `{d['pipeline_id']}` {d['status']} "
               f"{ICONS.get(d['verdict'], '')} {d['verdict']} ({d['created_at']})" for d in data["deploys"]]
    return _view([
        header,
        _section("*Gates you can decide*\n" + ("\n".join(waiting) or "Nothing waits for you.")),
        {"type": "divider"},
        _section("*Your recent decisions*\n" + ("\n".join(decisions) or "None yet.")),
        {"type": "divider"},
        _section("*Last deploy per target*\n" + ("\n".join(deploys) or "No deploys yet.")),
    ])
