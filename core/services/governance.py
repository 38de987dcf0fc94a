"""V2 governance use cases: persisted settings and governed pipelines (register, activate, pause,
archive, touch, get, list). Runs, sweeps and stats are in ``governance_runs``.

Lock order for every writer: owner row, then governed pipeline row, then run rows. Activation from
``pending`` locks the owner row (created on first use) before counting the owner's active
pipelines, so concurrent activations cannot overshoot the cap; SQLite serialises writers anyway
(``BEGIN IMMEDIATE``), PostgreSQL through ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

import math
import re

from chainpipe.core.clock import iso
from chainpipe.core.errors import CapExceeded, ConfigError, Conflict, InvalidInput, NotFound
from chainpipe.core.machine import PIPELINE_V2, fire
from chainpipe.core.models import GovOwner, GovPipeline, GovRun, Setting
from chainpipe.core.services.governance_enums import (
    GOV_SETTINGS,
    MAX_ACTIVE,
    MAX_PENDING_RUNS,
    PIPELINE_IDLE_MS,
    RUN_STUCK_MS,
)
from chainpipe.core.uow import Actor, UnitOfWork
from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

ENTITY = "gov-pipeline"
LABEL = "governed pipeline"
# Ids end up in audit_events.entity_id (64 characters), so 64 is the limit.
_ID = re.compile(r"^[^\s\x00-\x1f]{1,64}$")


# --- read models -------------------------------------------------------------------------------

def gov_pipeline_view(p: GovPipeline) -> dict:
    return {
        "id": p.id, "owner": p.owner, "name": p.name, "status": p.status,
        "created_at": iso(p.created_at), "updated_at": iso(p.updated_at), "last_touched_at": iso(p.last_touched_at),
        "activated_at": iso(p.activated_at), "archived_at": iso(p.archived_at),
    }


def gov_run_view(r: GovRun) -> dict:
    return {
        "id": r.id, "pipeline_id": r.pipeline_id, "trigger": r.trigger, "status": r.status, "reason": r.reason,
        "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
        "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
    }


# --- shared helpers ----------------------------------------------------------------------------

def check_id(kind: str, value: str) -> str:
    value = (value or "").strip()
    if not _ID.match(value):
        raise InvalidInput(f"{kind} must be 1-64 characters without spaces, got {value!r}")
    return value


def check_status(machine, status: str | None) -> str | None:
    if status is not None and status not in machine.states:
        raise InvalidInput(f"unknown {machine.noun} status: {status}; allowed: {', '.join(machine.states)}")
    return status


def get_gov_pipeline(uow: UnitOfWork, pipeline_id: str, *, lock: bool = False) -> GovPipeline:
    stmt = select(GovPipeline).where(GovPipeline.id == pipeline_id)
    if lock:  # populate_existing: a row read earlier in this unit of work is re-read under the lock
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = uow.session.exec(stmt).first()
    if row is None:
        raise NotFound(f"governed pipeline not found: {pipeline_id}; see `pipe list-pipelines-v2`")
    return row


def _insert(uow: UnitOfWork, table):
    return (postgresql if uow.dialect == "postgresql" else sqlite).insert(table)


def lock_owner(uow: UnitOfWork, owner: str) -> None:
    """Create the owner's row if missing, then lock it: concurrent activations queue up here."""
    uow.session.connection().execute(_insert(uow, GovOwner).values(owner=owner).on_conflict_do_nothing())
    uow.session.exec(select(GovOwner).where(GovOwner.owner == owner).with_for_update()).one()


def count_status(uow: UnitOfWork, model, column, value: str, statuses: tuple[str, ...]) -> int:
    stmt = select(func.count()).select_from(model).where(column == value, model.status.in_(statuses))
    return uow.session.exec(stmt).one()


def read_settings(uow: UnitOfWork) -> dict[str, int]:
    stored = {s.key: s.value for s in uow.session.exec(select(Setting).where(Setting.key.like("gov.%")))}
    values = {}
    for spec in GOV_SETTINGS:
        raw = stored.get(spec.key)
        try:
            values[spec.name] = spec.default if raw is None else int(raw)
        except ValueError:
            raise ConfigError(f"stored setting {spec.key} is not a whole number ({raw!r}); "
                              f"reset it with `pipe set-{spec.name.replace('_', '-')}-v2 VALUE`") from None
    return values


# --- settings ----------------------------------------------------------------------------------

def show_config_v2(uow: UnitOfWork, actor: Actor) -> dict:
    return read_settings(uow)


def parse_positive(spec, value) -> int:
    """Accept a positive number; decimals are floored. Refuse text, NaN, infinities, < 1, > maximum."""
    label = spec.name.replace("_", " ")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{label} must be a positive number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{label} must be a positive number, got {value!r}")
    whole = math.floor(number)
    if whole < 1:
        raise InvalidInput(f"{label} must be at least 1 (decimals are floored), got {value!r}")
    if whole > spec.maximum:
        raise InvalidInput(f"{label} must be at most {spec.maximum}, got {value!r}")
    return whole


def _set(uow: UnitOfWork, actor: Actor, spec, value) -> dict:
    new = parse_positive(spec, value)
    old = read_settings(uow)[spec.name]
    stmt = _insert(uow, Setting).values(key=spec.key, value=str(new))
    uow.session.connection().execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": str(new)}))
    uow.audit(actor, "gov-setting", spec.key, "set", from_state=str(old), to_state=str(new),
              data={"setting": spec.name, "given": str(value)})
    uow.commit()
    return {"setting": spec.name, "value": new, "previous": old}


