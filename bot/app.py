"""The Bolt app factory. Listeners live in bot.commands and bot.actions, each added by its
``register(app, runtime)``; one error handler turns anything unexpected into a short reply."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient

from bot import actions, commands
from bot.runtime import Runtime, log_crash
from bot.settings import BotSettings


def web_client(bot: BotSettings) -> WebClient:
    return WebClient(token=bot.bot_token, base_url=bot.slack_api_url, timeout=10)


def create_app(bot: BotSettings, runtime: Runtime, client: WebClient | None = None) -> App:
    """Build the Bolt app (this calls Slack's auth.test once, to check the token)."""
    app = App(
        client=client or web_client(bot),
        signing_secret=bot.signing_secret,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("chainpipe.slack"),
    )
    commands.register(app, runtime)
    actions.register(app, runtime)

    @app.error
    def on_error(error, body, respond):
        ref = log_crash(error, "slack listener")
        try:
            respond(response_type="ephemeral", text=f":warning: internal error (reference {ref})")
        except Exception:  # noqa: BLE001 - no response_url, or Slack unreachable; the log has it
            pass

    return app
