"""A fake of Slack's Socket Mode: a WebSocket server (stdlib only) that speaks the protocol the way
Slack does, plus the conversion of the fake's HTTP request bodies into envelopes.

- ``apps.connections.open`` (answered by ``FakeSlack`` with the app token) returns ``url``, a
  ``ws://127.0.0.1:…`` address of this server;
- on connect the server sends ``{"type": "hello", …}``;
- ``send(kind, payload)`` writes an envelope ``{"envelope_id", "type", "payload",
  "accepts_response_payload"}`` to the live connection; the app acks with
  ``{"envelope_id", "payload"?}``, recorded in ``acks``;
- ``drop()`` closes the connection: after a ``disconnect`` message, as Slack does before a restart,
  or abruptly (``warn=False``), as a network does; ``refuse = True`` makes new WebSocket handshakes
  fail (and ``FakeSlack.down`` makes ``apps.connections.open`` fail).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from socketserver import BaseRequestHandler, ThreadingTCPServer
from urllib.parse import parse_qsl

from tests.fakes.local_server import LocalServer
from tests.fakes.slack import APP_ID

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def envelope_of(body: str) -> tuple[str, dict]:
    """The (envelope type, payload) Slack sends over Socket Mode for what it would POST over HTTP."""
    form = dict(parse_qsl(body, keep_blank_values=True))
    if "payload" in form:
        return "interactive", json.loads(form["payload"])
    return "slash_commands", form


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exact(sock, 2)
    opcode, length = first & 0x0F, second & 0x7F
    if length == 126:
        length = struct.unpack("!H", _read_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exact(sock, 8))[0]
    mask = _read_exact(sock, 4) if second & 0x80 else None
    data = _read_exact(sock, length)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return opcode, data


def frame(opcode: int, data: bytes) -> bytes:
    """A server frame: final, unmasked."""
    head = bytes([0x80 | opcode])
    if len(data) < 126:
        head += bytes([len(data)])
    elif len(data) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(data))
    else:
        head += bytes([127]) + struct.pack("!Q", len(data))
    return head + data


class FakeSocketMode(LocalServer):
    def __init__(self):
        self.acks: dict[str, list[dict]] = {}  # envelope_id -> the acks received for it, in order
        self.connections = 0  # WebSocket sessions opened so far
        self.refuse = False
        self._live: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        fake = self

        class Handler(BaseRequestHandler):
            def handle(self):
                fake._serve(self.request)

        self._listen(ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=True))

    def stop(self) -> None:
        self.drop(warn=False)
        super().stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"

    # --- the protocol ------------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return
            request += chunk
        headers = dict(line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line)
        if self.refuse:
            sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            return
        key = next(v for k, v in headers.items() if k.lower() == "sec-websocket-key")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        with self._cond:
            self._live = sock
            self.connections += 1
            self._cond.notify_all()
        self._write(sock, {"type": "hello", "num_connections": 1, "connection_info": {"app_id": APP_ID},
                           "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600}})
        self._receive(sock)

    def _receive(self, sock: socket.socket) -> None:
        try:
            while True:
                opcode, data = read_frame(sock)
                if opcode == PING:
                    with self._send_lock:
                        sock.sendall(frame(PONG, data))
                elif opcode == CLOSE:
                    with self._send_lock:
                        sock.sendall(frame(CLOSE, data[:2]))
                    return
                elif opcode == TEXT:
                    ack = json.loads(data)
                    with self._cond:
                        self.acks.setdefault(ack["envelope_id"], []).append(ack)
                        self._cond.notify_all()
        except (ConnectionError, OSError):
            return
        finally:
            with self._cond:
                if self._live is sock:
                    self._live = None

    def _write(self, sock: socket.socket, message: dict) -> None:
        with self._send_lock:
            sock.sendall(frame(TEXT, json.dumps(message).encode()))

    # --- what tests do --------------------------------------------------------------------------------

    def wait_connected(self, connections: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self.connections >= connections and self._live is not None):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no live Socket Mode connection #{connections} within {timeout}s")
                self._cond.wait(left)

    def send(self, kind: str, payload: dict, *, envelope_id: str | None = None, retry_attempt: int = 0) -> str:
        """Deliver an envelope on the live connection; returns its id."""
        self.wait_connected()
        envelope_id = envelope_id or str(uuid.uuid4())
        message = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                   "accepts_response_payload": kind in ("slash_commands", "interactive")}
        if kind == "events_api":
            message |= {"retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
        self._write(self._live, message)
        return envelope_id

    def wait_ack(self, envelope_id: str, count: int = 1, timeout: float = 10.0) -> dict:
        """The ``count``-th ack of an envelope (as Slack received it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.acks.get(envelope_id, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} not acked {count}× within {timeout}s")
                self._cond.wait(left)
            return self.acks[envelope_id][count - 1]

    def drop(self, *, warn: bool = True) -> None:
        """End the live connection: with Slack's ``disconnect`` message first, or abruptly."""
        with self._cond:
            sock, self._live = self._live, None
        if sock is None:
            return
        try:
            if warn:
                self._write(sock, {"type": "disconnect", "reason": "refresh_requested"})
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
