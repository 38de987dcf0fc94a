"""The image's HEALTHCHECK: exit 0 when pipe-server's ``/healthz`` answers 200, else 1 with one line.

``/healthz`` is the readiness check (the database answers), so a server that lost its database is
reported unhealthy. The URL is ``$PIPE_HEALTHCHECK_URL`` (default ``http://127.0.0.1:8080/healthz``):
set it when the server listens on another port. Proxy variables are ignored — the check is local.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/healthz"


def check(url: str, timeout: float = 4.0) -> str | None:
    """None when the server is healthy, else why not (one line)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url}: {reason}".splitlines()[0]
    return None if status == 200 else f"{url}: HTTP {status}"


def main() -> int:
    problem = check(os.environ.get("PIPE_HEALTHCHECK_URL") or DEFAULT_URL)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
