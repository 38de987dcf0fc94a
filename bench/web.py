"""Server time of the web pages and of the Slack App Home's view, on the benchmark's large history.

    python -m bench.run                  # measures these too, beside the other figures
    python -m bench.web [--smoke] [--database-url URL] [--pipelines N] [--events N]   # these alone

To the history bench/load.py loads (100,000 pipelines, 50,000 deploys, 1,000,000 monitor events)
it adds one pipeline built through the services, as people and CI would have: approved, deployed,
10,000 events of one metric, of which the last ``FLIPS`` alternate between healthy and unhealthy
values, so its verdict changes each time and its audit chain holds that many rows more. Each page
is then requested through Starlette's test client (in process: the time is the server's plus the
client's small share), the pages interleaved and their order rotating each round, timed in CPU
(``time.process_time``, all threads of this process) and wall time. The report gives p50 and p95
per page, the SQL statements one request runs, the 10,000-point chart's size, and the load
average before and after, judged against the web view's targets: each page ≤ 100 ms p50 and a chart
of 10,000 points < 200 KB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta

from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.models import MonitorEvent
from chainpipe.core.uow import UnitOfWork

PAGE_TARGET_MS = 100.0
CHART_TARGET_KB = 200.0
CHART_POINTS = 10_000
FLIPS = 2_000  # verdict changes recorded through the service: audit rows in the big pipeline's chain
SMOKE_FLIPS = 50
FULL_ROUNDS, SMOKE_ROUNDS = 30, 3
WARMUP = 2
PERSON = "alice"
METRIC = "latency_ms"
RARE_TARGET = "eu-west"  # the big pipeline's deploy: the only one to this target


def seed_big_pipeline(settings, flips: int = FLIPS) -> str:
    """One pipeline through the services with CHART_POINTS events of METRIC, the last ``flips`` of
    them recorded one by one with values that change the verdict each time."""
    from chainpipe.core.services.deploys import record_deploy
    from chainpipe.core.services.gates import approve_gate
    from chainpipe.core.services.monitoring import record_metric
    from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline

    def do(fn, actor, *args, **kw):
        with UnitOfWork(settings) as uow:
            return fn(uow, actor, *args, **kw)

    ci = Actor(PERSON, "cli")
    pid = do(create_pipeline, ci, name="the big one")["id"]
    do(start_pipeline, ci, pid)
    do(advance_stage, ci, pid, "review")
    do(approve_gate, Actor("bob", "cli"), pid, "code-review")
    dep = do(record_deploy, ci, pid, "canary", RARE_TARGET)["id"]
    with UnitOfWork(settings) as uow:  # counted in the stats aggregates, as the service would
        t0 = uow.now() - timedelta(days=3)
        rows = [dict(id=f"mon-w{j:011d}", pipeline_id=pid, deploy_id=dep, metric=METRIC, value=300 + (j % 97),
                     actor="bench", surface="cli", recorded_at=t0 + timedelta(seconds=20 * j))
                for j in range(CHART_POINTS - flips)]
        for i in range(0, len(rows), 1000):
            uow.insert_many(MonitorEvent.__table__, rows[i:i + 1000])
        uow.commit()
    for j in range(flips):
        do(record_metric, ci, pid, METRIC, (120, 90_000)[j % 2])
    return pid


def page_paths(pid: str, other: str) -> list[tuple[str, str]]:
    big = f"/web/pipelines/{pid}"
    return [
        ("board", "/web/"),
        ("board, target filter", "/web/?target=production"),
        ("board, target with one deploy", f"/web/?target={RARE_TARGET}"),
        ("board, template + status", "/web/?template=bugfix&status=running"),
        ("board update (fragment)", "/web/board/fragment"),
        ("pipeline, 10,000 events", big),
        ("pipeline, loaded history", f"/web/pipelines/{other}"),
        ("metric page, 10,000 events", f"{big}/metrics/{METRIC}"),
        (SVG, f"{big}/metrics/{METRIC}.svg"),
        ("DORA, 12 weeks", "/web/dora?weeks=12"),
        ("DORA, 12 weeks, target", "/web/dora?weeks=12&target=production"),
    ]


HOME = "App Home view (read + blocks)"
SVG = "metric SVG, 10,000 events"


@contextmanager
def counting(engine):
    """A list that grows by one per SQL statement run on ``engine`` while inside."""
    from sqlalchemy import event

    seen: list[int] = []

    def count(*_args):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@contextmanager
def web_client(settings):
    """A signed-in test client of the whole server (API-only: no Slack)."""
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.services.tokens import create_token
    from starlette.testclient import TestClient

    env = {"PIPE_SERVER_API_ONLY": "1", "PIPE_WEB_SECRET": "bench-" + "x" * 40}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the web view reads its secret from the environment
    try:
        with UnitOfWork(settings) as uow:
            token = create_token(uow, Actor("admin"), f"bench-web-{time.time_ns()}", person=PERSON)["token"]
        with TestClient(create_asgi_app(settings, load_bot_settings(env)), follow_redirects=False) as client:
            resp = client.post("/web/sign-in", data={"token": token})
            if resp.status_code != 303:
                raise RuntimeError(f"sign-in refused: {resp.status_code}")
            yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def shape(smoke: bool) -> dict:
    """How many rounds and verdict changes: few in a smoke run (CI)."""
    return {"rounds": SMOKE_ROUNDS, "flips": SMOKE_FLIPS} if smoke else {"rounds": FULL_ROUNDS, "flips": FLIPS}


def measure_pages(settings, other_pipeline: str, *, rounds: int, flips: int, log) -> dict:
    """Seed the big pipeline, then time every page (and the App Home) interleaved."""
    from chainpipe.bot.home import home_view, read_home
    from chainpipe.core.db import get_engine

    from bench.run import Samples, timed

    log(f"  web: one pipeline with {CHART_POINTS:,} events ({flips:,} verdict changes) …")
    pid = seed_big_pipeline(settings, flips)
    if settings.database_url.startswith("postgresql"):
        with get_engine(settings.database_url).begin() as conn:
            conn.exec_driver_sql("ANALYZE")  # as autovacuum would have by now
    paths = page_paths(pid, other_pipeline)
    samples, statements, sizes = Samples(), {}, {}
    with web_client(settings) as client:
        ops = {label: _getter(client, path) for label, path in paths}
        ops[HOME] = lambda: home_view(read_home(settings, PERSON))
        for label, fn in ops.items():  # once each, untimed: statement counts and sizes
            with counting(get_engine(settings.database_url)) as seen:
                body = fn()
            statements[label] = len(seen)
            sizes[label] = len(body) if isinstance(body, bytes) else None
        log(f"  web: {rounds} rounds of {len(ops)} pages, interleaved …")
        labels, load_before = list(ops), os.getloadavg()[0]
        for r in range(rounds + WARMUP):
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                cpu, wall = timed(ops[label])
                if r >= WARMUP:
                    samples.add("web", label, cpu, wall)
        load_after = os.getloadavg()[0]
    return {"samples": samples, "labels": labels, "statements": statements, "load": (load_before, load_after),
            "chart_bytes": sizes[SVG], "rounds": rounds, "flips": flips}


def _getter(client, path: str):
    def get() -> bytes:
        resp = client.get(path)
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path} answered {resp.status_code}")
        return resp.content

    return get


def p95(samples: list[float]) -> float:
    from bench.run import pct

    return pct(samples, 0.95)


def _verdict(cpu: float, wall: float) -> str:
    if wall <= PAGE_TARGET_MS:
        return "yes"
    return "NO (CPU yes: waits)" if cpu <= PAGE_TARGET_MS else "NO"


def render(result: dict) -> list[str]:
    s, worst = result["samples"], 0.0
    lines = [f"Web pages: {result['rounds']} requests per page (after {WARMUP} warm-up rounds), interleaved; "
             f"load average (1 min) {result['load'][0]:.1f} before, {result['load'][1]:.1f} after. "
             f"Target: each page ≤ {PAGE_TARGET_MS:g} ms p50.", "",
             "| page | statements | CPU p50 | CPU p95 | wall p50 | wall p95 | ≤ 100 ms |",
             "|---|---:|---:|---:|---:|---:|:-:|"]
    for label in result["labels"]:
        cpu, wall = s.p50("web", label), s.p50("web", label, wall=True)
        worst = max(worst, wall)
        lines.append(f"| {label} | {result['statements'][label]} | {cpu:.1f} | {p95(s.cpu[('web', label)]):.1f} | "
                     f"{wall:.1f} | {p95(s.wall[('web', label)]):.1f} | {_verdict(cpu, wall)} |")
    kb = result["chart_bytes"] / 1024
    lines += ["", f"- Slowest page p50 {worst:.1f} ms wall: {'within' if worst <= PAGE_TARGET_MS else 'OVER'} "
              f"the {PAGE_TARGET_MS:g} ms target.",
              f"- The chart of {CHART_POINTS:,} points (SVG): {kb:.1f} KB, "
              f"{'under' if kb < CHART_TARGET_KB else 'OVER'} the {CHART_TARGET_KB:g} KB target."]
    return lines


def main(argv: list[str] | None = None) -> int:
    from chainpipe.core.db import dispose_engines, get_engine

    from bench.load import load_history

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a small history and a few rounds")
    parser.add_argument("--database-url", help="an empty database or schema (default: a temporary SQLite file)")
    parser.add_argument("--pipelines", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    if args.smoke:
        args.pipelines, args.events = 500, 5_000

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/web.db"
        settings = load_settings({"PIPE_DATABASE_URL": url, "PIPE_DATA_DIR": tmp})
        log(f"loading {args.pipelines:,} pipelines and {args.events:,} monitor events …")
        loaded = load_history(get_engine(url), args.pipelines, args.events)
        result = measure_pages(settings, loaded["carriers"][0], log=log, **shape(args.smoke))
        dispose_engines()
    print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
