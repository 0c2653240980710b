"""A real Prometheus (Debian's `prometheus` server) with 30 days of history, scraping an exporter the
tests control, so the bot's metrics, SLO windows and burn rates are computed by real PromQL.

The history is one model of three environments (`env` label), written as OpenMetrics and turned into
TSDB blocks by `promtool tsdb create-blocks-from openmetrics`; the blocks are copied into a fresh
`--storage.tsdb.path` before Prometheus starts. The exporter serves the same model from then on, so
each series goes on where its history ends (the same labels: the scrape honours them), and a test
may change a gauge (disk, memory, pg_up) and see it in the next scrape.

The history ends a few seconds after its server starts (LEAD_SECONDS): Prometheus refuses scraped
samples older than its newest block, so the first sample it keeps is the one right after the history,
and no window ever spans a gap. A gap of G seconds — a history built once and shared by test processes
that start their servers minutes apart — made every 5-minute rate read low while the window's start
was in it: 3/min instead of 600 for a server started 310 s after the history ended.

    production   healthy: 600 requests/min, 0.02 % errors, p99 ≈ 250 ms, one 1-hour outage of the
                 API (10 % errors) 10 days ago and a 10-minute database outage 12 days ago
    staging      burning: 120 requests/min; for the last 90 minutes 6 % errors and p99 ≈ 940 ms;
                 CPU 75 %, memory 96 %, disk 85 %
    development  quiet: 6 requests/min, no node_exporter, no postgres_exporter

`expected_*` give the numbers the model implies, so the tests assert values, not just icons.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.loopback import LoopbackServer, respond

PROMETHEUS = shutil.which("prometheus") or ""
PROMTOOL = shutil.which("promtool") or ""
DAY = 86400
HISTORY_DAYS = 30
SCRAPE_SECONDS = 1
PG_SCRAPE_SECONDS = 60
BOUNDS = ("0.1", "0.25", "0.5", "1", "2.5", "+Inf")
# Cumulative share of requests within each bound.
FAST = (0.80, 0.992, 0.997, 0.9995, 1.0, 1.0)
SLOW = (0.30, 0.60, 0.95, 0.995, 1.0, 1.0)
ENVS = ("production", "staging", "development")
# How far past its build a history ends: longer than building it (2–3 s), starting Prometheus and its
# first scrape take (its scrape manager applies targets on a 5-second tick: 5–6 s after the start).
LEAD_SECONDS = 12.0


@dataclass(frozen=True)
class Segment:
    """From `start` (seconds before the model's now; +inf: the beginning) on: these rates and levels."""

    start: float
    rps: float
    errors: float  # share of requests answered 5xx
    latency: tuple[float, ...] = FAST
    cpu: float = 0.35  # share of CPU time busy
    memory: float = 0.50  # share of memory used
    disk: float = 0.40  # share of the filesystem used
    pg_up: float = 1.0


@dataclass
class EnvModel:
    name: str
    segments: list[Segment]  # newest last; each lasts until the next one starts
    node: bool = True  # node_exporter series
    postgres: bool = True  # postgres_exporter's pg_up

    def at(self, ago: float) -> Segment:
        current = self.segments[0]
        for seg in self.segments:
            if ago <= seg.start:
                current = seg
        return current

    def spans(self, ago: float) -> list[tuple[float, Segment]]:
        """How long each segment had lasted from the beginning of history until `ago` seconds before now."""
        begin = HISTORY_DAYS * DAY + 3600
        bounds = [min(s.start, begin) for s in self.segments] + [-math.inf]
        return [
            (hi - max(lo, ago), seg)
            for seg, hi, lo in zip(self.segments, bounds, bounds[1:], strict=False)
            if hi > max(lo, ago)
        ]

    def integral(self, ago: float, value: Any) -> float:
        """∫ value(segment) dt from the beginning of history until `ago` seconds before now."""
        return sum(length * value(seg) for length, seg in self.spans(ago))


def models() -> dict[str, EnvModel]:
    inf = math.inf
    return {
        "production": EnvModel("production", [
            Segment(inf, 10, 0.0002, cpu=0.35, memory=0.50, disk=0.40),
            Segment(12 * DAY, 10, 0.0002, pg_up=0.0),  # the database down for 10 minutes
            Segment(12 * DAY - 600, 10, 0.0002),
            Segment(10 * DAY, 10, 0.10),  # the API failing 10 % for an hour
            Segment(10 * DAY - 3600, 10, 0.0002),
        ]),
        "staging": EnvModel("staging", [
            Segment(inf, 2, 0.0003, cpu=0.30, memory=0.60, disk=0.70),
            Segment(5400, 2, 0.06, SLOW, cpu=0.75, memory=0.96, disk=0.85),  # the last 90 minutes
        ]),
        "development": EnvModel("development", [Segment(inf, 0.1, 0.0)], node=False, postgres=False),
    }  # fmt: skip


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def series(
    model: EnvModel, ago: float, overrides: dict[str, float] | None = None, part: str = "main"
) -> list[tuple[str, float]]:
    """The series of one environment `ago` seconds before the model's now: (name{labels}, value).

    part "main": the service's histogram and node_exporter (scraped every second); "pg":
    postgres_exporter's pg_up, scraped every minute like its history, because avg_over_time
    counts samples, not time: an uneven sample rate would weigh some minutes more than others.
    """
    env, out = model.name, []
    overrides = overrides or {}
    seg = model.at(ago)
    if part == "pg":
        if model.postgres:
            pg = {"env": env, "job": "postgres", "instance": "db-1"}
            out.append((f"pg_up{_labels(**pg)}", overrides.get("pg_up", seg.pg_up)))
        return out
    app = {"env": env, "job": "taisun", "instance": "app-1"}
    spans = model.spans(ago)  # the counters are sums over these: one pass, not one per series
    for code in ("200", "500"):
        requests = [
            (length * s.rps * (s.errors if code == "500" else 1 - s.errors), s) for length, s in spans
        ]
        count = sum(n for n, _ in requests)
        out.append((f"http_request_duration_seconds_count{_labels(**app, status_code=code)}", count))
        for i, le in enumerate(BOUNDS):
            within = sum(n * s.latency[i] for n, s in requests)
            out.append(
                (f"http_request_duration_seconds_bucket{_labels(**app, status_code=code, le=le)}", within)
            )
    if model.node:
        node = {"env": env, "job": "node", "instance": "host-1"}
        idle = sum(length * (1 - s.cpu) for length, s in spans)
        out.append((f"node_cpu_seconds_total{_labels(**node, cpu='0', mode='idle')}", idle))
        total = 16 * 2**30
        memory = overrides.get("memory", seg.memory)
        out.append((f"node_memory_MemTotal_bytes{_labels(**node)}", float(total)))
        out.append((f"node_memory_MemAvailable_bytes{_labels(**node)}", total * (1 - memory)))
        fs = {**node, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
        size, disk = 100 * 2**30, overrides.get("disk", seg.disk)
        out.append((f"node_filesystem_size_bytes{_labels(**fs)}", float(size)))
        out.append((f"node_filesystem_avail_bytes{_labels(**fs)}", size * (1 - disk)))
    return out


def _history_offsets() -> list[int]:
    """Sample times (seconds before now): every 10 min for 30 days, every minute for the last day,
    every 15 s for the last two hours, every second for the last ten (rates over 5 minutes work at once)."""
    far = range(HISTORY_DAYS * DAY, DAY, -600)
    day = range(DAY, 7200, -60)
    near = range(7200, 600, -15)
    # The last 10 minutes as often as the live scrape: rate() extrapolates by the average interval,
    # and a 5-minute window of mixed 15 s and 1 s samples would come out a few per cent low.
    last = range(600, 0, -SCRAPE_SECONDS)
    return [*far, *day, *near, *last, 0]


def write_openmetrics(path: Path, now: float, envs: dict[str, EnvModel]) -> None:
    """The history as OpenMetrics: each series' samples together, oldest first, then # EOF."""
    per_name: dict[str, list[tuple[str, list[str]]]] = {}
    rows: dict[str, list[str]] = {}
    for part, offsets in (
        ("main", _history_offsets()),
        ("pg", range(HISTORY_DAYS * DAY, -1, -PG_SCRAPE_SECONDS)),
    ):
        for model in envs.values():
            for ago in offsets:
                ts = now - ago
                for key, value in series(model, ago, part=part):
                    rows.setdefault(key, []).append(f"{key} {value:.6f} {ts:.3f}")
    for key, lines in rows.items():
        per_name.setdefault(key.split("{", 1)[0], []).append((key, lines))
    with path.open("w", encoding="utf-8") as f:
        for name, items in per_name.items():
            f.write(f"# TYPE {name} unknown\n")
            for _, lines in items:
                f.write("\n".join(lines) + "\n")
        f.write("# EOF\n")


class Exporter(LoopbackServer):
    """The environments' /metrics now: the same model as the history, with gauges tests may set."""

    def __init__(self, now: float, envs: dict[str, EnvModel]):
        self.now0 = now  # the model's now at the history's end (wall clock)
        self.envs = envs
        self.overrides: dict[str, dict[str, float]] = {}
        self.scrapes = 0
        self.first_scrape = 0.0  # when (wall clock) Prometheus first scraped /metrics
        self._lock = threading.Lock()

    def set(self, env: str, **gauges: float) -> None:
        """Change a gauge (disk, memory, pg_up) from the next scrape on."""
        with self._lock:
            self.overrides.setdefault(env, {}).update(gauges)

    def reset(self, env: str) -> None:
        with self._lock:
            self.overrides.pop(env, None)

    def text(self, part: str = "main") -> str:
        ago = self.now0 - time.time()  # negative: after the history's end
        with self._lock:
            overrides = {k: dict(v) for k, v in self.overrides.items()}
        lines = []
        for model in self.envs.values():
            lines += [f"{k} {v:.6f}" for k, v in series(model, ago, overrides.get(model.name), part)]
        return "\n".join(lines) + "\n"

    def start(self) -> Exporter:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                text = owner.text("pg" if self.path.startswith("/pg") else "main")
                owner.scrapes += 1
                owner.first_scrape = owner.first_scrape or time.time()
                respond(self, 200, text, "text/plain; version=0.0.4")

        self.serve(Handler)
        return self


@dataclass
class PromServer:
    url: str
    exporter: Exporter
    proc: subprocess.Popen[bytes]
    workdir: Path
    envs: dict[str, EnvModel]
    timings: dict[str, float] = field(default_factory=dict)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["result"])

    def wait_for(self, expr: str, predicate: Any, timeout: float = 20.0) -> float:
        """Poll until the expression's first value satisfies predicate(value); returns it."""
        deadline = time.monotonic() + timeout
        value = math.nan
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                value = float(result[0]["value"][1])
                if predicate(value):
                    return value
            time.sleep(0.2)
        raise TimeoutError(f"{expr} stayed at {value}")

    def expected_share(self, env: str, window: float, part: Any) -> float:
        """The model's ∫ part ÷ ∫ requests over the last `window` seconds until now. After the history's
        end the exporter goes on with the last segment, so a test run minutes later still expects what
        Prometheus has."""
        m = self.envs[env]
        t = time.time()
        ago, live = max(0.0, self.exporter.now0 - t), min(window, max(0.0, t - self.exporter.now0))
        last = m.segments[-1]

        def total(value: Any) -> float:
            return live * value(last) + m.integral(ago, value) - m.integral(ago + window - live, value)

        return total(part) / total(lambda s: s.rps)

    def expected_error_ratio(self, env: str, window: float) -> float:
        """The model's share of 5xx answers over the last `window` seconds."""
        return self.expected_share(env, window, lambda s: s.rps * s.errors)

    def expected_slow_ratio(self, env: str, window: float, le: str = "0.5") -> float:
        """The model's share of answers slower than `le` seconds over the last `window` seconds."""
        i = BOUNDS.index(le)
        return self.expected_share(env, window, lambda s: s.rps * (1 - s.latency[i]))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.exporter.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_history(folder: Path, lead: float = 0.0) -> float:
    """The 30 days as TSDB blocks in folder/blocks, ending `lead` seconds from now; returns that end
    (the model's now)."""
    envs = models()
    now = time.time() + lead
    write_openmetrics(folder / "history.om", now, envs)
    out = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=720h", "--quiet",
         str(folder / "history.om"), str(folder / "blocks")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"promtool could not write the history: {out.stdout}{out.stderr}")
    (folder / "history.om").unlink()
    return now


