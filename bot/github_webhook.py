"""``POST /github/webhook``: GitHub App events, before anything else signed and seen once.

- ``X-Hub-Signature-256`` must be ``sha256=`` + the HMAC of the raw body with the webhook secret,
  compared in constant time → else 401, nothing recorded (one ``key=value`` refusal line);
- events other than ``deployment_protection_rule`` (and its ``requested`` action) → 202, ignored;
- a repository or environment not configured in ``[github]`` → 202 and one log line;
- each ``X-GitHub-Delivery`` runs once (``SeenGitHubDelivery``, unique): GitHub's redelivery, or a
  replayed capture, is answered 200 and runs nothing. A delivery whose handling failed is forgotten
  again, so GitHub's redelivery can succeed.

A ``requested`` protection rule holds the environment on a pipeline: the one its workflow run
created (the Action's ``create`` recorded the run's URL), else one created from the environment's
template. The app is the principal: ``github-app:<installation id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from chainpipe.bot import api
from chainpipe.bot.runtime import Runtime, log_refusal
from chainpipe.core.actor import Actor
from chainpipe.core.errors import InvalidInput
from chainpipe.core.grammar import get_command
from chainpipe.core.models import SeenGitHubDelivery
from chainpipe.core.services import protection
from chainpipe.core.uow import UnitOfWork
from chainpipe.gh.app import GitHubApp
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("chainpipe.github")
EVENT = "deployment_protection_rule"
KEEP_DELIVERIES = timedelta(days=30)
PRUNE_EVERY = 64
CALLBACK = re.compile(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)/deployment_protection_rule$")


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Held:
    """What a ``requested`` payload says, checked."""

    installation_id: int
    repository: str
    environment: str
    callback_url: str
    run_id: int
    run_url: str
    ref: str | None
    sha: str | None

    @property
    def actor(self) -> Actor:
        principal = f"github-app:{self.installation_id}"
        return Actor(principal, "github", self.run_url, principal=principal, service=True)


def parse_held(payload) -> Held:
    """The protection rule's fields, or InvalidInput naming the first that is missing or odd."""
    if not isinstance(payload, dict):
        raise InvalidInput("the payload is not a JSON object")
    repo = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    installation = payload.get("installation") if isinstance(payload.get("installation"), dict) else {}
    deployment = payload.get("deployment") if isinstance(payload.get("deployment"), dict) else {}
    callback = payload.get("deployment_callback_url")
    environment = payload.get("environment")
    match = CALLBACK.search(callback) if isinstance(callback, str) else None
    if not isinstance(installation.get("id"), int):
        raise InvalidInput("the payload names no installation (is it from a GitHub App?)")
    if not isinstance(environment, str) or not environment:
        raise InvalidInput("the payload names no environment")
    if match is None or not isinstance(repo.get("full_name"), str) or not isinstance(repo.get("html_url"), str):
        raise InvalidInput("the payload has no deployment_callback_url of a workflow run, or no repository")
    if match.group(1).lower() != repo["full_name"].lower():
        raise InvalidInput("the deployment_callback_url is not of the payload's repository")
    run_id = int(match.group(2))
    return Held(installation["id"], repo["full_name"], environment, callback, run_id,
                f"{repo['html_url'].rstrip('/')}/actions/runs/{run_id}",
                _text(deployment.get("ref") or payload.get("ref")), _text(deployment.get("sha") or payload.get("sha")))


def _text(value) -> str | None:
    return value[:255] if isinstance(value, str) and value else None


def remember_delivery(settings, delivery: str, event: str, *, prune_every: int = PRUNE_EVERY) -> bool:
    """Record a delivery; False when it was recorded before (a redelivery or a replay). Every
    ``prune_every`` inserts, deliveries older than KEEP_DELIVERIES are forgotten: GitHub redelivers
    for a few days at most, and a rule that old was answered or cancelled long ago."""
    with UnitOfWork(settings) as uow:
        seen = SeenGitHubDelivery(delivery=delivery, event=event, received_at=uow.now())
        try:
            with uow.session.begin_nested():
                uow.add(seen)
        except IntegrityError:
            return False
        if seen.seq % prune_every == 0:
            uow.session.execute(delete(SeenGitHubDelivery)
                                .where(SeenGitHubDelivery.received_at < uow.now() - KEEP_DELIVERIES))
        uow.commit()
        return True


def forget_delivery(settings, delivery: str) -> None:
    with UnitOfWork(settings) as uow:
        uow.session.execute(delete(SeenGitHubDelivery).where(SeenGitHubDelivery.delivery == delivery))
        uow.commit()


