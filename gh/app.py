"""The GitHub App: its JWT (signed with the app's private key, by PyGithub's ``Auth.AppAuth``),
installation tokens (cached until shortly before they expire), the installation that serves a
repository, and the one write a protection rule needs: the answer to ``deployment_callback_url``.

Every token is sent only to the configured API (``GITHUB_API_URL``): a callback URL elsewhere is
refused before any request, so a forged or odd payload cannot collect a token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx
from chainpipe.gh.mirror import DeploymentMirror, MirrorError, reason_of
from github import Auth, GithubException, GithubIntegration
from requests import RequestException

DEFAULT_API_URL = "https://api.github.com"
REFRESH_MARGIN = 300.0  # seconds before expiry a cached installation token is replaced
# GitHub answers 404/422 when the run is no longer waiting (cancelled, re-run, answered already):
# asking again cannot help, so the answer is settled as refused rather than retried for ever.
FINAL_STATUSES = frozenset({404, 410, 422})


class AnswerError(Exception):
    """GitHub did not take a protection-rule answer; ``final`` when retrying cannot help."""

    def __init__(self, message: str, *, final: bool = False):
        super().__init__(message)
        self.final = final


class GitHubApp:
    def __init__(self, app_id: str, private_key: str, *, api_url: str = DEFAULT_API_URL,
                 clock: Callable[[], float] = time.time):
        self.api_url = api_url.rstrip("/")
        self.app_id = app_id
        self.integration = GithubIntegration(auth=Auth.AppAuth(app_id, private_key), base_url=self.api_url)
        self.clock = clock
        self._tokens: dict[int, tuple[str, float]] = {}
        self._installations: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- installations and their tokens ----------------------------------------------------

    def token(self, installation_id: int) -> str:
        """An installation token, from the cache unless it expires within REFRESH_MARGIN."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached and cached[1] - REFRESH_MARGIN > self.clock():
                return cached[0]
        try:
            auth = self.integration.get_access_token(installation_id)
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"no token for installation {installation_id}: {reason_of(exc)}") from None
        expires = _epoch(auth.expires_at) if auth.expires_at else self.clock() + 3600
        with self._lock:
            self._tokens[installation_id] = (auth.token, expires)
        return auth.token

    def installation_for(self, repository: str) -> int:
        with self._lock:
            if repository in self._installations:
                return self._installations[repository]
        owner, _, name = repository.partition("/")
        try:
            installation = self.integration.get_repo_installation(owner, name)
        except (GithubException, RequestException) as exc:
            raise MirrorError(f"the app is not installed on {repository}: {reason_of(exc)}") from None
        with self._lock:
            self._installations[repository] = installation.id
        return installation.id

    def mirror(self, repository: str, installation_id: int | None = None) -> DeploymentMirror:
        """The Deployments of ``repository``, written as the app's installation there."""
        installation_id = installation_id or self.installation_for(repository)
        return DeploymentMirror(self.token(installation_id), repository, api_url=self.api_url)

    # --- the protection rule's answer --------------------------------------------------------

    def owns(self, url: str) -> bool:
        return url.startswith(self.api_url + "/repos/")

    def answer(self, request: dict) -> None:
        """Approve or reject the held environment of the run (``POST deployment_callback_url``)."""
        url = request["callback_url"]
        if not self.owns(url):
            raise AnswerError(f"callback {url} is not on {self.api_url}; not answered", final=True)
        body = {"environment_name": request["environment"], "state": request["answer"],
                "comment": request["comment"] or request["answer"]}
        try:
            token = self.token(request["installation_id"])
            response = httpx.post(url, json=body, timeout=20, follow_redirects=False, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28", "User-Agent": f"chainpipe-app/{self.app_id}"})
        except MirrorError as exc:
            raise AnswerError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise AnswerError(f"GitHub unreachable: {exc.__class__.__name__}") from None
        if response.status_code >= 300:
            message = _message(response)
            raise AnswerError(f"GitHub answered {response.status_code} {message}".strip(),
                              final=response.status_code in FINAL_STATUSES)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("message", ""))[:200] if isinstance(data, dict) else ""

