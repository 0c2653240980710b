"""The Prometheus HTTP API's instant query (`/api/v1/query`): a PromQL expression in, numbers out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from bot.backends.monitoring import Refused, error_text, get, make_client

WHAT = "Prometheus"


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer (a scalar answer has no labels)."""

    value: float  # may be NaN (0/0: no requests) or ±Inf
    labels: dict[str, str] = field(default_factory=dict)


class Prometheus:
    """One Prometheus server: `query(expr, at)` at a time (now by default)."""

    def __init__(
        self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0,
        client: httpx.Client | None = None,
    ):  # fmt: skip
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client = client or make_client(headers, timeout)

    def query(self, expr: str, at: datetime | None = None) -> list[Sample]:
        """The expression's value at `at`: Unreachable when Prometheus did not answer, Refused when it
        answered with an error (the query's own, e.g. a parse error)."""
        params: dict[str, str] = {"query": expr, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        resp = get(self.client, WHAT, self.url, "/api/v1/query", params)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code != 200 or not isinstance(data, dict) or data.get("status") != "success":
            raise Refused(
                WHAT, self.url, error_text(resp) if resp.status_code != 200 else "not a Prometheus API answer"
            )
        try:
            return _samples(data.get("data") or {})
        except (KeyError, IndexError, TypeError, AttributeError):
            raise Refused(WHAT, self.url, "not a Prometheus API answer") from None

    def close(self) -> None:
        self.client.close()


def _number(text: object) -> float:
    try:
        return float(str(text))  # Prometheus writes "NaN", "+Inf", "-Inf" as Python reads them
    except ValueError:
        return math.nan


def _samples(data: dict) -> list[Sample]:  # type: ignore[type-arg]
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return [Sample(_number(result[1]))]
    if kind == "vector" and isinstance(result, list):
        return [Sample(_number(r["value"][1]), dict(r.get("metric") or {})) for r in result if "value" in r]
    if kind == "matrix" and isinstance(result, list):  # a range selector: its newest value
        return [
            Sample(_number(r["values"][-1][1]), dict(r.get("metric") or {}))
            for r in result
            if r.get("values")
        ]
    return []
