"""Latency of chainpipe's core operations, in process, measured so that a busy machine does not
decide the result.

    python -m bench.run                 # SQLite, and PostgreSQL when a URL is set (see below)
    python -m bench.run --smoke         # a few rounds on a small history (CI)
    python -m bench.run --write         # also rewrite the results in BENCHMARKS.md
    python -m bench.run --statements    # print the SQL each write runs, then stop

The variants compared run interleaved — one call of each in turn, the order rotating every round —
so they share whatever else the machine is doing at that moment:

    empty      chainpipe on a database holding only what the benchmark wrote
    large      chainpipe on a database loaded with a long history (100,000 pipelines, 1M events)
    unchained  chainpipe writing audit rows without the hash chain (UnitOfWork(chained=False))
    floor      the same writes through raw sqlite3 (bench/floor.py), SQLite only

Each call is timed in CPU time (``time.process_time``: this process's own work, which other
processes change little) and in wall time (what a caller waits for, which they change a lot). The
report gives p50s (and wall p99), the ratios between variants, and the load average before and
after. PostgreSQL is measured when PIPE_BENCH_DATABASE_URL or PIPE_TEST_DATABASE_URL is set (in a
fresh schema, dropped afterwards).
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

from chainpipe.core.actor import Actor
from chainpipe.core.catalogue import BUILTIN_TEMPLATES
from chainpipe.core.config import load_settings
from chainpipe.core.services import artifacts, deploys, gates, monitoring, pipelines, queries
from chainpipe.core.uow import UnitOfWork

ROOT = Path(__file__).resolve().parents[1]
ACTOR = Actor("bench")
WRITES = ("create", "start", "pause", "resume", "stage", "approve", "reject", "artifact-add", "deploy",
          "monitor-record")
READS = ("list --limit 100", "stats", "monitor-status")
FLOOR_TARGET = 4.0  # chainpipe within 4x of the raw-sqlite3 floor (CPU p50)
CHAIN_TARGET_MS = 0.3  # what hash-chaining the audit may add to a write (CPU p50)
STATS_TARGET_MS = 20.0
WARMUP = 3  # rounds measured but not counted: statement caches, page cache


def timed(fn) -> tuple[float, float]:
    """(CPU ms, wall ms) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Chainpipe:
    """chainpipe's use cases, each in its own unit of work as the CLI, the server and the Action run them."""

    def __init__(self, name: str, settings, *, chained: bool = True, status_pipeline: str | None = None):
        self.name, self.settings, self.chained = name, settings, chained
        self.pid = self.other = None
        self.status_pipeline = status_pipeline

    def call(self, fn, *args, **kwargs):
        with UnitOfWork(self.settings, chained=self.chained) as uow:
            return fn(uow, ACTOR, *args, **kwargs)

    def prepare(self, op: str) -> None:
        """Untimed set-up: the bugfix pipeline whose gate ``reject`` decides."""
        if op == "reject":
            self.other = self.call(pipelines.create_pipeline, name="bench", template="bugfix")["id"]
            self.call(pipelines.start_pipeline, self.other)
            self.call(pipelines.advance_stage, self.other, "review")

    def op(self, name: str):
        return {
            "create": self._create,
            "start": lambda: self.call(pipelines.start_pipeline, self.pid),
            "pause": lambda: self.call(pipelines.pause_pipeline, self.pid),
            "resume": lambda: self.call(pipelines.resume_pipeline, self.pid),
            "stage": lambda: self.call(pipelines.advance_stage, self.pid, "review"),
            "approve": lambda: self.call(gates.approve_gate, self.pid, "code-review"),
            "reject": lambda: self.call(gates.reject_gate, self.other, "code-review", reason="bench"),
            "artifact-add": lambda: self.call(artifacts.add_artifact, self.pid, name="build.zip", type="binary",
                                              digest="sha256:" + "a" * 64, uri="s3://bench/build.zip"),
            "deploy": lambda: self.call(deploys.record_deploy, self.pid, strategy="canary", target="production"),
            "monitor-record": lambda: self.call(monitoring.record_metric, self.pid, metric="error_rate", value=0.01),
            "list --limit 100": lambda: self.call(queries.list_pipelines, limit=100),
            "stats": lambda: self.call(queries.pipeline_stats),
            "monitor-status": lambda: self.call(monitoring.monitor_status, self.status_pipeline),
        }[name]

    def _create(self) -> None:
        self.pid = self.call(pipelines.create_pipeline, name="bench", template="feature")["id"]


