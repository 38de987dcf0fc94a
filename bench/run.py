"""Latency of chainpipe's core operations, in process, measured so that a busy machine does not
decide the result.

    python -m bench.run                 # SQLite, and PostgreSQL when a URL is set (see below)
    python -m bench.run --smoke         # a few rounds on a small history (CI)
    python -m bench.run --write         # also rewrite the results in BENCHMARKS.md
    python -m bench.run --statements    # print the SQL each write runs, then stop
    python -m bench.run --no-cli-start --no-server   # the in-process part alone

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

Then whole processes, one part after the other so that none shares the cores with another:
one-shot commands, `pipe create` cold, warm and remote beside `python -c pass` and, in a full run,
against the tree before the worker under valgrind (bench/cli_start.py), and a `pipe-server` under
load (bench/server.py). The report ends with every speed target's verdict (``targets``): holds,
does not hold, or not measured and why.
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

from bench.cli_start import archive_name

ROOT = Path(__file__).resolve().parents[1]
ACTOR = Actor("bench")
WRITES = ("create", "start", "pause", "resume", "stage", "approve", "reject", "artifact-add", "deploy",
          "monitor-record")
READS = ("list --limit 100", "stats", "monitor-status")
FLOOR_TARGET = 4.0  # chainpipe within 4x of the raw-sqlite3 floor (CPU p50)
CHAIN_TARGET_MS = 0.3  # what hash-chaining the audit may add to a write (CPU p50)
STATS_TARGET_MS = 20.0
FULL_HISTORY = (100_000, 1_000_000)  # the history the stats target is set at: pipelines, monitor events
PROCESS_TARGET_MS = 150.0  # `pipe --help` and `pipe templates`, whole process, median wall
WARM_TARGET = 4.0  # warm-worker `pipe create` at most 4x `python -c pass` (wall medians, same run)
COLD_TARGET = 0.85  # cold `pipe create` at most 0.85x the tree before the worker
COLD_BEFORE = "41bf867"  # that tree: the commit before the warm worker and the cold-start work
SERVER_CPU_TARGET_MS = 1.0  # server CPU per API write at most the in-process create + 1 ms
RPS_TARGET = 400.0  # API writes per second: a goal for a quiet 2-core machine
ACK_TARGET = 2.0  # Slack slash-command ack p99 at most 2x /healthz p99 in the same run
ACK_TARGET_MS = 100.0  # and at most 100 ms on a quiet machine
# Quiet: the 1-minute load average before the server run at most this. The in-process part just
# before it keeps one core busy, so about 1.0 is the benchmark's own doing.
QUIET_LOAD = 1.5
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
    work itself (PIPE_WORKER=0; the warm worker has its own benchmark, bench/cli_start.py)."""
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


# ---- the targets --------------------------------------------------------------------------------
# Each verdict is a row: the target, what was measured, and "holds", "does not hold" or
# "not measured: <why>". They take the structured results only, so tests can feed them made-up ones.


def _verdict(target: str, measured: str, ok: bool | None = None, why: str = "") -> dict:
    status = f"not measured: {why}" if why else "holds" if ok else "does not hold"
    return {"target": target, "measured": measured, "status": status}


def _in_process(results: dict, database: str) -> dict | None:
    """The in-process results of ``database`` ("SQLite", "PostgreSQL"), keyed by its long name."""
    return next((r for name, r in results.items() if name.startswith(database)), None)


def floor_target(results: dict) -> dict:
    target = f"each write ≤ {FLOOR_TARGET:g}× the raw-sqlite3 floor (CPU p50, SQLite)"
    r = _in_process(results, "SQLite")
    if r is None or not r["floor"]:
        return _verdict(target, "–", why="no SQLite run with the floor")
    s: Samples = r["samples"]
    ratios = {op: s.p50("empty", op) / s.p50("floor", op) for op in RawFloor.OPS}
    worst = max(ratios, key=ratios.get)
    return _verdict(target, f"worst {ratios[worst]:.2f}× ({worst})", ratios[worst] <= FLOOR_TARGET)


