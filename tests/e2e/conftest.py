"""A real `pipe-server` process under uvicorn, on the test database, talking to a fake Slack
that runs in the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes import slack as fake

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [str(BIN / "pipe-server"), "--port", str(self.port), "--log-level", "warning"]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pipe-server exited {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"pipe-server did not answer /healthz: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def pytest_collection_modifyitems(items):
    """Every test here starts real processes: all are `slow` (left out of `make test-fast`)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def server_env(env, fake_slack, config_file):
    return {**os.environ, **env,
            "SLACK_SIGNING_SECRET": fake.SIGNING_SECRET, "SLACK_BOT_TOKEN": fake.BOT_TOKEN,
            "SLACK_API_URL": fake_slack.api_url, "PIPE_SLACK_CHANNEL": "C0PIPE",
            "PIPE_OUTBOX_POLL_SECONDS": "0.2", "PIPE_OUTBOX_LEASE_SECONDS": "1"}


@pytest.fixture
def pipe_server(server_env, tmp_path):
    started = []

    def start(**extra) -> ServerProcess:
        proc = ServerProcess(server_env | extra, tmp_path / f"server-{len(started)}.log").start()
        started.append(proc)
        return proc

    start.env = server_env
    yield start
    for proc in started:
        proc.stop()


def pipe_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pipe"), *args], env=env, capture_output=True, text=True, timeout=30)
