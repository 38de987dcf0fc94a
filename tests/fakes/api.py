"""A fake chainpipe JSON API: a real HTTP server in the test process that answers each request with
the next scripted answer (or a default) and records what it was sent, for testing the remote-mode
client without a database. ``FakeApi.closed_port()`` gives an address where nothing listens."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.local_server import LocalServer


@dataclass
class Answer:
    status: int = 200
    body: object = field(default_factory=lambda: {"result": {"ok": True}})  # bytes are sent as they are
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow server)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class FakeApi(LocalServer):
    def __init__(self, default: Answer | None = None):
        self.default = default or Answer()
        self.script: list[Answer] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._listen(ThreadingHTTPServer(("127.0.0.1", 0), self._handler()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)

    @staticmethod
    def closed_port() -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}"  # closed again: connections are refused

    def _next(self, seen: Seen) -> Answer:
        with self._lock:
            self.seen.append(seen)
            return self.script.pop(0) if self.script else self.default

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length))
                answer = fake._next(seen)
                if answer.delay:
                    time.sleep(answer.delay)
                raw = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for key, value in {"Content-Type": "application/json", **answer.headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

            do_POST = do_GET = _serve

        return Handler
