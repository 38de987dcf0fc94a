"""The JSON API client of `pipe` in remote mode, on the standard library alone (urllib): remote mode
must start fast and import no database or HTTP package.

    POST {server}/api/v1/commands/{name}   body: the command's parameters (grammar names)
    200 → {"result": …}; errors → {"error": "<title>", "message": "<one line>"} with the status

What an answer becomes (a ``RemoteError`` with the exit code direct mode would give):

    400 413 422                bad input                                   exit 2
    401                        the token is wrong or revoked               exit 2
    403 404 409                refused by policy or the pipeline's state   exit 1
    500 "internal error"       the server crashed (its reference shown)    exit 3
    other 5xx, unreachable     the server or its database is down          exit 2

Connection failures and 502/503/504 are retried with exponential backoff (honouring Retry-After)
until ``timeout`` seconds have passed since the first attempt. A read timeout is not retried: the
request arrived, and the change may have been made. Redirects are not followed: the bearer token
must not travel to another address.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from chainpipe.core.errors import PipeError

RETRY_STATUSES = frozenset({502, 503, 504})
INPUT_STATUSES = frozenset({400, 413, 422})
REFUSAL_STATUSES = frozenset({403, 404, 409})
DEFAULT_TIMEOUT = 30.0
FIRST_DELAY, MAX_DELAY = 0.25, 5.0
MAX_ANSWER = 64 * 1024 * 1024


class RemoteError(PipeError):
    """The server refused the command or could not be reached; ``exit_code`` as direct mode's."""

    def __init__(self, message: str, exit_code: int = 2, status: int | None = None, title: str = "server error"):
        super().__init__(message)
        self.exit_code, self.status, self.title = exit_code, status, title


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx as an HTTPError


class ApiClient:
    def __init__(self, server: str, token: str, *, timeout: float = DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 headers: dict[str, str] | None = None):
        self.server, self.timeout, self.sleep, self.clock = server.rstrip("/"), timeout, sleep, clock
        self._token = token
        self._headers = {"User-Agent": "chainpipe-cli"} | (headers or {})  # the Action adds X-Pipe-Actor…
        self._opener = urllib.request.build_opener(_NoRedirects)

    def run(self, command: str, values: dict):
        """Run one grammar command on the server and return its ``result``."""
        body = json.dumps({k: v for k, v in values.items() if v is not None}, ensure_ascii=False).encode("utf-8")
        status, answer, headers = self._post(f"{self.server}/api/v1/commands/{command}", body)
        if status == 200:
            if isinstance(answer, dict) and "result" in answer:
                return answer["result"]
            raise RemoteError(f"{self.server} answered 200 without a result: is it a chainpipe server?", status=200)
        raise self._error(status, answer, headers)

    def check(self) -> None:
        """An authenticated call that changes nothing: RemoteError unless the token is accepted."""
        self.run("templates", {})

    def _post(self, url: str, body: bytes) -> tuple[int, object, dict]:
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Authorization": f"Bearer {self._token}", "Content-Type": "application/json",
                "Accept": "application/json"} | self._headers)
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    status, data, headers = response.status, response.read(MAX_ANSWER), response.headers
            except urllib.error.HTTPError as exc:
                status, data, headers = exc.code, exc.read(MAX_ANSWER), exc.headers
                exc.close()
                if status in RETRY_STATUSES and self._wait(start, attempt, headers.get("Retry-After")):
                    continue
            except urllib.error.URLError as exc:  # nothing was answered: the request did not get through
                if _retryable(exc.reason) and self._wait(start, attempt):
                    continue
                raise RemoteError(f"cannot reach {self.server} ({_why(exc.reason)}) after {attempt} "
                                  f"attempt{'s' if attempt > 1 else ''}", title="server unreachable") from None
            except TimeoutError:
                raise RemoteError(f"{self.server} did not answer within {self.timeout:g}s; the command may or "
                                  "may not have been recorded (check before running it again)",
                                  title="server timeout") from None
            except (OSError, http.client.HTTPException) as exc:  # it broke after the request was sent
                raise RemoteError(f"the connection to {self.server} broke ({_why(exc)}); the command may or "
                                  "may not have been recorded (check before running it again)",
                                  title="server unreachable") from None
            return status, _json(data), dict(headers.items())

    def _wait(self, start: float, attempt: int, retry_after: str | None = None) -> bool:
        """Sleep before the next attempt, if one fits in the timeout."""
        delay = min(FIRST_DELAY * 2 ** (attempt - 1), MAX_DELAY)
        if retry_after and retry_after.strip().isdigit():
            delay = min(float(retry_after), MAX_DELAY)
        if self.clock() - start + delay >= self.timeout:
            return False
        self.sleep(delay)
        return True

    def _error(self, status: int, answer, headers: dict) -> RemoteError:
        known = isinstance(answer, dict) and isinstance(answer.get("message"), str)
        message = _first_line(answer["message"]) if known else None
        title = str(answer.get("error")) if known else "server error"
        if 300 <= status < 400:
            where = {k.lower(): v for k, v in headers.items()}.get("location") or "elsewhere"
            return RemoteError(f"{self.server} redirects to {where} ({status}); the token is not sent on: "
                               "log in with the server's own URL", status=status, title="redirect")
        if status == 401:
            return RemoteError(f"the server refused the token ({message or 'unauthorized'}): run `pipe login` "
                               "with a valid token", status=401, title="unauthorized")
        if status in RETRY_STATUSES:
            why = f": {message}" if message else ""
            return RemoteError(f"{self.server} is unavailable ({status}{why}); try again later",
                               status=status, title="server unavailable")
        if not known:
            return RemoteError(f"{self.server} answered {status} without a chainpipe error: is it a chainpipe "
                               "server, and is the URL its base?", status=status)
        if status in REFUSAL_STATUSES:
            return RemoteError(message, 1, status, title)
        if status in INPUT_STATUSES:
            return RemoteError(message, 2, status, title)
        if status == 500 and title == "internal error":
            return RemoteError(f"the server hit an {message}; details in its log", 3, status, title)
        return RemoteError(message, 2, status, title)


def _json(data: bytes):
    try:
        return json.loads(data.decode("utf-8")) if data else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text.strip() else text


def _retryable(reason) -> bool:
    return isinstance(reason, ConnectionError | TimeoutError)


def _why(reason) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return _first_line(str(reason)) or reason.__class__.__name__
