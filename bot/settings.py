"""Server settings from the environment, checked once at start-up.

Slack is on when ``SLACK_SIGNING_SECRET`` and ``SLACK_BOT_TOKEN`` are set; then
``PIPE_SLACK_CHANNEL`` is required too. ``PIPE_SERVER_API_ONLY=1`` runs the JSON API alone
(no Slack routes, no notifier) — an explicit choice, so a forgotten secret never silently turns
the bot off.

How Slack reaches the server is ``PIPE_SLACK_MODE``: ``http`` (signed POSTs to ``/slack/events``,
needs ``SLACK_SIGNING_SECRET``), ``socket`` (Socket Mode: the server connects out to Slack with the
app-level token ``SLACK_APP_TOKEN``, ``xapp-…``; no signing secret, no public URL) or ``both``.
Unset, it is ``socket`` when ``SLACK_APP_TOKEN`` is set, else ``http``.

GitHub App mode is on when ``GITHUB_APP_ID`` is set; then ``GITHUB_APP_PRIVATE_KEY`` (the PEM, or
``GITHUB_APP_PRIVATE_KEY_FILE``, its path) and ``GITHUB_WEBHOOK_SECRET`` are required too;
``GITHUB_API_URL`` points at GitHub Enterprise Server (default https://api.github.com).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
SLACK_MODES = ("http", "socket", "both")
_APP_TOKEN = re.compile(r"xapp-[A-Za-z0-9-]{8,}")


class SettingsError(Exception):
    """A missing or malformed server setting; the message is the one line printed at start-up."""


@dataclass(frozen=True)
class GitHubAppSettings:
    app_id: str
    private_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    api_url: str = DEFAULT_GITHUB_API_URL


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
    github: GitHubAppSettings | None = None
    slack_mode: str = "http"
    app_token: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)  # PIPE_METRICS_TOKEN: bearer for /metrics
    database_threads: int = 3  # PIPE_SERVER_DB_THREADS

    @property
    def slack_enabled(self) -> bool:
        return not self.api_only

    @property
    def socket_mode(self) -> bool:
        return self.slack_enabled and self.slack_mode in ("socket", "both")

    @property
    def http_events(self) -> bool:
        return self.slack_enabled and self.slack_mode in ("http", "both")


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


METRICS_TOKEN_MIN = 16
# The engine's pool holds 15 connections (5 + 10 overflow), shared by this many request threads, as many
# threads for Slack's work after the ack, the notifier (and its leader lock on PostgreSQL) and the GitHub worker.
DATABASE_THREADS_MAX = 6


def default_database_threads() -> int:
    """One more than the CPUs, at most ``DATABASE_THREADS_MAX``: measured with PostgreSQL on the same
    2-core machine, 2–3 threads served 32 writers in flight at the least CPU per write and no less
    throughput than more; a database across a network (more time waiting per statement) wants more."""
    return min(DATABASE_THREADS_MAX, (os.cpu_count() or 1) + 1)


def load_database_threads(env) -> int:
    """``PIPE_SERVER_DB_THREADS``: how many requests' database work runs at once in each server process."""
    raw = (env.get("PIPE_SERVER_DB_THREADS") or "").strip()
    if not raw:
        return default_database_threads()
    if not raw.isdigit() or not 1 <= int(raw) <= DATABASE_THREADS_MAX:
        raise SettingsError(f"PIPE_SERVER_DB_THREADS must be a whole number from 1 to {DATABASE_THREADS_MAX}, "
                            f"got {raw!r}")
    return int(raw)


def load_metrics_token(env) -> str | None:
    """``PIPE_METRICS_TOKEN``: when set, ``GET /metrics`` asks for it as a bearer token (Prometheus'
    ``authorization`` / ``bearer_token_file``); unset, the endpoint is open, for a network where only
    the scraper reaches it. Never echoed."""
    raw = env.get("PIPE_METRICS_TOKEN")
    if raw is None or raw == "":
        return None
    token = raw.strip()
    if len(token) < METRICS_TOKEN_MIN or any(c.isspace() or not c.isprintable() for c in token):
        raise SettingsError(f"PIPE_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN} printable characters "
                            "without spaces (e.g. `openssl rand -hex 32`)")
    return token


