"""HTTP checks of an environment's /health and /version (httpx, short timeouts, never raises)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bot.core.i18n import Msg, msg, render, render_plain
from bot.core.logs import redact
from bot.core.mrkdwn import Mrkdwn


@dataclass(frozen=True)
class HealthReport:
    url: str
    healthy: bool | None  # None: could not reach it
    health: str  # the record (audit, logs), in English: "ok (200)", "503 Service Unavailable", "unreachable: timed out"
    version: str  # "" when unknown
    latency_ms: int
    said: Msg = field(default_factory=dict)  # the same for people, in their language (`text`)

    def text(self, lang: str) -> Mrkdwn:
        """What /health answered, in `lang`; the service's own words (a reason phrase) stay as it wrote them."""
        return render(self.said or self.health, lang)


def _report(url: str, healthy: bool | None, said: Msg, version: str, latency_ms: int) -> HealthReport:
    return HealthReport(url, healthy, render_plain(said, "en"), version, latency_ms, said)


def _version_of(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip().splitlines()[0][:64] if resp.text.strip() else ""
    if isinstance(data, dict):
        for key in ("version", "tag", "release", "app_version"):
            if isinstance(data.get(key), str):
                return data[key]
    if isinstance(data, str):
        return data
    return ""


def check(url: str, *, timeout: float = 3.0, client: httpx.Client | None = None) -> HealthReport:
    """GET <url>/health and <url>/version; an unreachable service is reported, not raised."""
    if not url:
        return _report(url, None, msg("health.no_url"), "", 0)
    client = client or _shared_client()
    start = time.monotonic()
    try:
        h = client.get(f"{url}/health", timeout=timeout)
        healthy = h.status_code == 200
        health = (
            msg("health.ok", status=h.status_code)
            if healthy
            else msg("health.http", status=h.status_code, reason=h.reason_phrase)
        )
    except httpx.HTTPError as e:
        return _report(
            url, None, msg("health.unreachable", why=_reason(e)), "", int((time.monotonic() - start) * 1000)
        )
    version = ""
    try:
        v = client.get(f"{url}/version", timeout=timeout)
        if v.status_code == 200:
            version = _version_of(v)
    except httpx.HTTPError:
        pass
    return _report(url, healthy, health, version, int((time.monotonic() - start) * 1000))


@dataclass(frozen=True)
class Probe:
    """One smoke check: GET <url><path>, compared with the status and JSON it should answer."""

    url: str
    ok: bool
    status: int | None  # None: could not reach it
    said: Msg  # what was found, for people (in their language) and the audit log (English)

    def text(self, lang: str) -> Mrkdwn:
        return render(self.said, lang)

    @property
    def record(self) -> str:
        return render_plain(self.said, "en")


def _subset_mismatch(expected: object, actual: object, where: str = "") -> str | None:
    """The first key path where `actual` does not contain `expected`, or None when it does."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return where or "."
        for key, value in expected.items():
            path = f"{where}.{key}" if where else str(key)
            if key not in actual:
                return path
            found = _subset_mismatch(value, actual[key], path)
            if found is not None:
                return found
        return None
    return None if expected == actual else (where or ".")


def probe(
    base_url: str,
    path: str,
    *,
    status: int = 200,
    json_subset: dict[str, object] | None = None,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> Probe:
    """GET base_url + path; ok when the status is `status` and the JSON answer contains `json_subset`."""
    url = f"{base_url}{path}"
    if not base_url:
        return Probe(url, False, None, msg("health.no_url"))
    client = client or _shared_client()
    try:
        resp = client.get(url, timeout=timeout)
    except httpx.HTTPError as e:
        return Probe(url, False, None, msg("smoke.check.unreachable", path=path, why=_reason(e)))
    if resp.status_code != status:
        return Probe(
            url, False, resp.status_code,
            msg("smoke.check.status", path=path, status=resp.status_code, expected=status),
        )  # fmt: skip
    if json_subset:
        try:
            data = resp.json()
        except ValueError:
            return Probe(url, False, resp.status_code, msg("smoke.check.not_json", path=path))
        where = _subset_mismatch(json_subset, data)
        if where is not None:
            return Probe(url, False, resp.status_code, msg("smoke.check.json", path=path, field=where))
    return Probe(url, True, resp.status_code, msg("smoke.check.ok", path=path, status=resp.status_code))


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    """One pooled client per process: building one per check costs ~30 ms of CPU (the CA bundle)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(follow_redirects=False, limits=httpx.Limits(max_connections=32))
        return _client


def _reason(e: httpx.HTTPError) -> Msg | str:
    """Why the service could not be reached: our words for the usual two, else httpx's error name."""
    if isinstance(e, httpx.TimeoutException):
        return msg("health.timed_out")
    if isinstance(e, httpx.ConnectError):
        return msg("health.refused")
    return redact(type(e).__name__)


def check_many(
    urls: dict[str, str], *, timeout: float = 3.0, recent: RecentChecks | None = None
) -> dict[str, HealthReport]:
    """Check several environments in parallel: the slowest one sets the total time.

    With `recent` (what people look at: status, App Home), a result a couple of seconds old is
    shared by everyone who asks meanwhile; deploy verification and restarts always check afresh.
    """
    if not urls:
        return {}

    def one(url: str) -> HealthReport:
        return recent.check(url, timeout=timeout) if recent is not None else check(url, timeout=timeout)

    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        futures = {name: pool.submit(one, url) for name, url in urls.items()}
        return {name: f.result() for name, f in futures.items()}


class RecentChecks:
    """check(), unless one no older than max_age exists or is under way (then wait for that one).

    Ten people typing `/taisun status` in the same incident make one round of requests to the
    service, not ten.
    """

    def __init__(self, max_age: float = 2.0):
        self.max_age = max_age
        self._recent: dict[str, tuple[float, HealthReport]] = {}
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def check(self, url: str, *, timeout: float = 3.0) -> HealthReport:
        while True:
            with self._lock:
                hit = self._recent.get(url)
                if hit and time.monotonic() - hit[0] <= self.max_age:
                    return hit[1]
                done = self._inflight.get(url)
                leader = done is None
                if leader:
                    done = self._inflight[url] = threading.Event()
            assert done is not None
            if not leader:
                done.wait(2 * timeout + 1)
                continue  # the leader's result, or (if it failed) become the leader
            try:
                report = check(url, timeout=timeout)
                with self._lock:
                    self._recent[url] = (time.monotonic(), report)
                return report
            finally:
                with self._lock:
                    self._inflight.pop(url, None)
                done.set()
