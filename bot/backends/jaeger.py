"""Jaeger's query service: one trace by id (`/api/traces/<id>`), summed up as its root span and duration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.backends.monitoring import Refused, error_text, get, make_client

WHAT = "Jaeger"
TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    service: str  # the root span's service
    operation: str  # the root span's operation
    start: datetime
    duration_us: int  # from the first span's start to the last span's end
    spans: int
    services: tuple[str, ...]
    errors: int  # spans tagged error=true


class Jaeger:
    def __init__(
        self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0,
        client: httpx.Client | None = None,
    ):  # fmt: skip
        self.url = url.rstrip("/")
        self.client = client or make_client(headers, timeout)

    def trace(self, trace_id: str) -> TraceSummary | None:
        """The trace, or None when Jaeger does not have it (404)."""
        resp = get(self.client, WHAT, self.url, f"/api/traces/{trace_id}", {})
        if resp.status_code == 404:
            return None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code != 200 or not isinstance(data, dict):
            raise Refused(
                WHAT, self.url, error_text(resp) if resp.status_code != 200 else "not a Jaeger API answer"
            )
        traces = data.get("data") or []
        if not traces or not traces[0].get("spans"):
            return None
        try:
            return summarize(traces[0])
        except (KeyError, ValueError, TypeError, AttributeError):
            raise Refused(WHAT, self.url, "not a Jaeger API answer") from None

    def close(self) -> None:
        self.client.close()


def summarize(trace: dict[str, Any]) -> TraceSummary:
    """A Jaeger trace (its JSON) as its root span, services and total duration."""
    spans = trace["spans"]
    processes = trace.get("processes") or {}
    ids = {s.get("spanID") for s in spans}

    def parent_here(span: dict[str, Any]) -> bool:
        return any(r.get("spanID") in ids for r in span.get("references") or [])

    roots = [s for s in spans if not parent_here(s)] or spans
    root = min(roots, key=lambda s: int(s.get("startTime", 0)))
    start = min(int(s.get("startTime", 0)) for s in spans)
    end = max(int(s.get("startTime", 0)) + int(s.get("duration", 0)) for s in spans)

    def service(span: dict[str, Any]) -> str:
        return str((processes.get(span.get("processID")) or {}).get("serviceName", ""))

    errors = sum(
        1
        for s in spans
        for tag in s.get("tags") or []
        if tag.get("key") == "error" and tag.get("value") in (True, "true")
    )
    return TraceSummary(
        trace_id=str(trace.get("traceID") or root.get("traceID") or ""), service=service(root),
        operation=str(root.get("operationName", "")), start=datetime.fromtimestamp(start / 1e6, UTC),
        duration_us=end - start, spans=len(spans), services=tuple(sorted({service(s) for s in spans} - {""})),
        errors=errors,
    )  # fmt: skip
