"""Remote mode end to end: a real `pipe-server` process, an administrator who creates a personal token
in direct mode, a team member who logs in with it and runs the seed's walkthrough verbatim under
bash through the server, and what start-up imports in remote mode."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, pipe_cli
from tests.e2e.test_cli_process import WALKTHROUGH

PIPE = str(BIN / "pipe")
# Remote mode imports none of these: no database layer, no Typer/Click, no third-party HTTP client.
HEAVY = ("sqlalchemy", "sqlmodel", "psycopg", "pydantic", "typer", "click", "httpx")


@pytest.fixture
def team(pipe_server, tmp_path):
    """The server, the administrator's environment (direct, on the server's database) and a team
    member's (no database settings, a home of their own, pipe on PATH)."""
    if not pipe_server.env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the remote client never sees the database: one is enough here; "
                    "tests/e2e/test_server_api.py runs the server on PostgreSQL")
    server = pipe_server(PIPE_SERVER_API_ONLY="1")
    admin = pipe_server.env | {"PIPE_ACTOR": "admin"}
    home = tmp_path / "member"
    (home / "work" / "dist").mkdir(parents=True)
    host = {k: v for k, v in os.environ.items() if not k.startswith(("PIPE_", "XDG_", "_PIPE_COMPLETE", "COMP_"))}
    member = host | {"HOME": str(home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PIPE_ACTOR": "mallory"}
    return server, admin, member, home


def run(env: dict, *args: str, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(not shutil.which("jq") or not shutil.which("bash"), reason="needs bash and jq")
def test_a_team_member_logs_in_and_runs_the_walkthrough_through_the_server(team):
    server, admin, member, home = team
    created = pipe_cli(admin, "token", "create", "--name", "alice-laptop", "--for", "alice", "--json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    listed = pipe_cli(admin, "token", "list")
    assert listed.stdout.split("\n")[1].split()[:4] == ["alice-laptop", "personal", "alice", "active"]

    login = run(member, PIPE, "login", "--server", server.url, stdin=token + "\n")
    assert login.returncode == 0 and login.stderr == "", login.stderr
    credentials = home / ".config" / "chainpipe" / "credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    assert token not in login.stdout

    work = home / "work"
    (work / "dist" / "build.zip").write_bytes(b"zip")
    walked = run(member, "bash", "-c", WALKTHROUGH, cwd=work)
    assert walked.returncode == 0 and walked.stderr == "", walked.stderr
    show = json.loads((work / "show.json").read_text())
    assert show["name"] == "用户认证" and show["current_stage"] == "deploy" and show["created_by"] == "alice"
    assert show["artifacts"][0]["digest"] == "sha256:4a70fe9aa6436e02c2dea340fbd1e352e4ef2d8ce6ca52ad25d4b95471fc8bf2"
    assert show["artifacts"][0]["size"] == 3 and show["artifacts"][0]["path"] is None
    assert show["recent_deploys"][0]["status"] == "rolled-back"
    stats = json.loads((work / "stats.json").read_text())
    assert stats["deploys"]["by_status"]["rolled-back"] == 1 and stats["gate_decisions"]["approved"] == 1

    pid = show["id"]
    audit = json.loads(pipe_cli(admin, "audit", pid, "--json", "--limit", "100").stdout)
    assert len(audit) >= 10
    assert {(e["actor"], e["principal"]) for e in audit} == {("alice", "token:alice-laptop")}

    refused = run(member, PIPE, "approve", pid, "--gate", "code-review", "--as", "bob")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == ("pipe: --as is not available in remote mode: the token decides who you are "
                              "(see `pipe login --status`)\n")
    assert json.loads(pipe_cli(admin, "audit", pid, "--json", "--limit", "100").stdout) == audit
    assert not (home / ".local" / "share" / "chainpipe").exists()  # no database, no crash log on the member's side

    assert run(member, PIPE, "logout").returncode == 0 and not credentials.exists()


def test_remote_mode_imports_no_database_typer_or_http_library(team):
    server, admin, member, home = team
    token = json.loads(pipe_cli(admin, "token", "create", "--name", "ci-reader", "--json").stdout)["token"]
    env = member | {"PIPE_SERVER_URL": server.url, "PIPE_TOKEN": token}
    pid = json.loads(run(env, PIPE, "create", "--name", "p", "--json").stdout)["id"]
    # a result, a table, and a refusal (the server's line, exit 1): none of them loads the database layer
    for argv, code in ((["show", pid], 0), (["list", "--json"], 0), (["approve", pid, "--gate", "code-review"], 1)):
        res = run(env, sys.executable, "-X", "importtime", "-m", "chainpipe.cli.main", *argv,
                  cwd=Path(__file__).parents[2])
        imported = {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines()
                    if line.startswith("import time:")}
        said = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
        assert res.returncode == code and bool(res.stdout.strip()) == (code == 0), said
        # the run went the remote road
        assert "chainpipe.cli.remote_cli" in imported and "chainpipe.cli.api_client" in imported
        assert not {m for m in imported if m.split(".")[0] in HEAVY}
    assert not (home / ".local" / "share" / "chainpipe").exists()
