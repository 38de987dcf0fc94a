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
    lock, running, seen = threading.Lock(), [0], {"most": 0, "threads": set(), "ids": {}}
    real_run = runtime.run

    def slow_run(command, values, actor, **kw):
        with lock:
            running[0] += 1
            seen["most"] = max(seen["most"], running[0])
            seen["threads"].add(threading.current_thread().name)
        time.sleep(0.15)  # long enough for the whole burst to arrive meanwhile
        try:
            result = real_run(command, values, actor, **kw)
            seen["ids"][result["name"]] = current_request_id()
            return result
        finally:
            with lock:
                running[0] -= 1

    runtime.run = slow_run
    with TestClient(app) as client, ThreadPoolExecutor(8) as senders:
        answers = list(senders.map(
            lambda i: call(client, "create", {"name": f"burst {i}"}, token, X_Request_Id=f"burst-{i}"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert seen["most"] == 2
    assert len(seen["threads"]) == 2 and all(name.startswith("pipe-db") for name in seen["threads"])
    assert seen["ids"] == {f"burst {i}": f"burst-{i}" for i in range(8)}
