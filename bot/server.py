"""`pipe-server`: one ASGI app — Slack (``POST /slack/events``), the JSON API (``/api/v1/…``),
the GitHub App's webhook (``POST /github/webhook``, bot/github_webhook.py) and the health checks —
plus the outbox notifier (and, with the GitHub App, its worker) as background threads, under uvicorn.

``GET /healthz/live``: the process answers (no database). ``GET /healthz/ready`` (and ``/healthz``,
kept for compatibility): the database answers ``SELECT 1`` and, with Slack on, the notifier's thread
runs; 503 with ``Retry-After`` otherwise. ``GET /metrics``: Prometheus (bot/metrics.py). Every
request carries a request id (bot/observability.py); ``PIPE_LOG_FORMAT=json`` logs JSON lines.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from chainpipe.bot import api, web
from chainpipe.bot.metrics import CONTENT_TYPE as METRICS_TYPE
from chainpipe.bot.metrics import Metrics, slack_label
from chainpipe.bot.observability import LOG_FORMATS, RequestMetrics, configure_logging, name_command
from chainpipe.bot.outage import MESSAGE as OUTAGE_MESSAGE
from chainpipe.bot.outage import RETRY_AFTER_SECONDS, DatabaseUnavailable
from chainpipe.bot.runtime import Runtime, log_refusal
from chainpipe.bot.settings import BotSettings, SettingsError, load_bot_settings
from chainpipe.core.config import Settings, load_settings
from chainpipe.core.errors import PipeError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("chainpipe.server")


def _bolt_request(body: bytes, request: Request):
    """The request as Bolt reads it, or ``Refused`` (400) when it cannot even be parsed — before
    its signature is checked, so nothing of it is trusted or run."""
    from slack_bolt import BoltRequest

    try:
        return BoltRequest(body=body.decode("utf-8", "replace"), query=request.query_params,
                           headers=dict(request.headers))
    except Exception as exc:  # noqa: BLE001 - any parse failure of an unverified body is the sender's
        log_refusal("slack", "unverified", "unreadable body", None, error=exc.__class__.__name__)
        raise api.Refused(400, "bad request", "the body is not a Slack request") from None


def create_asgi_app(core: Settings, bot: BotSettings, *, start_notifier: bool = True) -> Starlette:
    """Build the server; with Slack on this calls auth.test (the token is checked at start-up)."""
    runtime = Runtime(core, database_threads=bot.database_threads)
    notifier = None
    bolt = None
    if bot.slack_enabled:
        from chainpipe.bot.app import create_app, web_client
        from chainpipe.bot.notifier import Notifier

        client = web_client(bot)
        notifier = Notifier(core, client, bot.channel, lease=bot.outbox_lease, max_age_hours=bot.outbox_max_age_hours,
                            poll_interval=bot.poll_interval, outage=runtime.outage)
        runtime.wake = notifier.wake
        bolt = create_app(bot, runtime, client)
    github, github_routes = _github_app(core, bot, runtime)
    socket = _socket_mode(bot, bolt)

    async def slack_events(request: Request):
        if bolt is None:
            return api.error(404, "not found", "Slack is not configured on this server")
        if not bot.http_events:
            return api.error(404, "not found", "Slack reaches this server over Socket Mode, not HTTP")
        try:
            bolt_request = _bolt_request(await api.read_body(request), request)
        except api.Refused as exc:
            return api.error_response(exc, request)
        name_command(slack_label(bolt_request.body))
        # Bolt is synchronous; run it off the event loop. It returns as soon as the listener acks.
        resp = await run_in_threadpool(bolt.dispatch, bolt_request)
        return Response(status_code=resp.status, content=resp.body, headers=resp.first_headers_without_set_cookie())

    async def live(request: Request):
        return JSONResponse({"status": "ok"})

    async def ready(request: Request):
        try:
            # Not on the requests' database threads: a probe asks whether the database answers,
            # whatever the load, and must not queue behind a burst of writes.
            await run_in_threadpool(runtime.outage.call, _check_database, core)
        except DatabaseUnavailable:
            return JSONResponse({"status": "unavailable", "message": OUTAGE_MESSAGE}, status_code=503,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        except Exception as exc:  # noqa: BLE001 - e.g. a configuration error; one line, never a traceback
            return api.error_response(exc, request)
        if notifier is not None and start_notifier and not notifier.alive():
            return api.error(503, "unavailable", "the Slack notifier is not running", {"Retry-After": "30"})
        body = {"status": "ok", "slack": bolt is not None}
        if socket is not None:
            body["socket_mode"] = "connected" if socket.connected() else "connecting"
        if github is not None:
            body["github"] = await run_in_threadpool(github.health)
        return JSONResponse(body)

    async def not_found(request: Request, exc: HTTPException):
        return api.error(exc.status_code, "not found" if exc.status_code == 404 else "error", str(exc.detail))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if notifier is not None and start_notifier:
            notifier.start()
        if github is not None and start_notifier:
            github.start()
        if socket is not None and start_notifier:
            socket.start()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)  # what was acked is finished before the drainers stop
            if notifier is not None:
                await run_in_threadpool(notifier.stop)
            if github is not None:
                await run_in_threadpool(github.stop)
            if socket is not None:
                await run_in_threadpool(socket.close)

    metrics = Metrics(core, outage=runtime.outage, notifier=notifier, socket_mode=socket)
    if socket is not None:
        socket.observe = metrics.observe

    async def metrics_text(request: Request):
        if bot.metrics_token is not None and not _bearer_matches(request, bot.metrics_token):
            log_refusal("metrics", None, "metrics token", None)
            return api.error(401, "unauthorized", "GET /metrics needs the bearer token set in PIPE_METRICS_TOKEN",
                             {"WWW-Authenticate": "Bearer"})
        return Response(await run_in_threadpool(metrics.exposition), media_type=METRICS_TYPE)

    app = Starlette(
        routes=[Route("/slack/events", slack_events, methods=["POST"]),
                Route("/metrics", metrics_text, methods=["GET"]),
                Route("/healthz/live", live, methods=["GET"]), Route("/healthz/ready", ready, methods=["GET"]),
                Route("/healthz", ready, methods=["GET"]), *api.routes(runtime), web.mount(runtime),
                *github_routes],
        exception_handlers={HTTPException: not_found, Exception: api.crash},
        middleware=[Middleware(RequestMetrics, observe=metrics.observe)],
        lifespan=lifespan,
    )
    app.state.notifier, app.state.bolt, app.state.runtime = notifier, bolt, runtime
    app.state.github, app.state.socket_mode, app.state.metrics = github, socket, metrics
    return app


def _bearer_matches(request: Request, token: str) -> bool:
    given = api.presented_bearer(request)
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _socket_mode(bot: BotSettings, bolt):
    """With Socket Mode on: the connection to Slack (its app token checked now, like the bot token)."""
    if bolt is None or not bot.socket_mode:
        return None
    from chainpipe.bot.socket_mode import SocketMode

    socket = SocketMode(bolt, bot.app_token)
    try:
        socket.check_token()
    except Exception:
        socket.close()
        raise
    return socket


def _github_app(core: Settings, bot: BotSettings, runtime: Runtime):
    """With ``GITHUB_APP_ID`` set: the worker (protection answers, deployments) and its webhook route."""
    if bot.github is None:
        return None, []
    from chainpipe.bot.github_app import GitHubWorker
    from chainpipe.bot.github_webhook import route
    from chainpipe.gh.app import GitHubApp

    app = GitHubApp(bot.github.app_id, bot.github.private_key, api_url=bot.github.api_url)
    worker = GitHubWorker(core, app, poll_interval=bot.poll_interval, lease=bot.outbox_lease, outage=runtime.outage)
    slack_wake = runtime.wake
    runtime.wake = lambda: (slack_wake(), worker.wake())
    return worker, [route(runtime, app, bot.github.webhook_secret)]


def _check_database(core: Settings) -> None:
    from chainpipe.core.uow import UnitOfWork
    from sqlalchemy import text

    with UnitOfWork(core, write=False) as uow:
        uow.session.execute(text("SELECT 1"))


def build_from_env() -> Starlette:
    """The app uvicorn serves: settings from the environment, checked before anything listens."""
    core = load_settings()
    bot = load_bot_settings()
    _check_database(core)
    return create_asgi_app(core, bot)


def worker_app() -> Starlette:
    """The app each ``--workers`` process builds for itself (uvicorn calls this in the new process,
    which inherits none of the parent's logging set-up)."""
    configure_logging(os.environ.get(WORKER_LOG_LEVEL, "info"), _log_format())
    app = build_from_env()
    freeze_startup()
    return app


def freeze_startup() -> None:
    """Move what the start built (modules, tables, mappers, the Slack app: ~84,000 objects) out of
    the collector's reach, once the app is built and before it serves.

    Those objects live as long as the process, yet every full collection walked them all: 20 ms
    during which the event loop answered nothing, a few times a minute under load. Frozen, a full
    collection takes microseconds. With 32 requests in flight (three interleaved rounds each), the
    slash-command ack p99 fell from 78-88 to 35-69 ms on SQLite and from 86-112 to 44-90 ms on
    PostgreSQL, the API write p99 on SQLite from 90-117 to 69-83 ms.
    """
    import gc

    gc.collect()  # what the start left as garbage goes now, not frozen with the rest
    gc.freeze()


WORKER_LOG_LEVEL = "PIPE_SERVER_WORKER_LOG_LEVEL"


def _log_format() -> str:
    return (os.environ.get("PIPE_LOG_FORMAT") or "text").strip().lower()


def _workers_problem(workers: int, core: Settings) -> str | None:
    """Why ``--workers`` cannot be used here, or None."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    from chainpipe.core.db import normalise_url

    if workers > 1 and not normalise_url(core.database_url).startswith("postgresql"):
        return (f"--workers {workers} needs PostgreSQL; on SQLite run one worker (every write already "
                "queues on the database file's one lock, so more processes add waiting, not throughput)")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipe-server", description="chainpipe server: Slack bot + JSON API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (PostgreSQL only; each runs the API, Slack and the outbox "
                             "drainers, which share the work through the database)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="version", version=f"pipe-server {installed_version()}")
    args = parser.parse_args(argv)
    log_format = _log_format()
    if log_format not in LOG_FORMATS:
        print(f"pipe-server: PIPE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}",
              file=sys.stderr)
        return 2
    configure_logging(args.log_level, log_format)
    try:
        if (problem := _workers_problem(args.workers, load_settings())) is not None:
            print(f"pipe-server: {problem}", file=sys.stderr)
            return 2
        app = build_from_env()  # every setting, the database and Slack checked before anything listens
    except (SettingsError, PipeError) as exc:
        print(f"pipe-server: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. Slack rejects the token at auth.test
        print(f"pipe-server: cannot start: {exc.__class__.__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    import uvicorn

    # log_config=None: uvicorn's own lines go through the handler above (JSON too, with request ids).
    # HTTP is parsed by httptools and the event loop is uvloop's (both dependencies; uvicorn's "auto"
    # picks them over the pure-Python h11 and asyncio's own loop). uvloop measured 0.13-0.26 ms less
    # server CPU per API write on SQLite and ~10 % more writes/s (32 in flight).
    options = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=False, log_config=None)
    if args.workers == 1:
        freeze_startup()
        uvicorn.run(app, **options)
        return 0
    # Each worker process builds its own app (its own engine, notifier and pool); this one checked
    # the settings and only supervises.
    del app
    os.environ[WORKER_LOG_LEVEL] = args.log_level
    uvicorn.run("chainpipe.bot.server:worker_app", factory=True, workers=args.workers, **options)
    return 0


def installed_version() -> str:
    try:
        return version("chainpipe")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def entrypoint() -> None:
    sys.exit(main())