def hold(runtime: Runtime, held: Held) -> dict | None:
    """Hold the environment on its pipeline (found or created); None when there is none to hold it on."""
    settings = runtime.settings
    with UnitOfWork(settings, write=False) as uow:
        pipeline_id = protection.run_pipeline(uow, held.run_url)
    actor = held.actor
    if pipeline_id is None:
        template = settings.github.environments.get(held.environment)
        if template is None:
            return None
        name = f"{held.repository} {held.environment}@{(held.sha or held.ref or str(held.run_id))[:12]}"
        pipeline_id = runtime.run(get_command("create"), {"name": name, "template": template}, actor)["id"]
        runtime.run(get_command("start"), {"pipeline_id": pipeline_id}, actor)
    # Recorded before the pipeline moves on, so the gate message that move posts already shows it.
    with UnitOfWork(settings) as uow:
        request = protection.record_request(
            uow, actor, pipeline_id, callback_url=held.callback_url, installation_id=held.installation_id,
            repository=held.repository, environment=held.environment, run_id=held.run_id, run_url=held.run_url,
            ref=held.ref, sha=held.sha)
    with UnitOfWork(settings, write=False) as uow:
        stage = protection.gate_stage_ahead(uow, pipeline_id)
    if stage is not None:
        runtime.run(get_command("stage"), {"pipeline_id": pipeline_id, "stage": stage,
                                           "reason": f"GitHub holds {held.environment} for its gates"}, actor)
    runtime.wake()
    return request


def route(runtime: Runtime, app: GitHubApp, secret: str) -> Route:
    async def webhook(request: Request):
        try:
            body = await api.read_body(request)
        except api.Refused as exc:
            return api.error_response(exc, request)
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        if not signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
            log_refusal("github", "unverified", "bad signature", event or None, delivery=delivery or None)
            return api.error(401, "unauthorized", "GitHub webhook refused: missing or wrong X-Hub-Signature-256")
        if event == "ping":
            return JSONResponse({"status": "pong"})
        if event != EVENT:
            return JSONResponse({"status": "ignored", "event": event}, status_code=202)
        if not delivery or len(delivery) > 80:
            return api.error(400, "bad request", "X-GitHub-Delivery is missing or too long")
        try:
            payload = api.parse_body(body)
            if isinstance(payload, dict) and payload.get("action") != "requested":
                return JSONResponse({"status": "ignored", "action": payload.get("action")}, status_code=202)
            held = parse_held(payload)
        except (api.Refused, InvalidInput) as exc:
            return api.error_response(exc, request, "github", EVENT)
        return await runtime.database(_handle, runtime, app, held, delivery, request)

    return Route("/github/webhook", webhook, methods=["POST"])


def _handle(runtime: Runtime, app: GitHubApp, held: Held, delivery: str, request: Request) -> JSONResponse:
    where = f"{held.repository} environment {held.environment}"
    if not runtime.settings.github.serves(held.repository, held.environment):
        log.warning("github webhook ignored: %s is not configured ([github] repositories / environments) "
                    "delivery=%s", where, delivery)
        return JSONResponse({"status": "ignored", "reason": f"{where} is not configured"}, status_code=202)
    if not app.owns(held.callback_url):
        log_refusal("github", held.actor.principal, "foreign callback", EVENT, delivery=delivery)
        return api.error(400, "bad request", f"the deployment_callback_url is not on {app.api_url}")
    try:
        if not runtime.outage.call(remember_delivery, runtime.settings, delivery, EVENT):
            return JSONResponse({"status": "duplicate", "delivery": delivery})
        request_ = hold(runtime, held)
    except Exception as exc:  # noqa: BLE001 - the one translation; the delivery may be sent again
        _forget_quietly(runtime, delivery)
        return api.error_response(exc, request, held.actor.principal, EVENT)
    if request_ is None:
        log.warning("github webhook ignored: run %s of %s created no pipeline and environment %s has no template "
                    "delivery=%s", held.run_url, held.repository, held.environment, delivery)
        return JSONResponse({"status": "ignored", "reason": f"no pipeline for {held.run_url} and no template"},
                            status_code=202)
    return JSONResponse({"status": "held", "pipeline_id": request_["pipeline_id"], "request": request_["id"]},
                        status_code=202)


def _forget_quietly(runtime: Runtime, delivery: str) -> None:
    try:
        forget_delivery(runtime.settings, delivery)
    except Exception:  # noqa: BLE001 - the database is down; the delivery then stays remembered
        log.warning("delivery %s could not be forgotten after a failure", delivery)
