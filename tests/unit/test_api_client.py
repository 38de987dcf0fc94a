"""The remote-mode client (cli/api_client.py) against a local fake API: what it sends, how each answer
becomes an exit code, retries within the timeout, no retry after a read timeout, no redirects."""

from __future__ import annotations

import pytest
from chainpipe.cli.api_client import ApiClient, RemoteError

from tests.fakes.api import Answer, FakeApi

TOKEN = "cp_test-token-0123456789"


class Clock:
    """A clock that only moves when the client sleeps: retries are counted, not waited for."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def api():
    server = FakeApi().start()
    yield server
    server.stop()


def client(url: str, timeout: float = 10.0, clock: Clock | None = None) -> ApiClient:
    clock = clock or Clock()
    return ApiClient(url, TOKEN, timeout=timeout, sleep=clock.sleep, clock=clock)


def refusal(call) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        call()
    return caught.value


def test_a_command_is_posted_with_the_token_and_its_parameters_and_returns_the_result(api):
    api.answer(Answer(200, {"result": {"id": "pipe-0123456789ab"}}))
    result = client(api.url + "/").run("approve", {"pipeline_id": "pipe-1", "gate": "code-review", "reason": None})
    assert result == {"id": "pipe-0123456789ab"}
    [seen] = api.seen
    assert (seen.method, seen.path) == ("POST", "/api/v1/commands/approve")
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {"pipeline_id": "pipe-1", "gate": "code-review"}  # None is left to the server


@pytest.mark.parametrize("status,title,code", [
    (404, "not found", 1), (409, "gate not approved", 1), (403, "not allowed", 1),
    (422, "invalid input", 2), (400, "bad request", 2), (413, "too large", 2), (500, "configuration error", 2),
])
def test_a_refusal_keeps_the_servers_line_and_gets_direct_modes_exit_code(api, status, title, code):
    api.answer(Answer(status, {"error": title, "message": "pipeline not found: pipe-1\nsecond line"}))
    exc = refusal(lambda: client(api.url).run("show", {"pipeline_id": "pipe-1"}))
    assert (exc.message, exc.exit_code, exc.status, exc.title) == ("pipeline not found: pipe-1", code, status, title)


def test_a_refused_token_says_to_log_in_again(api):
    api.answer(Answer(401, {"error": "unauthorized", "message": "invalid or revoked token"}))
    exc = refusal(lambda: client(api.url).run("list", {}))
    assert exc.exit_code == 2
    assert exc.message == "the server refused the token (invalid or revoked token): run `pipe login` with a valid token"
    assert TOKEN not in exc.message


def test_a_server_crash_shows_its_reference_and_exits_3(api):
    api.answer(Answer(500, {"error": "internal error", "reference": "err-1234abcd",
                            "message": "internal error err-1234abcd: KeyError"}))
    exc = refusal(lambda: client(api.url).run("list", {}))
    assert exc.exit_code == 3
    assert exc.message == "the server hit an internal error err-1234abcd: KeyError; details in its log"


def test_an_answer_that_is_not_chainpipes_says_so(api):
    api.answer(Answer(404, b"<html>nginx</html>", {"Content-Type": "text/html"}),
               Answer(200, {"something": "else"}))
    first = refusal(lambda: client(api.url).run("list", {}))
    assert first.exit_code == 2 and "without a chainpipe error: is it a chainpipe server" in first.message
    second = refusal(lambda: client(api.url).run("list", {}))
    assert second.exit_code == 2 and "answered 200 without a result" in second.message


def test_an_unavailable_server_is_retried_with_backoff_and_retry_after(api):
    busy = {"error": "unavailable", "message": "database unavailable, try again"}
    api.answer(Answer(503, busy, {"Retry-After": "2"}), Answer(502, b"bad gateway"), Answer(504, b""),
               Answer(200, {"result": [1]}))
    clock = Clock()
    assert client(api.url, clock=clock).run("list", {}) == [1]
    assert len(api.seen) == 4
    assert clock.sleeps == [2.0, 0.5, 1.0]  # Retry-After, then the backoff of attempts 2 and 3


def test_retries_stop_at_the_timeout_with_one_line(api):
    api.default = Answer(503, {"error": "unavailable", "message": "database unavailable, try again"})
    clock = Clock()
    exc = refusal(lambda: client(api.url, timeout=3.0, clock=clock).run("list", {}))
    assert exc.exit_code == 2
    assert exc.message == f"{api.url} is unavailable (503: database unavailable, try again); try again later"
    assert sum(clock.sleeps) < 3.0 and len(api.seen) == len(clock.sleeps) + 1 >= 3


def test_a_server_that_refuses_connections_is_retried_until_the_timeout():
    url = FakeApi.closed_port()
    clock = Clock()
    exc = refusal(lambda: client(url, timeout=2.0, clock=clock).run("list", {}))
    assert exc.exit_code == 2 and exc.title == "server unreachable"
    assert exc.message.startswith(f"cannot reach {url} (connection refused) after ")
    assert len(clock.sleeps) >= 2 and sum(clock.sleeps) < 2.0


def test_a_read_timeout_is_not_retried_because_the_write_may_have_happened(api):
    api.answer(Answer(200, {"result": "late"}, delay=1.0))
    exc = refusal(lambda: ApiClient(api.url, TOKEN, timeout=0.3).run("approve", {"pipeline_id": "p"}))
    assert exc.exit_code == 2 and exc.title == "server timeout"
    assert "may or may not have been recorded" in exc.message
    assert len(api.seen) == 1


def test_a_redirect_is_not_followed_so_the_token_stays_with_the_server(api):
    elsewhere = FakeApi().start()
    try:
        api.default = Answer(307, b"", {"Location": elsewhere.url + "/api/v1/commands/list"})
        exc = refusal(lambda: client(api.url).run("list", {}))
        assert exc.exit_code == 2 and f"redirects to {elsewhere.url}/api/v1/commands/list (307)" in exc.message
        api.default = Answer(302, b"", {"Location": elsewhere.url + "/"})
        refusal(lambda: client(api.url).run("list", {}))
        assert elsewhere.seen == []  # the token went nowhere else
    finally:
        elsewhere.stop()


def test_an_unknown_host_fails_at_once_with_one_line():
    clock = Clock()
    exc = refusal(lambda: client("http://chainpipe.invalid", clock=clock).run("list", {}))
    assert exc.exit_code == 2 and exc.message.startswith("cannot reach http://chainpipe.invalid (")
    assert "\n" not in exc.message and clock.sleeps == []