class RawFloor:
    """The floor's operations over the same lifecycle (bench/floor.py)."""

    name = "floor"
    OPS = ("create", "start", "stage", "approve", "artifact-add", "deploy", "monitor-record")

    def __init__(self, path: str):
        from bench.floor import Floor

        self.floor, self.pid = Floor(path), None
        self.template = BUILTIN_TEMPLATES["feature"]

    def prepare(self, op: str) -> None:
        pass

    def op(self, name: str):
        f = self.floor
        return {
            "create": self._create,
            "start": lambda: f.start(self.pid),
            "stage": lambda: f.stage(self.pid, "review"),
            "approve": lambda: f.approve(self.pid, "code-review"),
            "artifact-add": lambda: f.artifact_add(self.pid, "build.zip", "binary", "sha256:" + "a" * 64,
                                                   "s3://bench/build.zip"),
            "deploy": lambda: f.deploy(self.pid, "canary", "production"),
            "monitor-record": lambda: f.monitor_record(self.pid, "error_rate", 0.01),
        }.get(name)

    def _create(self) -> None:
        self.pid = self.floor.create("feature", self.template.stages, tuple(self.template.gates.items()))


class Samples:
    def __init__(self):
        self.cpu: dict[tuple[str, str], list[float]] = {}
        self.wall: dict[tuple[str, str], list[float]] = {}

    def add(self, variant: str, op: str, cpu: float, wall: float) -> None:
        self.cpu.setdefault((variant, op), []).append(cpu)
        self.wall.setdefault((variant, op), []).append(wall)

    def p50(self, variant: str, op: str, wall: bool = False) -> float | None:
        found = (self.wall if wall else self.cpu).get((variant, op))
        return statistics.median(found) if found else None

    def p99(self, variant: str, op: str) -> float | None:
        found = self.wall.get((variant, op))
        return pct(found, 0.99) if found else None


def interleave(variants: list, ops: tuple[str, ...], rounds: int, samples: Samples) -> None:
    """Every round: each op on each variant that has it, one after the other, the order rotating."""
    for r in range(rounds + WARMUP):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for op in ops:
            for v in order:
                fn = v.op(op)
                if fn is None:
                    continue
                v.prepare(op)
                cpu, wall = timed(fn)
                if r >= WARMUP:
                    samples.add(v.name, op, cpu, wall)


def statement_counts(settings) -> dict[str, int]:
    """How many SQL statements each write runs (BEGIN included, COMMIT not), from one untimed round."""
    from chainpipe.core.db import get_engine
    from sqlalchemy import event

    engine, seen = get_engine(settings.database_url), []

    def count(*_args):
        seen.append(1)

    v = Chainpipe("count", settings)
    event.listen(engine, "before_cursor_execute", count)
    counts = {}
    try:
        for op in WRITES:
            v.prepare(op)
            seen.clear()
            v.op(op)()
            counts[op] = len(seen)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counts


