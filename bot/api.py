"""The JSON API (docs/architecture.md, "The JSON API contract"): one route per grammar command,
bearer-token auth, errors translated once (``error_response``), and an OpenAPI 3.1 document
generated from the same grammar.

One unit of work per request: ``bearer`` refuses a missing or malformed token without the
database and before the body is read; the lookup itself runs inside the command's own transaction
(``Admission``, core.dispatch's ``admit``), and only then is the body parsed and bound. So a caller
with a forged but well-formed token can make the server read up to ``MAX_BODY`` bytes (as anyone can
at ``/slack/events`` before its signature is checked) — never parse, bind or run it.

Bodies are read defensively: at most ``MAX_BODY`` bytes (413 beyond, checked before reading when
the length is declared) and UTF-8 JSON (400 otherwise, however deeply nested); the values are bound
by the command itself (``Command.bind``: 422 for a body that is not an object of its parameters).
"""

from __future__ import annotations

import json
import threading

from chainpipe.bot.observability import current_request_id, name_command
from chainpipe.bot.outage import MESSAGE as OUTAGE_MESSAGE
from chainpipe.bot.outage import RETRY_AFTER_SECONDS, is_outage
from chainpipe.bot.runtime import Runtime, log_crash, log_refusal
from chainpipe.core.actor import Actor
from chainpipe.core.crash import crash_line
from chainpipe.core.errors import InvalidInput, NotAllowed, PipeError
from chainpipe.core.grammar import COMMANDS, Command, check_text, usage
from chainpipe.core.text import one_line
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SURFACES = ("api", "github")
MAX_BODY = 1024 * 1024


class Refused(Exception):
    """A request the API turns away before any command runs (bad body, no token): status + one line."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class Unauthorized(Refused):
    def __init__(self, message: str):
        super().__init__(401, "unauthorized", message)


def error(status: int, title: str, message: str, headers: dict | None = None, **more) -> JSONResponse:
    """The API's error body; it names the request (``request_id``) so a report can be found in the log."""
    body = {"error": title, **more, "message": one_line(message)}
    if (request_id := current_request_id()) is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(exc: BaseException, request: Request, principal: str | None = None,
                   command: str | None = None) -> JSONResponse:
    """The one translation of an error into the API's answer."""
    if is_outage(exc):
        return error(503, "unavailable", OUTAGE_MESSAGE, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, Refused):
        if exc.status == 401:
            log_refusal("api", principal, exc.title, command, detail=exc.message)
        return error(exc.status, exc.title, exc.message)
    if isinstance(exc, PipeError):
        if isinstance(exc, NotAllowed):
            log_refusal("api", principal, exc.title, command, detail=exc.message)
        return error(exc.http_status, exc.title, exc.message)
    ref = log_crash(exc, f"{request.method} {request.url.path} as {principal or 'anonymous'}")
    return error(500, "internal error", crash_line(ref, exc), reference=ref)


# --- request → values ------------------------------------------------------------------------


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, or ``Refused`` (413) as soon as it is known to be larger than ``limit``."""
    too_large = Refused(413, "too large", f"the request body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large if declared.isdigit() else Refused(400, "bad request", "Content-Length is not a number")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes):
    """The JSON in a request body, or ``Refused`` (400). Its values are bound by the command
    (``core.grammar.Command.bind``: types, defaults, limits, text that can be stored)."""
    try:
        return json.loads(raw.decode("utf-8") if raw.strip() else "{}")
    except UnicodeDecodeError:
        raise Refused(400, "bad request", "the request body is not UTF-8") from None
    except RecursionError:
        raise Refused(400, "bad request", "the request body is nested too deeply") from None
    except ValueError:
        raise Refused(400, "bad request", "the request body is not valid JSON") from None


# --- auth --------------------------------------------------------------------------------------


def presented_bearer(request: Request) -> str | None:
    """What ``Authorization: Bearer …`` carries, or None when the request presents no bearer token."""
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    raw = raw.strip()
    return raw if scheme.lower() == "bearer" and raw else None


def bearer(request: Request) -> str:
    """The bearer token as sent, or ``Unauthorized`` when there is none or it cannot be one of
    ours — a check without the database, made before a stranger's body is read."""
    from chainpipe.core.services.tokens import looks_like_token

    raw = presented_bearer(request)
    if raw is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    if not looks_like_token(raw):
        raise Unauthorized("invalid or revoked token")
    return raw


