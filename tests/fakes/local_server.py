"""What every fake server shares: a socketserver on 127.0.0.1, an ephemeral port, a daemon thread."""

from __future__ import annotations

import socketserver
import threading


class LocalServer:
    """Mix-in: call ``_listen(server)`` in ``__init__``; ``start()`` serves, ``stop()`` closes."""

    server: socketserver.BaseServer

    def _listen(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return self.server.server_address[1]
