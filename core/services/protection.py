"""GitHub deployment protection rules held on a pipeline's gates (the requests and their answers).

A request is recorded once per ``deployment_callback_url`` (GitHub may send it again), linked to the
pipeline its workflow run created (``run_pipeline``: the ``create`` audit event carries the run's
URL) or to one the server created for it. ``decide_requests`` fixes the answer once, from the gates
(`core.rules.protection`); the answer is then delivered from the row itself — the outbox of the
answer: claimed with a lease (``claim_due_answers``, one claimant per row), retried with backoff
(``finish_answer``) until GitHub takes it, across restarts. No runner waits: GitHub holds the job.
"""

from __future__ import annotations

import re
from datetime import timedelta

from chainpipe.core.models import AuditEvent, DeploymentRequest, OutboxDelivery
from chainpipe.core.rules.protection import protection_verdict
from chainpipe.core.services.common import approvers_by_gate, current_approvals, gates_of, stages_of
from chainpipe.core.uow import Actor, UnitOfWork
from sqlalchemy import or_, update
from sqlmodel import func, select

ENTITY = "deployment-request"
MAX_BACKOFF = timedelta(minutes=10)
# https://github.com/<owner>/<repo>/actions/runs/<id> (github.com or a GitHub Enterprise Server host)
RUN_URL = re.compile(r"^https?://[^/]+/([^/]+/[^/]+)/actions/runs/(\d+)(?:/|$)")


def request_view(row: DeploymentRequest) -> dict:
    return {
        "id": f"ghreq-{row.seq}", "pipeline_id": row.pipeline_id, "repository": row.repository,
        "environment": row.environment, "run_id": row.run_id, "run_url": row.run_url, "ref": row.ref,
        "sha": row.sha, "installation_id": row.installation_id, "callback_url": row.callback_url,
        "answer": row.answer, "comment": row.comment, "answered": row.answered_at is not None,
        "attempts": row.attempts, "last_error": row.last_error,
    }


def run_pipeline(uow: UnitOfWork, run_url: str) -> str | None:
    """The pipeline the workflow run at ``run_url`` created (the latest, if it created several)."""
    stmt = (select(AuditEvent.pipeline_id)
            .where(AuditEvent.entity == "pipeline", AuditEvent.action == "create", AuditEvent.run_url == run_url)
            .order_by(AuditEvent.seq.desc()).limit(1))
    return uow.session.exec(stmt).first()


def pipeline_repository(uow: UnitOfWork, pipeline_id: str) -> tuple[str | None, int | None]:
    """The repository (owner/name) a pipeline belongs to, and the app installation that serves it if
    known: from a protection request on it, else from the workflow run that created it."""
    row = uow.session.exec(select(DeploymentRequest).where(DeploymentRequest.pipeline_id == pipeline_id)
                           .order_by(DeploymentRequest.seq.desc())).first()
    if row is not None:
        return row.repository, row.installation_id
    stmt = select(AuditEvent.run_url).where(AuditEvent.pipeline_id == pipeline_id, AuditEvent.entity == "pipeline",
                                            AuditEvent.action == "create")
    match = RUN_URL.match(uow.session.exec(stmt).first() or "")
    return (match.group(1), None) if match else (None, None)


def find_request(uow: UnitOfWork, callback_url: str) -> dict | None:
    row = uow.session.exec(select(DeploymentRequest).where(DeploymentRequest.callback_url == callback_url)).first()
    return request_view(row) if row else None


def record_request(uow: UnitOfWork, actor: Actor, pipeline_id: str, *, callback_url: str, installation_id: int,
                   repository: str, environment: str, run_id: int, run_url: str, ref: str | None,
                   sha: str | None) -> dict:
    """Hold ``environment`` of a workflow run on ``pipeline_id``'s gates; the same callback again
    changes nothing. The audit event lets every consumer (the Slack notifier, the answerer) see it."""
    pipeline = uow.get_pipeline(pipeline_id, lock=True)
    existing = find_request(uow, callback_url)
    if existing is not None:
        return existing | {"new": False}
    row = DeploymentRequest(callback_url=callback_url, pipeline_id=pipeline.id, installation_id=installation_id,
                            repository=repository, environment=environment, run_id=run_id, run_url=run_url,
                            ref=ref, sha=sha, requested_at=uow.now())
    uow.add(row)
    uow.session.flush()
    uow.audit(actor, ENTITY, f"ghreq-{row.seq}", "request", pipeline_id=pipeline.id, to_state="pending",
              data={"environment": environment, "repository": repository, "ref": ref, "sha": sha,
                    "run_url": run_url})
    uow.commit()
    return request_view(row) | {"new": True}


def requests_of(uow: UnitOfWork, pipeline_id: str, limit: int = 5) -> list[dict]:
    """The pipeline's latest protection requests, oldest first (for its gate message)."""
    stmt = (select(DeploymentRequest).where(DeploymentRequest.pipeline_id == pipeline_id)
            .order_by(DeploymentRequest.seq.desc()).limit(limit))
    return [request_view(r) for r in reversed(list(uow.session.exec(stmt)))]


