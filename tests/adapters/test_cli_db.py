"""Schema upgrades are explicit: a database named by URL on an older schema is refused with a hint
and left as it is; `pipe db upgrade` brings it up; only the embedded default SQLite file of someone
who never set a URL is upgraded in place. Runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import pytest
from chainpipe.core import db
from chainpipe.core.config import redact_url
from sqlalchemy import inspect, text

from tests.conftest import PG_URL

OLD = 1  # the version before api_tokens.allow_actor_header


@pytest.fixture
def cli(pipe):
    return pipe


@pytest.fixture
def cli_on_default(pipe_with, env):
    """The CLI on the embedded default database of its data directory: no database URL set."""
    return pipe_with({k: v for k, v in env.items() if k != "PIPE_DATABASE_URL"} | {"PIPE_ACTOR": "alice"})


def _columns(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("api_tokens")}
    finally:
        engine.dispose()


def _stored_version(url: str) -> int | None:
    engine = db.make_engine(url)
    try:
        return db.schema_version(engine)
    finally:
        engine.dispose()


def make_old(url: str) -> None:
    """Turn a current database into one of schema version 1, as an older release left it."""
    engine = db.get_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN allow_actor_header"))
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": OLD})
    db.dispose_engines()


@pytest.fixture
def old_database(cli, db_url):
    """A database named by PIPE_DATABASE_URL holding one pipeline, on schema version 1."""
    pid = cli.json("create", "--name", "kept")["id"]
    make_old(db_url)
    yield pid
    db.upgrade_database(db_url)  # the PostgreSQL schema is shared by the session's other tests
    db.dispose_engines()


def test_a_database_named_by_url_on_an_older_schema_is_refused_with_the_hint(cli, db_url, old_database):
    for args in (["list"], ["show", old_database], ["create", "--name", "new"]):
        code, out, err = cli(*args)
        assert code == 2 and out == ""
        assert err == ("pipe: the database schema is version 1 and this chainpipe needs "
                       f"{db.LATEST}: back it up, then run `pipe db upgrade` (see docs/configuration.md)\n")
    assert _stored_version(db_url) == OLD
    assert "allow_actor_header" not in _columns(db_url)


def test_pipe_db_upgrade_brings_it_up_and_keeps_the_rows(cli, db_url, old_database):
    out = cli.ok("db", "upgrade")
    assert out.endswith(f": upgraded from schema version {OLD} to {db.LATEST}\n")
    assert "allow_actor_header" in _columns(db_url)
    assert [p["id"] for p in cli.json("list")] == [old_database]
    assert cli.ok("db", "upgrade").endswith(f": already at schema version {db.LATEST}\n")
    assert cli.json("db", "upgrade") == {"database": redact_url(db.normalise_url(db_url)), "from": db.LATEST,
                                         "to": db.LATEST, "changed": False}


def test_pipe_db_current_says_whether_an_upgrade_is_needed(cli, old_database):
    before = cli.json("db", "current")
    assert (before["version"], before["latest"], before["state"], before["upgrades_in_place"]) == (
        OLD, db.LATEST, "behind", False)
    assert "back it up, then run `pipe db upgrade`" in cli.ok("db", "current")
    cli.ok("db", "upgrade")
    assert cli.json("db", "current")["state"] == "current"
    assert cli.ok("db", "current").endswith(f"schema version {db.LATEST}: up to date\n")


def test_the_embedded_default_sqlite_file_is_upgraded_in_place(cli_on_default, tmp_path):
    cli = cli_on_default
    default = f"sqlite:///{tmp_path / 'data' / 'pipe.db'}"
    pid = cli.json("create", "--name", "mine")["id"]
    make_old(default)
    assert cli.json("db", "current")["upgrades_in_place"] is True
    assert [p["id"] for p in cli.json("list")] == [pid]
    assert _stored_version(default) == db.LATEST and "allow_actor_header" in _columns(default)


def test_the_same_file_named_by_url_is_not_upgraded_behind_the_users_back(cli_on_default, tmp_path):
    cli = cli_on_default
    default = f"sqlite:///{tmp_path / 'data' / 'pipe.db'}"
    cli.json("create", "--name", "mine")
    make_old(default)
    cli.setenv(PIPE_DATABASE_URL=default)
    code, _, err = cli("list")
    assert code == 2 and "run `pipe db upgrade`" in err
    assert _stored_version(default) == OLD


def test_a_new_database_is_created_at_the_latest_version_and_db_current_creates_nothing(cli, tmp_path):
    path = tmp_path / "fresh" / "pipe.db"
    cli.setenv(PIPE_DATABASE_URL=f"sqlite:///{path}")
    assert cli.json("db", "current") | {"database": None} == {
        "database": None, "version": None, "latest": db.LATEST, "state": "empty", "upgrades_in_place": False}
    assert not path.exists()
    assert cli.json("list") == []
    assert _stored_version(f"sqlite:///{path}") == db.LATEST
    assert "allow_actor_header" in _columns(f"sqlite:///{path}")


def test_a_database_from_a_newer_release_is_refused_by_upgrade_too(cli, db_url):
    cli.json("list")
    with db.get_engine(db_url).begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": db.LATEST + 1})
    db.dispose_engines()
    try:
        code, out, err = cli("db", "upgrade")
        assert (code, out) == (2, "") and "newer than this chainpipe" in err and err.count("\n") == 1
        assert cli.json("db", "current")["state"] == "ahead"
    finally:
        with db.make_engine(db_url).begin() as conn:
            conn.execute(text("UPDATE schema_version SET version = :v"), {"v": db.LATEST})
        db.dispose_engines()


@pytest.mark.skipif(not PG_URL, reason="PIPE_TEST_DATABASE_URL is not set")
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_the_cli_works_on_a_short_scheme_postgresql_url(cli, pg_url, scheme):
    cli.setenv(PIPE_DATABASE_URL=scheme + "://" + pg_url.split("://", 1)[1])
    pid = cli.json("create", "--name", "short-url")["id"]
    assert pid in [p["id"] for p in cli.json("list", "--limit", "1000")]
    assert cli.json("db", "current")["state"] == "current"
