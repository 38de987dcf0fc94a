"""The Action's client for a team's chainpipe server (remote mode): `cli.api_client.ApiClient` — the
standard library alone, so the Action's remote steps install nothing — plus the Action's own
headers (``X-Pipe-Actor``, ``X-Pipe-Surface``, ``X-Pipe-Run-Url``) and its words for a wrong token.

Retries (502/503/504 and connection failures, with backoff, within ``timeout`` seconds; never a
read timeout, which may follow a write) and the exit code of each answer are ApiClient's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chainpipe.cli.api_client import ApiClient, RemoteError

__all__ = ["RemoteClient", "RemoteError"]


class RemoteClient(ApiClient):
    def __init__(self, base_url: str, token: str, *, headers: dict[str, str] | None = None,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        if not base_url.startswith(("http://", "https://")):
            raise RemoteError(f"server-url must start with https:// (or http://), got {base_url!r}",
                              title="invalid input")
        super().__init__(base_url, token, timeout=timeout, sleep=sleep,
                         headers={"User-Agent": "chainpipe-action"} | (headers or {}))

    def close(self) -> None:
        """Nothing to release: each request opens (and closes) its own connection."""

    def _error(self, status: int, answer, headers: dict) -> RemoteError:
        if status == 401:
            return RemoteError("the server refused the token (401): check the action's token input",
                               status=401, title="unauthorized")
        return super()._error(status, answer, headers)