def start_prometheus(lead: float = LEAD_SECONDS) -> PromServer:
    """A history ending `lead` seconds from now → blocks → a Prometheus on a free loopback port scraping
    the exporter every second. Ready once the history's end has passed and live samples follow it; when
    building, starting and the first scrape took longer than the lead (a loaded machine), it starts
    again with twice the lead rather than leave a gap."""
    timings: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="taisun-prom-"))
    envs = models()
    t0 = time.monotonic()
    now = build_history(work, lead)
    timings["history_s"] = time.monotonic() - t0
    data = work / "data"
    shutil.copytree(work / "blocks", data)  # backfilled blocks go in before the server starts
    exporter = Exporter(now, envs).start()
    target = f"127.0.0.1:{exporter.port}"
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [
            {"job_name": "exporter", "honor_labels": True, "static_configs": [{"targets": [target]}]},
            {"job_name": "exporter-pg", "honor_labels": True, "metrics_path": "/pg",
             "scrape_interval": f"{PG_SCRAPE_SECONDS}s", "scrape_timeout": "5s",
             "static_configs": [{"targets": [target]}]},
        ],
    }  # fmt: skip
    (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = _free_port()
    t0 = time.monotonic()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
         "--storage.tsdb.retention.time=60d", f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = PromServer(f"http://127.0.0.1:{port}", exporter, proc, work, envs, timings)
    try:
        _wait_ready(server, work / "prometheus.log")
        deadline = time.monotonic() + lead + 30
        while not exporter.first_scrape and time.monotonic() < deadline:
            time.sleep(0.1)
        # Scraped before the history's end (those samples are refused), so it keeps the first scrape after
        # it, one interval on; a first scrape after the end would leave a gap.
        if not exporter.first_scrape:
            raise TimeoutError(f"prometheus did not scrape the exporter: {server.url}/targets")
        late = exporter.first_scrape > now
        if not late:
            server.wait_for('count(up{job="exporter"} == 1)', lambda v: v >= 1, timeout=lead + 30)
    except BaseException:
        server.stop()
        raise
    if late:
        server.stop()
        return start_prometheus(lead * 2)
    timings["start_s"] = time.monotonic() - t0
    return server


def _wait_ready(server: PromServer, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError("prometheus did not become ready")


def unavailable_reason() -> str:
    """Why the real Prometheus cannot run here ("" when it can)."""
    if not PROMETHEUS or not PROMTOOL:
        return "prometheus/promtool not installed (the `prometheus` package; scripts/services installs it)"
    return ""


@contextlib.contextmanager
def running_prometheus() -> Iterator[PromServer]:
    server = start_prometheus()
    try:
        yield server
    finally:
        server.stop()
