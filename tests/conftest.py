"""Shared fixtures. Every database test runs on SQLite (a temp file) and, when
PIPE_TEST_DATABASE_URL is set, on PostgreSQL too — in a schema of its own per test session, so
concurrent runs on one server never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.clock import FixedClock
from chainpipe.core.config import load_settings

PG_URL = os.environ.get("PIPE_TEST_DATABASE_URL")
# Processes the tests start run `pipe` one-shot: no warm worker left behind per temporary data
# directory. The worker's own tests (tests/e2e/test_cli_worker.py) build their environment
# without this and turn it on.
os.environ.setdefault("PIPE_WORKER", "0")
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def pytest_sessionfinish(session):
    """Stop the warm workers this session's `pipe` processes started (the tests that run `pipe` as a
    user does, worker on): each would otherwise idle on for PIPE_WORKER_IDLE in its temporary
    directory after the run. Each xdist process stops those under its own temporary base."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    proc = Path("/proc")
    if factory is None or not proc.is_dir():
        return
    base = str(factory.getbasetemp()).encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chainpipe.cli.worker" in argv and any(base in arg for arg in argv):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGTERM)


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped at the end of the session."""
    if not PG_URL:
        pytest.skip("PIPE_TEST_DATABASE_URL is not set")
    from sqlalchemy import create_engine, text

    schema = f"t_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    from chainpipe.core.db import dispose_engines

    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    """Empty every table and restart every sequence: what a fresh SQLite file gives each test.

    ``DELETE`` children first, not ``TRUNCATE``: on tables this small it takes ≈ 10 ms where
    ``TRUNCATE … RESTART IDENTITY CASCADE`` takes ≈ 0.5 s (new files for every table and its
    indexes), which, paid by each of several hundred tests, was most of the PostgreSQL run."""
    from chainpipe.core.db import get_engine
    from sqlalchemy import text
    from sqlmodel import SQLModel

    engine = get_engine(url)
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables) if t.name != "schema_version"]
    with engine.begin() as conn:
        for name in tables:
            conn.execute(text(f'DELETE FROM "{name}"'))
        sequences = conn.execute(text(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences "
            "WHERE schemaname = current_schema()")).scalars().all()
        if sequences:
            conn.execute(text("SELECT " + ", ".join(f"setval('{s}', 1, false)" for s in sequences)))


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pipe.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        _truncate_all(url)
        yield url


@pytest.fixture
def env(db_url, tmp_path):
    """Environment for code that loads settings itself (CLI in-process, subprocesses).

    The config file exists and is empty; the `config_file` fixture writes into it."""
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    return {
        "PIPE_DATABASE_URL": db_url,
        "PIPE_DATA_DIR": str(tmp_path / "data"),
        "PIPE_CONFIG": str(tmp_path / "config.toml"),
        "HOME": str(tmp_path),
    }


@pytest.fixture
def config_file(env):
    """Write the TOML config used by `settings`; empty by default."""
    path = env["PIPE_CONFIG"]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("")

    def write(text: str) -> str:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    return write


@pytest.fixture
def settings(env, config_file):
    return load_settings(env)


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc))


@pytest.fixture
def alice():
    return Actor("alice", "cli")


@pytest.fixture
def bob():
    return Actor("bob", "cli")


@pytest.fixture
def run(settings, clock):
    """Call a use case in its own unit of work: ``run(create_pipeline, actor, name=...)``.

    ``run.settings`` can be replaced (e.g. after writing a config file) with ``run.reload()``.
    """
    from chainpipe.core.uow import UnitOfWork

    class Runner:
        def __init__(self):
            self.settings = settings

        def __call__(self, fn, actor, *args, **kwargs):
            with UnitOfWork(self.settings, clock=clock) as uow:
                return fn(uow, actor, *args, **kwargs)

        def reload(self, env_):
            self.settings = load_settings(env_)

    return Runner()


@pytest.fixture
def fake_slack():
    """A local fake of the Slack Web API (a real HTTP server), recording every call."""
    from tests.fakes import slack as fake

    server = fake.FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def github(monkeypatch):
    """A local fake of the GitHub REST API (a real HTTP server) that refuses, and at teardown fails
    the test for, any request GitHub's REST description does not allow (tests/fakes/github.py)."""
    from tests.fakes.github import fake_github

    with fake_github(monkeypatch) as fake:
        yield fake


@pytest.fixture
def carol():
    return Actor("carol", "cli")


@pytest.fixture
def socket_fake(fake_slack):
    """A local fake of Slack's Socket Mode (WebSocket), reached through the fake Web API's
    apps.connections.open."""
    from tests.fakes.socket_mode import FakeSocketMode

    server = FakeSocketMode().start()
    fake_slack.socket_mode = server
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _logging_left_as_found():
    """A test that builds a server or a Socket Mode client may attach log handlers bound to that
    test's captured streams; the next test must not write to a stream that is closed by then."""
    import logging

    def snapshot():
        loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                           if isinstance(lg, logging.Logger)]
        return {lg: (list(lg.handlers), lg.level, lg.propagate) for lg in loggers}

    before = snapshot()
    yield
    for logger in snapshot():
        handlers, level, propagate = before.get(logger, ([], logging.NOTSET, True))
        logger.handlers[:] = handlers
        logger.level, logger.propagate = level, propagate
