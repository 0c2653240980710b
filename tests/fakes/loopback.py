"""What every small loopback HTTP server of the tests shares: a threading server on a free port of
127.0.0.1 in a daemon thread, stopped at once, and a response written with its length."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """serve(Handler) starts it (sets `url` and `port`); stop() ends it. Subclasses or owners keep state."""

    url: str = ""
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def respond(handler: BaseHTTPRequestHandler, status: int, body: Any, content_type: str = "") -> None:
    """`body` as JSON (bytes and text as they are), with Content-Type and Content-Length."""
    if isinstance(body, bytes):
        data, ctype = body, content_type or "application/octet-stream"
    elif isinstance(body, str):
        data, ctype = body.encode(), content_type or "text/plain; charset=utf-8"
    else:
        data, ctype = json.dumps(body).encode(), content_type or "application/json"
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
