"""`pipe-server` under load, from this machine only: API write throughput and the server's CPU per
request beside the same operation in process, and Slack's slash-command ack latency beside
``/healthz`` in the same run.

    python -m bench.server                  # SQLite, and PostgreSQL when a URL is set (see below)
    python -m bench.server --workers 2      # PostgreSQL served by two processes (SQLite: one)
    python -m bench.server --write          # also rewrite the "## Server" section of BENCHMARKS.md
    python -m bench.server --compare DIR --compare-h11   # also an older tree's server, on h11

A real `pipe-server` process runs on a fresh database (a temporary SQLite file; on PostgreSQL a
fresh schema of PIPE_BENCH_DATABASE_URL or PIPE_TEST_DATABASE_URL, dropped afterwards) with Slack
on, talking to a fake Slack (tests/fakes/slack.py) in a process of its own, which also receives
the commands' replies: Slack is elsewhere, and the fake's threads, answering a reply per slash
command, would otherwise share this process's interpreter with the load generator timing the
acks. The load is asyncio on raw keep-alive connections (``Connection``): at most
``--concurrency`` requests in flight, to a loopback address only (anything else is refused: this
is not a tool to aim at a server).

- **Writes**: ``POST /api/v1/commands/create`` with a service token, ``--writes`` of them. The
  server's CPU (utime + stime of the server and its workers, from /proc) is read before and after;
  divided by the requests it is the CPU per request, printed beside the CPU p50 of the same
  command run in this process (``core.dispatch.execute``, one unit of work) on the same database.
  With Slack on, the run lasts until the server's notifier has recorded an outcome for every audit
  event (the writes' events delivered too), so the CPU holds the outbox drain of the writes.
  The server's idle CPU (pollers) over the same time is measured first and shown, not subtracted.
- ``--rounds N`` measures each server N times, the trees interleaved; the tables show medians and
  every round's CPU per write.
- **Slack**: signed ``/pipe create`` slash commands and ``GET /healthz`` alternate in each of the
  concurrent senders, so both see the same load; the ack is the slash command's HTTP response
  (its work — the replay record, the command and the reply to the response_url — follows it).
- The load average (1 minute) is recorded before and after each database's run.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import COMMANDS
from chainpipe.core.services.tokens import create_token
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import text

from bench.run import ACK_TARGET, ACK_TARGET_MS, SERVER_CPU_TARGET_MS, _pg_schema_urls, pct
from bench.run import load_average as loadavg
from tests.fakes import slack as fake

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
SLACK_FORM = "application/x-www-form-urlencoded"


class SlackProcess:
    """The fake Slack served from a child process; ``replies`` counts what reached a response_url."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_slack, args=(child,), name="bench-fake-slack", daemon=True)

    def start(self) -> SlackProcess:
        self._proc.start()
        if not self._conn.poll(60):
            raise SystemExit("bench: the fake Slack did not start")
        self.base = self._conn.recv()
        self.api_url = self.base + "/api/"
        return self

    def response_url(self, name: str) -> str:
        return f"{self.base}/response/{name}"

    def replies(self, prefix: str, count: int, timeout: float) -> int:
        """Wait until ``count`` replies reached response_urls under ``prefix``; how many did."""
        deadline, seen = time.monotonic() + timeout, 0
        while True:
            self._conn.send(("replies", prefix))
            seen = self._conn.recv()
            if seen >= count or time.monotonic() > deadline:
                return seen
            time.sleep(0.1)

    def stop(self) -> None:
        if self._proc.is_alive():
            self._conn.send(("stop", None))
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def _serve_slack(conn) -> None:
    slack = fake.FakeSlack().start()
    conn.send(slack.base)
    while True:
        what, arg = conn.recv()
        if what == "stop":
            slack.stop()
            return
        conn.send(sum(1 for c in slack.calls_to("response_url") if c.path.startswith(arg)))


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---- the server ---------------------------------------------------------------------------------


