"""Web sessions: a person signs in with their personal API token; the browser then holds a signed
cookie naming that token, never the token itself.

The cookie is signed with the server secret (``PIPE_WEB_SECRET``; without it a random secret per
process, so sessions end when the server restarts), carries its own issue time (refused after
``MAX_AGE``), and is ``HttpOnly`` and ``SameSite=Strict``. Every request looks the token up again:
revoking it ends the session on the next request.
"""

from __future__ import annotations

import os
import secrets

from chainpipe.bot.settings import SettingsError
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "pipe_session"
MAX_AGE = 8 * 3600
SALT = "chainpipe-web-session"
MIN_SECRET = 32


class SecretError(SettingsError):
    """PIPE_WEB_SECRET is set but too short to sign sessions with."""


def server_secret(env=None) -> str:
    env = os.environ if env is None else env
    secret = env.get("PIPE_WEB_SECRET") or ""
    if not secret:
        return secrets.token_urlsafe(32)
    if len(secret) < MIN_SECRET:
        raise SecretError(f"PIPE_WEB_SECRET must be at least {MIN_SECRET} characters")
    return secret


class Sessions:
    def __init__(self, secret: str, max_age: int = MAX_AGE):
        self.signer = URLSafeTimedSerializer(secret, salt=SALT)
        self.max_age = max_age

    def issue(self, token: dict) -> str:
        return self.signer.dumps({"t": token["id"], "p": token["person"]})

    def read(self, cookie: str | None) -> dict | None:
        """The session's ``{"t": token id, "p": person}``, or None if absent, forged or expired."""
        if not cookie or len(cookie) > 1000:
            return None
        try:
            data = self.signer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("p"), str):
            return None
        return data

    def cookie_args(self, secure: bool) -> dict:
        return {"key": COOKIE, "max_age": self.max_age, "path": "/web", "httponly": True, "samesite": "strict",
                "secure": secure}