def stats_targets(results: dict, history: tuple[int, int], absent: dict[str, str]) -> list[dict]:
    """One row per database, judged on the large history's CPU and wall p50: flat means the bound
    holds at full size. Large/empty is shown beside it; a ratio of sub-millisecond figures is no verdict."""
    rows = []
    for database in ("SQLite", "PostgreSQL"):
        target = f"`stats` ≤ {STATS_TARGET_MS:g} ms and flat at 100k pipelines / 1M events ({database})"
        r = _in_process(results, database)
        if r is None:
            rows.append(_verdict(target, "–", why=absent.get(database) or "not run"))
            continue
        s: Samples = r["samples"]
        cpu, wall = s.p50("large", "stats"), s.p50("large", "stats", wall=True)
        growth = cpu / s.p50("empty", "stats")
        measured = f"CPU {cpu:.2f} ms, wall {wall:.2f} ms; large/empty CPU {growth:.2f}×"
        small = history[0] < FULL_HISTORY[0] or history[1] < FULL_HISTORY[1]
        why = f"a history of {history[0]:,} pipelines / {history[1]:,} events, not 100,000 / 1,000,000" if small else ""
        rows.append(_verdict(target, measured, max(cpu, wall) <= STATS_TARGET_MS, why))
    return rows


def warm_target(cli: dict | str) -> dict:
    target = f"warm-worker `pipe create` ≤ {WARM_TARGET:g}× `python -c pass` (whole process, wall median)"
    if isinstance(cli, str):
        return _verdict(target, "–", why=cli)
    warm, floor = cli["variants"]["pipe create, warm worker"]["wall"], cli["variants"]["python -c pass"]["wall"]
    return _verdict(target, f"{warm / floor:.1f}× ({warm:.3f} s ÷ {floor:.3f} s)", warm / floor <= WARM_TARGET)


def cold_target(cli: dict | str) -> dict:
    """Judged on instructions under valgrind, the steady measure; on the CPU median ratio without them."""
    target = f"cold `pipe create` (PIPE_WORKER=0) ≤ {COLD_TARGET:g}× {COLD_BEFORE}, the tree before the worker"
    if isinstance(cli, str):
        return _verdict(target, "–", why=cli)
    before, now = archive_name(COLD_BEFORE), archive_name("HEAD")
    if COLD_BEFORE in cli["missing"]:
        return _verdict(target, "–", why=cli["missing"][COLD_BEFORE])
    if before not in cli["variants"] or now not in cli["variants"]:
        return _verdict(target, "–", why=f"no archives of {COLD_BEFORE} and HEAD in this run (--smoke)")
    cpu = cli["variants"][now]["cpu"] / cli["variants"][before]["cpu"]
    counted = cli["instructions"]
    if before in counted and now in counted:
        ratio = counted[now] / counted[before]
        measured = (f"instructions {ratio:.3f}× ({counted[now] / 1e9:.3f} G ÷ {counted[before] / 1e9:.3f} G); "
                    f"CPU median {cpu:.2f}×")
    else:
        ratio = cpu
        measured = f"CPU median {cpu:.2f}× (judged on it: no instruction counts, {cli['no_callgrind'] or 'not asked'})"
    return _verdict(target, measured, ratio <= COLD_TARGET)


def process_target(procs: dict) -> dict:
    target = f"`pipe templates` / `pipe --help` ≤ {PROCESS_TARGET_MS:g} ms (whole process, wall median)"
    figures = {name: procs[name] for name in ("pipe --help", "pipe templates --json")}
    measured = "; ".join(f"`{name}` {v:.0f} ms" if isinstance(v, float) else f"`{name}` {v}"
                         for name, v in figures.items())
    return _verdict(target, measured, all(isinstance(v, float) and v <= PROCESS_TARGET_MS for v in figures.values()))


def _server_row(served: list[dict], database: str, *, slack: bool) -> dict | None:
    """This tree's single-process server on ``database``, Slack on or API only."""
    return next((r for r in served if r["database"] == database and r["slack"] == slack
                 and r["server"] == "this tree" and r["workers"] == 1), None)


