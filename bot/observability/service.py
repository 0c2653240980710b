"""Observability from chat: the guide's metrics, SLOs, logs and traces, read from each environment's
monitoring stack (Prometheus, Loki, Jaeger), read-only.

Numbers come from the services or not at all: a Prometheus or Loki that did not answer is said so
("Prometheus at <url> did not answer (timed out)"), a query that returned nothing is "no data", and a
query the service refused shows the service's own error. Nothing is guessed or carried over from an
earlier answer, except the SLO states on status and the Home tab, which are reused for
`observability.cache_seconds` so that opening Home never waits on Prometheus.

`evaluate()` is the entry point for code that watches a change (a deploy): error rate and p99 of an
environment at a time, over a window, as numbers with the guide's ok / warning / critical.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from bot.backends.jaeger import TRACE_ID, Jaeger, TraceSummary
from bot.backends.loki import LogLine, Loki
from bot.backends.monitoring import MonitoringError
from bot.backends.prometheus import Prometheus, Sample
from bot.core.config import (
    Config,
    Endpoint,
    Environment,
    MetricQuery,
    PrometheusEndpoint,
    SloSpec,
    duration_seconds,
)
from bot.core.logs import redact
from bot.core.ops import OpError

Status = Literal["ok", "warning", "critical", "no_data", "failed"]
ORDER: dict[str, int] = {"ok": 0, "no_data": 1, "failed": 2, "warning": 3, "critical": 4}
# The SRE workbook's page-level burn rates: 2 % of a 30-day budget in an hour, 5 % in six hours.
FAST_BURN_1H, FAST_BURN_6H = 14.4, 6.0
BURN_WINDOWS = ("1h", "6h")
T = TypeVar("T")


def promql(template: str, selector: str = "", window: str = "5m") -> str:
    """A configured query with its placeholders filled: $selector (label matchers) and $window."""
    expr = template.replace("$selector", selector.strip().strip(",")).replace("$window", window)
    return re.sub(r"\{\s*,", "{", expr)  # `{$selector,le="0.5"}` with no selector


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: ORDER.get(s, 0), default="no_data")


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Reading:
    """One metric now: its number (None: the query returned nothing) judged by its thresholds."""

    name: str
    value: float | None
    status: Status
    spec: MetricQuery
    query: str  # the PromQL as sent
    error: str = ""  # the query's own error, when Prometheus refused it


@dataclass(frozen=True)
class MetricsReport:
    env: str
    at: datetime
    window: str
    readings: list[Reading]
    grafana_url: str = ""

    def __getitem__(self, name: str) -> Reading:
        return next(r for r in self.readings if r.name == name)

    @property
    def status(self) -> str:
        return worst(r.status for r in self.readings)


def judge(value: float | None, spec: MetricQuery) -> Status:
    """The guide's reading of a value: beyond critical → critical, beyond warning → warning."""
    if value is None:
        return "no_data"
    if spec.below:
        if spec.critical is not None and value < spec.critical:
            return "critical"
        if spec.warning is not None and value < spec.warning:
            return "warning"
        return "ok"
    if spec.critical is not None and value > spec.critical:
        return "critical"
    if spec.warning is not None and value > spec.warning:
        return "warning"
    return "ok"


def _one_number(samples: list[Sample], below: bool = False) -> float | None:
    """The answer as one number: the worst series when there are several; None when there is none."""
    values = [s.value for s in samples if not math.isnan(s.value)]
    if not values:
        return None
    return min(values) if below else max(values)


# --------------------------------------------------------------------------- SLOs


@dataclass(frozen=True)
class SloReading:
    """One SLO over the rolling window: its SLI, error budget left and burn rates."""

    name: str
    spec: SloSpec
    status: Status
    sli: float | None = None  # percent of good events over the window
    budget_left: float | None = None  # percent of the error budget left (negative: overspent)
    budget_minutes: float = 0.0  # the whole budget as minutes of the window
    burn: dict[str, float | None] = field(default_factory=dict)  # window → burn rate (1 = on budget)
    error: str = ""

    @property
    def budget_left_minutes(self) -> float | None:
        return None if self.budget_left is None else self.budget_minutes * self.budget_left / 100


