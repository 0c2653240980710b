"""Loki's log query over a time range (`/loki/api/v1/query_range`): LogQL in, log lines out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import httpx

from bot.backends.monitoring import Refused, error_text, get, make_client

WHAT = "Loki"


@dataclass(frozen=True)
class LogLine:
    ns: int  # nanoseconds since the epoch, as Loki gives them
    line: str
    labels: dict[str, str] = field(default_factory=dict)


class Loki:
    """One Loki (one tenant when `tenant` is given)."""

    def __init__(
        self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0, tenant: str = "",
        client: httpx.Client | None = None,
    ):  # fmt: skip
        self.url = url.rstrip("/")
        self.tenant = tenant
        self.client = client or make_client(headers, timeout)

    def query_range(self, query: str, start: datetime, end: datetime, limit: int) -> list[LogLine]:
        """The newest `limit` lines the LogQL query matches between start and end, newest first."""
        params = {
            "query": query, "start": str(int(start.timestamp() * 1e9)), "end": str(int(end.timestamp() * 1e9)),
            "limit": str(limit), "direction": "backward",
        }  # fmt: skip
        headers = {"X-Scope-OrgID": self.tenant} if self.tenant else None
        resp = get(self.client, WHAT, self.url, "/loki/api/v1/query_range", params, headers)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code != 200 or not isinstance(data, dict) or data.get("status") != "success":
            raise Refused(
                WHAT, self.url, error_text(resp) if resp.status_code != 200 else "not a Loki API answer"
            )
        body = data.get("data") or {}
        if body.get("resultType") != "streams":
            raise Refused(
                WHAT,
                self.url,
                f"a {body.get('resultType')} answer: the query is a metric query, not a log search",
            )
        try:
            lines = [
                LogLine(int(ns), str(text), dict(stream.get("stream") or {}))
                for stream in body.get("result") or []
                for ns, text, *_ in stream.get("values") or []
            ]
        except (ValueError, TypeError, AttributeError):
            raise Refused(WHAT, self.url, "not a Loki API answer") from None
        lines.sort(key=lambda ln: ln.ns, reverse=True)  # streams come one after another: merge them
        return lines[:limit]

    def close(self) -> None:
        self.client.close()