def server_cpu_targets(served: list[dict] | str, absent: dict[str, str]) -> list[dict]:
    rows = []
    for database in ("SQLite", "PostgreSQL"):
        target = (f"server CPU per API write ≤ the same create in process + {SERVER_CPU_TARGET_MS:g} ms "
                  f"(API only, {database})")
        r = None if isinstance(served, str) else _server_row(served, database, slack=False)
        if r is None:
            rows.append(_verdict(target, "–", why=served if isinstance(served, str) else absent.get(database)
                                 or "not run"))
            continue
        extra = r["cpu_per_req"] - r["inproc"]
        rows.append(_verdict(target, f"server − in-process {extra:+.2f} ms ({r['cpu_per_req']:.2f} − "
                                     f"{r['inproc']:.2f})", extra <= SERVER_CPU_TARGET_MS))
    return rows


def throughput_target(served: list[dict] | str) -> dict:
    target = f"≥ {RPS_TARGET:g} API writes/s (SQLite, API only; a goal for a quiet 2-core machine)"
    r = None if isinstance(served, str) else _server_row(served, "SQLite", slack=False)
    if r is None:
        return _verdict(target, "–", why=served if isinstance(served, str) else "no SQLite server run")
    return _verdict(target, f"{r['rps']:.0f}/s; load average {r['load'][0]:.2f} → {r['load'][1]:.2f}",
                    r["rps"] >= RPS_TARGET)


def ack_targets(served: list[dict] | str) -> list[dict]:
    """Two rows: the ack against /healthz in the same run (every database served), and the ack's own
    bound, judged only when the machine was quiet."""
    ratio_target = f"Slack slash-command ack p99 ≤ {ACK_TARGET:g}× `/healthz` p99 (same run)"
    ms_target = f"Slack slash-command ack p99 ≤ {ACK_TARGET_MS:g} ms on a quiet machine (load ≤ {QUIET_LOAD:g})"
    found = [] if isinstance(served, str) else [r for r in (_server_row(served, db, slack=True)
                                                            for db in ("SQLite", "PostgreSQL")) if r]
    if not found:
        why = served if isinstance(served, str) else "no server run with Slack on"
        return [_verdict(ratio_target, "–", why=why), _verdict(ms_target, "–", why=why)]
    ratios = "; ".join(f"{r['database']} {r['ack_p99'] / r['health_p99']:.2f}× ({r['ack_p99']:.1f} ÷ "
                       f"{r['health_p99']:.1f} ms)" for r in found)
    acks = "; ".join(f"{r['database']} {r['ack_p99']:.1f} ms, load {r['load'][0]:.2f} → {r['load'][1]:.2f}"
                     for r in found)
    busiest = max(r["load"][0] for r in found)
    return [_verdict(ratio_target, ratios, all(r["ack_p99"] <= ACK_TARGET * r["health_p99"] for r in found)),
            _verdict(ms_target, acks, all(r["ack_p99"] <= ACK_TARGET_MS for r in found),
                     "" if busiest <= QUIET_LOAD else f"the machine was not quiet (load average {busiest:.2f})")]


def targets(results: dict, procs: dict, cli: dict | str, served: list[dict] | str, *, history: tuple[int, int],
            absent: dict[str, str], absent_served: dict[str, str]) -> list[dict]:
    """Every speed target's row. ``cli`` and ``served`` are the measurements or why they were not
    taken; ``absent`` and ``absent_served`` say why a database is missing from the in-process and the
    server results."""
    return [floor_target(results), *stats_targets(results, history, absent), warm_target(cli), cold_target(cli),
            process_target(procs), *server_cpu_targets(served, absent_served), throughput_target(served),
            *ack_targets(served)]


