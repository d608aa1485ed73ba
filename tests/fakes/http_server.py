"""The part every fake server shares: a threaded HTTP server on a free 127.0.0.1 port, started
in a daemon thread, stopped (and its port closed) on exit."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class BackgroundHTTPServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], *, name: str) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._name = name
        self._thread: threading.Thread | None = None
        host, port = self._httpd.server_address[:2]
        # Bound in __init__, so the URL is known (and can be configured) before start().
        self.url = f"http://{host!s}:{port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
