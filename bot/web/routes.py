"""The web routes: sign-in and sign-out, the board (and the fragment it polls), a pipeline, a
metric's chart (as a page and as SVG), DORA per week. Every page reads in one read-only unit of
work that first checks the session's token is still active and personal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote

from chainpipe.bot.api import Refused, read_body
from chainpipe.bot.outage import MESSAGE as OUTAGE_MESSAGE
from chainpipe.bot.outage import RETRY_AFTER_SECONDS, is_outage
from chainpipe.bot.runtime import Runtime, log_crash, log_refusal
from chainpipe.bot.web import charts
from chainpipe.bot.web.links import public_url
from chainpipe.bot.web.session import COOKIE, Sessions, server_secret
from chainpipe.core.crash import crash_line
from chainpipe.core.errors import InvalidInput, PipeError
from chainpipe.core.services import pages
from chainpipe.core.text import one_line
from chainpipe.core.uow import UnitOfWork
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
FORM_LIMIT = 4096
PARAM_LIMIT = 200

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)


class SignInFirst(Exception):
    """No session, a forged or expired one, or one whose token was revoked."""


def html(template: str, status: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**context), status_code=status,
                        headers=HEADERS | (headers or {}))


def param(request: Request, name: str) -> str | None:
    value = (request.query_params.get(name) or "").strip()
    if len(value) > PARAM_LIMIT or not value.isprintable():
        raise InvalidInput(f"{name} must be at most {PARAM_LIMIT} printable characters")
    return value or None


def int_param(request: Request, name: str, default: int) -> int:
    raw = param(request, name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


class Web:
    def __init__(self, runtime: Runtime, sessions: Sessions):
        self.runtime, self.sessions = runtime, sessions

    # --- the one place a page's work runs -----------------------------------------------------------

    def _read(self, cookie: str | None, work: Callable) -> tuple[dict, object]:
        session = self.sessions.read(cookie)
        if session is None:
            raise SignInFirst("sign in with your personal API token")
        with UnitOfWork(self.runtime.settings, write=False) as uow:
            token = pages.personal_token(uow, session["t"])
            if token is None or token["person"] != session["p"]:
                raise SignInFirst("your session has ended: its token was revoked")
            return token, work(uow)

    async def read(self, request: Request, work: Callable) -> tuple[dict, object]:
        return await self.runtime.database(self.runtime.outage.call, self._read, request.cookies.get(COOKIE), work)

    def refuse(self, exc: BaseException, request: Request, *, page: bool = True) -> Response:
        """The one translation of an error into a web answer: one line, the right status."""
        if isinstance(exc, SignInFirst):
            log_refusal("web", None, "no session", request.url.path, detail=str(exc))
            if page:
                target = "/web/sign-in?next=" + quote(request.url.path, safe="/")
                resp = RedirectResponse(target, status_code=303, headers=HEADERS)
            else:
                resp = Response(str(exc), status_code=401, media_type="text/plain", headers=HEADERS)
            resp.delete_cookie(COOKIE, path="/web")
            return resp
        if is_outage(exc):
            return self.error_page(503, "unavailable", OUTAGE_MESSAGE, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        if isinstance(exc, PipeError):
            return self.error_page(exc.http_status, exc.title, exc.message)
        ref = log_crash(exc, f"{request.method} {request.url.path}")
        return self.error_page(500, "internal error", crash_line(ref, exc))

    def error_page(self, status: int, title: str, message: str, headers: dict | None = None) -> Response:
        return html("error.html", status, headers, title=title, message=one_line(message), person=None)

    async def page(self, request: Request, work: Callable, template: str, **extra) -> Response:
        try:
            token, data = await self.read(request, work)
        except Exception as exc:  # noqa: BLE001 - translated once, in refuse
            return self.refuse(exc, request)
        return html(template, person=token["person"], data=data, **extra)

    # --- sign-in -------------------------------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> Response:
        return html("sign_in.html", person=None, next=_next(request.query_params.get("next")), message=None)

    async def sign_in(self, request: Request) -> Response:
        try:
            form = dict(parse_qsl((await read_body(request, FORM_LIMIT)).decode("utf-8", "replace")))
            _same_origin(request)
            token = await self.runtime.database(self.runtime.outage.call, _find, self.runtime, form.get("token", ""))
        except Refused as exc:
            return html("sign_in.html", exc.status, person=None, next="/web/", message=exc.message)
        except Exception as exc:  # noqa: BLE001
            return self.refuse(exc, request)
        if token is None or token["kind"] != "personal":
            why = ("a service token cannot sign in: use a personal token (pipe token create NAME --for PERSON)"
                   if token else "invalid or revoked token")
            log_refusal("web", f"token:{token['name']}" if token else None, "sign-in", None, detail=why)
            return html("sign_in.html", 403 if token else 401, person=None, next=_next(form.get("next")),
                        message=why)
        resp = RedirectResponse(_next(form.get("next")), status_code=303, headers=HEADERS)
        secure = request.url.scheme == "https" or (public_url() or "").startswith("https://")  # TLS at a proxy
        resp.set_cookie(value=self.sessions.issue(token), **self.sessions.cookie_args(secure))
        return resp

    async def sign_out(self, request: Request) -> Response:
        try:
            _same_origin(request)
        except Refused as exc:
            return self.error_page(exc.status, exc.title, exc.message)
        resp = RedirectResponse("/web/sign-in", status_code=303, headers=HEADERS)
        resp.delete_cookie(COOKIE, path="/web")
        return resp

    # --- pages ---------------------------------------------------------------------------------------

    def _board_args(self, request: Request) -> dict:
        return {"status": param(request, "status"), "template": param(request, "template"),
                "target": param(request, "target")}

    async def board(self, request: Request) -> Response:
        try:
            args = self._board_args(request)
        except InvalidInput as exc:
            return self.refuse(exc, request)
        return await self.page(request, lambda uow: _board(uow, args), "board.html")

    async def board_fragment(self, request: Request) -> Response:
        try:
            args = self._board_args(request)
            token, data = await self.read(request, lambda uow: pages.board(uow, **args))
        except Exception as exc:  # noqa: BLE001
            return self.refuse(exc, request, page=False)
        return html("_columns.html", data={"board": data})

    async def pipeline(self, request: Request) -> Response:
        pid = request.path_params["pipeline_id"]
        try:
            whole = param(request, "verify") == "all"
        except InvalidInput as exc:
            return self.refuse(exc, request)
        return await self.page(request, lambda uow: charts.pipeline_with_charts(uow, pid, whole), "pipeline.html")

    async def metric(self, request: Request) -> Response:
        pid, metric = request.path_params["pipeline_id"], request.path_params["metric"]
        try:
            deploy = param(request, "deploy")
        except InvalidInput as exc:
            return self.refuse(exc, request)
        return await self.page(request, lambda uow: charts.metric_chart(uow, pid, metric, deploy), "metric.html")

    async def metric_svg(self, request: Request) -> Response:
        pid, metric = request.path_params["pipeline_id"], request.path_params["metric"]
        try:
            deploy = param(request, "deploy")
            _, data = await self.read(request, lambda uow: charts.metric_chart(uow, pid, metric, deploy))
        except Exception as exc:  # noqa: BLE001
            return self.refuse(exc, request, page=False)
        return Response(str(data["svg"]), media_type="image/svg+xml", headers=HEADERS)

    async def dora(self, request: Request) -> Response:
        try:
            weeks, target = int_param(request, "weeks", 12), param(request, "target")
        except InvalidInput as exc:
            return self.refuse(exc, request)
        return await self.page(request, lambda uow: charts.dora_charts(uow, weeks, target), "dora.html")


def _board(uow, args: dict) -> dict:
    return {"board": pages.board(uow, **args), "templates": sorted(uow.settings.templates),
            "targets": pages.deploy_targets(uow), "statuses": pages.PIPELINE_STATUSES}


def _find(runtime: Runtime, raw: str) -> dict | None:
    from chainpipe.core.services.tokens import find_token

    with UnitOfWork(runtime.settings, write=False) as uow:
        return find_token(uow, raw.strip())


def _next(value: str | None) -> str:
    """Where to go after signing in: a path of this web view only, never another site."""
    if value and value.startswith("/web/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/web/"


def _same_origin(request: Request) -> None:
    """A form post from another site is refused (the session cookie is SameSite=Strict as well)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise Refused(403, "forbidden", "cross-site form posts are refused")


def mount(runtime: Runtime, env=None) -> Mount:
    web = Web(runtime, Sessions(server_secret(env)))
    return Mount("/web", routes=[
        Route("/", web.board, methods=["GET"]),
        Route("/board/fragment", web.board_fragment, methods=["GET"]),
        Route("/sign-in", web.sign_in_form, methods=["GET"]),
        Route("/sign-in", web.sign_in, methods=["POST"]),
        Route("/sign-out", web.sign_out, methods=["POST"]),
        Route("/pipelines/{pipeline_id}", web.pipeline, methods=["GET"]),
        Route("/pipelines/{pipeline_id}/metrics/{metric}.svg", web.metric_svg, methods=["GET"]),
        Route("/pipelines/{pipeline_id}/metrics/{metric}", web.metric, methods=["GET"]),
        Route("/dora", web.dora, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ])
