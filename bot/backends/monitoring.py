"""What the monitoring stack's clients share (Prometheus, Loki, Jaeger): one pooled httpx client per
endpoint, and the two ways a request fails, each said in the reader's language, never guessed around.

`Unreachable`: the service did not answer at all (timed out, refused, DNS). `Refused`: it answered,
but with an error (an HTTP error status, or its own error for a query it could not run).
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.core.i18n import Msg, msg, render, t
from bot.core.logs import redact
from bot.core.mrkdwn import Mrkdwn


def shown_url(url: str) -> str:
    """The URL as people may see it: a password in it masked."""
    return redact(url)


class MonitoringError(Exception):
    """A monitoring request failed; `message(lang)` says which service, where and why."""

    key = ""

    def __init__(self, what: str, url: str, **fields: Any):
        self.what, self.url = what, shown_url(url)
        self.fields: dict[str, Any] = {"what": what, "url": self.url, **fields}
        super().__init__(self.message("en"))

    def message(self, lang: str) -> Mrkdwn:
        return t(self.key, lang, **{k: render(v, lang) for k, v in self.fields.items()})

    def stored(self) -> Msg:
        return msg(self.key, **self.fields)


class Unreachable(MonitoringError):
    """The service did not answer: "Prometheus at <url> did not answer (<why>)"."""

    key = "obs.unreachable"

    def __init__(self, what: str, url: str, why: Msg | str):
        super().__init__(what, url, why=why)


class Refused(MonitoringError):
    """The service answered with an error: an HTTP status, or its own words about the query."""

    key = "obs.refused"

    def __init__(self, what: str, url: str, error: str):
        super().__init__(what, url, error=redact(error.strip())[:500])


def why(e: httpx.HTTPError) -> Msg | str:
    """Why a request got no answer: our words for the usual two, else httpx's error name."""
    if isinstance(e, httpx.TimeoutException):
        return msg("health.timed_out")
    if isinstance(e, httpx.ConnectError):
        return msg("health.refused")
    return redact(type(e).__name__)


def make_client(headers: dict[str, str] | None, timeout: float) -> httpx.Client:
    """A pooled client for one endpoint (its auth header, its timeout, no redirects followed)."""
    return httpx.Client(
        headers=headers or {}, timeout=timeout, follow_redirects=False,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
    )  # fmt: skip


def get(
    client: httpx.Client,
    what: str,
    base: str,
    path: str,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """GET base+path; Unreachable when nothing answered (the caller reads the status and body)."""
    try:
        return client.get(base + path, params=params, headers=headers)
    except httpx.HTTPError as e:
        raise Unreachable(what, base, why(e)) from None


def error_text(resp: httpx.Response) -> str:
    """An error answer in a few words: the API's own error field, else its status and reason."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return f"{resp.status_code}: {data['error']}"
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        first = data["errors"][0]
        return f"{resp.status_code}: {first.get('msg', first) if isinstance(first, dict) else first}"
    body = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
    head = f"{resp.status_code} {resp.reason_phrase}".strip()
    return f"{head}: {body}" if body and resp.status_code < 500 else head