class Touches:
    """Tokens' "last used" when their request opened no writer: written after the response, all
    pending tokens in one write, at most once a minute per token (``tokens.LAST_USED_EVERY``)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._pending: dict[str, object] = {}

    def note(self, token_id: str, now) -> None:
        with self._lock:
            first = not self._pending
            self._pending.setdefault(token_id, now)
        if first:
            self.runtime.later(self.flush)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            with self.runtime.writing():
                self.runtime.outage.call(_store_touches, self.runtime.settings, pending)


def _store_touches(settings, pending: dict) -> None:
    from chainpipe.core.services.tokens import touch_token
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(settings) as uow:
        for token_id, at in pending.items():
            touch_token(uow, token_id, at)
        uow.commit()


class Admission:
    """Who an API request is, proven inside the command's own transaction (``core.dispatch``'s
    ``admit``): the token is looked up — so a revoked one is refused on the very next request —
    and only then is the body parsed and handed over to be bound. "Last used" is written in the
    same transaction when the command writes anyway, else after the response (``Touches``)."""

    def __init__(self, raw_token: str, body: bytes, headers, touches: Touches):
        self.raw_token, self.body, self.headers, self.touches = raw_token, body, headers, touches
        self.principal: str | None = None

    def __call__(self, uow) -> tuple[Actor, dict]:
        token = self.token(uow)
        values = parse_body(self.body)
        return actor_for(token, self.headers), values

    def token(self, uow) -> dict:
        from chainpipe.core.services.tokens import find_token, needs_touch, touch_token

        token = find_token(uow, self.raw_token)
        if token is None:
            raise Unauthorized("invalid or revoked token")
        self.principal = f"token:{token['name']}"
        now = uow.now()
        if needs_touch(token, now):
            if uow.write:
                touch_token(uow, token["id"], now)
            else:
                self.touches.note(token["id"], now)
        return token


def actor_for(token: dict, headers) -> Actor:
    """Who a token's request acts as. A personal token acts as its person and names nobody else; a
    service token acts as itself (``token:<name>``) and may carry the claimed actor of a CI run
    (``X-Pipe-Actor``) as ``on_behalf_of`` — recorded, never credited."""
    surface = (headers.get("x-pipe-surface") or "api").strip().lower()
    if surface not in SURFACES:
        raise InvalidInput(f"X-Pipe-Surface must be one of {', '.join(SURFACES)}, got {surface!r}")
    principal = f"token:{token['name']}"
    run_url = (headers.get("x-pipe-run-url") or "").strip()[:500] or None
    if run_url:
        check_text("X-Pipe-Run-Url", run_url, 500)
    claimed = (headers.get("x-pipe-actor") or "").strip() or None
    if token.get("kind") == "personal":
        if claimed:
            raise NotAllowed(f"token {token['name']} is personal: it acts as {token['person']} and may not "
                             "name another actor (X-Pipe-Actor)")
        return Actor(token["person"], surface, run_url, principal=principal)
    if claimed:
        check_text("X-Pipe-Actor", claimed)
    return Actor(principal, surface, run_url, principal=principal, on_behalf_of=claimed, service=True)


# --- routes ------------------------------------------------------------------------------------


def routes(runtime: Runtime) -> list[Route]:
    touches = Touches(runtime)

    async def run_command(request: Request):
        name = request.path_params["name"]
        command = COMMANDS.get(name)
        if command is None:
            return error(404, "not found", f"unknown command: {name}")
        name_command(name)
        admission = None
        try:
            raw_token = bearer(request)  # before reading a stranger's body
            admission = Admission(raw_token, await read_body(request), request.headers, touches)
            result = await runtime.request(command, admit=admission)
        except Exception as exc:  # noqa: BLE001 - the one translation, below
            return error_response(exc, request, admission and admission.principal, name)
        return JSONResponse({"result": result})

    async def list_commands(request: Request):
        try:
            admission = Admission(bearer(request), b"", request.headers, touches)
            await runtime.database(runtime.outage.call, _admit_alone, runtime, admission)
        except Exception as exc:  # noqa: BLE001
            return error_response(exc, request, None, "list-commands")
        return JSONResponse({"commands": [command_view(c) for c in COMMANDS.values()]})

    async def openapi(request: Request):
        return JSONResponse(openapi_document())

    return [
        Route("/api/v1/commands", list_commands, methods=["GET"]),
        Route("/api/v1/commands/{name}", run_command, methods=["POST"]),
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    ]


def _admit_alone(runtime: Runtime, admission: Admission) -> None:
    from chainpipe.core.uow import UnitOfWork

    with UnitOfWork(runtime.settings, write=False) as uow:
        admission.token(uow)


def command_view(c: Command) -> dict:
    return {
        "name": c.name, "help": c.help, "group": c.group, "kind": c.kind, "usage": usage(c),
        "path": f"/api/v1/commands/{c.name}",
        "params": [{"name": p.name, "type": p.type, "required": p.required, "default": p.default,
                    "help": p.help, "cli": p.label} for p in c.params],
    }


# --- OpenAPI ------------------------------------------------------------------------------------

def _operation(c: Command) -> dict:
    required = [p.name for p in c.params if p.required]
    body_schema: dict = {"type": "object", "additionalProperties": False,
                         "properties": {p.name: p.schema() for p in c.params}}
    if required:
        body_schema["required"] = required
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    errors = {
        status: {"description": why, "content": err}
        for status, why in (("400", "Body is not UTF-8 JSON"), ("401", "Missing, wrong or revoked token"),
                            ("403", "Not allowed by policy or token"), ("404", "Unknown id or command"),
                            ("409", "Refused by the current state"), ("413", "Body larger than 1 MiB"),
                            ("422", "Invalid input"), ("500", "Internal or configuration error"),
                            ("503", "Database unavailable; retry after Retry-After seconds"))
    }
    return {
        "operationId": c.name.replace("-", "_"),
        "summary": c.help,
        "tags": [c.group],
        "description": f"CLI: `pipe {usage(c)}`",
        "requestBody": {"required": bool(required),
                        "content": {"application/json": {"schema": body_schema}}},
        "responses": {
            "200": {"description": "The same JSON the CLI prints with --json, under `result`",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}},
            **errors,
        },
    }


def openapi_document() -> dict:
    paths = {f"/api/v1/commands/{c.name}": {"post": _operation(c)} for c in COMMANDS.values()}
    paths["/api/v1/commands"] = {"get": {
        "operationId": "list_commands", "summary": "List the commands and their parameters",
        "responses": {"200": {"description": "The commands", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"commands": {"type": "array", "items": {"type": "object"}}}}}}},
            "401": {"description": "Missing, wrong or revoked token",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
    }}
    for path, what in (("/healthz/live", "Liveness: the process answers"),
                       ("/healthz/ready", "Readiness: the database answers"),
                       ("/healthz", "Readiness (kept for compatibility)")):
        paths[path] = {"get": {"operationId": path.strip("/").replace("/", "_"), "summary": what, "security": [],
                               "responses": {"200": {"description": "ok"},
                                             "503": {"description": "database unavailable"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "chainpipe API", "version": "1",
                 "description": "Every pipe command as POST /api/v1/commands/{name}; body: its parameters."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Result": {"type": "object", "required": ["result"], "properties": {"result": {}}},
                "Error": {"type": "object", "required": ["error", "message"],
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                         "reference": {"type": "string"}, "request_id": {"type": "string"}}},
            },
        },
    }


async def crash(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's last resort, for an error outside the routes' own translation."""
    return error_response(exc, request)
