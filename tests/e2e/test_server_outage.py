"""A database outage under load: a real `pipe-server` reaches PostgreSQL through a TCP proxy the
test cuts and restores while API requests keep coming. During the cut: 503 with Retry-After (never
500), readiness 503, liveness 200, Slack's "try again" line; after it: answers again without a
restart; every write that was answered 200 is in the database; the log holds one line for the
start of the outage and one for its end, and no traceback."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.models import Pipeline
from chainpipe.core.services.tokens import create_token
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.e2e.test_server_slack import post
from tests.fakes import slack as fake
from tests.fakes.tcp_proxy import TcpProxy


@dataclass
class Answer:
    at: float
    status: int
    body: dict
    retry_after: str | None


class Writer(threading.Thread):
    """Creates pipelines through the API one after another, recording every answer."""

    def __init__(self, url: str, token: str):
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.answers: list[Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            resp = self.client.post("/api/v1/commands/create", json={"name": f"w{n}"})
            self.answers.append(Answer(time.monotonic(), resp.status_code, resp.json(),
                                       resp.headers.get("retry-after")))
            time.sleep(0.02)

    def wait_for(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(predicate(a) for a in list(self.answers)):
            assert time.monotonic() < deadline, [a.status for a in self.answers]
            time.sleep(0.02)


@pytest.fixture
def proxied(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("the outage test cuts a PostgreSQL connection: it runs in the postgres variant only")
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxy.url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy
    proxy.stop()


def test_a_lost_database_is_503_until_it_is_back_and_no_answered_write_is_lost(pipe_server, proxied, fake_slack):
    env = pipe_server.env
    with UnitOfWork(load_settings(env)) as uow:
        token = create_token(uow, Actor("admin"), "load")["token"]
    server = pipe_server(PIPE_DATABASE_URL=proxied.url)
    writer = Writer(server.url, token)
    writer.start()
    writer.wait_for(lambda a: a.status == 200)

    proxied.cut()
    cut_at = time.monotonic()
    writer.wait_for(lambda a: a.status == 503)
    ready = httpx.get(server.url + "/healthz/ready")
    assert (ready.status_code, ready.headers["retry-after"]) == (503, "5")
    assert httpx.get(server.url + "/healthz").status_code == 503
    assert httpx.get(server.url + "/healthz/live").json() == {"status": "ok"}
    slash = post(server, fake.slash_body("list", user_id="U0ALICE", response_url=fake_slack.response_url("o")))
    assert slash.status_code == 200 and slash.content == b""  # the ack needs no database
    [reply] = fake_slack.wait_for("response_url", lambda c: c.path == "/response/o", timeout=30)
    assert reply.params == {"response_type": "ephemeral", "text": ":warning: database unavailable, try again"}
    time.sleep(1.0)  # requests keep arriving during the outage

    proxied.restore()
    back_at = time.monotonic()
    writer.wait_for(lambda a: a.status == 200 and a.at > back_at)
    assert httpx.get(server.url + "/healthz/ready").status_code == 200
    time.sleep(0.3)
    writer.stopping.set()
    writer.join(timeout=15)

    answers = writer.answers
    assert {a.status for a in answers} == {200, 503}, [(a.status, a.body) for a in answers if a.status != 200]
    unavailable = [a for a in answers if a.status == 503]
    assert all(a.retry_after == "5" and a.body["error"] == "unavailable"
               and a.body["message"] == "database unavailable, try again" and a.body["request_id"].startswith("req-")
               for a in unavailable)
    assert all(a.at > cut_at for a in unavailable)
    acknowledged = {a.body["result"]["id"] for a in answers if a.status == 200}
    with UnitOfWork(load_settings(env), write=False) as uow:  # straight to the database, not via the proxy
        stored = set(uow.session.execute(select(Pipeline.id).where(Pipeline.id.in_(acknowledged))).scalars())
    assert stored == acknowledged

    log = server.log()
    assert log.count("database unavailable:") == 1, log
    assert log.count("database available again after") == 1, log
    assert "Traceback" not in log and "internal error" not in log, log
    print(f"\noutage: {len(unavailable)} × 503 during {back_at - cut_at:.1f} s cut, "
          f"{len(acknowledged)} acknowledged writes all stored")
