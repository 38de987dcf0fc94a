"""V2 governance use cases against a real database (SQLite, and PostgreSQL when configured):
caps at their boundaries, sweeps around their thresholds, setters, audit records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from chainpipe.core.clock import iso
from chainpipe.core.errors import CapExceeded, ConfigError, Conflict, InvalidInput, InvalidTransition, NotFound
from chainpipe.core.models import AuditEvent, GovPipeline, GovRun
from chainpipe.core.services import governance as gov
from chainpipe.core.services import governance_runs as runs
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select


@pytest.fixture
def make(run, alice):
    """Register governed pipelines of an owner, optionally activated: ``make("alice", 3, active=True)``."""
    def _make(owner: str, count: int, *, active: bool = False, prefix: str | None = None) -> list[str]:
        ids = [f"{prefix or owner}-{i}" for i in range(count)]
        for pid in ids:
            run(gov.register_pipeline_v2, alice, pipeline_id=pid, owner=owner)
            if active:
                run(gov.activate_pipeline_v2, alice, pipeline_id=pid)
        return ids
    return _make


def audit_rows(settings, entity_id: str) -> list[AuditEvent]:
    with UnitOfWork(settings, write=False) as uow:
        stmt = select(AuditEvent).where(AuditEvent.entity_id == entity_id).order_by(AuditEvent.seq)
        rows = list(uow.session.exec(stmt))
        uow.session.expunge_all()  # plain detached copies, readable after the unit of work closes
        return rows


def status_of(settings, model, row_id: str) -> str:
    with UnitOfWork(settings, write=False) as uow:
        return uow.session.exec(select(model.status).where(model.id == row_id)).one()


# --- registration and transitions ----------------------------------------------------------------

def test_register_starts_pending_and_persists_aware_utc_times(run, alice, settings, clock):
    view = run(gov.register_pipeline_v2, alice, pipeline_id="web:deploy", owner="alice", name="web deploys")
    assert view["status"] == "pending" and view["owner"] == "alice" and view["name"] == "web deploys"
    assert view["created_at"] == view["last_touched_at"] == iso(clock())
    with UnitOfWork(settings, write=False) as uow:
        created = uow.session.exec(select(GovPipeline.created_at).where(GovPipeline.id == "web:deploy")).one()
    assert created.utcoffset() == timedelta(0) and created == clock()


def test_duplicate_and_malformed_ids_are_refused(run, alice, make):
    make("alice", 1)
    with pytest.raises(Conflict, match="governed pipeline alice-0 already exists"):
        run(gov.register_pipeline_v2, alice, pipeline_id="alice-0", owner="bob")
    for bad in ("", "has space", "x" * 65):
        with pytest.raises(InvalidInput):
            run(gov.register_pipeline_v2, alice, pipeline_id=bad, owner="alice")
    with pytest.raises(InvalidInput, match="owner"):
        run(gov.register_pipeline_v2, alice, pipeline_id="ok", owner=" ")


def test_unknown_ids_are_not_found(run, alice):
    with pytest.raises(NotFound, match="governed pipeline not found: nope"):
        run(gov.activate_pipeline_v2, alice, pipeline_id="nope")
    with pytest.raises(NotFound, match="run not found: r-x"):
        run(runs.start_run_v2, alice, run_id="r-x")
    with pytest.raises(NotFound):
        run(runs.create_run_v2, alice, run_id="r-1", pipeline_id="nope")


def test_lifecycle_writes_one_audit_record_per_change(run, alice, settings):
    run(gov.register_pipeline_v2, alice, pipeline_id="p", owner="alice")
    run(gov.activate_pipeline_v2, alice, pipeline_id="p")
    run(gov.pause_pipeline_v2, alice, pipeline_id="p")
    run(gov.activate_pipeline_v2, alice, pipeline_id="p")
    run(gov.touch_pipeline_v2, alice, pipeline_id="p")
    run(gov.archive_pipeline_v2, alice, pipeline_id="p")
    trail = [(a.entity, a.action, a.from_state, a.to_state, a.actor) for a in audit_rows(settings, "p")]
    assert trail == [
        ("gov-pipeline", "register", None, "pending", "alice"),
        ("gov-pipeline", "activate", "pending", "active", "alice"),
        ("gov-pipeline", "pause", "active", "paused", "alice"),
        ("gov-pipeline", "activate", "paused", "active", "alice"),
        ("gov-pipeline", "touch", "active", "active", "alice"),
        ("gov-pipeline", "archive", "active", "archived", "alice"),
    ]
    with pytest.raises(InvalidTransition, match="can't activate a governed pipeline p that is archived"):
        run(gov.activate_pipeline_v2, alice, pipeline_id="p")
    with pytest.raises(InvalidTransition, match="can't touch a governed pipeline p that is archived"):
        run(gov.touch_pipeline_v2, alice, pipeline_id="p")
    assert len(audit_rows(settings, "p")) == 6  # refusals write nothing


def test_run_lifecycle_and_reasons_are_recorded(run, alice, settings, make):
    (pid,) = make("alice", 1, active=True)
    assert run(runs.create_run_v2, alice, run_id="r1", pipeline_id=pid, trigger="push")["status"] == "queued"
    assert run(runs.start_run_v2, alice, run_id="r1")["started_at"] is not None
    failed = run(runs.fail_run_v2, alice, run_id="r1", reason="flaky runner")
    assert (failed["status"], failed["reason"]) == ("failed", "flaky runner") and failed["finished_at"]
    run(runs.create_run_v2, alice, run_id="r2", pipeline_id=pid)
    assert run(runs.cancel_run_v2, alice, run_id="r2")["status"] == "cancelled"
    with pytest.raises(InvalidTransition, match="can't complete a run r2 that is cancelled; allowed from: running"):
        run(runs.complete_run_v2, alice, run_id="r2")
    with pytest.raises(Conflict, match="run r1 already exists"):
        run(runs.create_run_v2, alice, run_id="r1", pipeline_id=pid)
    trail = [(a.entity, a.action, a.from_state, a.to_state, a.reason) for a in audit_rows(settings, "r1")]
    assert trail == [("gov-run", "create", None, "queued", None), ("gov-run", "start", "queued", "running", None),
                     ("gov-run", "fail", "running", "failed", "flaky runner")]


def test_runs_are_created_and_started_only_on_active_pipelines(run, alice, make):
    (pid,) = make("alice", 1)
    with pytest.raises(InvalidTransition, match=f"governed pipeline {pid} that is pending; .* activate it first"):
        run(runs.create_run_v2, alice, run_id="r1", pipeline_id=pid)
    run(gov.activate_pipeline_v2, alice, pipeline_id=pid)
    run(runs.create_run_v2, alice, run_id="r1", pipeline_id=pid)
    run(gov.pause_pipeline_v2, alice, pipeline_id=pid)
    with pytest.raises(InvalidTransition, match=f"can't create or start a run of a governed pipeline {pid} that is "
                                                 f"paused; allowed from: active; activate it first: "
                                                 f"pipe activate-pipeline-v2 {pid}"):
        run(runs.start_run_v2, alice, run_id="r1")
    assert run(runs.cancel_run_v2, alice, run_id="r1", reason="paused")["status"] == "cancelled"


# --- caps ----------------------------------------------------------------------------------------

def test_default_owner_cap_is_ten_and_the_eleventh_activation_is_refused(run, alice, settings, make):
    ids = make("alice", 11)
    for pid in ids[:10]:
        run(gov.activate_pipeline_v2, alice, pipeline_id=pid)
    with pytest.raises(CapExceeded) as err:
        run(gov.activate_pipeline_v2, alice, pipeline_id=ids[10])
    assert str(err.value) == "active pipeline cap reached for owner alice (10/10); archive or pause one first"
    assert status_of(settings, GovPipeline, ids[10]) == "pending"
    assert [a.action for a in audit_rows(settings, ids[10])] == ["register"]
    make("bob", 1, active=True)  # the cap is per owner


def test_recovery_from_paused_is_exempt_and_archiving_frees_a_slot(run, alice, make):
    run(gov.set_max_active_pipelines_v2, alice, value="2")
    a, b, c, d = make("alice", 4)
    run(gov.activate_pipeline_v2, alice, pipeline_id=a)
    run(gov.activate_pipeline_v2, alice, pipeline_id=b)  # exactly at the cap: allowed
    with pytest.raises(CapExceeded, match=r"\(2/2\)"):
        run(gov.activate_pipeline_v2, alice, pipeline_id=c)
    run(gov.pause_pipeline_v2, alice, pipeline_id=a)
    run(gov.activate_pipeline_v2, alice, pipeline_id=c)  # the pause freed a slot
    assert run(gov.activate_pipeline_v2, alice, pipeline_id=a)["status"] == "active"  # recovery: exempt
    assert run(runs.gov_stats_v2, alice, owner="alice")["owner"] == {
        "name": "alice", "active": 3, "max_active": 2, "remaining": 0}
    with pytest.raises(CapExceeded, match=r"\(3/2\)"):
        run(gov.activate_pipeline_v2, alice, pipeline_id=d)
    run(gov.archive_pipeline_v2, alice, pipeline_id=a)
    run(gov.archive_pipeline_v2, alice, pipeline_id=b)
    assert run(gov.activate_pipeline_v2, alice, pipeline_id=d)["status"] == "active"


def test_run_cap_counts_queued_and_running_and_terminal_runs_free_their_slot(run, alice, make):
    run(gov.set_max_pending_runs_v2, alice, value="3")
    (pid,) = make("alice", 1, active=True)
    for i in range(3):
        run(runs.create_run_v2, alice, run_id=f"r{i}", pipeline_id=pid)
    run(runs.start_run_v2, alice, run_id="r0")  # running still holds its slot
    with pytest.raises(CapExceeded) as err:
        run(runs.create_run_v2, alice, run_id="r3", pipeline_id=pid)
    assert str(err.value) == (f"pending run cap reached for pipeline {pid} (3/3); "
                              "complete, fail or cancel a queued or running run first")
    for i, finish in enumerate((lambda: run(runs.complete_run_v2, alice, run_id="r0"),
                                lambda: run(runs.cancel_run_v2, alice, run_id="r1"),
                                lambda: (run(runs.start_run_v2, alice, run_id="r2"),
                                         run(runs.fail_run_v2, alice, run_id="r2")))):
        finish()
        run(runs.create_run_v2, alice, run_id=f"n{i}", pipeline_id=pid)
    with pytest.raises(CapExceeded):
        run(runs.create_run_v2, alice, run_id="n3", pipeline_id=pid)


# --- settings ------------------------------------------------------------------------------------

def test_setters_refuse_non_positive_non_numeric_and_huge_values(run, alice, settings):
    for bad in ("abc", "", "0", "-1", "0.99", "nan", "inf", "-inf", "1e7", "2,5"):
        with pytest.raises(InvalidInput, match="max active pipelines per owner must be"):
            run(gov.set_max_active_pipelines_v2, alice, value=bad)
    with pytest.raises(InvalidInput, match="run stuck ms must be a positive number, got 'soon'"):
        run(gov.set_run_stuck_ms_v2, alice, value="soon")
    assert run(gov.show_config_v2, alice)["max_active_pipelines_per_owner"] == 10
    assert audit_rows(settings, "gov.max_active_pipelines_per_owner") == []


def test_setters_floor_decimals_persist_and_are_audited(run, alice, settings):
    assert run(gov.set_max_active_pipelines_v2, alice, value="2.9") == {
        "setting": "max_active_pipelines_per_owner", "value": 2, "previous": 10}
    run(gov.set_max_pending_runs_v2, alice, value="7")
    run(gov.set_pipeline_idle_ms_v2, alice, value="1000.5")
    run(gov.set_run_stuck_ms_v2, alice, value="60000")
    run(gov.set_run_stuck_ms_v2, alice, value="30000")
    assert run(gov.show_config_v2, alice) == {"max_active_pipelines_per_owner": 2, "max_pending_runs_per_pipeline": 7,
                                              "pipeline_idle_ms": 1000, "run_stuck_ms": 30000}
    trail = [(a.entity, a.from_state, a.to_state) for a in audit_rows(settings, "gov.run_stuck_ms")]
    assert trail == [("gov-setting", "600000", "60000"), ("gov-setting", "60000", "30000")]


def test_a_corrupt_stored_setting_is_a_config_error(run, alice, settings):
    from chainpipe.core.models import Setting

    with UnitOfWork(settings) as uow:
        uow.add(Setting(key="gov.run_stuck_ms", value="ten"))
        uow.commit()
    with pytest.raises(ConfigError, match="set-run-stuck-ms-v2"):
        run(gov.show_config_v2, alice)


# --- sweeps --------------------------------------------------------------------------------------

def test_auto_pause_idle_is_inclusive_at_the_threshold(run, alice, settings, clock, make):
    t0 = clock()
    clock.advance(milliseconds=-1)
    (above,) = make("alice", 1, active=True, prefix="above")  # touched 1 ms before t0
    clock.advance(milliseconds=1)
    (at,) = make("alice", 1, active=True, prefix="at")  # touched at t0
    clock.advance(milliseconds=1)
    (below,) = make("alice", 1, active=True, prefix="below")  # touched 1 ms after t0
    make("alice", 1, prefix="pending")  # never active: never auto-paused
    sweep_at = iso(t0 + timedelta(days=3))
    result = run(runs.auto_pause_idle_v2, alice, now=sweep_at)
    assert [p["id"] for p in result["paused"]] == [above, at]
    assert result["count"] == 2 and result["threshold_ms"] == 3 * 86_400_000 and result["now"] == sweep_at
    assert status_of(settings, GovPipeline, below) == "active"
    last = audit_rows(settings, at)[-1]
    assert (last.action, last.from_state, last.to_state, last.reason) == ("pause", "active", "paused",
                                                                          "auto-pause-idle")
    assert run(runs.auto_pause_idle_v2, alice, now=sweep_at)["count"] == 0  # idempotent
    later = run(runs.auto_pause_idle_v2, alice, now=iso(t0 + timedelta(days=3, milliseconds=1)))
    assert [p["id"] for p in later["paused"]] == [below]


def test_touch_and_new_runs_reset_the_idle_clock(run, alice, clock, make):
    a, b = make("alice", 2, active=True)
    clock.advance(days=2)
    run(gov.touch_pipeline_v2, alice, pipeline_id=a)
    run(runs.create_run_v2, alice, run_id="r1", pipeline_id=b)
    clock.advance(days=1)
    assert run(runs.auto_pause_idle_v2, alice)["count"] == 0  # uses the clock when --now is absent
    clock.advance(days=2)
    assert run(runs.auto_pause_idle_v2, alice)["count"] == 2


def test_auto_fail_stuck_is_inclusive_and_uses_the_configured_threshold(run, alice, settings, clock, make):
    (pid,) = make("alice", 1, active=True)
    for name in ("above", "at", "below"):
        run(runs.create_run_v2, alice, run_id=name, pipeline_id=pid)
    run(runs.create_run_v2, alice, run_id="queued", pipeline_id=pid)  # not running: never auto-failed
    t0 = clock()
    clock.advance(milliseconds=-1)
    run(runs.start_run_v2, alice, run_id="above")
    clock.advance(milliseconds=1)
    run(runs.start_run_v2, alice, run_id="at")
    clock.advance(milliseconds=1)
    run(runs.start_run_v2, alice, run_id="below")
    result = run(runs.auto_fail_stuck_v2, alice, now=iso(t0 + timedelta(minutes=10)))
    assert [(r["id"], r["status"], r["reason"]) for r in result["failed"]] == [
        ("above", "failed", "auto-fail-stuck"), ("at", "failed", "auto-fail-stuck")]
    assert status_of(settings, GovRun, "below") == "running"
    assert status_of(settings, GovRun, "queued") == "queued"
    assert audit_rows(settings, "at")[-1].reason == "auto-fail-stuck"
    run(gov.set_run_stuck_ms_v2, alice, value="1000")
    result = run(runs.auto_fail_stuck_v2, alice, now=iso(t0 + timedelta(milliseconds=1000)))
    assert [r["id"] for r in result["failed"]] == []  # "below" started at t0+1ms: 999 ms, just under
    result = run(runs.auto_fail_stuck_v2, alice, now=iso(t0 + timedelta(milliseconds=1001)))
    assert [r["id"] for r in result["failed"]] == ["below"]


def test_sweeps_refuse_a_malformed_now(run, alice):
    with pytest.raises(InvalidInput, match="not an ISO-8601 time: yesterday"):
        run(runs.auto_fail_stuck_v2, alice, now="yesterday")


# --- queries -------------------------------------------------------------------------------------

def test_stats_are_zero_filled_and_filter_by_owner(run, alice, make):
    empty = run(runs.gov_stats_v2, alice)
    assert empty["pipelines"] == {"pending": 0, "active": 0, "paused": 0, "archived": 0, "total": 0}
    assert empty["runs"] == {"queued": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    assert empty["caps"] == {"max_active_pipelines_per_owner": 10, "max_pending_runs_per_pipeline": 20}
    assert "owner" not in empty
    (a,) = make("alice", 1, active=True)
    make("bob", 2)
    run(runs.create_run_v2, alice, run_id="r1", pipeline_id=a)
    stats = run(runs.gov_stats_v2, alice)
    assert stats["pipelines"]["active"] == 1 and stats["pipelines"]["pending"] == 2
    bob = run(runs.gov_stats_v2, alice, owner="bob")
    assert bob["pipelines"]["pending"] == 2 and bob["runs"]["total"] == 0
    assert bob["owner"] == {"name": "bob", "active": 0, "max_active": 10, "remaining": 10}


def test_lists_filter_and_validate(run, alice, make):
    make("alice", 2, active=True)
    make("bob", 1)
    assert [p["id"] for p in run(gov.list_pipelines_v2, alice, owner="alice")] == ["alice-1", "alice-0"]
    assert [p["id"] for p in run(gov.list_pipelines_v2, alice, status="pending")] == ["bob-0"]
    with pytest.raises(InvalidInput, match="unknown governed pipeline status: done"):
        run(gov.list_pipelines_v2, alice, status="done")
    run(runs.create_run_v2, alice, run_id="r1", pipeline_id="alice-0")
    run(runs.create_run_v2, alice, run_id="r2", pipeline_id="alice-1")
    assert [r["id"] for r in run(runs.list_runs_v2, alice, pipeline="alice-0")] == ["r1"]
    assert [r["id"] for r in run(runs.list_runs_v2, alice, status="queued")] == ["r2", "r1"]
    with pytest.raises(NotFound):
        run(runs.list_runs_v2, alice, pipeline="missing")
    assert run(gov.get_pipeline_v2, alice, pipeline_id="alice-0")["runs"]["queued"] == 1


def test_activation_and_archive_times_and_defaults_are_recorded(run, alice, clock):
    registered = run(gov.register_pipeline_v2, alice, pipeline_id="web", owner="alice")
    assert registered["name"] == "web" and registered["activated_at"] is None
    first = run(gov.activate_pipeline_v2, alice, pipeline_id="web")["activated_at"]
    clock.advance(hours=1)
    run(gov.pause_pipeline_v2, alice, pipeline_id="web")
    resumed = run(gov.activate_pipeline_v2, alice, pipeline_id="web")
    assert first is not None and resumed["activated_at"] == first and resumed["archived_at"] is None
    assert run(runs.create_run_v2, alice, run_id="r", pipeline_id="web")["trigger"] == "manual"
    clock.advance(hours=1)
    archived = run(gov.archive_pipeline_v2, alice, pipeline_id="web")
    assert archived["archived_at"] == iso(clock()) and archived["activated_at"] == first
