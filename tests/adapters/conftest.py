"""Fixtures for the adapter tests: the `pipe` CLI run in this process, a fake Slack Web API and the
Bolt app driven through ``app.dispatch`` with signed requests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.fakes import slack as fake

# Variables a test process may carry that the command under test must not see.
FOREIGN_ENV = ("PIPE_", "GITHUB_", "RUNNER_", "INPUT_", "SLACK_", "_PIPE_COMPLETE", "COMP_")


class Result(NamedTuple):
    code: int
    out: str
    err: str


class InProcessPipe:
    """`pipe ARGS…` through the console script's own entry point (``cli.main.main``), in this process.

    The environment is the one a fresh process started with ``env`` would see; stdout and stderr are
    captured; the working directory is ``cwd``. Settings are read from the environment on every call,
    so what one call writes, the next reads back from the database, as with separate processes."""

    def __init__(self, monkeypatch, capsys, env: dict, cwd: Path):
        self.monkeypatch, self.capsys, self.cwd = monkeypatch, capsys, cwd
        for key in [k for k in os.environ if k.startswith(FOREIGN_ENV)]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("COLUMNS", "80")  # what a process whose stdout is a pipe wraps help text at
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(cwd)
        self.env = dict(env)

    def setenv(self, **values: str) -> None:
        for key, value in values.items():
            self.monkeypatch.setenv(key, value)
            self.env[key] = value

    def __call__(self, *args: str) -> Result:
        from chainpipe.cli.main import main

        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str) -> str:
        """Stdout of a command that must succeed silently on stderr."""
        code, out, err = self(*args)
        assert (code, err) == (0, ""), (args, code, err)
        return out

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json"))


def assert_refused(res: Result, code: int, message: str) -> None:
    """One line on stderr, `pipe: …` containing ``message``, nothing on stdout, the given exit code."""
    assert res.code == code, res
    assert res.out == ""
    lines = res.err.splitlines()
    assert len(lines) == 1 and res.err.endswith("\n") and lines[0].startswith("pipe: "), res.err
    assert message in lines[0], res.err
    assert "Traceback" not in res.err


@pytest.fixture
def pipe_with(monkeypatch, capsys, tmp_path):
    """``pipe_with(env)`` → an in-process `pipe` that sees exactly ``env`` (for tests that need
    another environment than the test database's, e.g. the default data directory)."""
    from chainpipe.core.db import dispose_engines

    yield lambda env, cwd=tmp_path: InProcessPipe(monkeypatch, capsys, env, cwd)
    dispose_engines()  # a real process would have closed its connections on exit


@pytest.fixture
def pipe(pipe_with, env, config_file):
    """The in-process `pipe` on the test database (SQLite, and PostgreSQL when configured), acting
    as alice: ``code, out, err = pipe("show", pid)``; ``pipe.ok(...)``; ``pipe.json(...)``."""
    return pipe_with(env | {"PIPE_ACTOR": "alice"})


@pytest.fixture
def slack_env(env, fake_slack):
    return env | {
        "SLACK_SIGNING_SECRET": fake.SIGNING_SECRET,
        "SLACK_BOT_TOKEN": fake.BOT_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "PIPE_SLACK_CHANNEL": "C0PIPE",
    }


class SlackHarness:
    """Drives the Bolt app the way Slack does: signed bodies through ``app.dispatch``."""

    def __init__(self, app, notifier, fake_slack):
        self.app, self.notifier, self.fake = app, notifier, fake_slack
        self._n = 0

    def dispatch(self, body: str, content_type: str = "application/x-www-form-urlencoded", **sign_kw):
        from slack_bolt import BoltRequest

        headers = fake.headers_for(body, content_type, **sign_kw)
        return self.app.dispatch(BoltRequest(body=body, headers={k.lower(): v for k, v in headers.items()}))

    def _url(self) -> str:
        self._n += 1
        return self.fake.response_url(f"r{self._n}")

    def command(self, text: str, user: str = "U0ALICE", **sign_kw):
        """Send ``/pipe text``; returns (ack response, response_url path to wait on)."""
        url = self._url()
        resp = self.dispatch(fake.slash_body(text, user_id=user, response_url=url), **sign_kw)
        return resp, url.removeprefix(self.fake.base)

    def reply(self, path: str, timeout: float = 5.0) -> dict:
        return self.fake.wait_for("response_url", lambda c: c.path == path, timeout)[0].params

    def run(self, text: str, user: str = "U0ALICE") -> str:
        """``/pipe text`` and the text of the reply that follows the ack."""
        resp, path = self.command(text, user)
        assert resp.status == 200, resp.body
        if resp.body:  # answered in the ack itself (help, parse errors)
            import json

            return json.loads(resp.body)["text"]
        return self.reply(path)["text"]

    def click(self, action_id: str, value: str, user: str, message_ts: str = "1700000001.000100"):
        url = self._url()
        body = fake.block_actions_body(action_id=action_id, value=value, user_id=user, response_url=url,
                                       message_ts=message_ts)
        return self.dispatch(body), url.removeprefix(self.fake.base)

    def submit(self, view: dict, reason: str | None, user: str):
        return self.dispatch(fake.view_submission_body(view=view, reason=reason, user_id=user))

    def drain(self) -> int:
        from chainpipe.bot.notifier import wait_until_idle

        before = len(self.fake.calls)
        wait_until_idle(self.notifier)
        return len(self.fake.calls) - before


@pytest.fixture
def slack(slack_env, fake_slack, config_file):
    """The Bolt app on the test database, talking to the fake Slack; its notifier is drained by hand."""
    from chainpipe.bot.app import create_app, web_client
    from chainpipe.bot.notifier import Notifier
    from chainpipe.bot.runtime import Runtime
    from chainpipe.bot.settings import load_bot_settings
    from chainpipe.core.config import load_settings

    built = []

    def build():
        for old in built:
            old.notifier.stop()  # one drainer at a time (it holds the PostgreSQL leader lock)
        core = load_settings(slack_env)
        bot = load_bot_settings(slack_env)
        client = web_client(bot)
        notifier = Notifier(core, client, bot.channel, lease=0.5)
        harness = SlackHarness(create_app(bot, Runtime(core), client), notifier, fake_slack)
        harness.rebuild = build  # after writing a config file
        built.append(harness)
        return harness

    yield build()
    for harness in built:
        harness.notifier.stop()


def gate_message_calls(fake_slack, gate: str = "code-review"):
    return [c for c in fake_slack.calls_to("chat.postMessage") if f"Gate {gate}" in (c.params.get("text") or "")]


def age_claims(settings, consumer: str, seconds: float) -> None:
    """Move every outbox claim of ``consumer`` ``seconds`` into the past, as if that much time had
    gone by: lease tests then hold however slow the machine is."""
    from datetime import timedelta

    from chainpipe.core.models import OutboxDelivery
    from chainpipe.core.uow import UnitOfWork
    from sqlalchemy import select, update

    table = OutboxDelivery.__table__
    with UnitOfWork(settings) as uow:  # in Python: SQLite keeps times as text
        rows = uow.conn.execute(select(table.c.seq, table.c.delivered_at).where(table.c.consumer == consumer)).all()
        for seq, at in rows:
            uow.conn.execute(update(table).where(table.c.seq == seq)
                             .values(delivered_at=at - timedelta(seconds=seconds)))
        uow.commit()