@dataclass(frozen=True)
class SloReport:
    env: str
    at: datetime
    window_days: int
    slos: list[SloReading]
    grafana_url: str = ""

    @property
    def status(self) -> str:
        return worst(s.status for s in self.slos)


def slo_reading(
    name: str, spec: SloSpec, ratios: dict[str, float | None], window_days: int, warning_percent: float
) -> SloReading:
    """The SLO from its error ratios (window → share of bad events, None when no events)."""
    allowed = 1 - spec.objective / 100
    minutes = window_days * 24 * 60 * allowed
    burn = {w: (None if ratios.get(w) is None else ratios[w] / allowed) for w in BURN_WINDOWS}  # type: ignore[operator]
    whole = ratios.get(f"{window_days}d")
    if whole is None:
        return SloReading(name, spec, "no_data", budget_minutes=minutes, burn=burn)
    left = 100 * (1 - whole / allowed)
    fast = (burn["1h"] or 0) >= FAST_BURN_1H or (burn["6h"] or 0) >= FAST_BURN_6H
    status: Status = "ok"
    if left <= 0 or fast:
        status = "critical"
    elif left < warning_percent or (burn["6h"] or 0) > 1:
        status = "warning"
    return SloReading(name, spec, status, 100 * (1 - whole), left, minutes, burn)


# --------------------------------------------------------------------------- logs


LEVEL = re.compile(r"[A-Za-z]{1,16}")


@dataclass(frozen=True)
class LogSearch:
    """A log search as it was asked and as it goes to Loki."""

    env: str
    logql: str
    since_seconds: int
    level: str
    typed: str  # the words or LogQL as typed


@dataclass(frozen=True)
class LogResult:
    search: LogSearch
    start: datetime
    end: datetime
    lines: list[LogLine]  # newest first, secrets redacted
    limit: int

    @property
    def capped(self) -> bool:
        """True when Loki had more lines than the limit (older ones were left out)."""
        return len(self.lines) >= self.limit

    def as_text(self) -> str:
        """The lines as a file: a header saying what was searched, then one line each, newest first."""
        head = [
            f"# {self.search.env}: {self.search.logql}",
            f"# {self.start:%Y-%m-%d %H:%M:%S} – {self.end:%Y-%m-%d %H:%M:%S} UTC, {len(self.lines)} lines, newest first",
            "",
        ]
        return "\n".join(head + [f"{stamp(ln.ns)}  {ln.line}" for ln in self.lines]) + "\n"


def stamp(ns: int) -> str:
    """A log line's time in UTC to the millisecond."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _logql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_logql(selector: str, typed: Sequence[str], level: str = "") -> str:
    """The LogQL for what was typed: a query of its own (`{…} …`), a pipeline for this environment's
    stream (`|= "x" | json`), or words, each of which a line must contain (any case, as grep -i).
    `level` adds the guide's JSON filter: `| json | level="error"` (any case)."""
    text = " ".join(typed).strip()
    if text.startswith("{"):
        query = text
    elif text.startswith("|"):
        query = f"{selector} {text}"
    else:
        words = [w[1:-1] if len(w) >= 2 and w[0] == w[-1] and w[0] in "\"'" else w for w in typed]
        query = selector + "".join(f" |~ {_logql_string('(?i)' + re.escape(w))}" for w in words if w)
    if level:
        query += f' | json | level=~"(?i){level}"'
    return query


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class TraceAnswer:
    """What one environment's Jaeger said about a trace id."""

    env: str
    link: str  # where to open it (the Jaeger UI)
    trace: TraceSummary | None = None  # None: not found there (or Jaeger did not answer)
    error: MonitoringError | None = None


# --------------------------------------------------------------------------- the service


