"""Latency of the core operations, in process, on a file-backed SQLite (WAL) and on PostgreSQL.

    python -m bench.run                 # full: empty database, then 100k pipelines + 1M events
    python -m bench.run --smoke         # a few iterations on a small history (CI)
    python -m bench.run --write         # also rewrite the tables in BENCHMARKS.md

PostgreSQL is measured when PIPE_BENCH_DATABASE_URL or PIPE_TEST_DATABASE_URL is set (a fresh
schema is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from core.actor import Actor
from core.config import load_settings
from core.services import artifacts, deploys, gates, monitoring, pipelines, queries
from core.uow import UnitOfWork

ROOT = Path(__file__).resolve().parents[1]
ACTOR = Actor("bench")
TARGETS_MS = {"create": 6, "start": 2, "pause": 2, "resume": 2, "stage": 3, "approve": 2, "reject": 2,
              "artifact-add": 3, "deploy": 4, "monitor-record": 2, "list --limit 100": 20, "stats": 300,
              "monitor-status": 20}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Bench:
    def __init__(self, settings, iterations: int):
        self.settings = settings
        self.n = iterations
        self.samples: dict[str, list[float]] = {}

    def call(self, label: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        with UnitOfWork(self.settings) as uow:
            result = fn(uow, ACTOR, *args, **kwargs)
        self.samples.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
        return result

    def quiet(self, fn, *args, **kwargs):
        with UnitOfWork(self.settings) as uow:
            return fn(uow, ACTOR, *args, **kwargs)

    def lifecycle(self) -> None:
        for _ in range(self.n):
            pid = self.call("create", pipelines.create_pipeline, name="bench", template="feature")["id"]
            self.call("start", pipelines.start_pipeline, pid)
            self.call("pause", pipelines.pause_pipeline, pid)
            self.call("resume", pipelines.resume_pipeline, pid)
            self.call("stage", pipelines.advance_stage, pid, "review")
            self.call("approve", gates.approve_gate, pid, "code-review")
            self.call("artifact-add", artifacts.add_artifact, pid, name="build.zip", type="binary",
                      digest="sha256:" + "a" * 64, uri="s3://bench/build.zip")
            self.call("deploy", deploys.record_deploy, pid, strategy="canary", target="production")
            self.call("monitor-record", monitoring.record_metric, pid, metric="error_rate", value=0.01)
            other = self.quiet(pipelines.create_pipeline, name="bench", template="bugfix")["id"]
            self.quiet(pipelines.start_pipeline, other)
            self.quiet(pipelines.advance_stage, other, "review")
            self.call("reject", gates.reject_gate, other, "code-review", reason="bench")

    def reads(self, status_pid: str) -> None:
        for _ in range(max(5, self.n // 4)):
            self.call("list --limit 100", queries.list_pipelines, limit=100)
            self.call("stats", queries.pipeline_stats)
            self.call("monitor-status", monitoring.monitor_status, status_pid)

    def table(self) -> dict[str, tuple[float, float]]:
        return {k: (statistics.median(v), _pct(v, 0.99)) for k, v in self.samples.items()}


def measure(url: str, iterations: int, pipelines_n: int, events_n: int, log) -> tuple[dict, dict, float]:
    from bench.load import load_history
    from core.db import dispose_engines, get_engine

    settings = load_settings({"PIPE_DATABASE_URL": url, "PIPE_DATA_DIR": tempfile.mkdtemp()})
    get_engine(url)
    empty = Bench(settings, iterations)
    empty.lifecycle()
    seed_pid = empty.quiet(pipelines.create_pipeline, name="status", template="feature")["id"]
    for i in range(50):
        empty.quiet(monitoring.record_metric, seed_pid, metric=monitoring_metric(i), value=i)
    empty.reads(seed_pid)
    log(f"  loading {pipelines_n:,} pipelines and {events_n:,} monitor events …")
    t0 = time.perf_counter()
    carriers = load_history(get_engine(url), pipelines_n, events_n)
    load_s = time.perf_counter() - t0
    if url.startswith("postgresql"):
        with get_engine(url).begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    full = Bench(settings, iterations)
    full.lifecycle()
    full.reads(carriers[0])
    dispose_engines()
    return empty.table(), full.table(), load_s


def monitoring_metric(i: int) -> str:
    return ("error_rate", "latency_ms", "cpu")[i % 3]


def process_timings(runs: int) -> dict[str, float]:
    """Median wall time of whole `pipe` processes (interpreter start-up included)."""
    pipe = str(Path(sys.executable).with_name("pipe"))
    env = os.environ | {"PIPE_DATA_DIR": tempfile.mkdtemp()}
    out = {}
    for args in (["--help"], ["stages"], ["templates", "--json"], ["list"]):
        subprocess.run([pipe, *args], env=env, capture_output=True, check=True)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([pipe, *args], env=env, capture_output=True, check=True)
            times.append((time.perf_counter() - t0) * 1000)
        out["pipe " + " ".join(args)] = statistics.median(times)
    return out


def _pg_schema_url(base: str):
    from sqlalchemy import create_engine, text

    schema = f"bench_{secrets.token_hex(3)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop():
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}", drop


def render(results: dict, procs: dict, args) -> str:
    lines = [f"Iterations per operation: {args.iterations}; large phase: {args.pipelines:,} pipelines, "
             f"{args.events:,} monitor events.", ""]
    for backend, (empty, full, load_s) in results.items():
        lines += [f"### {backend}", "", f"Bulk load of the large history: {load_s:.1f} s.", "",
                  "| operation | target p50 | empty p50 | empty p99 | large p50 | large p99 | large/empty |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for op in TARGETS_MS:
            if op in empty and op in full:
                ratio = full[op][0] / empty[op][0] if empty[op][0] else 0
                lines.append(f"| {op} | ≤ {TARGETS_MS[op]} ms | {empty[op][0]:.2f} | {empty[op][1]:.2f} | "
                             f"{full[op][0]:.2f} | {full[op][1]:.2f} | {ratio:.2f}× |")
        lines.append("")
    if procs:
        lines += ["### Whole process (median wall time)", "", "| command | ms |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.0f} |" for k, v in procs.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--write", action="store_true", help="rewrite the results section of BENCHMARKS.md")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--pipelines", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.iterations, args.pipelines, args.events = 10, 500, 5_000

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        log("SQLite (file, WAL) …")
        results["SQLite (file, WAL)"] = measure(f"sqlite:///{tmp}/bench.db", args.iterations, args.pipelines,
                                                args.events, log)
    pg = os.environ.get("PIPE_BENCH_DATABASE_URL") or os.environ.get("PIPE_TEST_DATABASE_URL")
    if pg and not args.no_postgres:
        log("PostgreSQL …")
        url, drop = _pg_schema_url(pg)
        try:
            results["PostgreSQL 15 (local)"] = measure(url, args.iterations, args.pipelines, args.events, log)
        finally:
            drop()
    procs = process_timings(3 if args.smoke else 15)
    report = render(results, procs, args)
    print(report)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text(encoding="utf-8")
        head, marker, _ = text.partition("<!-- results -->")
        path.write_text(head + marker + "\n\n" + report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
