"""Engines, connection settings and the schema version.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout, foreign keys on, and write transactions that
start with ``BEGIN IMMEDIATE`` — measured here, deferred transactions lose concurrent
read-modify-writes or fail with "database is locked". PostgreSQL: writers lock the rows they
change with ``SELECT … FOR UPDATE`` (see core.uow).

Migrations: ``MIGRATIONS`` is an ordered list; entry *n* brings a database from version *n* to
*n+1*. New tables need no entry (``create_all`` adds missing tables); new columns or data changes
do. The version lives in ``schema_version``. An empty database is created at the latest version
(``create_all``, no steps). Upgrading an older one is explicit (`pipe db upgrade`), because on a
shared database one upgraded laptop would otherwise migrate it under the server's feet; only the
embedded default SQLite file, which is nobody else's, is upgraded in place on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from chainpipe.core import migrations, models  # noqa: F401  (models registers the tables)
from chainpipe.core.config import data_dir, redact_url
from chainpipe.core.errors import ConfigError
from chainpipe.core.files import SQLITE_SIDECARS, private_dir, private_file
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

WRITE_OPTION = "pipe_write"


def _baseline(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _api_token_actor_header(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("api_tokens")}
    if "allow_actor_header" not in columns:
        conn.execute(text("ALTER TABLE api_tokens ADD COLUMN allow_actor_header BOOLEAN NOT NULL DEFAULT FALSE"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _baseline, _api_token_actor_header, migrations.principals, migrations.audit_chain, migrations.review_evidence,
    migrations.governed_times, migrations.stats_aggregates,
]
LATEST = len(MIGRATIONS)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_UPGRADE_LOCK = 7312026  # PostgreSQL advisory lock: one process creates or upgrades the schema


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (as hosting providers print them) mean psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    return url


def upgrades_in_place(url: str, env=os.environ) -> bool:
    """The embedded default SQLite file of someone who never set a database URL is theirs alone:
    upgrading it in place is expected. Any database named explicitly may be shared, so it waits
    for `pipe db upgrade`."""
    return not env.get("PIPE_DATABASE_URL") and url == "sqlite:///" + str(data_dir(env) / "pipe.db")


def get_engine(url: str, *, upgrade: bool | None = None) -> Engine:
    """One engine per URL per process, its schema checked on first use: an empty database is
    created at the latest version; an older one is upgraded only if ``upgrade`` (by default: on
    the embedded default SQLite file), else refused with a hint to run `pipe db upgrade`."""
    url = normalise_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            try:
                ensure_schema(engine, upgrade=upgrades_in_place(url) if upgrade is None else upgrade)
            except BaseException:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError(f"cannot use database URL: {exc.__class__.__name__}: {exc}") from None


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL, or None for an in-memory database."""
    if url in ("sqlite://", "sqlite:///:memory:") or "///" not in url:
        return None
    return Path(url.split("///", 1)[1].split("?", 1)[0]).expanduser()


def _sqlite_engine(url: str) -> Engine:
    path = sqlite_path(url)
    memory = path is None
    if path is not None:
        try:
            private_dir(path.parent)
        except OSError as exc:
            raise ConfigError(f"cannot create the database directory {path.parent}: {exc.strerror}") from None
        try:
            # Created before SQLite opens it, so the file (and the -wal/-shm SQLite makes in its
            # image) is 0600 whatever the umask.
            private_file(path, SQLITE_SIDECARS)
        except OSError as exc:
            raise ConfigError(f"cannot create the database file {path}: {exc.strerror}") from None
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
    """The stored schema version, or None for a database chainpipe has not created yet."""
    with engine.connect() as conn:
        return _version(conn)


def _version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()


def ensure_schema(engine: Engine, *, upgrade: bool = False) -> None:
    """Create an empty database at the latest version; upgrade an older one only if ``upgrade``."""
    with _database_errors():
        current = schema_version(engine)
        if current == LATEST:
            return
        _refuse_newer(current)
        if current is not None and not upgrade:
            raise ConfigError(
                f"the database schema is version {current} and this chainpipe needs {LATEST}: "
                "back it up, then run `pipe db upgrade` (see docs/configuration.md)"
            )
        upgrade_schema(engine)


def upgrade_schema(engine: Engine) -> tuple[int | None, int]:
    """Bring the schema to ``LATEST`` (creating it in an empty database); returns (before, after).

    One process at a time: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL, and the
    version read again under the lock, so a concurrent upgrade runs each step once."""
    with _database_errors(), engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})"))
        current = _version(conn)
        _refuse_newer(current)
        if current is None:
            # A new database gets today's tables as they are; the steps are for older ones.
            SQLModel.metadata.create_all(conn)
            conn.execute(text("INSERT INTO schema_version (id, version) VALUES (1, :v)"), {"v": LATEST})
        elif current < LATEST:
            for step in MIGRATIONS[current:]:
                step(conn)
            SQLModel.metadata.create_all(conn)  # tables added since need no step of their own
            conn.execute(text("UPDATE schema_version SET version = :v WHERE id = 1"), {"v": LATEST})
        return current, LATEST


def describe_database(url: str) -> dict:
    """Which schema version the database holds and what chainpipe makes of it; changes nothing
    (a missing SQLite file is not created)."""
    url = normalise_url(url)
    path = sqlite_path(url) if url.startswith("sqlite") else None
    current = None
    if path is None or path.exists():
        engine = make_engine(url)
        try:
            with _database_errors():
                current = schema_version(engine)
        finally:
            engine.dispose()
    if current is None:
        state = "empty"
    else:
        state = "current" if current == LATEST else "behind" if current < LATEST else "ahead"
    return {"database": redact_url(url), "version": current, "latest": LATEST, "state": state,
            "upgrades_in_place": upgrades_in_place(url)}


def upgrade_database(url: str) -> dict:
    """`pipe db upgrade`: bring the database to the latest schema version (or create it there)."""
    url = normalise_url(url)
    engine = make_engine(url)
    try:
        before, after = upgrade_schema(engine)
    finally:
        engine.dispose()
    return {"database": redact_url(url), "from": before, "to": after, "changed": before != after}


def _refuse_newer(current: int | None) -> None:
    if current is not None and current > LATEST:
        raise ConfigError(
            f"the database schema is version {current}, newer than this chainpipe ({LATEST}); upgrade chainpipe"
        )


@contextmanager
def _database_errors():
    try:
        yield
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot open the database: {exc.__class__.__name__}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
