"""The aggregates `pipe stats` reads (core/aggregates.py) are kept in the write transactions; after
hundreds of random operations — refused ones included — they equal a full recomputation from the
stored rows, and a database written before they existed gets them from its migration."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta

import pytest
from chainpipe.core import db, migrations
from chainpipe.core.actor import Actor
from chainpipe.core.aggregates import COUNTS, DAYS, FACTS, counted, fill, stored_counts
from chainpipe.core.clock import iso
from chainpipe.core.errors import PipeError
from chainpipe.core.services import artifacts, deploys, gates, monitoring, pipelines
from chainpipe.core.services.audit import verify_audit
from chainpipe.core.services.queries import pipeline_stats
from sqlalchemy import text

from tests.service.helpers import at_review_approved

TARGETS = ("production", "staging", "qa")
DEPLOY_STATUSES = ("pending", "in-progress", "succeeded", "failed")


def facts(conn) -> tuple[list[dict], list[dict]]:
    """The DORA rows: one per deployment, one per day (and target); times rounded to 10 ms."""
    rows = conn.execute(FACTS.select().order_by(FACTS.c.deploy_id)).mappings()
    deployments = [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    days = [dict(r) | {k: [round(v, 2) for v in json.loads(r[k])] for k in ("lead_seconds", "restore_seconds")}
            for r in conn.execute(DAYS.select().order_by(DAYS.c.target, DAYS.c.day)).mappings()]
    return deployments, days


def recomputed(engine) -> tuple[dict, list[dict]]:
    """The aggregates as a full recomputation gives them, computed and thrown away in one transaction."""
    with engine.connect() as conn:
        with conn.begin() as tx:
            fill(conn)
            out = counted(conn), facts(conn)
            tx.rollback()
    return out


def assert_consistent(settings) -> None:
    engine = db.get_engine(settings.database_url)
    with engine.connect() as conn:
        kept = stored_counts(conn), facts(conn)
    assert kept == recomputed(engine)


def figures_from_deployments(settings, start, end, target) -> dict:
    """The DORA figures computed straight from the deployments' rows, for comparison."""
    with db.get_engine(settings.database_url).connect() as conn:
        rows = [r for r in conn.execute(FACTS.select()).mappings()
                if start <= r["out_at"] < end and target in (None, r["target"])]

    def rank(values, p):
        values = sorted(values)
        return round(values[math.ceil(p * len(values) / 100) - 1], 3) if values else None

    leads = [r["lead_seconds"] for r in rows if r["succeeded_at"] is not None]
    restores = [r["restore_seconds"] for r in rows if r["restore_seconds"] is not None]
    failures = sum(1 for r in rows if r["failed_at"] is not None)
    days = (end - start).total_seconds() / 86400
    return {
        "since": iso(start), "until": iso(end), "target": target, "days": round(days, 3),
        "deployment_frequency": {"per_day": round(len(leads) / days, 3), "succeeded_deploys": len(leads)},
        "lead_time": {"median_seconds": rank(leads, 50), "p90_seconds": rank(leads, 90), "deploys": len(leads)},
        "change_failure_rate": {"rate": round(failures / len(rows), 3) if rows else None, "failures": failures,
                                "deployments": len(rows)},
        "time_to_restore": {"median_seconds": rank(restores, 50), "restored": len(restores),
                            "unrestored": failures - len(restores)},
    }


