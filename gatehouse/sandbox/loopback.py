"""An HTTP server on a random 127.0.0.1 port, served by a daemon thread: what each emulator runs on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOP_WAIT = 60.0  # seconds stop() waits for the serving thread: a hang guard, it takes milliseconds


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection; a connection stays open for as long as its client keeps it (HTTP/1.1
    keep-alive, as requests' and botocore's pools expect)."""

    daemon_threads = True
    # The listen backlog. The default (5) drops connections when more clients connect at once than the accept
    # loop takes in, as a fleet plan's 16 threads or a race test's 60 do on a busy machine.
    request_queue_size = 128


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._handler = handler
        self._name = name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        if self._server is None:
            return None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Listen; returns the base URL."""
        if self._server is not None:
            raise RuntimeError(f"{self._name} is already running")
        self._server = _Server(("127.0.0.1", 0), self._handler)
        # A short poll interval: stop() waits for the loop to notice, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=self._name, daemon=True
        )
        self._thread.start()
        assert self.url is not None
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT)
        self._server = self._thread = None
