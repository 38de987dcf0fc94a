"""The built wheel behaves like a package: installed as a tool into a clean environment, it runs
the walkthrough from another directory — one that has its own `core/`, `cli/` and `bot/` on
PYTHONPATH, which the installed chainpipe must never import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")

pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed (make install brings it)")


def run(*args: str, env: dict, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def test_the_wheel_installs_as_a_tool_and_runs_the_walkthrough_beside_a_users_own_core(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIPE_", "VIRTUAL_ENV", "PYTHON"))}
    dist = tmp_path / "dist"
    run(UV, "build", "--wheel", "--out-dir", str(dist), str(ROOT), env=base, cwd=tmp_path)
    [wheel] = dist.glob("chainpipe-*.whl")
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    env = base | {"UV_TOOL_DIR": str(tools), "UV_TOOL_BIN_DIR": str(bin_dir)}
    run(UV, "tool", "install", "--python", sys.executable, str(wheel), env=env, cwd=tmp_path)

    project = tmp_path / "someone-elses-project"
    for name in ("core", "cli", "bot"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    pipe = str(bin_dir / "pipe")
    env = base | {"PYTHONPATH": str(project), "PIPE_DATA_DIR": str(tmp_path / "data"), "PIPE_WORKER": "0",
                  "PIPE_ACTOR": "alice"}
    assert run(pipe, "--version", env=env, cwd=project).stdout.startswith("pipe (chainpipe)")
    pid = json.loads(run(pipe, "create", "--name", "用户认证", "--template", "feature", "--json",
                         env=env, cwd=project).stdout)["id"]
    for words in (["start", pid], ["stage", pid, "code"], ["stage", pid, "review"],
                  ["approve", pid, "--gate", "code-review"]):
        run(pipe, *words, env=env, cwd=project)
    (project / "build.zip").write_bytes(b"artifact")
    run(pipe, "artifact-add", pid, "--name", "build.zip", "--type", "binary", "--path", "build.zip",
        env=env, cwd=project)
    dep = json.loads(run(pipe, "deploy", pid, "--strategy", "canary", "--target", "production", "--json",
                         env=env, cwd=project).stdout)
    run(pipe, "monitor-record", pid, "--metric", "error_rate", "--value", "0.02", env=env, cwd=project)
    assert json.loads(run(pipe, "rollback", dep["id"], "--json", env=env, cwd=project).stdout)["status"] == \
        "rolled-back"
    assert json.loads(run(pipe, "audit", "verify", pid, "--json", env=env, cwd=project).stdout)["ok"] is True
    manifest = run(pipe, "slack-manifest", "--url", "https://pipe.example.test", env=env, cwd=project).stdout
    assert "https://pipe.example.test/slack/events" in manifest
    assert run(str(bin_dir / "pipe-server"), "--version", env=env, cwd=project).stdout.startswith("pipe-server ")