class World:
    """Random operations on a few pipelines ready to deploy and a few others moving through their life."""

    def __init__(self, run, clock, rng):
        self.run, self.clock, self.rng = run, clock, rng
        self.people = [Actor(p) for p in ("alice", "bob", "carol")]
        self.ready = [at_review_approved(run, self.people[0]) for _ in range(3)]
        self.others: list[str] = []
        self.deploys: list[str] = []
        self.refused = 0

    def step(self) -> None:
        self.clock.advance(minutes=self.rng.randint(1, 240))
        op = self.rng.choice([self.deploy, self.deploy, self.update, self.update, self.rollback, self.metric,
                              self.metric, self.lifecycle, self.lifecycle])
        try:
            op()
        except PipeError:
            self.refused += 1

    def call(self, fn, *args, **kwargs):
        return self.run(fn, self.rng.choice(self.people), *args, **kwargs)

    def deploy(self) -> None:
        dep = self.call(deploys.record_deploy, self.rng.choice(self.ready), strategy=self.rng.choice(
            ("canary", "rolling", "blue-green")), target=self.rng.choice(TARGETS),
            status=self.rng.choice(DEPLOY_STATUSES))
        self.deploys.append(dep["id"])

    def update(self) -> None:
        if self.deploys:
            self.call(deploys.update_deploy, self.rng.choice(self.deploys),
                      status=self.rng.choice(("in-progress", "succeeded", "succeeded", "failed")))

    def rollback(self) -> None:
        if self.deploys:
            self.call(deploys.rollback_deploy, self.rng.choice(self.deploys), reason="random")

    def metric(self) -> None:
        """Mostly on a deploy that went out, so verdicts fail deployments (and restorers) too."""
        if not self.deploys or self.rng.random() < 0.2:
            self.call(monitoring.record_metric, self.rng.choice(self.ready), metric="error_rate", value=0.5)
            return
        shown = [self.run(deploys.show_deploy, self.people[0], d) for d in self.deploys]
        out = [d for d in shown if d["status"] in ("succeeded", "rolled-back")] or shown
        dep = self.rng.choice(out)
        self.call(monitoring.record_metric, dep["pipeline_id"], metric="error_rate", deploy=dep["id"],
                  value=self.rng.choice((0.01, 0.07, 0.5, 0.5)))

    def lifecycle(self) -> None:
        if not self.others or self.rng.random() < 0.25:
            template = self.rng.choice(("feature", "bugfix", "security-audit"))
            self.others.append(self.call(pipelines.create_pipeline, name="random", template=template)["id"])
            return
        pid = self.rng.choice(self.others)
        move = self.rng.choice(["start", "pause", "resume", "cancel", "fail", "retry", "stage", "approve", "reject",
                                "artifact", "complete"])
        if move == "stage":
            self.call(pipelines.advance_stage, pid, self.rng.choice(("code", "review", "deploy", "test")))
        elif move in ("approve", "reject"):
            gate = self.rng.choice(("code-review", "security-review"))
            if move == "approve":
                self.call(gates.approve_gate, pid, gate)
            else:
                self.call(gates.reject_gate, pid, gate, reason="no")
        elif move == "artifact":
            self.call(artifacts.add_artifact, pid, name=self.rng.choice(("a", "b")), type="log", uri="s3://x")
        elif move in ("fail", "cancel"):
            self.call(getattr(pipelines, f"{move}_pipeline"), pid, reason="random")
        else:
            self.call(getattr(pipelines, f"{move}_pipeline"), pid)


@pytest.fixture
def world(run, env, config_file, clock):
    # auto_rollback on one target, so rollbacks come from verdicts too
    config_file('[monitor.auto_rollback]\ntargets = ["qa"]\n')
    run.reload(env)
    return World(run, clock, random.Random(20261203))


def test_the_aggregates_equal_a_full_recomputation_after_random_operations(world, settings):
    run = world.run
    for i in range(1, 241):
        world.step()
        if i % 10 == 0:
            assert_consistent(run.settings)
    assert world.refused > 10 and len(world.deploys) > 20  # the random walk reached the interesting paths
    for _ in range(30):  # windows of whole days and partial ones, every target or one
        start = world.clock() - timedelta(minutes=world.rng.randint(0, 30 * 24 * 60))
        end = start + timedelta(minutes=world.rng.randint(1, 12 * 24 * 60))
        target = world.rng.choice((None,) + TARGETS)
        got = run(pipeline_stats, world.people[0], since=start.isoformat(), until=end.isoformat(), target=target)
        assert got["dora"] == figures_from_deployments(settings, start, end, target)
    with db.get_engine(settings.database_url).connect() as conn:
        kinds = conn.execute(text(
            "SELECT COUNT(*), COUNT(failed_at), COUNT(restored_by), COUNT(succeeded_at) FROM dora_deployments")).one()
    assert kinds[1] > 0 and kinds[2] > 0 and kinds[3] > 0, kinds
    assert verify_audit(run.settings, all=True)["ok"]


