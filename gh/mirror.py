"""Mirror chainpipe deploys as GitHub Deployments, so the repository's Environments page, the pull
request timeline and branch protection see them. One mapping, `mirror_event`, from a deploy audit
event to GitHub, used by the `github` outbox consumer (gh/outbox.py) and, in remote mode,
by the Action for the deploys its own step changed:

    record                     → the Deployment (environment = target, ref, required_contexts=[],
                                 auto_merge=False, a payload naming the deploy) + a status for its state
    update, rollback           → a status for the deploy's state
       pending → pending, in-progress → in_progress, succeeded → success, failed → failure,
       rolled-back → inactive

The Deployment follows the deploy's *current* status and a status GitHub already shows is not added
again, so an event delivered twice or late adds nothing and never puts statuses out of order.
chainpipe stays the record of truth; the Deployment id is stored on the deploy (``deploy-link``),
and a Deployment created before a crash could store it is found again by its payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from github import Auth, Github, GithubException
from requests import RequestException

GITHUB_STATES = {
    "pending": "pending",
    "in-progress": "in_progress",
    "succeeded": "success",
    "failed": "failure",
    "rolled-back": "inactive",
}
PRODUCTION = re.compile(r"^(prod|production|live)([-_.].*)?$", re.IGNORECASE)
TRANSIENT = re.compile(r"^(pr|preview|review|ephemeral)[-_.]", re.IGNORECASE)
MIRRORED_ACTIONS = ("record", "update", "rollback")
NO_DEPLOYMENT = "skipped: no GitHub deployment"


class MirrorError(Exception):
    """GitHub refused or could not be reached; the message names no secret."""


def environment_flags(target: str) -> dict[str, bool]:
    """``production-eu`` is a production environment; ``pr-123`` / ``preview-x`` go away later."""
    return {
        "production_environment": bool(PRODUCTION.match(target)),
        "transient_environment": bool(TRANSIENT.match(target)),
    }


class DeploymentMirror:
    def __init__(self, token: str, repository: str, *, api_url: str | None = None, run_url: str | None = None,
                 throttle: bool = True):
        if not repository or "/" not in repository:
            raise MirrorError("GITHUB_REPOSITORY (owner/name) is needed to mirror deploys")
        kwargs = {} if throttle else {"seconds_between_requests": None, "seconds_between_writes": None}
        self.github = Github(auth=Auth.Token(token), base_url=(api_url or "https://api.github.com").rstrip("/"),
                             timeout=20, retry=2, lazy=True, **kwargs)
        self.repo = self.github.get_repo(repository)
        self.run_url = run_url

    def open(self, deploy: dict, target_url: str | None = None) -> str:
        """The Deployment of a deploy, created unless one names it already, showing its state; its id."""
        if not deploy.get("ref"):
            raise MirrorError(f"deploy {deploy['id']} has no ref; GitHub Deployments need one")
        found = self._find(deploy)
        deployment = found or self._create(deploy)
        self._follow(deployment, deploy, target_url, fresh=found is None)
        return str(deployment.id)

    def follow(self, external_id: str, deploy: dict, target_url: str | None = None) -> str | None:
        """Add a status for the deploy's state unless it is the latest already; the state added, or None."""
        try:
            deployment = self.repo.get_deployment(int(external_id))
        except (GithubException, RequestException, ValueError) as exc:
            raise MirrorError(f"GitHub deployment {external_id} of {deploy['id']} not found: {reason_of(exc)}") \
                from None
        return self._follow(deployment, deploy, target_url)

    def _find(self, deploy: dict):
        try:
            for deployment in self.repo.get_deployments(ref=deploy["ref"], task="deploy",
                                                        environment=deploy["target"]):
                payload = deployment.payload if isinstance(deployment.payload, dict) else {}
                if (payload.get("chainpipe") or {}).get("deploy_id") == deploy["id"]:
                    return deployment
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"GitHub deployments of {deploy['id']} could not be listed: {reason_of(exc)}") from None
        return None

    def _create(self, deploy: dict):
        description = f"{deploy['strategy']} deploy {deploy['id']} of pipeline {deploy['pipeline_id']}"
        try:
            return self.repo.create_deployment(
                ref=deploy["ref"], task="deploy", auto_merge=False, required_contexts=[],
                environment=deploy["target"], description=description[:140],
                payload={"chainpipe": {"deploy_id": deploy["id"], "pipeline_id": deploy["pipeline_id"],
                                       "strategy": deploy["strategy"]}},
                **environment_flags(deploy["target"]),
            )
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"GitHub refused the deployment for {deploy['id']}: {reason_of(exc)}") from None

    def _follow(self, deployment, deploy: dict, target_url: str | None, *, fresh: bool = False) -> str | None:
        state = GITHUB_STATES[deploy["status"]]
        try:
            if not fresh and _latest_state(deployment) == state:
                return None
            url = target_url or self.run_url
            deployment.create_status(state, description=f"chainpipe: {deploy['status']}",
                                     environment=deploy["target"], **({"target_url": url} if url else {}))
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"GitHub refused the {state} status of {deploy['id']}: {reason_of(exc)}") from None
        return state


def _latest_state(deployment) -> str | None:
    latest = max(deployment.get_statuses(), key=lambda s: s.id, default=None)
    return latest.state if latest is not None else None


def reason_of(exc: Exception) -> str:
    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        return f"{exc.status} {data.get('message', '')}".strip()
    return exc.__class__.__name__


@dataclass(frozen=True)
class Mirrored:
    """What one event did on GitHub. ``outcome`` is ``ok …`` / ``skipped …`` or the error (retried);
    ``external_id`` is a Deployment created now, for the caller to store with ``deploy-link``."""

    deploy_id: str
    outcome: str
    external_id: str | None = None

    @property
    def failed(self) -> bool:
        return not self.outcome.startswith(("ok", "skipped"))

    @property
    def missing(self) -> bool:
        """A status change of a deploy that has no Deployment (recorded before mirroring, or GitHub failed)."""
        return self.outcome == NO_DEPLOYMENT


def mirror_event(github: DeploymentMirror, event: dict, deploy: dict) -> Mirrored:
    """One deploy audit event (``action``, ``run_url``) → GitHub, for the deploy as it is now."""
    if event["action"] not in MIRRORED_ACTIONS:
        return Mirrored(deploy["id"], f"skipped: {event['action']} is not mirrored")
    try:
        if deploy.get("external_id"):
            state = github.follow(deploy["external_id"], deploy, event.get("run_url"))
            return Mirrored(deploy["id"], f"ok: {state}" if state else "skipped: GitHub shows it already")
        if event["action"] != "record":
            return Mirrored(deploy["id"], NO_DEPLOYMENT)
        external_id = github.open(deploy, event.get("run_url"))
        return Mirrored(deploy["id"], f"ok: deployment {external_id}", external_id)
    except MirrorError as exc:
        return Mirrored(deploy["id"], str(exc))
