"""The JSON API (docs/architecture.md, "The JSON API contract"): one route per grammar command,
bearer-token auth, errors translated once (``PipeError`` → ``exc.http_status`` + ``exc.as_dict()``),
and an OpenAPI 3.1 document generated from the same grammar."""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.runtime import Runtime, log_crash
from core.actor import Actor
from core.errors import InvalidInput, NotAllowed, PipeError
from core.grammar import COMMANDS, Command, Param, usage

SURFACES = ("api", "github")
MAX_BODY = 1_000_000


class Unauthorized(Exception):
    pass


def error(status: int, title: str, message: str) -> JSONResponse:
    return JSONResponse({"error": title, "message": message}, status_code=status)


def pipe_error(exc: PipeError) -> JSONResponse:
    return JSONResponse(exc.as_dict(), status_code=exc.http_status)


# --- request → values ------------------------------------------------------------------------


def _value(command: Command, param: Param, raw):
    where = f"{command.name}: {param.name}"
    if param.type == "bool":
        if not isinstance(raw, bool):
            raise InvalidInput(f"{where} must be true or false, got {raw!r}")
        return raw
    if param.type == "int":
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise InvalidInput(f"{where} must be a whole number, got {raw!r}")
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(f"{where} must be a whole number, got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise InvalidInput(f"{where} must be a string, got {raw!r}")
    return raw if isinstance(raw, str) else str(raw)


def values_from_json(command: Command, body) -> dict:
    """The command's values from a JSON object keyed by grammar names, with the grammar's defaults."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object of the command's parameters")
    known = {p.name: p for p in command.params}
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidInput(f"{command.name}: unknown parameter {unknown[0]}; expected: {', '.join(known) or 'none'}")
    values = {}
    for param in command.params:
        raw = body.get(param.name)
        if raw is None:
            if param.required:
                raise InvalidInput(f"{command.name}: missing parameter {param.name}")
            values[param.name] = param.default
        else:
            values[param.name] = _value(command, param, raw)
    return values


# --- auth --------------------------------------------------------------------------------------


def _token(runtime: Runtime, request: Request) -> dict:
    from core.services.tokens import find_token, needs_touch, touch_token
    from core.uow import UnitOfWork

    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    with UnitOfWork(runtime.settings, write=False) as uow:
        token = find_token(uow, raw.strip())
        now = uow.now()
    if token is None:
        raise Unauthorized("invalid or revoked token")
    if needs_touch(token, now):
        with UnitOfWork(runtime.settings) as uow:
            touch_token(uow, token["name"])
    return token


def actor_for(token: dict, headers) -> Actor:
    surface = (headers.get("x-pipe-surface") or "api").strip().lower()
    if surface not in SURFACES:
        raise InvalidInput(f"X-Pipe-Surface must be one of {', '.join(SURFACES)}, got {surface!r}")
    name = f"token:{token['name']}"
    claimed = (headers.get("x-pipe-actor") or "").strip()
    if claimed:
        if not token["allow_actor_header"]:
            raise NotAllowed(f"token {token['name']} may not name the actor (X-Pipe-Actor); "
                             "create it with --allow-actor-header")
        if len(claimed) > 200:
            raise InvalidInput("X-Pipe-Actor is at most 200 characters")
        name = claimed
    run_url = (headers.get("x-pipe-run-url") or "").strip() or None
    return Actor(name, surface, run_url[:500] if run_url else None)


# --- routes ------------------------------------------------------------------------------------


def routes(runtime: Runtime) -> list[Route]:
    async def run_command(request: Request):
        command = COMMANDS.get(request.path_params["name"])
        if command is None:
            return error(404, "not found", f"unknown command: {request.path_params['name']}")
        try:
            token = await run_in_threadpool(_token, runtime, request)
        except Unauthorized as exc:
            return error(401, "unauthorized", str(exc))
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return error(413, "too large", "the request body is larger than 1 MB")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return error(400, "bad request", "the request body is not valid JSON")
        try:
            actor = actor_for(token, request.headers)
            values = values_from_json(command, body)
            result = await run_in_threadpool(runtime.run, command, values, actor)
        except PipeError as exc:
            return pipe_error(exc)
        return JSONResponse({"result": result})

    async def list_commands(request: Request):
        try:
            await run_in_threadpool(_token, runtime, request)
        except Unauthorized as exc:
            return error(401, "unauthorized", str(exc))
        return JSONResponse({"commands": [command_view(c) for c in COMMANDS.values()]})

    async def openapi(request: Request):
        return JSONResponse(openapi_document())

    return [
        Route("/api/v1/commands", list_commands, methods=["GET"]),
        Route("/api/v1/commands/{name}", run_command, methods=["POST"]),
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    ]


def command_view(c: Command) -> dict:
    return {
        "name": c.name, "help": c.help, "group": c.group, "kind": c.kind, "usage": usage(c),
        "path": f"/api/v1/commands/{c.name}",
        "params": [{"name": p.name, "type": p.type, "required": p.required, "default": p.default,
                    "help": p.help, "cli": p.label} for p in c.params],
    }


# --- OpenAPI ------------------------------------------------------------------------------------

_JSON_TYPES = {"str": "string", "int": "integer", "bool": "boolean"}


def _param_schema(p: Param) -> dict:
    schema: dict = {"type": _JSON_TYPES[p.type], "description": p.help or p.name}
    if p.type == "str":
        # Numbers are accepted for text parameters (e.g. a metric value) and turned into text.
        schema = {"type": ["string", "number"], "description": schema["description"]}
    if p.default is not None:
        schema["default"] = p.default
    return schema


def _operation(c: Command) -> dict:
    required = [p.name for p in c.params if p.required]
    body_schema: dict = {"type": "object", "additionalProperties": False,
                         "properties": {p.name: _param_schema(p) for p in c.params}}
    if required:
        body_schema["required"] = required
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    errors = {
        status: {"description": why, "content": err}
        for status, why in (("400", "Body is not JSON"), ("401", "Missing, wrong or revoked token"),
                            ("403", "Not allowed by policy or token"), ("404", "Unknown id or command"),
                            ("409", "Refused by the current state"), ("422", "Invalid input"),
                            ("500", "Internal or configuration error"))
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
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Liveness and database check",
                                 "security": [], "responses": {"200": {"description": "ok"},
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
                                         "reference": {"type": "string"}}},
            },
        },
    }


async def crash(request: Request, exc: Exception) -> JSONResponse:
    ref = log_crash(exc, f"{request.method} {request.url.path}")
    return JSONResponse({"error": "internal error", "reference": ref,
                         "message": f"internal error (reference {ref})"}, status_code=500)
