"""A fake Slack: a real HTTP server in the test process that answers the Web API methods the bot
uses (and response_url posts) the way Slack does, and records every call; plus builders for
signed requests shaped exactly as Slack sends them (slash commands, block_actions,
view_submission).

Like Slack it can rate-limit a method (``limit(method, burst)``: after ``burst`` calls, HTTP 429 with
``Retry-After`` until that many seconds have passed, then another burst) and be down
(``down = True``: HTTP 503 for every method)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

from tests.fakes.local_server import LocalServer

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-A0PIPE-1-fake-app-token"
SIGNING_SECRET = "fake-signing-secret-0123456789abcdef"
TEAM = {"id": "T0FAKE", "domain": "fake-team"}
APP_ID = "A0PIPE"


@dataclass
class Call:
    method: str  # "chat.postMessage", … or "response_url"
    params: dict
    path: str
    token: str | None
    at: float = field(default_factory=time.monotonic)
    status: int = 200


class FakeSlack(LocalServer):
    def __init__(self):
        self.calls: list[Call] = []
        self.messages: dict[str, dict] = {}  # ts -> latest {channel, text, blocks}
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self.fail: dict[str, str] = {}  # method -> Slack error code to answer with (once)
        self.down = False  # True: every Web API method answers 503
        self._limits: dict[str, tuple[int, int]] = {}  # method -> (burst, Retry-After seconds)
        self._window: dict[str, list] = {}  # method -> [calls in this burst, limited until (monotonic)]
        self.socket_mode = None  # a tests.fakes.socket_mode.FakeSocketMode, for apps.connections.open
        self._listen(ThreadingHTTPServer(("127.0.0.1", 0), self._handler()))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def response_url(self, name: str = "r") -> str:
        return f"{self.base}/response/{name}"

    # --- queries -----------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, predicate=lambda c: True, timeout: float = 5.0, count: int = 1) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method and predicate(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self.calls]
                    raise AssertionError(f"no {count} × {method} within {timeout}s; calls so far: {seen}")
                self._cond.wait(left)

    def reset(self) -> None:
        with self._cond:
            self.calls.clear()

    def limit(self, method: str, burst: int, retry_after: int = 1) -> None:
        """Rate-limit ``method`` as Slack does: a burst of ``burst`` calls goes through, then calls
        are answered 429 with ``Retry-After: retry_after`` until those seconds have passed."""
        self._limits[method] = (burst, retry_after)

    def _retry_after(self, method: str) -> int | None:
        """None when the call may go through (and it is counted); else the seconds to wait."""
        if method not in self._limits:
            return None
        burst, retry_after = self._limits[method]
        now = time.monotonic()
        with self._cond:
            window = self._window.setdefault(method, [0, 0.0])
            if now < window[1]:
                return retry_after
            if window[0] >= burst:
                window[:] = [0, now + retry_after]
                return retry_after
            window[0] += 1
        return None

    # --- the server ----------------------------------------------------------------------------------

    def _answer(self, method: str, params: dict) -> dict:
        error = self.fail.pop(method, None)
        if error:
            return {"ok": False, "error": error}
        if method == "auth.test":
            return {"ok": True, "url": "https://fake-team.slack.com/", "team": "Fake", "user": "pipe",
                    "team_id": TEAM["id"], "user_id": "U0BOT", "bot_id": "B0BOT", "is_enterprise_install": False}
        if method == "chat.postMessage":
            ts = f"{1700000000 + next(self._ts)}.000100"
            channel = params.get("channel")
            self.messages[ts] = {"channel": channel, "text": params.get("text"), "blocks": params.get("blocks")}
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text"), "ts": ts}}
        if method == "chat.update":
            ts = params.get("ts")
            if ts not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[ts] = {"channel": params.get("channel"), "text": params.get("text"),
                                 "blocks": params.get("blocks")}
            return {"ok": True, "channel": params.get("channel"), "ts": ts, "text": params.get("text")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method == "views.publish":
            return {"ok": True, "view": {"id": "V0HOME", **(params.get("view") or {})}}
        if method == "apps.connections.open" and self.socket_mode is not None:
            return {"ok": True, "url": self.socket_mode.url}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0FAKE", "type": "modal", **(params.get("view") or {})}}
        return {"ok": False, "error": "unknown_method"}

    def _authorised(self, method: str, token: str | None) -> dict | None:
        """Slack's refusal of the token for this method, or None: the app-level token (``xapp-``)
        opens Socket Mode connections and nothing else; the bot token does the rest."""
        if token not in (BOT_TOKEN, APP_TOKEN):
            return {"ok": False, "error": "invalid_auth"}
        if (method == "apps.connections.open") != (token == APP_TOKEN):
            return {"ok": False, "error": "not_allowed_token_type"}
        return None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(parse_qsl(raw))
                for key in ("blocks", "view"):
                    if isinstance(params.get(key), str):
                        params[key] = json.loads(params[key])
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or params.get("token")
                status, extra = 200, {}
                method = self.path.removeprefix("/api/")
                if self.path.startswith("/response/"):
                    call, body, ctype = Call("response_url", params, self.path, None), b"ok", "text/plain"
                elif fake.down or (wait := fake._retry_after(method)) is not None:
                    status = 503 if fake.down else 429
                    extra = {} if fake.down else {"Retry-After": str(wait)}
                    call = Call(method, params, self.path, token, status=status)
                    error = "service_unavailable" if fake.down else "ratelimited"
                    body, ctype = json.dumps({"ok": False, "error": error}).encode(), "application/json"
                else:
                    call = Call(method, params, self.path, token)
                    answer = fake._authorised(method, token) or fake._answer(method, params)
                    body, ctype = json.dumps(answer).encode(), "application/json; charset=utf-8"
                with fake._cond:
                    fake.calls.append(call)
                    fake._cond.notify_all()
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


# --- requests as Slack sends them --------------------------------------------------------------------


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | str | None = None) -> dict:
    """Slack's signature headers; ``timestamp`` may be any text, to sign a hostile one."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def headers_for(body: str, content_type: str, *, retry: int | None = None, **kw) -> dict:
    """Headers of a signed request; ``retry`` adds Slack's ``X-Slack-Retry-Num`` (not signed, as in Slack)."""
    retried = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
    return {"Content-Type": content_type, **sign(body, **kw), **retried}


