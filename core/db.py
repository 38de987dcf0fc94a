"""Engines, connection settings and the schema version.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout, foreign keys on, and write transactions that
start with ``BEGIN IMMEDIATE`` — measured here, deferred transactions lose concurrent
read-modify-writes or fail with "database is locked". PostgreSQL: writers lock the rows they
change with ``SELECT … FOR UPDATE`` (see core.uow).

Migrations: ``MIGRATIONS`` is an ordered list; entry *n* brings a database from version *n* to
*n+1*. New tables need no entry (``create_all`` adds missing tables); new columns or data changes
do. The version lives in ``schema_version``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from core import migrations, models  # noqa: F401  (models registers the tables)
from core.errors import ConfigError

WRITE_OPTION = "pipe_write"


def _baseline(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _api_token_actor_header(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("api_tokens")}
    if "allow_actor_header" not in columns:
        conn.execute(text("ALTER TABLE api_tokens ADD COLUMN allow_actor_header BOOLEAN NOT NULL DEFAULT FALSE"))


MIGRATIONS: list[Callable[[Connection], None]] = [_baseline, _api_token_actor_header, migrations.principals]
LATEST = len(MIGRATIONS)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    """One engine per URL per process, with the schema brought up to date on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            ensure_schema(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError(f"cannot use database URL: {exc.__class__.__name__}: {exc}") from None


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = Path(url.split("///", 1)[1]) if "///" in url else None
        if path is not None:
            try:
                path.expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the database directory {path.parent}: {exc.strerror}") from None
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def schema_version(engine: Engine) -> int | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("schema_version"):
            return None
        return conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()


def ensure_schema(engine: Engine) -> None:
    try:
        if schema_version(engine) == LATEST:
            return
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two processes creating the schema at once would collide in the catalogue.
                conn.execute(text("SELECT pg_advisory_xact_lock(7312026)"))
            current = (
                conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()
                if inspect(conn).has_table("schema_version")
                else 0
            ) or 0
            if current > LATEST:
                raise ConfigError(
                    f"the database schema is version {current}, newer than this chainpipe ({LATEST}); upgrade chainpipe"
                )
            for step in MIGRATIONS[current:]:
                step(conn)
            SQLModel.metadata.create_all(conn)
            if current == 0:
                conn.execute(text("INSERT INTO schema_version (id, version) VALUES (1, :v)"), {"v": LATEST})
            elif current < LATEST:
                conn.execute(text("UPDATE schema_version SET version = :v WHERE id = 1"), {"v": LATEST})
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot open the database: {exc.__class__.__name__}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