def gate_stage_ahead(uow: UnitOfWork, pipeline_id: str) -> str | None:
    """The stage of the pipeline's first pending gate when the running pipeline has not reached it
    yet: a held deploy moves it there, so the gate can be decided (gates guard a stage's exit)."""
    pipeline = uow.get_pipeline(pipeline_id)
    if pipeline.status != "running":
        return None
    order = [s.name for s in stages_of(uow, pipeline_id)]
    pending = [g.stage for g in gates_of(uow, pipeline_id) if g.status == "pending" and g.stage in order]
    if not pending or pipeline.current_stage not in order:
        return None
    first = min(pending, key=order.index)
    return first if order.index(pipeline.current_stage) < order.index(first) else None


def decide_requests(uow: UnitOfWork, pipeline_id: str) -> list[dict]:
    """Fix the answer of the pipeline's undecided requests when its gates say so; those decided now."""
    stmt = select(DeploymentRequest).where(DeploymentRequest.pipeline_id == pipeline_id,
                                           DeploymentRequest.answer.is_(None))
    if not uow.session.exec(stmt.limit(1)).first():
        return []
    pipeline = uow.get_pipeline(pipeline_id, lock=True)
    gates = gates_of(uow, pipeline_id)
    approvers = {g: sorted(p) for g, p in approvers_by_gate(current_approvals(uow, pipeline_id)).items()}
    verdict = protection_verdict(pipeline, gates, approvers)
    if verdict is None:
        return []
    decided = []
    for row in uow.session.exec(stmt.order_by(DeploymentRequest.seq)):
        row.answer, row.comment = verdict.answer, verdict.comment
        row.decided_at = row.next_attempt_at = uow.now()
        decided.append(request_view(row))
    uow.commit()
    return decided


def claim_due_answers(uow: UnitOfWork, *, limit: int = 20, lease_seconds: float = 30.0) -> list[dict]:
    """Decided, unanswered requests whose next attempt is due, each claimed by a conditional update
    (of two claimants one wins); a claim not finished comes back after the lease."""
    now = uow.now()
    stmt = (select(DeploymentRequest)
            .where(DeploymentRequest.answer.is_not(None), DeploymentRequest.answered_at.is_(None),
                   DeploymentRequest.next_attempt_at <= now)
            .order_by(DeploymentRequest.next_attempt_at).limit(limit))
    claimed = []
    for row in list(uow.session.exec(stmt)):
        taken = uow.session.execute(
            update(DeploymentRequest)
            .where(DeploymentRequest.seq == row.seq, DeploymentRequest.next_attempt_at == row.next_attempt_at,
                   DeploymentRequest.answered_at.is_(None))
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)).rowcount == 1
        if taken:
            claimed.append(request_view(row))
    uow.commit()
    return claimed


def finish_answer(uow: UnitOfWork, actor: Actor, request_id: str, *, error: str | None = None,
                  final: bool = False) -> dict:
    """GitHub took the answer (``error`` None), refused it for good (``final``: e.g. the run was
    cancelled), or failed for now: then the next attempt waits twice as long, up to MAX_BACKOFF."""
    seq = int(request_id.removeprefix("ghreq-"))
    row = uow.session.exec(select(DeploymentRequest).where(DeploymentRequest.seq == seq)).one()
    uow.get_pipeline(row.pipeline_id, lock=True)
    now = uow.now()
    row.attempts += 1
    row.last_error = error[:500] if error else None
    if error is None or final:
        row.answered_at, row.next_attempt_at = now, None
        uow.audit(actor, ENTITY, request_id, "answer", pipeline_id=row.pipeline_id,
                  to_state=row.answer if error is None else "refused", reason=row.comment if error is None else error,
                  data={"environment": row.environment, "run_url": row.run_url})
    else:
        row.next_attempt_at = now + min(timedelta(seconds=2 ** row.attempts), MAX_BACKOFF)
    uow.commit()
    return request_view(row)


def protection_health(uow: UnitOfWork) -> dict:
    """For /healthz/ready: how many answers wait, and the ones GitHub keeps failing."""
    open_ = select(func.count()).select_from(DeploymentRequest).where(DeploymentRequest.answered_at.is_(None))
    failing = uow.session.exec(select(DeploymentRequest).where(DeploymentRequest.answered_at.is_(None),
                                                               DeploymentRequest.last_error.is_not(None)).limit(10))
    return {"held": uow.session.exec(open_).one(),
            "failing": [{"id": f"ghreq-{r.seq}", "run_url": r.run_url, "attempts": r.attempts,
                         "error": r.last_error} for r in failing]}


def mirror_failures(uow: UnitOfWork, consumer: str, limit: int = 10) -> list[dict]:
    """Deploy events GitHub has not taken yet (being retried) or failed for good, newest first."""
    unsettled = or_(OutboxDelivery.result.like("retry %"), OutboxDelivery.result.like("failed%"))
    stmt = (select(OutboxDelivery).where(OutboxDelivery.consumer == consumer, unsettled)
            .order_by(OutboxDelivery.audit_seq.desc()).limit(limit))
    return [{"audit_seq": r.audit_seq, "result": r.result} for r in uow.session.exec(stmt)]


def pipelines_awaiting(uow: UnitOfWork) -> list[str]:
    """Pipelines with an undecided request (a start-up sweep: decisions made while the server was down)."""
    stmt = select(DeploymentRequest.pipeline_id).where(DeploymentRequest.answer.is_(None)).distinct()
    return list(uow.session.exec(stmt))


