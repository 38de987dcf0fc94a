"""pipe-server freezes what its start built before it serves (bot/server.py ``freeze_startup``):
a full collection then skips the ~84,000 objects that live as long as the process, instead of
stopping the event loop for ~20 ms a few times a minute under load."""

from __future__ import annotations

import gc
import logging
import time

import pytest


@pytest.fixture
def unfrozen(monkeypatch, slack_env):
    """The server's environment, the root logger put back and the collector unfrozen afterwards."""
    for name, value in slack_env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


def test_a_single_process_server_freezes_its_start_before_uvicorn_serves(unfrozen, monkeypatch):
    import uvicorn
    from chainpipe.bot import server

    seen = {}

    def run(app, **options):
        seen["app"], seen["frozen"] = app, gc.get_freeze_count()
        seen["collect_ms"] = full_collection_ms()

    monkeypatch.setattr(uvicorn, "run", run)
    assert server.main(["--port", "0"]) == 0
    assert seen["app"] is not None
    assert seen["frozen"] > 20_000  # the libraries, the tables and the app, not a handful of objects
    assert gc.isenabled()
    gc.unfreeze()
    assert full_collection_ms() > seen["collect_ms"]  # unfrozen, the same collection walks them all


def test_each_worker_process_freezes_its_own_start(unfrozen):
    from chainpipe.bot import server

    app = server.worker_app()
    assert app is not None
    assert gc.get_freeze_count() > 20_000
