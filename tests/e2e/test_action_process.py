"""action.yml's run step as the runner executes it: bash runs the installed `pipe-action` in a real
process with the step's `env:`; its exit code, log and the runner's files are what the job sees.
The commands themselves are tested in process (tests/adapters/test_action_entrypoint.py)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.adapters.test_action_entrypoint import parse_outputs, run_step, runner_env


@pytest.fixture
def sqlite_env(tmp_path):
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    return {"PIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'pipe.db'}", "PIPE_DATA_DIR": str(tmp_path / "data"),
            "PIPE_CONFIG": str(tmp_path / "config.toml"), "HOME": str(tmp_path)}


def run_the_step(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", run_step()["run"]], env=env, capture_output=True, text=True,
                          timeout=60, cwd=env["GITHUB_WORKSPACE"])


def test_the_run_step_starts_the_entrypoint_which_writes_outputs_and_fails_with_exit_codes(sqlite_env, tmp_path):
    inputs = {"command": "create", "name": "shop", "template": "bugfix",
              "database-url": sqlite_env["PIPE_DATABASE_URL"]}
    created = run_the_step(runner_env(tmp_path, sqlite_env, inputs))
    assert created.returncode == 0, created.stdout + created.stderr
    outputs = parse_outputs((tmp_path / "output").read_text())
    assert re.fullmatch(r"pipe-[0-9a-f]{12}", outputs["pipeline-id"]) and outputs["status"] == "running"
    assert "pipeline created" in (tmp_path / "summary").read_text()

    unknown = run_the_step(runner_env(tmp_path, sqlite_env, inputs | {"command": "launch"}))
    assert unknown.returncode == 2
    assert "::error title=chainpipe launch%3A invalid input::unknown command 'launch'" in unknown.stdout

    env = runner_env(tmp_path, sqlite_env, inputs) | {"RUNNER_DEBUG": "1"}
    (tmp_path / "output").unlink()
    (tmp_path / "output").mkdir()  # the runner's output file is unusable: a crash, exit 3
    crashed = run_the_step(env)
    assert crashed.returncode == 3 and "::error title=chainpipe internal error::" in crashed.stdout
    assert "Traceback" not in crashed.stdout and "Traceback" in crashed.stderr
