"""What a cold `pipe create` (one-shot, PIPE_WORKER=0) imports on SQLite, as the installed console
script's process shows it: the SQLite dialect and nothing of PostgreSQL. Importing the PostgreSQL
dialect cost ≈ 5 % of the cold start (BENCHMARKS.md, "CLI start"); this keeps it from coming back.
(Help and catalogue commands import no database code at all: tests/e2e/test_cli_process.py.)"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.conftest import BIN

POSTGRESQL_MODULES = ("sqlalchemy.dialects.postgresql", "psycopg", "psycopg2", "psycopg_binary", "asyncpg")


@pytest.fixture
def sqlite_env(tmp_path):
    host = {k: v for k, v in os.environ.items() if not k.startswith(("PIPE_", "_PIPE_COMPLETE", "COMP_"))}
    return host | {"PIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'pipe.db'}", "PIPE_DATA_DIR": str(tmp_path / "data"),
                   "HOME": str(tmp_path), "PIPE_ACTOR": "alice", "PIPE_WORKER": "0"}


def imports_of(env: dict, *argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    res = subprocess.run([str(BIN / "pipe"), *argv], capture_output=True, text=True, timeout=120,
                         env=env | {"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    return res, imported


@pytest.mark.parametrize("fresh", [True, False], ids=["new database", "existing database"])
def test_create_on_sqlite_imports_no_postgresql_code(sqlite_env, fresh):
    if not fresh:  # the schema exists: the usual start, no create_all
        subprocess.run([str(BIN / "pipe"), "create", "--name", "first"], env=sqlite_env, check=True,
                       capture_output=True, timeout=120)
    res, imported = imports_of(sqlite_env, "create", "--name", "x", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "created"
    assert {"sqlalchemy.dialects.sqlite", "chainpipe.core.models"} <= imported  # the report covers the database work
    assert not {m for m in imported if m.startswith(POSTGRESQL_MODULES)}
