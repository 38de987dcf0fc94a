"""The GitHub App's side of the server: a background worker that

- decides held deployment protection rules from their pipelines' gates (approved from Slack, the
  CLI, the API, anywhere: each poll looks at the pipelines GitHub is waiting on) and delivers the
  answers from their outbox rows (`core.services.protection`: claimed, retried with backoff, never
  twice with a live claimant, kept across restarts);
- mirrors every deploy change recorded anywhere as GitHub Deployments and statuses, through the
  same `github` outbox consumer the Action uses (`gh.outbox`), each pipeline to its repository with
  the app's installation token there.
"""

from __future__ import annotations

import logging

from chainpipe.bot.outage import Outage
from chainpipe.bot.poller import Poller
from chainpipe.core.actor import Actor
from chainpipe.core.config import Settings
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import get_command
from chainpipe.core.services import protection
from chainpipe.core.uow import UnitOfWork
from chainpipe.gh import outbox as github_outbox
from chainpipe.gh.app import AnswerError, GitHubApp
from chainpipe.gh.mirror import DeploymentMirror

log = logging.getLogger("chainpipe.github")


class GitHubWorker(Poller):
    thread_name = "pipe-github"

    def __init__(self, settings: Settings, app: GitHubApp, *, poll_interval: float = 1.0, lease: float = 30.0,
                 outage: Outage | None = None, batch: int = 50):
        super().__init__(poll_interval=poll_interval, batch=batch, outage=outage, log=log)
        self.settings, self.app, self.lease = settings, app, lease
        self._installation: int | None = None  # of the event being mirrored (one thread drains)

    def drain_once(self) -> int:
        """Decide, answer and mirror what is due now; how many things were done."""
        return self.decide() + self.answer() + len(self.mirror())

    # --- protection rules ---------------------------------------------------------------------

    def decide(self) -> int:
        with UnitOfWork(self.settings, write=False) as uow:
            waiting = protection.pipelines_awaiting(uow)
        decided = 0
        for pipeline_id in waiting:
            with UnitOfWork(self.settings) as uow:
                decided += len(protection.decide_requests(uow, pipeline_id))
        return decided

    def answer(self) -> int:
        with UnitOfWork(self.settings) as uow:
            due = protection.claim_due_answers(uow, lease_seconds=self.lease)
        for request in due:
            error, final = None, False
            try:
                self.app.answer(request)
            except AnswerError as exc:
                error, final = str(exc), exc.final
                log.warning("protection answer %s for %s not delivered: %s", request["answer"], request["run_url"],
                            error)
            with UnitOfWork(self.settings) as uow:
                protection.finish_answer(uow, _app_actor(request["installation_id"], request["run_url"]),
                                         request["id"], error=error, final=final)
        return len(due)

    # --- deployments ----------------------------------------------------------------------------

    def mirror(self) -> list:
        return github_outbox.drain(self.settings, self._mirror_for, self._run, batch=self.batch,
                                   lease_seconds=self.lease)

    def _mirror_for(self, event: dict) -> DeploymentMirror | None:
        repository, installation = None, None
        if event.get("pipeline_id"):
            with UnitOfWork(self.settings, write=False) as uow:
                repository, installation = protection.pipeline_repository(uow, event["pipeline_id"])
        served = self.settings.github.repositories
        if repository is None and served:
            repository = served[0]
        if repository is None or repository.lower() not in (r.lower() for r in served):
            return None
        mirror = self.app.mirror(repository, installation)
        self._installation = installation or self.app.installation_for(repository)
        return mirror

    def _run(self, command: str, values: dict) -> dict:
        return execute(get_command(command), values, _app_actor(self._installation), self.settings, local=False)

    # --- /healthz/ready -------------------------------------------------------------------------

    def health(self) -> dict:
        with UnitOfWork(self.settings, write=False) as uow:
            return {"protection_rules": protection.protection_health(uow),
                    "deployments_failing": protection.mirror_failures(uow, github_outbox.CONSUMER)}


def _app_actor(installation: int | None, run_url: str | None = None) -> Actor:
    principal = f"github-app:{installation if installation is not None else 'unknown'}"
    return Actor(principal, "github", run_url, principal=principal, service=True)

