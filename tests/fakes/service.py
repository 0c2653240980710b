"""A stand-in for the deployed TAISUN service: /health and /version on loopback, set by the test."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer, respond


class FakeService(LoopbackServer):
    def __init__(self, version: str = "v1.0.0", healthy: bool = True):
        self.version = version
        # When set, /version asks it (e.g. "the version of the last successful deploy run").
        self.version_fn: Callable[[], str] | None = None
        self.healthy = healthy
        # Other paths (smoke checks): path -> (status, JSON body) the service answers.
        self.routes: dict[str, tuple[int, Any]] = {}
        self.hits: list[str] = []
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
                respond(self, status, body)

        self.serve(Handler)
        return self
