"""Several processes record breaching metrics for one deploy at the same instant: exactly one
rollback and one verdict change, whatever the interleaving (SQLite BEGIN IMMEDIATE; PostgreSQL
row lock on the pipeline)."""

from __future__ import annotations

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.models import AuditEvent, VerdictEvent
from chainpipe.core.services.deploys import record_deploy, show_deploy
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select

from tests.service.helpers import at_review_approved, race

pytestmark = pytest.mark.slow  # one spawned process per worker

WORKERS = 4
ROUNDS = 2


def _recorder(env: dict, pid: str, person: str, barrier, out) -> None:
    from chainpipe.core.services.monitoring import record_metric

    settings = load_settings(env)
    results = []
    barrier.wait()
    for i in range(ROUNDS):
        try:
            with UnitOfWork(settings) as uow:
                r = record_metric(uow, Actor(person), pid, metric="error_rate", value=0.5 + i / 10)
            results.append("rollback" if r["rollback"] and r["rollback"]["changed"] else "ok")
        except Exception as exc:  # noqa: BLE001 - reported to the parent test
            results.append(f"{exc.__class__.__name__}: {exc}")
    out.put(results)


def test_concurrent_breaches_roll_the_deploy_back_exactly_once(run, env, config_file, alice):
    config_file("[monitor]\nauto_rollback = true\n")
    run.reload(env)
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")["id"]
    results = [r for batch in race(_recorder, [(env, pid, f"probe{n}") for n in range(WORKERS)]) for r in batch]
    assert sorted(results) == ["ok"] * (WORKERS * ROUNDS - 1) + ["rollback"]
    assert run(show_deploy, alice, dep)["status"] == "rolled-back"
    with UnitOfWork(run.settings, write=False) as uow:
        rollbacks = uow.session.exec(select(AuditEvent).where(
            AuditEvent.entity_id == dep, AuditEvent.action == "rollback")).all()
        verdicts = uow.session.exec(select(VerdictEvent).where(VerdictEvent.deploy_id == dep)).all()
        assert len(rollbacks) == 1
        assert [(v.previous, v.verdict) for v in verdicts] == [("unknown", "unhealthy")]
