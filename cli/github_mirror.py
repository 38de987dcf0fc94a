"""Mirror chainpipe deploys as GitHub Deployments, so the repository's Environments page, the pull
request timeline and branch protection see them.

    deploy recorded            → POST /repos/{repo}/deployments (environment = target, ref,
                                 required_contexts=[], auto_merge=False) + status for its state
    deploy status changes      → POST /repos/{repo}/deployments/{id}/statuses
       in-progress → in_progress, succeeded → success, failed → failure,
       rolled-back → inactive, pending → pending

chainpipe stays the record of truth; the GitHub Deployment id is stored on the deploy
(``Deploy.external_id``) so any later run can report on the same Deployment.
"""

from __future__ import annotations

import re

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

    def open(self, deploy: dict) -> str:
        """Create the Deployment for a just-recorded deploy and report its state; returns its id."""
        if not deploy.get("ref"):
            raise MirrorError(f"deploy {deploy['id']} has no ref; GitHub Deployments need one")
        description = f"{deploy['strategy']} deploy {deploy['id']} of pipeline {deploy['pipeline_id']}"
        try:
            deployment = self.repo.create_deployment(
                ref=deploy["ref"], task="deploy", auto_merge=False, required_contexts=[],
                environment=deploy["target"], description=description[:140],
                payload={"chainpipe": {"deploy_id": deploy["id"], "pipeline_id": deploy["pipeline_id"],
                                       "strategy": deploy["strategy"]}},
                **environment_flags(deploy["target"]),
            )
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"GitHub refused the deployment for {deploy['id']}: {_reason(exc)}") from None
        self._status(deployment, deploy)
        return str(deployment.id)

    def report(self, external_id: str, deploy: dict) -> str:
        """Add a deployment status that follows the deploy's current state; returns the GitHub state."""
        try:
            deployment = self.repo.get_deployment(int(external_id))
        except (GithubException, RequestException, ValueError) as exc:
            raise MirrorError(f"GitHub deployment {external_id} of {deploy['id']} not found: {_reason(exc)}") \
                from None
        return self._status(deployment, deploy)

    def _status(self, deployment, deploy: dict) -> str:
        state = GITHUB_STATES[deploy["status"]]
        kwargs = {"target_url": self.run_url} if self.run_url else {}
        try:
            deployment.create_status(state, description=f"chainpipe: {deploy['status']}",
                                     environment=deploy["target"], **kwargs)
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"GitHub refused the {state} status of {deploy['id']}: {_reason(exc)}") from None
        return state


def _reason(exc: Exception) -> str:
    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        return f"{exc.status} {data.get('message', '')}".strip()
    return exc.__class__.__name__
