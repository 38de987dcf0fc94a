"""What the server tells its operators: a request id on every request, log lines that carry it
(JSON with ``PIPE_LOG_FORMAT=json``), and the numbers ``/metrics`` serves (bot/metrics.py).

- The request id is the caller's ``X-Request-Id`` when it is a plain token (letters, digits,
  ``.-_:``, at most 128), else a fresh one; it is echoed in the ``X-Request-Id`` response header, in
  every JSON error body (``request_id``) and in every log line written while the request runs —
  so the line a person reads, the crash reference and the traceback in the log meet.
- ``RequestMetrics`` is a plain ASGI middleware: it times each request and counts it by surface,
  command and status. Handlers name the command (``name_command``); until they do it is ``-``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from datetime import datetime, timezone

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("pipe_request_id", default=None)
_labels: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pipe_request_labels", default=None)
_INCOMING = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(request_suffix)s"


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id(incoming: str | None = None) -> str:
    return incoming if incoming and _INCOMING.fullmatch(incoming) else "req-" + secrets.token_hex(8)


def bind_request_id(request_id: str | None):
    """Make ``request_id`` the current one (returns the token to reset it with)."""
    return _request_id.set(request_id)


def name_command(command: str | None) -> None:
    """The command label of the request being answered (bounded: callers pass known names only)."""
    labels = _labels.get()
    if labels is not None and command:
        labels["command"] = command


def surface_of(path: str) -> str:
    if path.startswith("/slack/"):
        return "slack"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/github/"):
        return "github"
    if path.startswith("/healthz"):
        return "health"
    if path == "/metrics":
        return "metrics"
    return "web"


class RequestMetrics:
    """ASGI middleware: request id in and out, and one observation per HTTP request."""

    def __init__(self, app, observe):
        self.app, self.observe = app, observe

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = new_request_id(incoming)
        token, labels_token = _request_id.set(request_id), _labels.set({"command": "-"})
        labels = _labels.get()
        status = {"code": 500}
        started = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette's last-resort handler (bot.api.crash) answers outside this middleware, in
            # this request's task: the id stays set so its body and log line carry it.
            self.observe(surface_of(scope["path"]), labels["command"], 500, time.perf_counter() - started)
            raise
        self.observe(surface_of(scope["path"]), labels["command"], status["code"], time.perf_counter() - started)
        _labels.reset(labels_token)
        _request_id.reset(token)


# --- logging ---------------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or None) to every record, and the text format's `` request_id=…`` suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = getattr(record, "request_id", None) or current_request_id()
        record.request_id = rid
        record.request_suffix = f" request_id={rid}" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            line["request_id"] = record.request_id
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: str, stream=None) -> logging.Handler:
    """Route every logger (uvicorn's too) through one handler on the root logger."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"PIPE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
