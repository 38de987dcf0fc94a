"""The schema is created on first use and brought forward by the migration steps, keeping data."""

from __future__ import annotations

import pytest
from chainpipe.core import db
from chainpipe.core.errors import ConfigError
from chainpipe.core.services.queries import list_pipelines
from sqlalchemy import inspect, text

from tests.service.helpers import new_pipeline


def test_a_new_database_is_at_the_latest_version(settings, run, alice):
    new_pipeline(run, alice)
    assert db.schema_version(db.get_engine(settings.database_url)) == db.LATEST


def test_an_older_database_is_migrated_and_keeps_its_rows(settings, run, alice):
    pid = new_pipeline(run, alice)
    engine = db.get_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN allow_actor_header"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    db.dispose_engines()
    engine = db.get_engine(settings.database_url, upgrade=True)  # as `pipe db upgrade` asks
    assert db.schema_version(engine) == db.LATEST
    assert "allow_actor_header" in {c["name"] for c in inspect(engine).get_columns("api_tokens")}
    assert [p["id"] for p in run(list_pipelines, alice)] == [pid]


def test_a_database_from_a_newer_release_is_refused(settings, run, alice):
    new_pipeline(run, alice)
    engine = db.get_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": db.LATEST + 5})
    db.dispose_engines()
    try:
        with pytest.raises(ConfigError, match="newer than this chainpipe"):
            db.get_engine(settings.database_url)
    finally:
        with db.make_engine(settings.database_url).begin() as conn:
            conn.execute(text("UPDATE schema_version SET version = :v"), {"v": db.LATEST})
        db.dispose_engines()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = db.get_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_an_unusable_sqlite_location_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot create the database directory /proc/chainpipe-nope"):
        db.get_engine("sqlite:////proc/chainpipe-nope/pipe.db")