def load_bot_settings(env=None) -> BotSettings:
    env = os.environ if env is None else env
    api_only = env.get("PIPE_SERVER_API_ONLY", "").strip().lower() in ("1", "true", "yes", "on")
    common = {
        "poll_interval": _float(env, "PIPE_OUTBOX_POLL_SECONDS", 1.0),
        "outbox_lease": _float(env, "PIPE_OUTBOX_LEASE_SECONDS", 30.0),
        "outbox_max_age_hours": _float(env, "PIPE_OUTBOX_MAX_AGE_HOURS", 24.0),
        "github": load_github_app(env),
        "metrics_token": load_metrics_token(env),
        "database_threads": load_database_threads(env),
    }
    if api_only:
        return BotSettings(api_only=True, **common)
    mode, app_token = load_slack_mode(env)
    needed = ("SLACK_BOT_TOKEN", "PIPE_SLACK_CHANNEL") + (("SLACK_SIGNING_SECRET",) if mode != "socket" else ())
    missing = [k for k in needed if not env.get(k)]
    if missing:
        raise SettingsError(
            f"missing {', '.join(missing)} (see docs/slack.md; set PIPE_SERVER_API_ONLY=1 to serve only the JSON API)"
        )
    url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"SLACK_API_URL must be an http(s) URL, got {url!r}")
    return BotSettings(
        signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        slack_mode=mode,
        app_token=app_token,
        bot_token=env["SLACK_BOT_TOKEN"],
        slack_api_url=url if url.endswith("/") else url + "/",
        channel=env["PIPE_SLACK_CHANNEL"],
        **common,
    )


def load_slack_mode(env) -> tuple[str, str | None]:
    """(``PIPE_SLACK_MODE``, the app-level token when Socket Mode is on); never echoes a token."""
    token = (env.get("SLACK_APP_TOKEN") or "").strip()
    mode = (env.get("PIPE_SLACK_MODE") or "").strip().lower() or ("socket" if token else "http")
    if mode not in SLACK_MODES:
        raise SettingsError(f"PIPE_SLACK_MODE must be one of {', '.join(SLACK_MODES)}, got {mode!r}")
    if mode == "http":
        return mode, None
    if not token:
        raise SettingsError(f"PIPE_SLACK_MODE={mode} needs SLACK_APP_TOKEN, an app-level token (xapp-…; "
                            "see docs/slack.md)")
    if not _APP_TOKEN.fullmatch(token):
        kind = "a bot token (it belongs in SLACK_BOT_TOKEN)" if token.startswith("xoxb-") else "not an app-level token"
        raise SettingsError(f"SLACK_APP_TOKEN is {kind}: Socket Mode needs the app-level token, xapp-… "
                            "(Basic Information → App-Level Tokens, scope connections:write)")
    return mode, token


def load_github_app(env) -> GitHubAppSettings | None:
    """The GitHub App's settings, or None when ``GITHUB_APP_ID`` is not set (the app is off)."""
    app_id = (env.get("GITHUB_APP_ID") or "").strip()
    if not app_id:
        return None
    if not app_id.isdigit():
        raise SettingsError(f"GITHUB_APP_ID must be the app's number, got {app_id!r}")
    key = env.get("GITHUB_APP_PRIVATE_KEY") or ""
    key_file = env.get("GITHUB_APP_PRIVATE_KEY_FILE")
    if key and key_file:
        raise SettingsError("set GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE, not both")
    if key_file:
        try:
            key = Path(key_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"cannot read GITHUB_APP_PRIVATE_KEY_FILE {key_file}: "
                                f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}") from None
    key = key.strip().replace("\\n", "\n")  # a PEM pasted into one line of an env file
    if not key:
        raise SettingsError("GITHUB_APP_ID is set: GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE is missing "
                            "(see docs/github-app.md)")
    if "-----BEGIN" not in key or "PRIVATE KEY-----" not in key:
        raise SettingsError("the GitHub App private key is not a PEM private key (download it from the app's page)")
    secret = env.get("GITHUB_WEBHOOK_SECRET") or ""
    if len(secret) < 16:
        raise SettingsError("GITHUB_APP_ID is set: GITHUB_WEBHOOK_SECRET is missing or shorter than 16 characters")
    url = (env.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"GITHUB_API_URL must be an http(s) URL, got {url!r}")
    return GitHubAppSettings(app_id, key + "\n", secret, url)