def test_stats_reads_what_the_history_holds(run, alice, clock):
    pid = at_review_approved(run, alice)
    run(deploys.record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")
    clock.advance(hours=1)
    dep = run(deploys.record_deploy, alice, pid, strategy="shadow", target="production")["id"]
    run(monitoring.record_metric, alice, pid, metric="error_rate", value=0.5)
    run(deploys.rollback_deploy, alice, dep)
    clock.advance(minutes=1)  # the default window ends now, exclusive
    stats = run(pipeline_stats, alice)
    assert stats["pipelines"]["total"] == 1 and stats["pipelines"]["by_status"]["running"] == 1
    assert stats["deploys"]["by_status"] == {"pending": 0, "in-progress": 0, "succeeded": 1, "failed": 0,
                                             "rolled-back": 1}
    assert stats["deploys"]["total"] == 2 and stats["deploys"]["by_strategy"]["shadow"] == 1
    assert stats["monitor_events"] == 1 and stats["artifacts"] == 0
    assert stats["dora"]["change_failure_rate"] == {"rate": 0.5, "failures": 1, "deployments": 2}


def test_an_older_database_gets_its_aggregates_from_the_migration(run, settings, alice, clock):
    pid = at_review_approved(run, alice)
    run(deploys.record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")
    clock.advance(hours=2)
    bad = run(deploys.record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")["id"]
    run(deploys.rollback_deploy, alice, bad)
    clock.advance(hours=1)
    run(deploys.record_deploy, alice, pid, strategy="canary", target="production", status="succeeded")
    before = run(pipeline_stats, alice, since=(clock() - timedelta(days=1)).isoformat())
    engine = db.get_engine(settings.database_url)
    with engine.begin() as conn:  # as a release before the aggregates left it
        conn.execute(text("DROP TABLE dora_days"))
        conn.execute(text("DROP TABLE dora_deployments"))
        conn.execute(text("DROP TABLE stat_counts"))
        conn.execute(text("UPDATE schema_version SET version = :v"),
                     {"v": db.MIGRATIONS.index(migrations.stats_aggregates)})
    db.dispose_engines()
    db.get_engine(settings.database_url, upgrade=True)
    assert run(pipeline_stats, alice, since=(clock() - timedelta(days=1)).isoformat()) == before
    assert before["dora"]["time_to_restore"]["restored"] == 1
    assert_consistent(settings)
    with db.get_engine(settings.database_url).connect() as conn:
        assert conn.execute(COUNTS.select()).first() is not None



def _deployer(env: dict, pid: str, person: str, barrier, out) -> None:
    """Deploy, succeed, break and roll back on one target, from one pipeline of many."""
    from chainpipe.core.config import load_settings
    from chainpipe.core.uow import UnitOfWork

    settings, actor, rng, errors = load_settings(env), Actor(person), random.Random(person), []

    def call(fn, *args, **kwargs):
        try:
            with UnitOfWork(settings) as uow:
                return fn(uow, actor, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the parent test
            errors.append(f"{fn.__name__}: {exc.__class__.__name__}: {exc}")

    barrier.wait()
    for _ in range(6):
        dep = call(deploys.record_deploy, pid, strategy="rolling", target="production",
                   status=rng.choice(("succeeded", "in-progress")))
        if dep and dep["status"] == "in-progress":
            call(deploys.update_deploy, dep["id"], status="succeeded")
        if dep and rng.random() < 0.5:
            call(monitoring.record_metric, pid, metric="error_rate", value=0.5)
            call(deploys.rollback_deploy, dep["id"], reason="race")
    out.put(errors)


@pytest.mark.slow
def test_deploys_racing_on_one_target_from_many_pipelines_keep_the_aggregates_exact(run, env, settings, alice):
    from tests.service.helpers import race

    pids = [at_review_approved(run, alice) for _ in range(4)]
    errors = race(_deployer, [(env, pid, f"svc{n}") for n, pid in enumerate(pids)])
    assert [e for batch in errors for e in batch] == []
    assert_consistent(settings)
    with db.get_engine(settings.database_url).connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM dora_deployments WHERE failed_at IS NOT NULL")).scalar() > 0