def print_statements(url: str) -> None:
    from chainpipe.core.db import get_engine
    from sqlalchemy import event

    settings = load_settings({"PIPE_DATABASE_URL": url, "PIPE_DATA_DIR": tempfile.mkdtemp()})
    v = Chainpipe("show", settings)
    event.listen(get_engine(url), "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: print("   ", " ".join(sql.split())[:160]))
    for op in WRITES:
        v.prepare(op)
        print(op)
        v.op(op)()


def load_average() -> float:
    return os.getloadavg()[0]


def measure(url: str, rounds: int, pipelines_n: int, events_n: int, *, floor_path: str | None, log,
            web: dict | None = None) -> dict:
    """Build the databases, then run every variant interleaved; returns what the report needs."""
    from chainpipe.core.db import dispose_engines, get_engine

    from bench.load import load_history

    def settings_for(db_url: str):
        return load_settings({"PIPE_DATABASE_URL": db_url, "PIPE_DATA_DIR": tempfile.mkdtemp()})

    urls = {"empty": url("empty"), "large": url("large"), "unchained": url("unchained")}
    settings = {name: settings_for(u) for name, u in urls.items()}
    log(f"  loading {pipelines_n:,} pipelines and {events_n:,} monitor events …")
    t0 = time.perf_counter()
    loaded = load_history(get_engine(urls["large"]), pipelines_n, events_n)
    load_s = time.perf_counter() - t0
    if urls["large"].startswith("postgresql"):
        with get_engine(urls["large"]).begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    status_pid = _status_pipeline(settings["empty"])
    variants = [Chainpipe("empty", settings["empty"], status_pipeline=status_pid),
                Chainpipe("large", settings["large"], status_pipeline=loaded["carriers"][0]),
                Chainpipe("unchained", settings["unchained"], chained=False)]
    if floor_path is not None:
        get_engine(f"sqlite:///{floor_path}")  # chainpipe's schema, empty
        variants.append(RawFloor(floor_path))
    samples, load_before = Samples(), load_average()
    log(f"  {rounds} rounds of {len(WRITES)} writes × {len(variants)} variants, interleaved …")
    interleave(variants, WRITES, rounds, samples)
    log("  reads …")
    interleave(variants[:2], READS, max(5, rounds // 4), samples)
    load_after = load_average()
    pages = _web_pages(settings["large"], loaded["carriers"][0], web, log) if web else None
    counts = statement_counts(settings["empty"])
    checks = _checks(settings, floor_path)
    dispose_engines()
    return {"samples": samples, "load": (load_before, load_after), "load_s": load_s, "fill_s": loaded["fill_s"],
            "statements": counts, "checks": checks, "floor": floor_path is not None, "web": pages}


def _web_pages(settings, other_pipeline: str, shape: dict, log) -> dict:
    """The web pages and the App Home on the large history (bench/web.py)."""
    from bench.web import measure_pages

    return measure_pages(settings, other_pipeline, log=log, **shape)


def _status_pipeline(settings) -> str:
    v = Chainpipe("seed", settings)
    pid = v.call(pipelines.create_pipeline, name="status", template="feature")["id"]
    for i in range(50):
        v.call(monitoring.record_metric, pid, metric=("error_rate", "latency_ms", "cpu")[i % 3], value=i)
    return pid


def _checks(settings: dict, floor_path: str | None) -> list[str]:
    """After everything: every chain verifies and the aggregates equal a recomputation."""
    from chainpipe.core.aggregates import counted, stored_counts
    from chainpipe.core.db import get_engine
    from chainpipe.core.services.audit import verify_audit

    out = []
    databases = [("empty", settings["empty"]), ("large", settings["large"])]
    if floor_path is not None:
        databases.append(("floor", load_settings({"PIPE_DATABASE_URL": f"sqlite:///{floor_path}",
                                                  "PIPE_DATA_DIR": tempfile.mkdtemp()})))
    for name, s in databases:
        report = verify_audit(s, all=True)
        with get_engine(s.database_url).connect() as conn:
            consistent = counted(conn) == stored_counts(conn)
        out.append(f"{name}: audit verify --all {'ok' if report['ok'] else 'BROKEN'} ({report['rows']:,} rows, "
                   f"{report['chains']:,} chains); stats counters {'equal' if consistent else 'DIFFER FROM'} "
                   "a recount")
    return out


def process_timings(runs: int) -> dict[str, float | str]:
    """Median wall time of whole `pipe` processes, interpreter start-up included, each doing all its
    work itself (PIPE_WORKER=0; the warm worker has its own benchmark, scripts/bench_cli_start.py)."""
    pipe = str(Path(sys.executable).with_name("pipe"))
    env = os.environ | {"PIPE_DATA_DIR": tempfile.mkdtemp(), "PIPE_WORKER": "0"}
    out: dict[str, float | str] = {}
    for args in (["--help"], ["stages"], ["templates", "--json"], ["list"]):
        times = []
        for _ in range(runs + 1):  # the first run warms the page cache
            t0 = time.perf_counter()
            done = subprocess.run([pipe, *args], env=env, capture_output=True, text=True)
            times.append((time.perf_counter() - t0) * 1000)
            if done.returncode:
                times = f"failed (exit {done.returncode}): {(done.stderr.strip().splitlines() or [''])[-1]}"
                break
        out["pipe " + " ".join(args)] = statistics.median(times[1:]) if isinstance(times, list) else times
    return out


def _pg_schema_urls(base: str):
    """A function naming a fresh schema per database, and one dropping them all."""
    from sqlalchemy import create_engine, text

    admin, made = create_engine(base), []
    sep = "&" if "?" in base else "?"

    def url(name: str) -> str:
        schema = f"bench_{name}_{secrets.token_hex(3)}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"

    def drop() -> None:
        with admin.begin() as conn:
            for schema in made:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url, drop


# ---- the report ---------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}×"


def render(results: dict, procs: dict, args) -> str:
    lines = [f"Rounds per operation: {args.iterations} (after {WARMUP} warm-up rounds); large history: "
             f"{args.pipelines:,} pipelines, {args.pipelines // 2:,} deploys, {args.events:,} monitor events. "
             f"{os.cpu_count()} CPUs. Times in ms, p50 unless marked.", ""]
    for backend, r in results.items():
        s: Samples = r["samples"]
        lines += [f"### {backend}", "",
                  f"Load average (1 min) {r['load'][0]:.1f} before the rounds, {r['load'][1]:.1f} after. "
                  f"Bulk load of the large history {r['load_s']:.1f} s, of which filling the stats aggregates "
                  f"(the migration's computation) {r['fill_s']:.1f} s.", ""]
        lines += _writes_table(s, r) + [""] + _growth_table(s) + [""]
        if r.get("web"):
            from bench import web

            lines += web.render(r["web"]) + [""]
        lines += [f"- {c}" for c in r["checks"]] + [""]
    if procs:
        lines += ["### Whole process, one-shot (median wall time)", "", "| command | ms |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.0f} |" if isinstance(v, float) else f"| `{k}` | {v} |" for k, v in procs.items()]
    return "\n".join(lines) + "\n"


def _writes_table(s: Samples, r: dict) -> list[str]:
    floor = r["floor"]
    head = "| operation | statements | CPU |" + (f" floor CPU | × floor (≤ {FLOOR_TARGET:g}×) |" if floor else "") + \
        f" unchained CPU | chaining (≤ {CHAIN_TARGET_MS} ms) | wall | wall p99 |"
    lines = [head, "|" + "---|" + "---:|" * (head.count("|") - 2)]
    for op in WRITES:
        cpu, unchained = s.p50("empty", op), s.p50("unchained", op)
        row = f"| {op} | {r['statements'].get(op, '–')} | {_ms(cpu)} |"
        if floor:
            row += f" {_ms(s.p50('floor', op))} | {_ratio(cpu, s.p50('floor', op))} |"
        chaining = None if cpu is None or unchained is None else cpu - unchained
        row += f" {_ms(unchained)} | {_ms(chaining)} | {_ms(s.p50('empty', op, wall=True))} | " \
               f"{_ms(s.p99('empty', op))} |"
        lines.append(row)
    return lines


def _growth_table(s: Samples) -> list[str]:
    lines = ["| operation | empty CPU | large CPU | large/empty CPU | empty wall | large wall | large/empty wall | "
             "large wall p99 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for op in WRITES + READS:
        e, big = s.p50("empty", op), s.p50("large", op)
        ew, lw = s.p50("empty", op, wall=True), s.p50("large", op, wall=True)
        lines.append(f"| {op} | {_ms(e)} | {_ms(big)} | {_ratio(big, e)} | {_ms(ew)} | {_ms(lw)} | "
                     f"{_ratio(lw, ew)} | {_ms(s.p99('large', op))} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--write", action="store_true", help="rewrite the results section of BENCHMARKS.md")
    parser.add_argument("--statements", action="store_true", help="print the SQL of each write and stop")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--pipelines", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-web", action="store_true", help="leave out the web pages (bench/web.py)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.iterations, args.pipelines, args.events = 10, 500, 5_000
    from bench.web import shape

    web = None if args.no_web else shape(args.smoke)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.statements:
            print_statements(f"sqlite:///{tmp}/statements.db")
            return 0
        log("SQLite (file, WAL) …")
        results["SQLite (file, WAL)"] = measure(lambda name: f"sqlite:///{tmp}/{name}.db", args.iterations,
                                                args.pipelines, args.events, floor_path=f"{tmp}/floor.db", log=log,
                                                web=web)
    pg = os.environ.get("PIPE_BENCH_DATABASE_URL") or os.environ.get("PIPE_TEST_DATABASE_URL")
    if pg and not args.no_postgres:
        log("PostgreSQL …")
        url, drop = _pg_schema_urls(pg)
        try:
            results["PostgreSQL 15 (local)"] = measure(url, args.iterations, args.pipelines, args.events,
                                                       floor_path=None, log=log, web=web)
        finally:
            drop()
    procs = process_timings(1 if args.smoke else 15)
    report = render(results, procs, args)
    print(report)
    if args.write:
        write_results(ROOT / "BENCHMARKS.md", report)
    return 0


def write_results(path: Path, report: str) -> None:
    """Replace what stands between the results markers; the text around them stays."""
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition("<!-- results -->")
    _, end, tail = rest.partition("<!-- /results -->")
    path.write_text(head + start + "\n\n" + report + "\n" + (end or "<!-- /results -->") + tail, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
