"""V2 governance use cases for runs, the two sweeps and the statistics.

Runs are created and started only while their governed pipeline is ``active``; both count as
activity and reset the pipeline's idle clock. Finishing a run (complete, fail, cancel) is allowed
whatever the pipeline's status, so work in flight can always drain.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chainpipe.core.clock import iso, parse_iso
from chainpipe.core.errors import CapExceeded, Conflict, InvalidInput, NotFound
from chainpipe.core.machine import PIPELINE_V2, RUN_V2, fire
from chainpipe.core.models import GovPipeline, GovRun
from chainpipe.core.services.governance import (
    check_id,
    check_status,
    count_status,
    get_gov_pipeline,
    gov_pipeline_view,
    gov_run_view,
    read_settings,
)
from chainpipe.core.services.governance_enums import (
    AUTO_FAIL_REASON,
    AUTO_PAUSE_REASON,
    MAX_ACTIVE,
    MAX_PENDING_RUNS,
    PIPELINE_IDLE_MS,
    RUN_STUCK_MS,
)
from chainpipe.core.uow import Actor, UnitOfWork
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

ENTITY = "gov-run"
OPEN = ("queued", "running")  # the statuses that hold a slot under the per-pipeline cap


def get_gov_run(uow: UnitOfWork, run_id: str, *, lock: bool = False) -> GovRun:
    stmt = select(GovRun).where(GovRun.id == run_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = uow.session.exec(stmt).first()
    if row is None:
        raise NotFound(f"run not found: {run_id}; see `pipe list-runs-v2`")
    return row


def _require_active(pipeline: GovPipeline) -> None:
    fire(PIPELINE_V2, pipeline, "run", label=f"governed pipeline {pipeline.id}")


def create_run_v2(uow: UnitOfWork, actor: Actor, run_id: str, pipeline_id: str, trigger: str | None = None) -> dict:
    run_id = check_id("a run id", run_id)
    trigger = (trigger or "").strip() or "manual"
    if len(trigger) > 200:
        raise InvalidInput("a run trigger is at most 200 characters")
    if uow.session.exec(select(GovRun.id).where(GovRun.id == run_id)).first() is not None:
        raise Conflict(f"run {run_id} already exists; pick another run id")
    pipeline = get_gov_pipeline(uow, pipeline_id, lock=True)
    _require_active(pipeline)
    cap = read_settings(uow)[MAX_PENDING_RUNS.name]
    open_runs = count_status(uow, GovRun, GovRun.pipeline_id, pipeline.id, OPEN)
    if open_runs >= cap:
        raise CapExceeded(f"pending run cap reached for pipeline {pipeline.id} ({open_runs}/{cap}); "
                          "complete, fail or cancel a queued or running run first")
    now = uow.now()
    run = GovRun(id=run_id, pipeline_id=pipeline.id, trigger=trigger, status=RUN_V2.initial,
                 created_at=now, updated_at=now)
    uow.add(run)
    try:
        uow.session.flush()
    except IntegrityError:  # created by someone else between our check and our insert
        raise Conflict(f"run {run_id} already exists; pick another run id") from None
    pipeline.last_touched_at = now
    uow.audit(actor, ENTITY, run.id, "create", to_state=run.status,
              data={"pipeline": pipeline.id, "trigger": trigger})
    view = gov_run_view(run)
    uow.commit()
    return view


def _finish(uow: UnitOfWork, actor: Actor, run_id: str, trigger: str, reason: str | None = None) -> dict:
    run = get_gov_run(uow, run_id, lock=True)
    reason = (reason or "").strip() or None
    before, after = fire(RUN_V2, run, trigger, label=f"run {run.id}")
    run.updated_at = run.finished_at = uow.now()
    run.reason = reason
    uow.audit(actor, ENTITY, run.id, trigger, from_state=before, to_state=after, reason=reason,
              data={"pipeline": run.pipeline_id})
    view = gov_run_view(run)
    uow.commit()
    return view


def start_run_v2(uow: UnitOfWork, actor: Actor, run_id: str) -> dict:
    pipeline_id = get_gov_run(uow, run_id).pipeline_id
    pipeline = get_gov_pipeline(uow, pipeline_id, lock=True)  # one lock order: pipeline, then run
    run = get_gov_run(uow, run_id, lock=True)
    if RUN_V2.target(run.status, "start") is not None:
        _require_active(pipeline)
    before, after = fire(RUN_V2, run, "start", label=f"run {run.id}")
    now = uow.now()
    run.updated_at = run.started_at = pipeline.last_touched_at = now
    uow.audit(actor, ENTITY, run.id, "start", from_state=before, to_state=after, data={"pipeline": pipeline.id})
    view = gov_run_view(run)
    uow.commit()
    return view


def complete_run_v2(uow: UnitOfWork, actor: Actor, run_id: str) -> dict:
    return _finish(uow, actor, run_id, "complete")


def fail_run_v2(uow: UnitOfWork, actor: Actor, run_id: str, reason: str | None = None) -> dict:
    return _finish(uow, actor, run_id, "fail", reason)


def cancel_run_v2(uow: UnitOfWork, actor: Actor, run_id: str, reason: str | None = None) -> dict:
    return _finish(uow, actor, run_id, "cancel", reason)


def get_run_v2(uow: UnitOfWork, actor: Actor, run_id: str) -> dict:
    return gov_run_view(get_gov_run(uow, run_id))


def list_runs_v2(uow: UnitOfWork, actor: Actor, pipeline: str | None = None, status: str | None = None) -> list:
    stmt = select(GovRun)
    if pipeline:
        get_gov_pipeline(uow, pipeline)
        stmt = stmt.where(GovRun.pipeline_id == pipeline)
    if check_status(RUN_V2, status):
        stmt = stmt.where(GovRun.status == status)
    return [gov_run_view(r) for r in uow.session.exec(stmt.order_by(GovRun.seq.desc()))]


# --- sweeps ------------------------------------------------------------------------------------

def _sweep_time(uow: UnitOfWork, now: str | None, threshold_ms: int) -> tuple[datetime, datetime]:
    moment = parse_iso(now) if now else uow.now()
    return moment, moment - timedelta(milliseconds=threshold_ms)


def auto_pause_idle_v2(uow: UnitOfWork, actor: Actor, now: str | None = None) -> dict:
    """Pause every active pipeline untouched for at least the idle threshold (inclusive)."""
    threshold = read_settings(uow)[PIPELINE_IDLE_MS.name]
    moment, cutoff = _sweep_time(uow, now, threshold)
    stmt = (select(GovPipeline).where(GovPipeline.status == "active", GovPipeline.last_touched_at <= cutoff)
            .order_by(GovPipeline.seq).with_for_update().execution_options(populate_existing=True))
    paused = []
    for pipeline in uow.session.exec(stmt).all():
        before, after = fire(PIPELINE_V2, pipeline, "pause")
        pipeline.updated_at = moment  # last_touched_at keeps the time of the last real activity
        uow.audit(actor, "gov-pipeline", pipeline.id, "pause", from_state=before, to_state=after,
                  reason=AUTO_PAUSE_REASON, data={"last_touched_at": iso(pipeline.last_touched_at)})
        paused.append(gov_pipeline_view(pipeline))
    uow.commit()
    return {"now": iso(moment), "threshold_ms": threshold, "cutoff": iso(cutoff), "count": len(paused),
            "paused": paused}


def auto_fail_stuck_v2(uow: UnitOfWork, actor: Actor, now: str | None = None) -> dict:
    """Fail every run running for at least the stuck threshold (inclusive), reason auto-fail-stuck."""
    threshold = read_settings(uow)[RUN_STUCK_MS.name]
    moment, cutoff = _sweep_time(uow, now, threshold)
    stmt = (select(GovRun).where(GovRun.status == "running", GovRun.started_at <= cutoff)
            .order_by(GovRun.seq).with_for_update().execution_options(populate_existing=True))
    failed = []
    for run in uow.session.exec(stmt).all():
        before, after = fire(RUN_V2, run, "fail")
        run.updated_at = run.finished_at = moment
        run.reason = AUTO_FAIL_REASON
        uow.audit(actor, ENTITY, run.id, "fail", from_state=before, to_state=after, reason=AUTO_FAIL_REASON,
                  data={"pipeline": run.pipeline_id, "started_at": iso(run.started_at)})
        failed.append(gov_run_view(run))
    uow.commit()
    return {"now": iso(moment), "threshold_ms": threshold, "cutoff": iso(cutoff), "count": len(failed),
            "failed": failed}


# --- statistics --------------------------------------------------------------------------------

def gov_stats_v2(uow: UnitOfWork, actor: Actor, owner: str | None = None) -> dict:
    settings = read_settings(uow)
    pipelines = dict.fromkeys(PIPELINE_V2.states, 0)
    runs = dict.fromkeys(RUN_V2.states, 0)
    p_stmt = select(GovPipeline.status, func.count()).group_by(GovPipeline.status)
    r_stmt = select(GovRun.status, func.count()).group_by(GovRun.status)
    if owner:
        p_stmt = p_stmt.where(GovPipeline.owner == owner)
        r_stmt = r_stmt.join(GovPipeline, GovPipeline.id == GovRun.pipeline_id).where(GovPipeline.owner == owner)
    pipelines.update({status: n for status, n in uow.session.exec(p_stmt)})
    runs.update({status: n for status, n in uow.session.exec(r_stmt)})
    result = {
        "pipelines": pipelines | {"total": sum(pipelines.values())},
        "runs": runs | {"total": sum(runs.values())},
        "caps": {k: settings[k] for k in (MAX_ACTIVE.name, MAX_PENDING_RUNS.name)},
        "thresholds": {k: settings[k] for k in (PIPELINE_IDLE_MS.name, RUN_STUCK_MS.name)},
    }
    if owner:
        cap = settings[MAX_ACTIVE.name]
        result["owner"] = {"name": owner, "active": pipelines["active"], "max_active": cap,
                           "remaining": max(cap - pipelines["active"], 0)}
    return result
