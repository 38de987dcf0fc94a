"""Time the web pages (and the App Home read) over a large history.

    .venv/bin/python scripts/bench_web.py [--database-url URL] [--pipelines 5000] [--rounds 15]

Seeds a fresh database (a temporary SQLite file by default) with ``--pipelines`` pipelines across
all statuses and templates, each with a gate, one or two deploys to five targets, 20 metric events
per deploy and a verdict; plus one pipeline built through the services (so its audit chain is real)
that carries 10,000 events of one metric. Then requests each page ``--rounds`` times through
Starlette's test client (in process: the time measured is the server's, plus the client's small
overhead) and prints p50 / p95 in milliseconds. A PostgreSQL URL is used as given: point it at an
empty database or schema.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chainpipe.core.actor import Actor  # noqa: E402
from chainpipe.core.catalogue import PIPELINE_STATUSES  # noqa: E402
from chainpipe.core.config import load_settings  # noqa: E402
from chainpipe.core.models import Deploy, Gate, MonitorEvent, Pipeline, Stage, VerdictEvent  # noqa: E402
from chainpipe.core.uow import UnitOfWork  # noqa: E402

TARGETS = ["prod", "staging", "eu-prod", "us-prod", "canary-lab"]
TEMPLATES = ["feature", "bugfix", "refactor", "security-audit"]
START = datetime.now(timezone.utc) - timedelta(days=120)


def seed_bulk(settings, n: int) -> None:
    pipelines: list[Pipeline] = []
    with UnitOfWork(settings) as uow:
        for i in range(n):
            pid, at = f"pipe-b{i:011d}", START + timedelta(minutes=30 * i * 5000 / max(n, 1))
            status = PIPELINE_STATUSES[i % len(PIPELINE_STATUSES)]
            stage = "review" if status in ("running", "paused") else "deploy"
            pipelines.append(Pipeline(id=pid, name=f"bench {i}", template=TEMPLATES[i % 4], status=status,
                                      current_stage=stage, created_by="bench", created_at=at, updated_at=at))
            uow.add(Stage(id=f"stg-b{i:011d}", pipeline_id=pid, name="review", position=4, status="running"))
            uow.add(Gate(id=f"gat-b{i:011d}", pipeline_id=pid, name="code-review", stage="review",
                         status="pending" if status in ("running", "paused", "created") else "approved"))
            for k in range(1 + i % 2):
                dep_at = at + timedelta(hours=2 + k)
                did = f"dep-b{i:09d}{k:02d}"
                uow.add(Deploy(id=did, pipeline_id=pid, strategy="canary", target=TARGETS[(i + k) % 5],
                               status="succeeded" if (i + k) % 7 else "rolled-back", created_by="bench",
                               surface="cli", created_at=dep_at, updated_at=dep_at,
                               finished_at=dep_at + timedelta(minutes=10),
                               rolled_back_at=None if (i + k) % 7 else dep_at + timedelta(minutes=20)))
                for j in range(20):
                    uow.add(MonitorEvent(id=f"mon-b{i:08d}{k}{j:02d}", pipeline_id=pid, deploy_id=did,
                                         metric="latency_ms", value=200 + (j * 7 + i) % 90, actor="bench",
                                         surface="cli", recorded_at=dep_at + timedelta(minutes=j)))
                uow.add(VerdictEvent(id=f"vrd-b{i:09d}{k}", pipeline_id=pid, deploy_id=did, metric="latency_ms",
                                     previous="unknown", verdict="healthy", at=dep_at + timedelta(minutes=1)))
        children = list(uow.session.new)
        uow.session.expunge_all()
        uow.add(*pipelines)
        uow.session.flush()  # parents first: the foreign keys have no relationships to order them by
        uow.add(*children)
        uow.commit()


def seed_real(settings) -> str:
    """One pipeline through the services (a real audit chain) with 10,000 events of one metric."""
    from chainpipe.core.services.deploys import record_deploy
    from chainpipe.core.services.gates import approve_gate
    from chainpipe.core.services.monitoring import record_metric
    from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline

    def do(fn, actor, *args, **kw):
        with UnitOfWork(settings) as uow:
            return fn(uow, actor, *args, **kw)

    alice = Actor("alice", "cli")
    pid = do(create_pipeline, alice, name="the big one")["id"]
    do(start_pipeline, alice, pid)
    do(advance_stage, alice, pid, "review")
    do(approve_gate, Actor("bob", "cli"), pid, "code-review")
    dep = do(record_deploy, alice, pid, "canary", "prod")["id"]
    with UnitOfWork(settings) as uow:
        t0 = datetime.now(timezone.utc) - timedelta(days=3)
        uow.add(*[MonitorEvent(id=f"mon-r{j:011d}", pipeline_id=pid, deploy_id=dep, metric="latency_ms",
                               value=300 + (j % 97), actor="bench", surface="cli",
                               recorded_at=t0 + timedelta(seconds=20 * j)) for j in range(10_000)])
        uow.commit()
    do(record_metric, alice, pid, "latency_ms", 700)  # a verdict change at the end
    return pid


def find_real(settings) -> str:
    from sqlmodel import select

    with UnitOfWork(settings, write=False) as uow:
        return uow.session.exec(select(Pipeline.id).where(Pipeline.name == "the big one")).one()


def analyze(settings) -> None:
    from sqlalchemy import text

    with UnitOfWork(settings) as uow:
        uow.session.execute(text("ANALYZE"))
        uow.commit()


def time_pages(client, pid: str, rounds: int) -> list[tuple[str, float, float]]:
    paths = ["/web/", "/web/board/fragment", "/web/?target=prod", "/web/?template=bugfix&status=running",
             f"/web/pipelines/{pid}", f"/web/pipelines/{pid}/metrics/latency_ms",
             f"/web/pipelines/{pid}/metrics/latency_ms.svg", "/web/pipelines/pipe-b00000000042", "/web/dora?weeks=12",
             "/web/dora?weeks=12&target=prod"]
    out = []
    for path in paths:
        assert client.get(path).status_code == 200, path  # warm up
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            resp = client.get(path)
            times.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, (path, resp.status_code)
        out.append((path, statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1]))
    return out


def time_home(settings, rounds: int) -> tuple[float, float]:
    from chainpipe.core.services.pages import home

    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        with UnitOfWork(settings, write=False) as uow:
            home(uow, "alice")
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--pipelines", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reuse", action="store_true", help="time a database this script seeded before")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    (work / "config.toml").write_text("", encoding="utf-8")
    env = {"PIPE_DATABASE_URL": args.database_url or f"sqlite:///{work / 'bench.db'}",
           "PIPE_CONFIG": str(work / "config.toml"), "PIPE_DATA_DIR": str(work), "PIPE_SERVER_API_ONLY": "1",
           "PIPE_WEB_SECRET": "bench-" + "x" * 40}
    import os

    os.environ.update(env)
    settings = load_settings(env)
    if args.reuse:
        pid = find_real(settings)
    else:
        t = time.perf_counter()
        seed_bulk(settings, args.pipelines)
        pid = seed_real(settings)
        print(f"seeded {args.pipelines} pipelines (+1 with 10,000 events) in {time.perf_counter() - t:.1f}s "
              f"on {settings.database_url.split(':')[0]}")
    analyze(settings)  # as autovacuum would have by now on a live database

    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.services.tokens import create_token
    from starlette.testclient import TestClient

    with UnitOfWork(settings) as uow:
        token = create_token(uow, Actor("admin"), f"bench-{time.time_ns()}", person="alice")["token"]
    with TestClient(create_asgi_app(settings, load_bot_settings(env)), follow_redirects=False) as client:
        assert client.post("/web/sign-in", data={"token": token}).status_code == 303
        print(f"{'page':62} {'p50 ms':>8} {'p95 ms':>8}")
        for path, p50, p95 in time_pages(client, pid, args.rounds):
            print(f"{path:62} {p50:8.1f} {p95:8.1f}")
    p50, p95 = time_home(settings, args.rounds)
    print(f"{'App Home read (core.services.pages.home)':62} {p50:8.1f} {p95:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
