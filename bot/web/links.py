"""Links into the web view from elsewhere (Slack messages): only when ``PIPE_PUBLIC_URL`` says
where the server is reachable by people."""

from __future__ import annotations

import os
from urllib.parse import quote


def public_url(env=None) -> str | None:
    env = os.environ if env is None else env
    url = (env.get("PIPE_PUBLIC_URL") or "").strip().rstrip("/")
    return url if url.startswith(("http://", "https://")) else None


def pipeline_url(pipeline_id: str, env=None) -> str | None:
    base = public_url(env)
    return f"{base}/web/pipelines/{quote(pipeline_id, safe='')}" if base else None
