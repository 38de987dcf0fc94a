"""Requests' database work runs on a bounded set of threads (``Runtime.database``,
``PIPE_SERVER_DB_THREADS``): a burst waits on the event loop, never on more threads than that, and
each request's context (its request id) goes with its work."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from chainpipe.bot.observability import current_request_id
from chainpipe.bot.settings import DATABASE_THREADS_MAX, SettingsError, load_bot_settings
from chainpipe.core.config import load_settings
from starlette.testclient import TestClient

from tests.adapters import test_api
from tests.adapters.test_api import call, make_token

api_env = test_api.api_env  # the JSON API's environment (a fixture)


def test_the_default_is_one_more_than_the_cpus_and_a_setting_is_checked():
    assert load_bot_settings({"PIPE_SERVER_API_ONLY": "1"}).database_threads == min(
        DATABASE_THREADS_MAX, (os.cpu_count() or 1) + 1)
    assert load_bot_settings({"PIPE_SERVER_API_ONLY": "1", "PIPE_SERVER_DB_THREADS": " 2 "}).database_threads == 2
    for bad in ("0", "-1", "1.5", "four", str(DATABASE_THREADS_MAX + 1)):
        with pytest.raises(SettingsError) as refused:
            load_bot_settings({"PIPE_SERVER_API_ONLY": "1", "PIPE_SERVER_DB_THREADS": bad})
        assert str(refused.value) == (f"PIPE_SERVER_DB_THREADS must be a whole number from 1 to "
                                      f"{DATABASE_THREADS_MAX}, got {bad!r}")


def test_a_burst_runs_on_at_most_the_set_number_of_threads_each_with_its_request_id(api_env, config_file):
    from chainpipe.bot.server import create_asgi_app

    env = api_env | {"PIPE_SERVER_DB_THREADS": "2"}
    app = create_asgi_app(load_settings(env), load_bot_settings(env))
    runtime, token = app.state.runtime, make_token(env)
    lock, running, seen = threading.Lock(), [0], {"most": 0, "threads": set(), "ids": set()}
    real_run = runtime.run

    def slow_run(command, values, actor, **kw):
        with lock:
            running[0] += 1
            seen["most"] = max(seen["most"], running[0])
            seen["threads"].add(threading.current_thread().name)
        time.sleep(0.15)  # long enough for the whole burst to arrive meanwhile
        try:
            result = real_run(command, values, actor, **kw)
            seen["ids"].add(current_request_id())
            return result
        finally:
            with lock:
                running[0] -= 1

    with TestClient(app) as client, ThreadPoolExecutor(8) as senders:
        pid = call(client, "create", {"name": "shown"}, token).json()["result"]["id"]
        runtime.run = slow_run
        answers = list(senders.map(
            lambda i: call(client, "show", {"pipeline_id": pid}, token, X_Request_Id=f"burst-{i}"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert seen["most"] == 2
    assert len(seen["threads"]) == 2 and all(name.startswith("pipe-db") for name in seen["threads"])
    assert seen["ids"] == {f"burst-{i}" for i in range(8)}


def test_on_sqlite_queued_writes_hold_one_thread_and_reads_and_probes_keep_answering(api_env, config_file):
    import sqlite3

    from chainpipe.bot.server import create_asgi_app
    from chainpipe.core.db import sqlite_path

    settings = load_settings(api_env)
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the write queue on the event loop is SQLite's")
    env = api_env | {"PIPE_SERVER_DB_THREADS": "2"}
    app = create_asgi_app(load_settings(env), load_bot_settings(env))
    token = make_token(env)
    with TestClient(app) as client, ThreadPoolExecutor(6) as senders:
        pid = call(client, "create", {"name": "before"}, token).json()["result"]["id"]
        other = sqlite3.connect(sqlite_path(settings.database_url), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's long write: every write here must wait
        try:
            writes = [senders.submit(call, client, "create", {"name": f"queued {i}"}, token) for i in range(4)]
            time.sleep(0.3)  # the writes are queued (one of them in SQLite's busy wait)
            started = time.monotonic()
            shown = call(client, "show", {"pipeline_id": pid}, token)
            ready = client.get("/healthz/ready")
            answered_in = time.monotonic() - started
            assert not any(w.done() for w in writes)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert shown.status_code == 200 and ready.status_code == 200
        assert answered_in < 1.0
        assert [w.result(timeout=30).status_code for w in writes] == [200] * 4


def test_work_after_an_answer_runs_on_as_many_threads(api_env, config_file):
    from chainpipe.bot.runtime import Runtime

    runtime = Runtime(load_settings(api_env), database_threads=2)
    lock, running, seen = threading.Lock(), [0], {"most": 0, "threads": set(), "done": 0}

    def work():
        with lock:
            running[0] += 1
            seen["most"] = max(seen["most"], running[0])
            seen["threads"].add(threading.current_thread().name)
        time.sleep(0.1)
        with lock:
            running[0] -= 1
            seen["done"] += 1

    for _ in range(6):
        runtime.later(work)
    runtime.close()  # waits for what was accepted
    assert seen["done"] == 6 and seen["most"] == 2
    assert len(seen["threads"]) == 2 and all(name.startswith("pipe-after") for name in seen["threads"])


def test_the_same_app_served_again_by_a_new_event_loop_still_queues_its_writes(api_env, config_file):
    from chainpipe.bot.server import create_asgi_app

    app = create_asgi_app(load_settings(api_env), load_bot_settings(api_env))
    token = make_token(api_env)
    for served in range(2):  # each TestClient runs the app on an event loop of its own
        with TestClient(app) as client, ThreadPoolExecutor(6) as senders:
            names = [f"loop {served} {i}" for i in range(6)]
            answers = list(senders.map(lambda name: call(client, "create", {"name": name}, token), names))
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
