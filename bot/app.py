"""The Bolt app factory. Listeners are plain functions in bot.commands and bot.actions, all added
by the one ``register(app)``; ``bot.verify.SlackGuard`` runs before them (signature, timestamp)
and hands them the runtime in the request context; one error handler
(``bot.slack_errors.on_error``) turns anything that escapes into a short reply.

The ack needs no database: Bolt runs each listener in the request's own thread
(``process_before_response=True``: no hand-over to a listener thread, no polling for the ack), the
listener acks, and its work — the replay record first, then the command — goes to the runtime's
background threads (``bot.verify.after_ack``). Events (App Home) are acked the same way."""

from __future__ import annotations

import logging

from chainpipe.bot import actions, blocks, commands, home
from chainpipe.bot.runtime import Runtime
from chainpipe.bot.settings import BotSettings
from chainpipe.bot.slack_errors import on_error
from chainpipe.bot.verify import SlackGuard, after_ack
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, RetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

# How often one Web API call is retried: rate limits wait out Slack's Retry-After (a burst of gate
# messages slows down instead of losing messages); a dropped connection or a 500/503 backs off.
RATE_LIMIT_RETRIES = 10
CONNECTION_RETRIES = 3
SERVER_ERROR_RETRIES = 2


def retry_handlers() -> list[RetryHandler]:
    return [RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
            ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES)]


def web_client(bot: BotSettings) -> WebClient:
    return WebClient(token=bot.bot_token, base_url=bot.slack_api_url, timeout=10, retry_handlers=retry_handlers())


def create_app(bot: BotSettings, runtime: Runtime, client: WebClient | None = None) -> App:
    """Build the Bolt app (this calls Slack's auth.test once, to check the token)."""
    app = App(
        client=client or web_client(bot),
        signing_secret=bot.signing_secret,
        process_before_response=True,  # listeners ack at once and leave the work to after_ack
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("chainpipe.slack"),
        request_verification_enabled=False,  # SlackGuard verifies, ahead of everything else
        before_authorize=SlackGuard(bot.signing_secret, runtime),
    )
    register(app)
    return app


def register(app: App) -> None:
    app.command("/pipe")(commands.pipe_command)
    app.action(blocks.APPROVE)(actions.approve_button)
    app.action(blocks.REJECT)(actions.reject_button)
    app.view(blocks.REJECT_MODAL)(actions.reject_submitted)
    app.event("app_home_opened")(home_opened)
    app.error(on_error)


def home_opened(event, client, context):
    """App Home: acked by Bolt as soon as this returns; the view is read and published after."""
    def work() -> None:
        home.app_home_opened(event=event, client=client, context=context)

    after_ack(context, work, lambda line: None)  # an event has no one to tell; the log has it