class Server:
    """A `pipe-server` process on ``url``'s database, with Slack pointed at ``slack``."""

    def __init__(self, database_url: str, slack: SlackProcess, host: str, workers: int, home: Path, *,
                 slack_on: bool = True, pythonpath: str | None = None):
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text("", encoding="utf-8")
        self.env = {**os.environ, "PIPE_DATABASE_URL": database_url, "PIPE_DATA_DIR": str(home / "data"),
                    "PIPE_CONFIG": str(home / "config.toml"), "HOME": str(home),
                    "SLACK_SIGNING_SECRET": fake.SIGNING_SECRET, "SLACK_BOT_TOKEN": fake.BOT_TOKEN,
                    "SLACK_API_URL": slack.api_url, "PIPE_SLACK_CHANNEL": "C0BENCH"}
        if not slack_on:
            self.env["PIPE_SERVER_API_ONLY"] = "1"
        if pythonpath:  # another tree's chainpipe package (--compare), ahead of the installed one
            self.env["PYTHONPATH"] = pythonpath
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log = home / "server.log"
        cmd = [str(BIN / "pipe-server"), "--host", host, "--port", str(self.port), "--log-level", "warning"]
        cmd += ["--workers", str(workers)] if workers > 1 else []
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.settings = load_settings(self.env)

    def wait_ready(self, workers: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: pipe-server exited {self.proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                ok = httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok and (workers == 1 or len(self.pids()) > workers):
                return
            time.sleep(0.1)
        raise SystemExit(f"bench: pipe-server did not become ready: {self.log.read_text()[-500:]}")

    def pids(self) -> list[int]:
        """The server and every process under it (uvicorn's workers)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        found = children.read_text().split() if children.exists() else []
        return [self.proc.pid, *map(int, found)]

    def cpu(self) -> float:
        """Seconds of CPU (user + system) the server's processes have used so far."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / TICK

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- the load -----------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams. The load generator shares the
    machine with the server, so it spends as little CPU per request as it can: no HTTP library,
    requests built from bytes, responses read by their Content-Length."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await self.reader.readline()
        length, closing = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                closing = True
        content = await self.reader.readexactly(length) if length else b""
        if closing:
            self.close()
        return int(status_line.split()[1]), content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def bounded(host: str, port: int, concurrency: int, sender) -> None:
    """``concurrency`` copies of ``sender(connection)`` at once, each on a connection of its own."""
    connections = [Connection(host, port) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(sender(c) for c in connections))
    finally:
        for c in connections:
            c.close()


async def api_writes(host: str, port: int, token: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    """(seconds, per-request wall ms) for ``total`` creates, ``concurrency`` in flight."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    walls: list[float] = []
    left = iter(range(total))

    async def sender(conn: Connection) -> None:
        for i in left:
            t0 = time.perf_counter()
            status, content = await conn.request("POST", "/api/v1/commands/create",
                                                 json.dumps({"name": f"bench {i}"}).encode(), headers)
            walls.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"bench: create answered {status}: {content[:300]!r}")

    started = time.perf_counter()
    await bounded(host, port, concurrency, sender)
    return time.perf_counter() - started, walls


async def slack_and_health(host: str, port: int, slack: SlackProcess, first: int, total: int,
                           concurrency: int) -> dict:
    """Slash-command acks and /healthz, alternating in every sender; wall ms of each."""
    acks: list[float] = []
    health: list[float] = []
    left = iter(range(first, first + total))

    async def sender(conn: Connection) -> None:
        for i in left:
            body = fake.slash_body(f"create --name ack{i}", user_id="U0BENCH", response_url=slack.response_url(f"b{i}"))
            t0 = time.perf_counter()
            status, content = await conn.request("POST", "/slack/events", body.encode(),
                                                 fake.headers_for(body, SLACK_FORM))
            acks.append((time.perf_counter() - t0) * 1000)
            if status != 200 or content:
                raise SystemExit(f"bench: slash ack {status}: {content[:300]!r}")
            t0 = time.perf_counter()
            status, _ = await conn.request("GET", "/healthz")
            health.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"bench: /healthz answered {status}")

    await bounded(host, port, concurrency, sender)
    return {"acks": acks, "health": health}


def in_process_cpu(settings, rounds: int) -> list[float]:
    """CPU ms of each of the same creates, run here through core.dispatch (one unit of work)."""
    actor, command, cpu = Actor("token:bench", "api", principal="token:bench", service=True), COMMANDS["create"], []
    for i in range(rounds):
        t0 = time.process_time()
        execute(command, {"name": f"inproc {i}"}, actor, settings, local=False)
        cpu.append((time.process_time() - t0) * 1000)
    return cpu[3:]


# ---- one database -------------------------------------------------------------------------------

UNDELIVERED = text(
    "SELECT count(*) FROM audit_events a WHERE NOT EXISTS (SELECT 1 FROM outbox_deliveries d "
    "WHERE d.consumer = 'slack' AND d.audit_seq = a.seq AND d.result <> 'claimed')"
)


def drained(settings, timeout: float = 120.0) -> float:
    """Wait until the server's notifier has recorded an outcome for every audit event, so the CPU
    of a run with Slack on holds the delivery of its writes' events too; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with UnitOfWork(settings, write=False) as uow:
            if not uow.conn.execute(UNDELIVERED).scalar():
                return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"bench: the notifier did not catch up within {timeout:g} s")


def measure(name: str, database_url: str, args, home: Path, *, slack_on: bool, tree: tuple) -> dict:
    """One server on the database: the writes, then (with Slack on) the slash commands."""
    slack = SlackProcess().start()
    server = Server(database_url, slack, args.host, args.workers, home, slack_on=slack_on, pythonpath=tree[1])
    try:
        server.wait_ready(args.workers)
        with UnitOfWork(server.settings) as uow:
            token = create_token(uow, Actor("bench"), f"bench-{time.time_ns()}")["token"]
        load_before = loadavg()
        where = (args.host, server.port)
        asyncio.run(api_writes(*where, token, min(200, args.writes), args.concurrency))  # warm-up
        idle0 = server.cpu()
        time.sleep(2.0)
        idle_per_s = (server.cpu() - idle0) / 2.0
        inproc = in_process_cpu(server.settings, args.inproc)
        if slack_on:
            drained(server.settings)
        cpu0 = server.cpu()
        seconds, walls = asyncio.run(api_writes(*where, token, args.writes, args.concurrency))
        drain_wait = drained(server.settings) if slack_on else 0.0
        cpu_per_req = (server.cpu() - cpu0) / args.writes * 1000
        inproc += in_process_cpu(server.settings, args.inproc)
        result = {
            "database": name, "server": tree[0], "workers": args.workers, "slack": slack_on, "writes": args.writes,
            "rps": args.writes / seconds, "write_p50": pct(walls, 0.5), "write_p99": pct(walls, 0.99),
            "cpu_per_req": cpu_per_req, "idle_cpu_ms_per_s": idle_per_s * 1000,
            "inproc": statistics.median(inproc), "inproc_mean": statistics.fmean(inproc), "drain_wait": drain_wait,
        }
        if slack_on:
            warm = min(100, args.slash)
            asyncio.run(slack_and_health(*where, slack, 0, warm, args.concurrency))
            latency = asyncio.run(slack_and_health(*where, slack, warm, args.slash, args.concurrency))
            replies = slack.replies("/response/b", args.slash + warm, timeout=120)
            result |= {"slash": args.slash, "ack_p50": pct(latency["acks"], 0.5),
                       "ack_p99": pct(latency["acks"], 0.99), "health_p50": pct(latency["health"], 0.5),
                       "health_p99": pct(latency["health"], 0.99), "replies": replies - warm}
        result["load"] = (load_before, loadavg())
        return result
    finally:
        server.stop()
        slack.stop()


def measure_database(name: str, url, args, home: Path, workers: list[int]) -> list[dict]:
    """Slack on and API only, for each number of workers and each server tree (this one, and the
    one ``--compare`` names, one after the other); ``url(label)`` names a fresh database."""
    trees = [("this tree", None)] + ([(args.compare_label, args.compare_path)] if args.compare else [])
    results = []
    for n in workers:
        args.workers = n
        for slack_on in (True, False):
            rounds: dict[int, list[dict]] = {}
            for r in range(args.rounds):  # the trees interleaved, round after round
                for i, tree in enumerate(trees if n == 1 else trees[:1]):  # an older tree may not know --workers
                    label = f"{n}-{'slack' if slack_on else 'api'}-{i}-{r}"
                    rounds.setdefault(i, []).append(
                        measure(name, url(label), args, home / label, slack_on=slack_on, tree=tree))
            results += [median_of(runs) for runs in rounds.values()]
    return results


def median_of(runs: list[dict]) -> dict:
    """One row for the rounds of one server: the median of each figure, every round's CPU per write,
    the load before the first and after the last."""
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float) and key != "load":
            row[key] = statistics.median(r[key] for r in runs)
    row["cpu_rounds"] = [r["cpu_per_req"] for r in runs]
    row["load"] = (runs[0]["load"][0], runs[-1]["load"][1])
    return row


# ---- the report ---------------------------------------------------------------------------------


def report(results: list[dict], concurrency: int) -> str:
    lines = [f"Concurrency {concurrency}; machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}.", "",
             "| database | server | workers | Slack | API writes/s | write p50 / p99 (ms) | server CPU per write (ms) "
             "| in-process create CPU p50 / mean (ms) | server − in-process p50 (ms) | idle server CPU (ms/s) "
             "| load before → after | CPU per write, each round (ms) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['database']} | {r['server']} | {r['workers']} | {'on' if r['slack'] else 'off (API only)'} "
                     f"| {r['rps']:.0f} | {r['write_p50']:.1f} / {r['write_p99']:.1f} | {r['cpu_per_req']:.2f} "
                     f"| {r['inproc']:.2f} / {r['inproc_mean']:.2f} | {r['cpu_per_req'] - r['inproc']:+.2f} "
                     f"| {r['idle_cpu_ms_per_s']:.1f} | {r['load'][0]:.2f} → {r['load'][1]:.2f} "
                     f"| {' '.join(f'{c:.2f}' for c in r['cpu_rounds'])} |")
    lines += ["", "| database | server | workers | slash commands | ack p50 / p99 (ms) | /healthz p50 / p99 (ms) | "
              "ack p99 ÷ /healthz p99 | replies delivered |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in (r for r in results if r["slack"]):
        lines.append(f"| {r['database']} | {r['server']} | {r['workers']} | {r['slash']} "
                     f"| {r['ack_p50']:.1f} / {r['ack_p99']:.1f} "
                     f"| {r['health_p50']:.1f} / {r['health_p99']:.1f} | {r['ack_p99'] / r['health_p99']:.2f} "
                     f"| {r['replies']} |")
    lines += ["", f"Targets: server CPU per write ≤ in-process + {SERVER_CPU_TARGET_MS:g} ms; ack p99 ≤ "
              f"{ACK_TARGET:g}× /healthz p99 (and ≤ {ACK_TARGET_MS:g} ms on a quiet machine)."]
    return "\n".join(lines)


def without_httptools(tmp: Path) -> Path:
    """A directory that, first on PYTHONPATH, makes ``import httptools`` fail, so uvicorn's "auto"
    HTTP protocol falls back to h11."""
    shim = tmp / "no-httptools"
    (shim / "httptools").mkdir(parents=True)
    (shim / "httptools" / "__init__.py").write_text(
        'raise ImportError("httptools hidden by bench.server --compare-h11")\n', encoding="utf-8")
    return shim


def write_section(path: Path, body: str) -> None:
    """Replace what stands between the server results markers in BENCHMARKS.md."""
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition("<!-- server-results -->")
    if not start:
        raise SystemExit("bench: BENCHMARKS.md has no <!-- server-results --> marker")
    _, end, tail = rest.partition("<!-- /server-results -->")
    path.write_text(head + start + "\n\n" + body + "\n\n" + (end or "<!-- /server-results -->") + tail,
                    encoding="utf-8")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's options, also what ``measure_all`` takes (bench/run.py builds them here)."""
    parser = argparse.ArgumentParser(prog="bench.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (nothing else is accepted)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--slash", type=int, default=1000)
    parser.add_argument("--inproc", type=int, default=200, help="in-process creates timed, twice")
    parser.add_argument("--workers", type=int, default=1, help="server processes on PostgreSQL (SQLite: 1)")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each server this many times, the trees interleaved; the tables show medians")
    parser.add_argument("--compare", metavar="DIR",
                        help="also serve from another tree: DIR holds a chainpipe package (e.g. an older commit's)")
    parser.add_argument("--compare-label", default="compared", help="its name in the tables")
    parser.add_argument("--compare-h11", action="store_true",
                        help="serve the compared tree with uvicorn's pure-Python h11 parser (httptools hidden from "
                             "it), as a tree from before httptools was a dependency ran")
    parser.add_argument("--write", action="store_true", help="rewrite the server results in BENCHMARKS.md")
    return parser.parse_args(argv)


def measure_all(args: argparse.Namespace) -> list[dict]:
    """Every server ``args`` asks for: SQLite, then PostgreSQL when a URL is set and not ``--sqlite-only``."""
    results = []
    workers = sorted({1, args.workers})
    with tempfile.TemporaryDirectory(prefix="pipe-bench-server-") as tmp:
        args.compare_path = args.compare
        if args.compare and args.compare_h11:
            args.compare_path = f"{without_httptools(Path(tmp))}{os.pathsep}{args.compare}"
        # SQLite: one process (pipe-server refuses more); a fresh file per server.
        results += measure_database("SQLite", lambda label: f"sqlite:///{tmp}/{label}.db", args, Path(tmp) / "sqlite",
                                    [1])
        base = os.environ.get("PIPE_BENCH_DATABASE_URL") or os.environ.get("PIPE_TEST_DATABASE_URL")
        if base and not args.sqlite_only:
            from chainpipe.core.db import dispose_engines

            url, drop = _pg_schema_urls(base)
            try:
                results += measure_database("PostgreSQL", lambda label: url(label.replace("-", "_")), args,
                                            Path(tmp) / "pg", workers)
            finally:
                dispose_engines()
                drop()
    return results


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    if not loopback(args.host):
        print(f"bench.server: --host must be a loopback address, got {args.host!r}", file=sys.stderr)
        return 2
    if not 1 <= args.concurrency <= 1024 or min(args.writes, args.slash, args.workers, args.rounds) < 1:
        print("bench.server: --concurrency 1-1024, --writes, --slash, --workers and --rounds at least 1",
              file=sys.stderr)
        return 2
    text = report(measure_all(args), args.concurrency)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
