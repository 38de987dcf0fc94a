"""The HTTP client for a team's chainpipe server (the JSON API), used by the Action in remote mode.

    POST {server}/api/v1/commands/{name}   body: the command's parameters (grammar names)
    200 → {"result": …}; errors → {"error": "<title>", "message": "<one line>"}; 401 → bad token

Retries: connection failures and 502/503/504 (the server or its proxy is restarting) are retried
with exponential backoff; a read timeout is *not* retried, because the write may have been applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from core.errors import PipeError

RETRY_STATUSES = frozenset({502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_RETRY_AFTER = 30.0


class RemoteError(PipeError):
    """The server refused the command, or could not be reached. ``title`` comes from the server."""

    def __init__(self, message: str, title: str = "server error", status: int | None = None):
        super().__init__(message)
        self.title = title
        self.status = status


class RemoteClient:
    def __init__(
        self, base_url: str, token: str, *, headers: dict[str, str] | None = None, retries: int = 3,
        backoff: float = 0.5, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise RemoteError(f"server-url must start with https:// (or http://), got {base_url!r}",
                              title="invalid input")
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff, self.sleep = retries, backoff, sleep
        self.http = httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "User-Agent": "chainpipe-action"} | (headers or {}),
        )

    def close(self) -> None:
        self.http.close()

    def run(self, command: str, values: dict):
        """Run one grammar command on the server and return its ``result``."""
        url = f"{self.base_url}/api/v1/commands/{command}"
        body = {k: v for k, v in values.items() if v is not None}
        response = self._post(url, body)
        if response.status_code == 200:
            return self._json(response, command).get("result")
        raise self._error(response, command)

    def _post(self, url: str, body: dict) -> httpx.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.post(url, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise RemoteError(f"cannot reach {self.base_url} after {attempt + 1} attempts: "
                                      f"{exc.__class__.__name__}", title="server unreachable") from None
                self.sleep(self._delay(attempt))
                continue
            except httpx.TimeoutException:
                raise RemoteError(f"{self.base_url} did not answer in time; the command may or may not "
                                  "have been recorded", title="server timeout") from None
            except httpx.HTTPError as exc:
                raise RemoteError(f"request to {self.base_url} failed: {exc.__class__.__name__}",
                                  title="server unreachable") from None
            if response.status_code in RETRY_STATUSES and not last:
                self.sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), MAX_RETRY_AFTER)
        return self.backoff * (2**attempt)

    @staticmethod
    def _json(response: httpx.Response, command: str) -> dict:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise RemoteError(f"{command}: the server answered {response.status_code} without a JSON object",
                              status=response.status_code)
        return data

    def _error(self, response: httpx.Response, command: str) -> RemoteError:
        status = response.status_code
        if status == 401:
            return RemoteError("the server refused the token (401): check the action's token input",
                               title="unauthorized", status=401)
        if status in RETRY_STATUSES:
            return RemoteError(f"{self.base_url} is unavailable ({status}) after {self.retries + 1} attempts",
                               title="server unavailable", status=status)
        try:
            data = self._json(response, command)
        except RemoteError:
            return RemoteError(f"{command}: the server answered {status}", status=status)
        message = str(data.get("message") or data.get("error") or f"the server answered {status}")
        return RemoteError(message.splitlines()[0] if message else message,
                           title=str(data.get("error") or "server error"), status=status)