class Observability:
    """Reads the monitoring stack of each environment; built once per process (bot.wiring)."""

    def __init__(self, config: Config, *, threads: int = 8):
        self.config = config
        self.obs = config.observability
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="taisun-obs")
        # Runs slo_states beside other work (status's health checks); its queries go to _pool.
        self._side = ThreadPoolExecutor(2, thread_name_prefix="taisun-obs-side")
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._slo_cache: dict[str, tuple[float, SloReport | MonitoringError]] = {}
        self._slo_inflight: dict[str, threading.Event] = {}

    # -- configuration ---------------------------------------------------------------------
    def prometheus_of(self, env: Environment) -> PrometheusEndpoint | None:
        o = env.observability
        return o.prometheus if o and o.prometheus and o.prometheus.resolved_url() else None

    def configured(self, env: Environment) -> bool:
        """Whether the environment names a Prometheus (metrics, SLOs, the SLO line)."""
        return self.prometheus_of(env) is not None

    def require(self, env: Environment, what: str) -> Endpoint:
        """The environment's endpoint of `what` (prometheus, loki, jaeger); OpError naming the config
        key when it has none."""
        return self._need(env, what)

    def _need(self, env: Environment, what: str) -> Endpoint:
        o = env.observability
        ep = getattr(o, what, None) if o else None
        if ep is None or not ep.resolved_url():
            raise OpError(
                key="obs.not_configured", what=what.capitalize(), env=env.name,
                path=f"environments.{env.name}.observability.{what}",
            )  # fmt: skip
        return ep  # type: ignore[no-any-return]

    def _client(self, kind: str, ep: Endpoint) -> Any:
        url = ep.resolved_url()
        key = (kind, url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                make: Callable[..., Any] = {"prometheus": Prometheus, "loki": Loki, "jaeger": Jaeger}[kind]
                extra = {"tenant": ep.tenant} if kind == "loki" else {}  # type: ignore[attr-defined]
                client = make(url, headers=ep.headers(), timeout=ep.timeout_seconds, **extra)
                self._clients[key] = client
            return client

    def grafana_url(self, env: Environment) -> str:
        return env.observability.grafana_url if env.observability else ""

    # -- running queries -------------------------------------------------------------------
    def _all(self, calls: list[Callable[[], T]]) -> list[T | MonitoringError]:
        """Run the calls in parallel; each one's answer, or the MonitoringError it raised."""

        def guarded(fn: Callable[[], T]) -> T | MonitoringError:
            try:
                return fn()
            except MonitoringError as e:
                return e

        if len(calls) == 1:
            return [guarded(calls[0])]
        futures: list[Future[T | MonitoringError]] = [self._pool.submit(guarded, fn) for fn in calls]
        return [f.result() for f in futures]

    # -- metrics ---------------------------------------------------------------------------
    def metrics(self, env: Environment, at: datetime | None = None) -> MetricsReport:
        """Each configured metric of the environment now (or at `at`). Raises Unreachable when
        Prometheus did not answer; a query it refused is that reading's `failed` with its words."""
        return self.evaluate(env, list(self.obs.metrics), at=at)

    def evaluate(
        self, env: Environment, names: Sequence[str] = ("error_rate", "p99_latency"), *,
        at: datetime | None = None, window: str | None = None,
    ) -> MetricsReport:  # fmt: skip
        """The named metrics of `env` at `at` (default now) over `window` (default metrics_window,
        e.g. "10m" for the ten minutes after a deploy), as numbers judged by the guide's thresholds.

        Raises OpError when the environment has no Prometheus, Unreachable when it did not answer.
        """
        ep = self._need(env, "prometheus")
        assert isinstance(ep, PrometheusEndpoint)
        window = window or self.obs.metrics_window
        duration_seconds(window)  # a typo must not become a PromQL parse error
        client: Prometheus = self._client("prometheus", ep)
        specs = [(n, self.obs.metrics[n]) for n in names if n in self.obs.metrics]
        queries = [promql(spec.query, ep.selector, window) for _, spec in specs]
        answers = self._all([lambda q=q: client.query(q, at) for q in queries])  # type: ignore[misc]
        _raise_if_unreachable(answers)
        readings = []
        for (name, spec), query, answer in zip(specs, queries, answers, strict=True):
            if isinstance(answer, MonitoringError):
                readings.append(
                    Reading(name, None, "failed", spec, query, error=str(answer.fields.get("error", "")))
                )
                continue
            value = _one_number(answer, spec.below)
            readings.append(Reading(name, value, judge(value, spec), spec, query))
        return MetricsReport(env.name, at or datetime.now(UTC), window, readings, self.grafana_url(env))

    # -- SLOs ------------------------------------------------------------------------------
    def slo(self, env: Environment, at: datetime | None = None) -> SloReport:
        """Every SLO of the environment over the rolling window: SLI, budget left, 1 h and 6 h burn."""
        return self._slo_reports([env], at)[env.name]  # type: ignore[return-value]

    def _slo_reports(
        self, envs: list[Environment], at: datetime | None = None, *, raise_unreachable: bool = True
    ) -> dict[str, SloReport | MonitoringError]:
        days = self.obs.slo_window_days
        windows = (f"{days}d", *BURN_WINDOWS)
        plan: list[tuple[str, str, str, Prometheus, str]] = []  # env, slo, window, client, query
        for env in envs:
            ep = self._need(env, "prometheus")
            assert isinstance(ep, PrometheusEndpoint)
            client = self._client("prometheus", ep)
            for name, spec in self.obs.slos.items():
                plan += [
                    (env.name, name, w, client, promql(spec.error_ratio, ep.selector, w)) for w in windows
                ]
        answers = self._all([lambda p=p: p[3].query(p[4], at) for p in plan])  # type: ignore[misc]
        out: dict[str, SloReport | MonitoringError] = {}
        for env in envs:
            mine = [(p, a) for p, a in zip(plan, answers, strict=True) if p[0] == env.name]
            try:
                _raise_if_unreachable([a for _, a in mine])
            except MonitoringError as lost:
                if raise_unreachable:
                    raise
                out[env.name] = lost
                continue
            slos = []
            for name, spec in self.obs.slos.items():
                ratios: dict[str, float | None] = {}
                refused = ""
                for p, a in mine:
                    if p[1] != name:
                        continue
                    if isinstance(a, MonitoringError):
                        refused = str(a.fields.get("error", ""))
                    else:
                        ratios[p[2]] = _one_number(a)
                if refused:
                    slos.append(SloReading(name, spec, "failed", error=refused))
                else:
                    slos.append(slo_reading(name, spec, ratios, days, self.obs.budget_warning_percent))
            out[env.name] = SloReport(env.name, at or datetime.now(UTC), days, slos, self.grafana_url(env))
        return out

    def slo_reports(
        self, envs: list[Environment], at: datetime | None = None
    ) -> dict[str, SloReport | MonitoringError]:
        """The SLOs of several environments at once; one whose Prometheus did not answer is that error."""
        return self._slo_reports(envs, at, raise_unreachable=False)

    def slo_states(
        self, envs: Iterable[Environment], max_age: float | None = None
    ) -> dict[str, SloReport | MonitoringError]:
        """The SLO report of each environment with a Prometheus, for status and Home: one no older than
        `max_age` (default cache_seconds) is reused, and people asking at once share one round of queries.
        A Prometheus that did not answer is the MonitoringError, never an old report."""
        max_age = self.obs.cache_seconds if max_age is None else max_age
        wanted = [e for e in envs if self.configured(e)]
        out: dict[str, SloReport | MonitoringError] = {}
        lead: list[Environment] = []
        wait: list[tuple[Environment, threading.Event]] = []
        now = time.monotonic()
        with self._lock:
            for env in wanted:
                hit = self._slo_cache.get(env.name)
                if hit and now - hit[0] <= max_age:
                    out[env.name] = hit[1]
                elif env.name in self._slo_inflight:
                    wait.append((env, self._slo_inflight[env.name]))
                else:
                    self._slo_inflight[env.name] = threading.Event()
                    lead.append(env)
        if lead:
            try:
                fresh = self._slo_reports(lead, raise_unreachable=False)
                with self._lock:
                    for name, report in fresh.items():
                        self._slo_cache[name] = (time.monotonic(), report)
                out.update(fresh)
            finally:
                with self._lock:
                    for env in lead:
                        self._slo_inflight.pop(env.name).set()
        for env, done in wait:
            p = self.prometheus_of(env)
            done.wait(3 * (p.timeout_seconds if p else 5.0) + 1)
            with self._lock:
                hit = self._slo_cache.get(env.name)
            if hit:
                out[env.name] = hit[1]
        return out

    def slo_states_soon(self, envs: Iterable[Environment]) -> Future[dict[str, SloReport | MonitoringError]]:
        """slo_states in the background, for callers that check health meanwhile (status, Home)."""
        envs = list(envs)
        return self._side.submit(self.slo_states, envs)

    def cached_slo_states(self) -> dict[str, SloReport | MonitoringError]:
        """What slo_states last found, however old (no network): the Home tab draws from it."""
        with self._lock:
            return {name: hit[1] for name, hit in self._slo_cache.items()}

    # -- logs ------------------------------------------------------------------------------
    def log_search(
        self, env: Environment, typed: Sequence[str], since: str = "", level: str = ""
    ) -> LogSearch:
        """The search as it will go to Loki; OpError for a --since beyond logs_max_since or a bad --level."""
        ep = self._need(env, "loki")
        since = since or self.obs.logs_since
        try:
            seconds = duration_seconds(since)
        except ValueError:
            raise OpError(key="logs.bad_since", since=since) from None
        longest = duration_seconds(self.obs.logs_max_since)
        if seconds > longest:
            raise OpError(key="logs.since_too_long", since=since, longest=self.obs.logs_max_since)
        if level and not LEVEL.fullmatch(level):
            raise OpError(key="logs.bad_level", level=level)
        selector = ep.selector  # type: ignore[attr-defined]
        return LogSearch(
            env.name, build_logql(selector, typed, level.lower()), seconds, level.lower(), " ".join(typed)
        )

    def logs(self, env: Environment, search: LogSearch, end: datetime | None = None) -> LogResult:
        """The newest lines of the search, newest first, every secret the bot knows redacted."""
        ep = self._need(env, "loki")
        client: Loki = self._client("loki", ep)
        end = end or datetime.now(UTC)
        start = end - timedelta(seconds=search.since_seconds)
        lines = client.query_range(search.logql, start, end, self.obs.logs_limit)
        clean = [LogLine(ln.ns, redact(ln.line), ln.labels) for ln in lines]
        return LogResult(search, start, end, clean, self.obs.logs_limit)

    # -- traces ----------------------------------------------------------------------------
    def trace_envs(self, env: Environment | None) -> list[Environment]:
        """Where to look for a trace: the environment named, else every one with a Jaeger."""
        if env is not None:
            self._need(env, "jaeger")
            return [env]
        found = [e for e in self.config.environments.values() if e.observability and e.observability.jaeger]
        if not found:
            raise OpError(key="trace.no_jaeger")
        return found

    @staticmethod
    def check_trace_id(trace_id: str) -> None:
        if not TRACE_ID.fullmatch(trace_id):
            raise OpError(key="trace.bad_id", id=trace_id[:40])

    def trace(self, trace_id: str, envs: list[Environment]) -> list[TraceAnswer]:
        """What each environment's Jaeger knows of the trace: its root span and duration, with its link."""
        self.check_trace_id(trace_id)
        trace_id = trace_id.lower()
        eps = [self._need(e, "jaeger") for e in envs]
        clients: list[Jaeger] = [self._client("jaeger", ep) for ep in eps]
        answers = self._all([lambda c=c: c.trace(trace_id) for c in clients])  # type: ignore[misc]
        out = []
        for env, ep, answer in zip(envs, eps, answers, strict=True):
            ui = (getattr(ep, "ui_url", "") or ep.resolved_url()).rstrip("/")
            link = f"{ui}/trace/{trace_id}"
            if isinstance(answer, MonitoringError):
                out.append(TraceAnswer(env.name, link, error=answer))
            else:
                out.append(TraceAnswer(env.name, link, trace=answer))
        return out

    # -- taisun check ----------------------------------------------------------------------
    def ping(self, env: Environment, what: str) -> None:
        """One small request to the environment's `what` (prometheus, loki, jaeger); MonitoringError
        when it did not answer or refused (a wrong token, a wrong tenant)."""
        ep = self._need(env, what)
        client = self._client(what, ep)
        if what == "prometheus":
            client.query("vector(1)")
        elif what == "loki":
            now = datetime.now(UTC)
            client.query_range(ep.selector, now - timedelta(minutes=1), now, 1)  # type: ignore[attr-defined]
        else:
            client.trace("0")  # a 404 is an answer

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._side.shutdown(wait=False)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()


def _raise_if_unreachable(answers: list[Any]) -> None:
    """One query that got no answer means Prometheus did not answer; every query refused (a 401, a 503)
    means it refused them all: say so once, show no half report."""
    errors = [a for a in answers if isinstance(a, MonitoringError)]
    lost = next((e for e in errors if e.key == "obs.unreachable"), None)
    if lost is not None:
        raise lost
    if errors and len(errors) == len(answers):
        raise errors[0]