def set_max_active_pipelines_v2(uow: UnitOfWork, actor: Actor, value: str) -> dict:
    return _set(uow, actor, MAX_ACTIVE, value)


def set_max_pending_runs_v2(uow: UnitOfWork, actor: Actor, value: str) -> dict:
    return _set(uow, actor, MAX_PENDING_RUNS, value)


def set_pipeline_idle_ms_v2(uow: UnitOfWork, actor: Actor, value: str) -> dict:
    return _set(uow, actor, PIPELINE_IDLE_MS, value)


def set_run_stuck_ms_v2(uow: UnitOfWork, actor: Actor, value: str) -> dict:
    return _set(uow, actor, RUN_STUCK_MS, value)


# --- governed pipelines ------------------------------------------------------------------------

def register_pipeline_v2(uow: UnitOfWork, actor: Actor, pipeline_id: str, owner: str, name: str | None = None) -> dict:
    pipeline_id = check_id("a governed pipeline id", pipeline_id)
    owner = (owner or "").strip()
    if not owner or len(owner) > 200 or any(c.isspace() for c in owner):
        raise InvalidInput(f"an owner must be 1-200 characters without spaces, got {owner!r}")
    name = (name or "").strip() or pipeline_id  # a governed pipeline is called by its id unless named
    if len(name) > 200:
        raise InvalidInput("a governed pipeline name is at most 200 characters")
    existing = uow.session.exec(select(GovPipeline).where(GovPipeline.id == pipeline_id)).first()
    if existing is not None:
        raise Conflict(f"governed pipeline {pipeline_id} already exists (owner {existing.owner}, {existing.status})")
    now = uow.now()
    pipeline = GovPipeline(id=pipeline_id, owner=owner, name=name, status=PIPELINE_V2.initial,
                           created_at=now, updated_at=now, last_touched_at=now)
    uow.add(pipeline)
    try:
        uow.session.flush()
    except IntegrityError:  # registered by someone else between our check and our insert
        raise Conflict(f"governed pipeline {pipeline_id} already exists") from None
    uow.audit(actor, ENTITY, pipeline_id, "register", to_state=pipeline.status,
              data={"owner": owner, "name": name})
    view = gov_pipeline_view(pipeline)
    uow.commit()
    return view


def _move(uow: UnitOfWork, actor: Actor, pipeline: GovPipeline, trigger: str, reason: str | None = None) -> dict:
    before, after = fire(PIPELINE_V2, pipeline, trigger, label=f"{LABEL} {pipeline.id}")
    pipeline.updated_at = pipeline.last_touched_at = uow.now()
    if after == "active" and pipeline.activated_at is None:
        pipeline.activated_at = pipeline.updated_at  # the first activation; pause and resume keep it
    if after == "archived":
        pipeline.archived_at = pipeline.updated_at
    uow.audit(actor, ENTITY, pipeline.id, trigger, from_state=before, to_state=after, reason=reason)
    view = gov_pipeline_view(pipeline)
    uow.commit()
    return view


def activate_pipeline_v2(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    owner = get_gov_pipeline(uow, pipeline_id).owner
    lock_owner(uow, owner)
    pipeline = get_gov_pipeline(uow, pipeline_id, lock=True)
    if pipeline.status == "pending":  # recovery from paused is exempt from the owner cap
        cap = read_settings(uow)[MAX_ACTIVE.name]
        active = count_status(uow, GovPipeline, GovPipeline.owner, owner, ("active",))
        if active >= cap:
            raise CapExceeded(f"active pipeline cap reached for owner {owner} ({active}/{cap}); "
                              "archive or pause one first")
    return _move(uow, actor, pipeline, "activate")


def pause_pipeline_v2(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    return _move(uow, actor, get_gov_pipeline(uow, pipeline_id, lock=True), "pause")


def archive_pipeline_v2(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    return _move(uow, actor, get_gov_pipeline(uow, pipeline_id, lock=True), "archive")


def touch_pipeline_v2(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    """Record activity: resets the idle clock. The status does not change; archived is refused."""
    pipeline = get_gov_pipeline(uow, pipeline_id, lock=True)
    fire(PIPELINE_V2, pipeline, "touch", label=f"{LABEL} {pipeline.id}")
    before = pipeline.last_touched_at
    pipeline.updated_at = pipeline.last_touched_at = uow.now()
    uow.audit(actor, ENTITY, pipeline.id, "touch", from_state=pipeline.status, to_state=pipeline.status,
              data={"previous_touch": iso(before)})
    view = gov_pipeline_view(pipeline)
    uow.commit()
    return view


def get_pipeline_v2(uow: UnitOfWork, actor: Actor, pipeline_id: str) -> dict:
    from chainpipe.core.machine import RUN_V2

    pipeline = get_gov_pipeline(uow, pipeline_id)
    counts = dict.fromkeys(RUN_V2.states, 0)
    stmt = (select(GovRun.status, func.count()).where(GovRun.pipeline_id == pipeline_id)
            .group_by(GovRun.status))
    counts.update({status: n for status, n in uow.session.exec(stmt)})
    return gov_pipeline_view(pipeline) | {"runs": counts}


def list_pipelines_v2(uow: UnitOfWork, actor: Actor, owner: str | None = None, status: str | None = None) -> list:
    stmt = select(GovPipeline)
    if owner:
        stmt = stmt.where(GovPipeline.owner == owner)
    if check_status(PIPELINE_V2, status):
        stmt = stmt.where(GovPipeline.status == status)
    return [gov_pipeline_view(p) for p in uow.session.exec(stmt.order_by(GovPipeline.seq.desc()))]
