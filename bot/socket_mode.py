"""Socket Mode: the server opens a WebSocket to Slack (with the app-level token, ``xapp-…``) and
receives the slash commands, button clicks and modal submissions over it — no public URL, no
signing secret. The same Bolt app and listeners run as over HTTP; ``bot.verify.SlackGuard`` runs
each envelope once (by its ``envelope_id``, recorded in the database), since Slack redelivers what
it does not see acked.

slack_sdk's built-in client (stdlib only) does the protocol: ``apps.connections.open``, ``hello``,
acks, pings, ``disconnect`` messages. It reconnects as soon as a connection closes and then every
``ping_interval`` while down; ``ReconnectingClient`` spaces those attempts out (``Backoff``), so a
Slack or network outage costs a few log lines and requests, not one per ping.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time

from chainpipe.bot.verify import ENVELOPE_HEADER
from chainpipe.core.text import one_line
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import build_headers, send_response
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

log = logging.getLogger("chainpipe.socket_mode")


class Backoff:
    """Delays between reconnection attempts: none for the first after a success, then ``first``,
    doubling up to ``limit``, each between half and all of that (jitter, so replicas spread out)."""

    def __init__(self, first: float = 1.0, limit: float = 60.0, jitter=random.random):
        self.first, self.limit, self._jitter = first, limit, jitter
        self.failures = 0

    def delay(self) -> float:
        if self.failures == 0:
            return 0.0
        ceiling = min(self.limit, self.first * 2 ** (self.failures - 1))
        return ceiling * (0.5 + self._jitter() / 2)

    def failed(self) -> None:
        self.failures += 1

    def succeeded(self) -> None:
        self.failures = 0


class ReconnectingClient(SocketModeClient):
    def __init__(self, *args, backoff: Backoff | None = None, **kwargs):
        self.backoff = backoff or Backoff()
        self._closing = threading.Event()
        super().__init__(*args, **kwargs)

    def connect_to_new_endpoint(self, force: bool = False) -> None:
        delay = self.backoff.delay()
        if delay and self._closing.wait(delay):
            return
        if self._closing.is_set():
            return
        try:
            super().connect_to_new_endpoint(force)
            problem = None if self.is_connected() else "the WebSocket handshake failed"
        except Exception as exc:  # noqa: BLE001 - Slack or the network is down; the monitor tries again
            problem = f"{exc.__class__.__name__}: {one_line(str(exc))[:200]}"
        if problem is not None:
            if not self.backoff.failures:  # one line per outage, not one per attempt
                log.warning("Socket Mode: cannot connect to Slack (%s); trying again with backoff", problem)
            self.backoff.failed()
            return
        if self.backoff.failures:
            log.warning("Socket Mode: connected to Slack again after %d failed attempts", self.backoff.failures)
        self.backoff.succeeded()

    def close(self) -> None:
        self._closing.set()
        # Shut the socket down first: closing it alone leaves the reading thread in recv() until its
        # timeout, and shutdown waits for that thread.
        sock = getattr(self.current_session, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # Wake the message processor, which otherwise waits out its one-second queue timeout
        # before it sees that the client is closed (every shutdown paid that second).
        self.closed = True
        self.message_queue.put(None)
        super().close()


class SocketMode(BaseSocketModeHandler):
    """The Bolt app over Socket Mode; ``start()`` connects in the background, ``close()`` ends it."""

    def __init__(self, app: App, app_token: str, *, ping_interval: float = 10.0, backoff: Backoff | None = None,
                 concurrency: int = 10):
        self.app = app
        self.client = ReconnectingClient(app_token=app_token, logger=logging.getLogger("chainpipe.socket_mode.sdk"),
                                         web_client=app.client, ping_interval=ping_interval, backoff=backoff,
                                         concurrency=concurrency)
        self.client.socket_mode_request_listeners.append(self.handle)
        self._starter: threading.Thread | None = None
        self.observe = None  # bot.metrics.Metrics.observe, set by the server

    def _observe(self, payload, status: int, started: float) -> None:
        if self.observe is not None:
            from chainpipe.bot.metrics import slack_label

            self.observe("slack-socket", slack_label(payload), status, time.perf_counter() - started)

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        """One envelope through the Bolt app, as ``slack_bolt``'s own handler does, with the envelope's
        id handed to ``SlackGuard`` (only this path sets it; an HTTP request never has one)."""
        started, timer = time.time(), time.perf_counter()
        headers = {**(build_headers(req) or {}), ENVELOPE_HEADER: req.envelope_id}
        response = self.app.dispatch(BoltRequest(mode="socket_mode", body=req.payload, headers=headers))
        send_response(client, req, response, started)
        self._observe(req.payload, response.status, timer)

    def check_token(self) -> None:
        """Ask Slack for a connection URL once, so a wrong app token stops start-up (it raises)."""
        self.client.wss_uri = self.client.issue_new_wss_url()

    def start(self) -> None:
        """Connect, retrying with backoff until connected or closed (the client's monitor, which
        reconnects later on, starts with the first connection)."""
        def connect_until_connected():
            while not self.client._closing.is_set() and not self.client.is_connected():
                self.client.connect_to_new_endpoint()

        self._starter = threading.Thread(target=connect_until_connected, name="pipe-socket-mode", daemon=True)
        self._starter.start()

    def connected(self) -> bool:
        return self.client.is_connected()
