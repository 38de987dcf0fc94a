"""`pipe-server --workers N`: N processes serve the API on PostgreSQL, and the outbox drainers of
all of them still post each gate message once; on SQLite the option is refused in one line."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.tokens import create_token
from chainpipe.core.uow import UnitOfWork

from tests.adapters.test_slack_gates import gate_message_calls
from tests.e2e.conftest import BIN, ServerProcess

WORKERS = 2


class WorkersProcess(ServerProcess):
    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(WORKERS)]

    def workers(self) -> list[int]:
        """The worker processes under uvicorn's supervisor (not multiprocessing's helpers)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        found = []
        for pid in map(int, children):
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                found.append(pid)
        return found


def connections(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` the process ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            held += local_port == port and state == "01" and inode in inodes
    return held


def served_by_each(server, pids: list[int], headers: dict, rounds: int = 3) -> list[int]:
    """Open keep-alive connections (each answered once) until every worker holds one; per worker, how many."""
    clients = []
    try:
        for _ in range(rounds):
            batch = [httpx.Client(base_url=server.url, headers=headers, timeout=30) for _ in range(16)]
            clients += batch
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(lambda c: c.post("/api/v1/commands/list", json={}).status_code, batch))
            assert statuses == [200] * 16
            held = [connections(pid, server.port) for pid in pids]
            if all(held):
                return held
        return held
    finally:
        for client in clients:
            client.close()


def on_postgres(env):
    if not env["PIPE_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("--workers serves on PostgreSQL only")


def test_workers_on_sqlite_are_refused_in_one_line(server_env):
    if not server_env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the refusal is SQLite's")
    done = subprocess.run([str(BIN / "pipe-server"), "--workers", "2", "--port", "0"], env=server_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("pipe-server: --workers 2 needs PostgreSQL"), line


def test_workers_serve_the_api_and_post_each_gate_message_once(server_env, fake_slack, tmp_path):
    on_postgres(server_env)
    with UnitOfWork(load_settings(server_env)) as uow:
        token = create_token(uow, Actor("admin"), "ci")["token"]
    # No crash here: a lease longer than any drain, so a duplicate could only come from two workers
    # claiming one event at once (with the suite's 1 s lease, a slow machine could re-claim a live one).
    env = server_env | {"PIPE_OUTBOX_LEASE_SECONDS": "30"}
    server = WorkersProcess(env, tmp_path / "workers.log").start(timeout=60)
    try:
        deadline = time.monotonic() + 30
        while len(pids := server.workers()) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pids) == WORKERS, server.log()
        headers = {"Authorization": f"Bearer {token}"}
        held = served_by_each(server, pids, headers)
        assert all(held), f"connections per worker: {held}"

        def create(i: int) -> dict:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
                resp = client.post("/api/v1/commands/create", json={"name": f"w{i}"})
                assert resp.status_code == 200, resp.text
                pid = resp.json()["result"]["id"]
                for path, body in (("start", {}), ("artifact-add", {"name": "build", "type": "docker-image",
                                                                      "uri": "reg.test/app@sha256:" + "a" * 64}),
                                   ("stage", {"stage": "review"})):
                    resp = client.post(f"/api/v1/commands/{path}", json={"pipeline_id": pid, **body})
                    assert resp.status_code == 200, resp.text
                return pid

        with ThreadPoolExecutor(8) as pool:
            created = list(pool.map(create, range(24)))
        calls = fake_slack.wait_for("chat.postMessage", lambda c: "Gate code-review" in (c.params.get("text") or ""),
                                    timeout=30, count=len(created))
        time.sleep(2)  # a second drainer's duplicate would land by now (poll 0.2 s)
        posted = gate_message_calls(fake_slack)
        assert len(posted) == len(created) == len(calls)
        assert "Traceback" not in server.log()
    finally:
        server.stop()
