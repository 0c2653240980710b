"""A stand-in for the deployed TAISUN service: /health and /version on loopback, set by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeService:
    def __init__(self, version: str = "v1.0.0", healthy: bool = True):
        self.version = version
        # When set, /version asks it (e.g. "the version of the last successful deploy run").
        self.version_fn: Callable[[], str] | None = None
        self.healthy = healthy
        # Other paths (smoke checks): path -> (status, JSON body) the service answers.
        self.routes: dict[str, tuple[int, Any]] = {}
        self.hits: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> FakeService:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.hits.append(self.path)
                if self.path == "/health":
                    status, body = (200, {"status": "ok"}) if owner.healthy else (503, {"status": "down"})
                elif self.path == "/version":
                    status, body = 200, {"version": owner.version_fn() if owner.version_fn else owner.version}
                elif self.path in owner.routes:
                    status, body = owner.routes[self.path]
                else:
                    status, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
