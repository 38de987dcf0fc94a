"""The installed `pipe` console script in real processes, for what only a process shows: the seed's
walkthrough verbatim under bash, exit codes as a shell sees them, a crash, and what start-up
imports. Everything else about the CLI is tested in process (tests/adapters/test_cli*.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess

import pytest

from tests.e2e.conftest import BIN

PIPE = str(BIN / "pipe")
DATABASE_MODULES = ("sqlalchemy", "sqlmodel", "psycopg", "pydantic")
# The seed's walkthrough, verbatim (README), leaving stats.json and show.json behind.
WALKTHROUGH = """
set -euo pipefail
pid=$(pipe create --name "用户认证" --template feature --json | jq -r .id)
pipe start $pid
pipe stage $pid code
pipe stage $pid review
pipe approve $pid --gate code-review
pipe artifact-add $pid --name build.zip --type binary --path ./dist/build.zip
dep=$(pipe deploy $pid --strategy canary --target production --json | jq -r .id)
pipe monitor-record $pid --metric error_rate --value 0.02
pipe rollback $dep
pipe rollback $dep
pipe stats --json > stats.json
pipe show $pid --json > show.json
"""


@pytest.fixture
def shell_env(tmp_path):
    """The host's environment without PIPE_* settings, a fresh SQLite file, the venv's bin on PATH."""
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    host = {k: v for k, v in os.environ.items() if not k.startswith(("PIPE_", "_PIPE_COMPLETE", "COMP_"))}
    return host | {
        "PIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'pipe.db'}", "PIPE_DATA_DIR": str(tmp_path / "data"),
        "PIPE_CONFIG": str(tmp_path / "config.toml"), "HOME": str(tmp_path), "PIPE_ACTOR": "alice",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def sh(env: dict, script: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.skipif(not shutil.which("jq") or not shutil.which("bash"), reason="needs bash and jq")
def test_the_seed_walkthrough_runs_verbatim(shell_env, tmp_path):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "build.zip").write_bytes(b"zip")
    res = sh(shell_env, WALKTHROUGH, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    show = json.loads((tmp_path / "show.json").read_text())
    assert show["name"] == "用户认证" and show["current_stage"] == "deploy"
    assert show["artifacts"][0]["digest"].startswith("sha256:") and show["artifacts"][0]["size"] == 3
    assert show["recent_deploys"][0]["status"] == "rolled-back"
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["deploys"]["by_status"]["rolled-back"] == 1 and stats["gate_decisions"]["approved"] == 1


def test_exit_codes_and_one_line_errors_as_a_shell_sees_them(shell_env):
    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([PIPE, *args], capture_output=True, text=True, env=shell_env | extra, timeout=60)

    refused = run("start", "pipe-000000000000")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == "pipe: pipeline not found: pipe-000000000000\n"
    usage = run("frobnicate")
    assert usage.returncode == 2 and usage.stdout == ""
    assert usage.stderr.startswith("pipe: No such command 'frobnicate'") and usage.stderr.count("\n") == 1
    bare = run()
    assert (bare.returncode, bare.stderr) == (0, "") and bare.stdout.startswith("Usage: pipe [OPTIONS] COMMAND")
    completion = run(_PIPE_COMPLETE="complete_bash", COMP_WORDS="pipe deploy-", COMP_CWORD="1")
    assert (completion.returncode, completion.stderr) == (0, "")
    assert {"deploy-strategies", "deploy-update", "deploy-show"} <= set(completion.stdout.split())


def test_a_crash_exits_3_with_one_line_and_the_traceback_in_the_crash_log(shell_env, tmp_path):
    assert sh(shell_env, f'"{PIPE}" create --name x').returncode == 0
    with sqlite3.connect(tmp_path / "pipe.db") as db:  # a counter no version of chainpipe writes
        db.execute("UPDATE stat_counts SET n = 'many'")
    res = sh(shell_env, f'"{PIPE}" stats --json')
    assert res.returncode == 3 and res.stdout == ""
    log = tmp_path / "data" / "crash.log"
    match = re.fullmatch(rf"pipe: internal error (\S+): TypeError; details in {re.escape(str(log))}\n", res.stderr)
    assert match, res.stderr
    assert "Traceback" not in res.stderr
    assert match.group(1) in log.read_text(encoding="utf-8") and "Traceback" in log.read_text(encoding="utf-8")


def test_a_closed_standard_output_runs_nothing_and_a_closed_standard_error_is_no_crash(shell_env, tmp_path):
    closed = sh(shell_env, f'"{PIPE}" create --name lost >&-')
    assert (closed.returncode, closed.stdout) == (2, "")
    assert closed.stderr == ("pipe: standard output is closed: nothing was run (redirect it to /dev/null "
                             "to discard it)\n")
    assert sh(shell_env, f'"{PIPE}" create --name kept 2>&-').returncode == 0
    refused = sh(shell_env, f'"{PIPE}" start pipe-000000000000 2>&-')
    assert (refused.returncode, refused.stderr) == (1, "")
    names = [p["name"] for p in json.loads(sh(shell_env, f'"{PIPE}" list --json').stdout)]
    assert names == ["kept"]
    assert not (tmp_path / "data" / "crash.log").exists()


@pytest.mark.parametrize("argv", [["--help"], ["stages"], ["templates", "--json"], ["deploy-strategies"],
                                  ["statuses", "--json"], ["enums-v2", "--json"]])
def test_help_and_catalogue_commands_import_no_database_code(shell_env, argv):
    res = subprocess.run([PIPE, *argv], capture_output=True, text=True, timeout=60,
                         env=shell_env | {"PYTHONPROFILEIMPORTTIME": "1"})
    assert res.returncode == 0 and res.stdout.strip()
    imported = {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "chainpipe.cli.main" in imported  # the report covers the whole run, command included
    assert not {m for m in imported if m.split(".")[0] in DATABASE_MODULES}
