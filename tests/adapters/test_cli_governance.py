"""V2 governance through the installed `pipe` script: every command is its own process, so what one
process registers, activates or sets must be read back from the database by the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PIPE = str(Path(sys.executable).with_name("pipe"))


@pytest.fixture
def pipe(env, config_file, tmp_path):
    full = {k: v for k, v in os.environ.items() if not k.startswith("PIPE_")} | env | {"PIPE_ACTOR": "alice"}

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PIPE, *args], capture_output=True, text=True, env=full, cwd=tmp_path, timeout=60)

    return call


def ok(res: subprocess.CompletedProcess):
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    return json.loads(res.stdout) if res.stdout.startswith(("{", "[")) else res.stdout


def refused(res: subprocess.CompletedProcess, code: int, message: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipe: ") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_state_and_settings_persist_across_processes(pipe):
    created = ok(pipe("register-pipeline-v2", "web:deploy", "alice", "--name", "web deploys", "--json"))
    assert created["status"] == "pending"
    assert "web:deploy  owner alice  active" in ok(pipe("activate-pipeline-v2", "web:deploy"))
    assert ok(pipe("set-max-pending-runs-v2", "1.7")) == "max_pending_runs_per_pipeline: 20 → 1\n"
    ok(pipe("create-run-v2", "r1", "web:deploy", "--trigger", "push"))

    stats = ok(pipe("gov-stats-v2", "--owner", "alice", "--json"))  # a fresh process reads it all back
    assert stats["pipelines"] == {"pending": 0, "active": 1, "paused": 0, "archived": 0, "total": 1}
    assert stats["runs"] == {"queued": 1, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 1}
    assert stats["caps"] == {"max_active_pipelines_per_owner": 10, "max_pending_runs_per_pipeline": 1}
    assert stats["owner"] == {"name": "alice", "active": 1, "max_active": 10, "remaining": 9}


def test_errors_are_one_line_with_exit_code_1_for_state_and_2_for_input(pipe, env, run, alice):
    """Set up in-process, then one process per command, several at a time."""
    if not env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the CLI maps errors the same way on every database; checked on SQLite")
    from core.services import governance as gov
    from core.services import governance_runs as runs

    for pid in ("web", "api"):
        run(gov.register_pipeline_v2, alice, pipeline_id=pid, owner="alice")
    run(gov.activate_pipeline_v2, alice, pipeline_id="web")
    run(gov.set_max_active_pipelines_v2, alice, value="1")
    run(gov.set_max_pending_runs_v2, alice, value="1")
    run(runs.create_run_v2, alice, run_id="r1", pipeline_id="web")
    run(runs.start_run_v2, alice, run_id="r1")
    cases = [
        (("activate-pipeline-v2", "api"), 1,
         "active pipeline cap reached for owner alice (1/1); archive or pause one first"),
        (("create-run-v2", "r2", "web"), 1, "pending run cap reached for pipeline web (1/1)"),
        (("pause-pipeline-v2", "api"), 1, "can't pause a governed pipeline api that is pending; allowed from: active"),
        (("register-pipeline-v2", "web", "bob"), 1, "governed pipeline web already exists"),
        (("set-run-stuck-ms-v2", "soon"), 2, "run stuck ms must be a positive number, got 'soon'"),
        (("auto-fail-stuck-v2", "--now", "yesterday"), 2, "not an ISO-8601 time: yesterday"),
        (("get-run-v2",), 2, "Missing argument"),
    ]
    with ThreadPoolExecutor(4) as pool:
        failing = pool.map(lambda case: pipe(*case[0]), cases)
        failed_run = pool.submit(pipe, "fail-run-v2", "r1", "runner lost", "--json")
        for (_, code, message), res in zip(cases, list(failing), strict=True):
            refused(res, code, message)
        assert ok(failed_run.result())["reason"] == "runner lost"  # optional positional REASON
    assert run(gov.show_config_v2, alice)["max_active_pipelines_per_owner"] == 1  # refusals changed nothing
