"""Remote mode once for real: the entrypoint as a process, talking to a `pipe-server` process over
HTTP with a token that may name the actor (`--allow-actor-header`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adapters.test_action_entrypoint import parse_outputs

pytest.importorskip("chainpipe.bot.server", reason="the server (bot/server.py) is not available")
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def pipe(env: dict, *args: str) -> str:
    proc = subprocess.run([str(BIN / "pipe"), *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_action_records_through_a_real_server_as_the_github_actor(request, tmp_path, env):
    if not env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("one database is enough here; the API tests cover PostgreSQL")
    try:
        start = request.getfixturevalue("pipe_server")
    except pytest.FixtureLookupError:
        pytest.skip("no pipe_server fixture in tests/e2e/conftest.py")
    server = start()
    token = pipe(start.env, "token", "create", "--name", "ci", "--allow-actor-header").splitlines()[0].strip()
    pid = json.loads(pipe(start.env, "create", "--name", "shop", "--template", "bugfix", "--json"))["id"]
    pipe(start.env, "start", pid)
    (tmp_path / "app.bin").write_bytes(b"shop" * 256)
    (tmp_path / "output").write_text("")

    runner = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GITHUB_ACTOR": "octocat",
              "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "99", "GITHUB_SERVER_URL": "https://github.com",
              "GITHUB_SHA": "e" * 40, "GITHUB_WORKSPACE": str(tmp_path), "GITHUB_OUTPUT": str(tmp_path / "output"),
              "PIPE_ACTION_COMMAND": "artifact", "PIPE_ACTION_PIPELINE_ID": pid, "PIPE_ACTION_PATH": "app.bin",
              "PIPE_ACTION_TYPE": "binary", "PIPE_ACTION_SERVER_URL": server.url, "PIPE_ACTION_TOKEN": token}
    proc = subprocess.run([str(BIN / "pipe-action")], env=runner, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr + server.log()
    outputs = parse_outputs((tmp_path / "output").read_text())
    assert outputs["digest"] == "sha256:" + hashlib.sha256(b"shop" * 256).hexdigest()

    [art] = json.loads(pipe(start.env, "artifacts", pid, "--json"))
    assert (art["id"], art["size"], art["surface"]) == (outputs["artifact-id"], 1024, "github")
    assert art["created_by"] == "token:ci" and art["run_url"] == "https://github.com/acme/shop/actions/runs/99"
    [event] = [e for e in json.loads(pipe(start.env, "audit", pid, "--json")) if e["entity"] == "artifact"]
    assert (event["principal"], event["on_behalf_of"]) == ("token:ci", "github:octocat")  # the claim, kept

    wrong = subprocess.run([str(BIN / "pipe-action")], env=runner | {"PIPE_ACTION_TOKEN": "not-a-token"},
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "unauthorized::the server refused the token (401)" in wrong.stdout  # configuration
