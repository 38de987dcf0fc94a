"""`pipe-server`: one ASGI app — Slack (``POST /slack/events``), the JSON API (``/api/v1/…``) and
``GET /healthz`` — plus the outbox notifier as a background thread, under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import api
from bot.runtime import Runtime
from bot.settings import BotSettings, SettingsError, load_bot_settings
from core.config import Settings, load_settings
from core.errors import PipeError

log = logging.getLogger("chainpipe.server")


def _bolt_request(body: bytes, request: Request):
    from slack_bolt import BoltRequest

    return BoltRequest(body=body.decode("utf-8", "replace"), query=request.query_params,
                       headers=dict(request.headers))


def create_asgi_app(core: Settings, bot: BotSettings, *, start_notifier: bool = True) -> Starlette:
    """Build the server; with Slack on this calls auth.test (the token is checked at start-up)."""
    runtime = Runtime(core)
    notifier = None
    bolt = None
    if bot.slack_enabled:
        from bot.app import create_app, web_client
        from bot.notifier import Notifier

        client = web_client(bot)
        notifier = Notifier(core, client, bot.channel, lease=bot.outbox_lease, max_age_hours=bot.outbox_max_age_hours,
                            poll_interval=bot.poll_interval)
        runtime.wake = notifier.wake
        bolt = create_app(bot, runtime, client)

    async def slack_events(request: Request):
        if bolt is None:
            return api.error(404, "not found", "Slack is not configured on this server")
        body = await request.body()
        # Bolt is synchronous; run it off the event loop. It returns as soon as the listener acks.
        resp = await run_in_threadpool(bolt.dispatch, _bolt_request(body, request))
        return Response(status_code=resp.status, content=resp.body, headers=resp.first_headers_without_set_cookie())

    async def healthz(request: Request):
        try:
            await run_in_threadpool(_check_database, core)
        except PipeError as exc:
            return JSONResponse({"status": "unavailable", "message": exc.message}, status_code=503)
        return JSONResponse({"status": "ok", "slack": bolt is not None})

    async def not_found(request: Request, exc: HTTPException):
        return api.error(exc.status_code, "not found" if exc.status_code == 404 else "error", str(exc.detail))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if notifier is not None and start_notifier:
            notifier.start()
        try:
            yield
        finally:
            if notifier is not None:
                await run_in_threadpool(notifier.stop)

    app = Starlette(
        routes=[Route("/slack/events", slack_events, methods=["POST"]), Route("/healthz", healthz, methods=["GET"]),
                *api.routes(runtime)],
        exception_handlers={HTTPException: not_found, Exception: api.crash},
        lifespan=lifespan,
    )
    app.state.notifier, app.state.bolt, app.state.runtime = notifier, bolt, runtime
    return app


def _check_database(core: Settings) -> None:
    from sqlalchemy import text

    from core.uow import UnitOfWork

    with UnitOfWork(core, write=False) as uow:
        uow.session.execute(text("SELECT 1"))


def build_from_env() -> Starlette:
    """The app uvicorn serves: settings from the environment, checked before anything listens."""
    core = load_settings()
    bot = load_bot_settings()
    _check_database(core)
    return create_asgi_app(core, bot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipe-server", description="chainpipe server: Slack bot + JSON API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_from_env()
    except (SettingsError, PipeError) as exc:
        print(f"pipe-server: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. Slack rejects the token at auth.test
        print(f"pipe-server: cannot start: {exc.__class__.__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def entrypoint() -> None:
    sys.exit(main())
