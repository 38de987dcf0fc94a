"""The `github` outbox consumer: deploy changes from any surface (Action, CLI, Slack, API) mirrored
as GitHub Deployments.

Audit events are claimed for the consumer ``github`` (core.services.notifications): once each with a
live claimant, again after a lease when a claimant died, retried on error. A deploy change (record,
update, rollback) goes through the one mapping, `gh.mirror.mirror_event`; a Deployment it
creates is stored on the deploy with the grammar's ``deploy-link``. Every other event is finished as
skipped, as is an event older than ``max_age`` (a first drain does not replay a pipeline's history).

``run(command, values)`` runs grammar commands (``deploy-show``, ``deploy-link``) for the consumer:
in the Action it is the step's own backend, so the link is recorded as the step's actor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from chainpipe.core.clock import parse_iso, utcnow
from chainpipe.core.config import Settings
from chainpipe.core.errors import PipeError
from chainpipe.core.services import notifications as outbox
from chainpipe.core.uow import UnitOfWork
from chainpipe.gh.mirror import MIRRORED_ACTIONS, DeploymentMirror, Mirrored, MirrorError, mirror_event

CONSUMER = "github"
MAX_AGE = timedelta(hours=24)
Runner = Callable[[str, dict], dict]
# Which Deployments an event goes to: one repository (the Action) or the event's own (the server's
# GitHub App, one installation per repository); None when the pipeline has no repository.
Resolver = Callable[[dict], "DeploymentMirror | None"]


def deliver(github: DeploymentMirror, event: dict, run: Runner, deploy: dict | None = None) -> Mirrored:
    """Mirror one deploy event (``deploy``: the deploy as it is now, read when not given); never raises:
    a failure is the outcome, for the outbox to retry and the caller to report."""
    try:
        deploy = deploy or run("deploy-show", {"deploy_id": event["entity_id"]})
        mirrored = mirror_event(github, event, deploy)
        if mirrored.external_id:
            run("deploy-link", {"deploy_id": deploy["id"], "external_id": mirrored.external_id})
        return mirrored
    except PipeError as exc:
        return Mirrored(event["entity_id"], exc.message)
    except Exception as exc:  # noqa: BLE001 - one event must not stop the others; the outbox retries it
        return Mirrored(event["entity_id"], f"error: {exc.__class__.__name__}")


def drain(settings: Settings, github: DeploymentMirror | Resolver, run: Runner, *, pipeline_id: str | None = None,
          batch: int = 50, lease_seconds: float = 30.0, max_age: timedelta = MAX_AGE) -> list[Mirrored]:
    """Claim and deliver undelivered events (of one pipeline, or all); what each deploy change did."""
    resolve = (lambda event: github) if isinstance(github, DeploymentMirror) else github
    mirrored: list[Mirrored] = []
    while True:
        with UnitOfWork(settings) as uow:
            events = outbox.claim_events(uow, CONSUMER, pipeline_id=pipeline_id, limit=batch,
                                         lease_seconds=lease_seconds)
        skipped = []
        for event in events:
            reason = _not_mirrored(event, max_age)
            if reason:
                skipped.append((event, reason))
                continue
            done = _deliver_resolved(resolve, event, run)
            mirrored.append(done)
            _finish(settings, [(event, done.outcome)])  # at once: a slow GitHub must not outlive the lease
        _finish(settings, skipped)
        if len(events) < batch:
            return mirrored


def _deliver_resolved(resolve: Resolver, event: dict, run: Runner) -> Mirrored:
    try:
        github = resolve(event)
    except MirrorError as exc:
        return Mirrored(event["entity_id"], str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. the app's token could not be had; retried
        return Mirrored(event["entity_id"], f"error: {exc.__class__.__name__}")
    if github is None:
        return Mirrored(event["entity_id"], f"skipped: pipeline {event.get('pipeline_id')} names no GitHub repository")
    return deliver(github, event, run)


def _not_mirrored(event: dict, max_age: timedelta) -> str | None:
    if event["entity"] != "deploy" or event["action"] not in MIRRORED_ACTIONS:
        return "skipped: not a deploy change"
    if utcnow() - parse_iso(event["at"]) > max_age:
        return "skipped: older than the outbox max age"
    return None


def _finish(settings: Settings, outcomes: list[tuple[dict, str]]) -> None:
    if not outcomes:
        return
    with UnitOfWork(settings) as uow:  # one transaction, one executemany UPDATE
        outbox.finish_deliveries(uow, CONSUMER, [(e["seq"], outcome, e["attempt"]) for e, outcome in outcomes])