def render_targets(rows: list[dict]) -> str:
    lines = ["", "### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {r['status']} |" for r in rows]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--no-cli-start", action="store_true",
                        help="leave out `pipe create` as a whole process (bench/cli_start.py)")
    parser.add_argument("--no-server", action="store_true", help="leave out the pipe-server load (bench/server.py)")
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
    no_pg = "--no-postgres" if args.no_postgres else \
        None if pg else "no PostgreSQL (PIPE_TEST_DATABASE_URL or PIPE_BENCH_DATABASE_URL not set)"
    if not no_pg:
        log("PostgreSQL …")
        url, drop = _pg_schema_urls(pg)
        try:
            results["PostgreSQL 15 (local)"] = measure(url, args.iterations, args.pipelines, args.events,
                                                       floor_path=None, log=log, web=web)
        finally:
            drop()
    procs = process_timings(1 if args.smoke else 15)
    cli = "--no-cli-start" if args.no_cli_start else _cli_start(args.smoke, log)
    served = "--no-server" if args.no_server else _server_load(args.smoke, no_pg, log)
    absent_served = {"PostgreSQL": no_pg or ("--smoke serves SQLite only" if args.smoke else "")}
    rows = targets(results, procs, cli, served, history=(args.pipelines, args.events),
                   absent={"PostgreSQL": no_pg or ""}, absent_served=absent_served)
    report = render(results, procs, args) + _process_sections(cli, served) + render_targets(rows)
    print(report)
    if args.write:
        # The server's tables go to their own section ("## Server"), once; the results point there.
        in_file = render(results, procs, args) + _process_sections(cli, served, server_in_section=True)
        write_results(ROOT / "BENCHMARKS.md", in_file + render_targets(rows))
        if not isinstance(served, str):
            from bench import server

            server.write_section(ROOT / "BENCHMARKS.md", server.report(served, SERVER_CONCURRENCY))
    return 0


SERVER_CONCURRENCY = 32  # requests in flight, bench/server.py's default


def _cli_start(smoke: bool, log) -> dict:
    """`pipe create` as a whole process: in full, against 41bf867 and HEAD as archives, counted under
    valgrind; in --smoke, two rounds of the checkout's variants alone."""
    from bench import cli_start

    log("CLI start (bench/cli_start.py) …")
    t0 = time.perf_counter()
    out = cli_start.measure(2) if smoke else cli_start.measure(15, archives=(COLD_BEFORE, "HEAD"), callgrind=True)
    log(f"  {time.perf_counter() - t0:.1f} s")
    return out


def _server_load(smoke: bool, no_pg: str | None, log) -> list[dict]:
    """The pipe-server load (bench/server.py); in --smoke, small and on SQLite only."""
    from bench import server

    argv = ["--concurrency", str(SERVER_CONCURRENCY)]
    argv += ["--writes", "200", "--slash", "100", "--inproc", "50", "--sqlite-only"] if smoke else []
    argv += ["--sqlite-only"] if no_pg and not smoke else []
    log("pipe-server (bench/server.py) …")
    t0 = time.perf_counter()
    out = server.measure_all(server.options(argv))
    log(f"  {time.perf_counter() - t0:.1f} s")
    return out


def _process_sections(cli: dict | str, served: list[dict] | str, *, server_in_section: bool = False) -> str:
    """The CLI-start and server tables, each where it was measured (``server_in_section``: the
    server's tables stand in BENCHMARKS.md's "Server" section, and here only a pointer to them)."""
    lines = []
    if not isinstance(cli, str):
        from bench import cli_start

        lines += ["", "### CLI start: `pipe create` as a whole process (bench/cli_start.py)", "",
                  cli_start.render(cli)]
    if not isinstance(served, str):
        from bench import server

        lines += ["", "### pipe-server under load (bench/server.py)", ""]
        lines += ["The tables of this run are in [Server](#server) below."] if server_in_section else \
            [server.report(served, SERVER_CONCURRENCY)]
    return "\n".join(lines) + "\n" if lines else ""


def write_results(path: Path, report: str) -> None:
    """Replace what stands between the results markers; the text around them stays."""
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition("<!-- results -->")
    _, end, tail = rest.partition("<!-- /results -->")
    path.write_text(head + start + "\n\n" + report + "\n" + (end or "<!-- /results -->") + tail, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
