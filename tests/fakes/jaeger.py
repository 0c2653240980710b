"""A loopback Jaeger query service: `/api/traces/<id>` answering as Jaeger's does (its JSON, and
404 with `errors` for a trace it does not have)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer, respond


def make_trace(trace_id: str, start_us: int) -> dict[str, Any]:
    """A trace as Jaeger stores it: an API request calling the database, one span with an error."""
    return {
        "traceID": trace_id,
        "spans": [
            {"traceID": trace_id, "spanID": "a1", "operationName": "GET /api/orders", "references": [],
             "startTime": start_us, "duration": 812_000, "processID": "p1",
             "tags": [{"key": "http.status_code", "type": "int64", "value": 500}]},
            {"traceID": trace_id, "spanID": "b2", "operationName": "SELECT orders",
             "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": "a1"}],
             "startTime": start_us + 10_000, "duration": 790_000, "processID": "p2",
             "tags": [{"key": "error", "type": "bool", "value": True}]},
        ],
        "processes": {"p1": {"serviceName": "taisun-api", "tags": []}, "p2": {"serviceName": "postgres", "tags": []}},
        "warnings": None,
    }  # fmt: skip


class FakeJaeger(LoopbackServer):
    def __init__(self) -> None:
        self.traces: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.url = ""

    def start(self) -> FakeJaeger:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.requests.append(self.path)
                trace_id = self.path.split("?")[0].removeprefix("/api/traces/").lower()
                trace = owner.traces.get(trace_id) if self.path.startswith("/api/traces/") else None
                if trace is None:
                    status = 404
                    body: dict[str, Any] = {"data": None, "total": 0, "limit": 0, "offset": 0,
                                            "errors": [{"code": 404, "msg": "trace not found"}]}  # fmt: skip
                else:
                    status, body = 200, {"data": [trace], "total": 0, "limit": 0, "offset": 0, "errors": None}
                respond(self, status, body)

        self.serve(Handler)
        return self
