"""Server settings from the environment, checked once at start-up.

Slack is on when ``SLACK_SIGNING_SECRET`` and ``SLACK_BOT_TOKEN`` are set; then
``PIPE_SLACK_CHANNEL`` is required too. ``PIPE_SERVER_API_ONLY=1`` runs the JSON API alone
(no Slack routes, no notifier) — an explicit choice, so a forgotten secret never silently turns
the bot off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class SettingsError(Exception):
    """A missing or malformed server setting; the message is the one line printed at start-up."""


@dataclass(frozen=True)
class BotSettings:
    signing_secret: str | None = None
    bot_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    channel: str | None = None
    api_only: bool = False
    poll_interval: float = 1.0
    outbox_lease: float = 30.0
    outbox_max_age_hours: float = 24.0

    @property
    def slack_enabled(self) -> bool:
        return not self.api_only


def _float(env, key: str, default: float) -> float:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{key} must be positive, got {raw!r}")
    return value


def load_bot_settings(env=None) -> BotSettings:
    env = os.environ if env is None else env
    api_only = env.get("PIPE_SERVER_API_ONLY", "").strip().lower() in ("1", "true", "yes", "on")
    common = {
        "poll_interval": _float(env, "PIPE_OUTBOX_POLL_SECONDS", 1.0),
        "outbox_lease": _float(env, "PIPE_OUTBOX_LEASE_SECONDS", 30.0),
        "outbox_max_age_hours": _float(env, "PIPE_OUTBOX_MAX_AGE_HOURS", 24.0),
    }
    if api_only:
        return BotSettings(api_only=True, **common)
    missing = [k for k in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "PIPE_SLACK_CHANNEL") if not env.get(k)]
    if missing:
        raise SettingsError(
            f"missing {', '.join(missing)} (see docs/slack.md; set PIPE_SERVER_API_ONLY=1 to serve only the JSON API)"
        )
    url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"SLACK_API_URL must be an http(s) URL, got {url!r}")
    return BotSettings(
        signing_secret=env["SLACK_SIGNING_SECRET"],
        bot_token=env["SLACK_BOT_TOKEN"],
        slack_api_url=url if url.endswith("/") else url + "/",
        channel=env["PIPE_SLACK_CHANNEL"],
        **common,
    )