def slash_body(text: str, *, user_id: str, response_url: str, channel_id: str = "C0PIPE") -> str:
    return urlencode({
        "token": "verification-token-unused", "team_id": TEAM["id"], "team_domain": TEAM["domain"],
        "channel_id": channel_id, "channel_name": "deploys", "user_id": user_id, "user_name": user_id.lower(),
        "command": "/pipe", "text": text, "api_app_id": APP_ID, "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": f"1337.42.{user_id}",
    })


def _user(user_id: str) -> dict:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM["id"]}


def block_actions_body(*, action_id: str, value: str, user_id: str, response_url: str,
                       channel_id: str = "C0PIPE", message_ts: str = "1700000001.000100") -> str:
    payload = {
        "type": "block_actions",
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": f"1337.99.{user_id}",
        "team": TEAM,
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "deploys"},
        "message": {"type": "message", "ts": message_ts, "text": "gate", "bot_id": "B0BOT", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{
            "action_id": action_id, "block_id": "gate_actions", "value": value, "type": "button",
            "text": {"type": "plain_text", "text": "Approve", "emoji": True}, "action_ts": f"{time.time():.6f}",
        }],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(*, view: dict, reason: str | None, user_id: str) -> str:
    values = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
    payload = {
        "type": "view_submission",
        "team": TEAM,
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "verification-token-unused",
        "trigger_id": f"1337.77.{user_id}",
        "view": {**view, "id": "V0FAKE", "team_id": TEAM["id"], "state": {"values": values}, "hash": "1.abc",
                 "app_id": APP_ID, "bot_id": "B0BOT"},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)})


def app_home_opened_body(*, user_id: str, tab: str = "home") -> str:
    """An Events API callback as Slack sends it when a person opens the app's Home tab."""
    return json.dumps({
        "token": "verification-token-unused", "team_id": TEAM["id"], "api_app_id": APP_ID, "type": "event_callback",
        "event": {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": tab,
                  "event_ts": f"{time.time():.6f}"},
        "event_id": f"Ev{int(time.time() * 1000)}", "event_time": int(time.time()), "authorizations": [],
        "is_ext_shared_channel": False,
    })
