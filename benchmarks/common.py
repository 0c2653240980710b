"""Shared plumbing for the benchmarks: processes, databases, config, percentiles.

Everything here talks to loopback only. Every process started is tracked and stopped
by its own process-group id at the end (or on Ctrl-C); every PostgreSQL database
created is dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
WORK = RESULTS / "work"  # scratch: logs, wrk scripts, SQLite files (git-ignored with results/)
PY = sys.executable
PG_ADMIN = os.environ.get("TAISUN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

BOT_TOKEN = "xoxb-bench-0000-secret"
SIGNING_SECRET = "bench-signing-secret-" + secrets.token_hex(8)
ALERT_TOKEN = "bench-alert-token-" + secrets.token_hex(8)
GITHUB_TOKEN = "ghp_bench000000000000000000000000000000"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
CHANNEL = "C0OPS"

_procs: list[Proc] = []
_pg_dbs: list[str] = []


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of values; 0.0 for an empty list."""
    if not values:
        return 0.0
    xs = sorted(values)
    k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


# --------------------------------------------------------------------------- CPU accounting


def paced(
    url: str, reqs: list[Any], *, rate: float, duration: float, keep_latencies: bool = False
) -> dict[str, Any]:
    """Requests at a steady `rate` (an ordinary day's traffic, not a saturating loop); latency counted
    from when each was due, so a stall shows in full. keep_latencies: each request's, as `latencies_ms`
    (for percentiles pooled over several windows)."""
    n = max(1, int(rate * duration))
    client = httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_connections=16))
    t0 = time.perf_counter() + 0.05

    def one(i: int) -> tuple[float, int, bool]:
        due = t0 + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        req = reqs[i % len(reqs)]
        try:
            resp = client.post(req.path, content=req.body, headers=req.headers)
            status, body = resp.status_code, resp.content
        except httpx.HTTPError:
            status, body = 0, b""
        # A 2xx that is not the answer asked for (benchmarks.loadgen.Req.expect): an error reply.
        expect = getattr(req, "expect", "")
        odd = 200 <= status < 300 and bool(expect) and expect.encode() not in body
        return (time.perf_counter() - due) * 1000, status, odd

    # The pacer must not pause itself: a full collection of its own heap (60-70 ms here, measured with
    # gc callbacks) made every request due meanwhile late, and was counted as the app's latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(n)))
    finally:
        gc.enable()
        gc.unfreeze()
    client.close()
    lat = [ms for ms, _, _ in results]
    out = {
        "rate": rate, "requests": n, "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(max(lat), 1), "non_2xx": sum(1 for _, st, _ in results if st != 200),
        "unexpected": sum(1 for _, _, odd in results if odd),
    }  # fmt: skip
    if keep_latencies:
        out["latencies_ms"] = lat
    return out


def _proc_ticks() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (ppid, comm, own CPU ticks, reaped children's CPU ticks) for every process in /proc."""
    out: dict[int, tuple[int, str, int, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rpar = data.rfind(")")
        fields = data[rpar + 2 :].split()
        # (utime+stime, cutime+cstime): the second is CPU of children that exited and were reaped.
        out[int(d)] = (
            int(fields[1]),
            data[data.find("(") + 1 : rpar],
            int(fields[11]) + int(fields[12]),
            int(fields[13]) + int(fields[14]),
        )
    return out


def _system_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    return sum(vals), vals[3] + vals[4]  # total, idle+iowait


class ConnWatch:
    """PostgreSQL's client connections, sampled every `every` s while in use: the peak of all of them and
    of each application_name (taisun-serve, taisun-worker, taisun for an embedded bot...), against
    max_connections. With a bot's pools (TAISUN_DB_CONNECTIONS) this says how much of the budget a
    load used."""

    def __init__(self, every: float = 0.1):
        self.every = every
        self.peak_total = 0
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conn-watch", daemon=True)

    def __enter__(self) -> ConnWatch:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
        self.max_connections = int(row[0]) if row else 0
        self._thread.start()
        return self

    def _run(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True, application_name="bench-conn-watch") as conn:
            while not self._stop.wait(self.every):
                rows = conn.execute(
                    "SELECT coalesce(nullif(application_name, ''), '(unnamed)'), count(*) FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1"
                ).fetchall()
                self.samples += 1
                self.peak_total = max(self.peak_total, sum(int(n) for _, n in rows))
                for name, n in rows:
                    self.peaks[name] = max(self.peaks.get(name, 0), int(n))

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def result(self) -> dict[str, Any]:
        return {
            "max_connections": self.max_connections, "peak_total": self.peak_total,
            "peaks": dict(sorted(self.peaks.items(), key=lambda kv: -kv[1])), "samples": self.samples,
        }  # fmt: skip


class CpuWatch:
    """Where the machine's CPU went during a measurement: this benchmark's processes (and the
    bots, wrk... it started), PostgreSQL, and everything else ("other": e.g. another
    engineer's test suite on the shared machine, which skews the numbers). "other" counts
    processes alive at the end of the window, so it is a lower bound."""

    def __enter__(self) -> CpuWatch:
        self.t0 = time.monotonic()
        self.sys0 = _system_ticks()
        self.p0 = _proc_ticks()
        return self

    def __exit__(self, *exc: Any) -> None:
        p1 = _proc_ticks()
        sys1 = _system_ticks()
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        hz = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_) in {**self.p0, **p1}.items():
            children.setdefault(ppid, []).append(pid)
        mine, stack = set(), [os.getpid()]
        while stack:
            pid = stack.pop()
            if pid not in mine:
                mine.add(pid)
                stack.extend(children.get(pid, []))
        used = {"bench": 0, "postgres": 0, "other": 0}
        for pid, (_, comm, own, reaped) in p1.items():
            before = self.p0.get(pid)
            cls = "bench" if pid in mine else "postgres" if comm.startswith("postgres") else "other"
            delta = own - (before[2] if before else 0)
            if cls == "bench":  # our short-lived children (wrk, backup child, CLI) that ended in the window
                delta += reaped - (before[3] if before else 0)
            used[cls] += max(delta, 0)
        total, idle = sys1[0] - self.sys0[0], sys1[1] - self.sys0[1]

        def pct_of_machine(t: int) -> float:
            return round(t / hz / elapsed / ncpu * 100, 1)

        self.result = {
            "busy_pct": round((total - idle) / total * 100, 1) if total else 0.0,
            "bench_pct": pct_of_machine(used["bench"]),
            "postgres_pct": pct_of_machine(used["postgres"]),
            "other_pct": pct_of_machine(used["other"]),
            "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
        }


# --------------------------------------------------------------------------- processes


class Proc:
    """A child in its own session (process group), its output in a log file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path = ROOT):
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _procs.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log_path.name}: exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(url, timeout=2).status_code < 600:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.log_path.name} did not answer {url}:\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self, *, fast: bool = False) -> None:
        """SIGTERM (graceful) or, when fast, SIGKILL the whole process group; measurements are over by then."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL if fast else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()
        if self in _procs:
            _procs.remove(self)


def base_env(**extra: str) -> dict[str, str]:
    drop = ("SLACK_", "GITHUB_", "TAISUN_", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def start_bot(
    *,
    name: str,
    db_url: str,
    config: Path,
    slack_url: str,
    workers: int = 2,
    threads: int = 8,
    github_token: str = "",
    github_url: str = "http://127.0.0.1:9",
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
) -> tuple[Proc, str]:
    """`taisun serve` (python -m bot serve) under gunicorn on a free loopback port."""
    port = free_port()
    env = base_env(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack_url,
        DATABASE_URL=db_url, TAISUN_CONFIG=str(config), GITHUB_TOKEN=github_token, GITHUB_API_URL=github_url,
        TAISUN_ALERT_TOKEN=ALERT_TOKEN, LOG_LEVEL=log_level, **(extra_env or {}),
    )  # fmt: skip
    argv = [
        PY,
        "-m",
        "bot",
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    proc = Proc(argv, env=env, log_path=WORK / "logs" / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(url + "/health")
    return proc, url


def start_worker(
    *,
    name: str,
    db_url: str,
    config: Path,
    slack_url: str,
    threads: int = 4,
    nice: int = 0,
    github_token: str = "",
    github_url: str = "http://127.0.0.1:9",
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
) -> tuple[Proc, str]:
    """`taisun worker` (python -m bot worker) with TAISUN_WORKERS=threads, its /health on a free port;
    under `nice -n <nice>` when nice > 0 (as taisun-worker.service's Nice=)."""
    port = free_port()
    env = base_env(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_url, DATABASE_URL=db_url, TAISUN_CONFIG=str(config),
        GITHUB_TOKEN=github_token, GITHUB_API_URL=github_url, LOG_LEVEL=log_level, TAISUN_WORKERS=str(threads),
        **(extra_env or {}),
    )  # fmt: skip
    argv = [PY, "-m", "bot", "worker", "--bind", f"127.0.0.1:{port}"]
    if nice > 0:
        argv = ["nice", "-n", str(nice), *argv]
    proc = Proc(argv, env=env, log_path=WORK / "logs" / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(url + "/health")
    return proc, url


def idle_cgroup(name: str) -> Path | None:
    """A cpu cgroup with cpu.idle set, as systemd's CPUWeight=idle makes one for taisun-worker.service;
    None where this process may not make one (not root, no cpu controller, a kernel before 5.15)."""
    for base in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):  # cgroup v1's cpu hierarchy, v2
        v2 = base == Path("/sys/fs/cgroup")
        if not (base / ("cgroup.subtree_control" if v2 else "tasks")).exists():
            continue
        if v2 and "cpu" not in (base / "cgroup.subtree_control").read_text().split():
            continue
        group = base / name
        try:
            group.mkdir(exist_ok=True)
            (group / "cpu.idle").write_text("1")
        except OSError:
            return None
        return group
    return None


def move_tree(group: Path, pid: int) -> None:
    """Process `pid` and its descendants into cgroup `group` (their later threads and children follow)."""
    stack = [pid]
    while stack:
        p = stack.pop()
        with contextlib.suppress(OSError):
            (group / "cgroup.procs").write_text(str(p))
            stack.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())


def remove_cgroup(group: Path | None) -> None:
    if group is not None:
        with contextlib.suppress(OSError):
            group.rmdir()


def start_bare(
    *, name: str, slack_url: str, workers: int = 2, threads: int = 8, database_url: str = ""
) -> tuple[Proc, str]:
    """benchmarks/bare_app.py under gunicorn with the same worker settings as `taisun serve`
    (with database_url: the durable bare app, which commits a dedupe key and a request row per ack)."""
    port = free_port()
    env = base_env(BARE_SIGNING_SECRET=SIGNING_SECRET, BARE_BOT_TOKEN=BOT_TOKEN, BARE_SLACK_API_URL=slack_url,
                   BARE_DATABASE_URL=database_url)  # fmt: skip
    argv = [
        PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "20",
        "--keep-alive", "5", "--log-level", "warning", "benchmarks.bare_app:application",
    ]  # fmt: skip
    proc = Proc(argv, env=env, log_path=WORK / "logs" / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(url + "/")
    return proc, url


# --------------------------------------------------------------------------- databases

_template_sqlite: Path | None = None
_template_pg: str | None = None


def _migrate(url: str) -> None:
    from bot.core.store.db import make_engine, migrate

    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def pg_url(name: str) -> str:
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def pg_create(prefix: str = "taisun_bench", template: str | None = None) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template).database}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    _pg_dbs.append(url)
    return url


def pg_drop(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if url in _pg_dbs:
        _pg_dbs.remove(url)


def fresh_db(kind: str, label: str) -> str:
    """A migrated, empty bot database: a SQLite file or a PostgreSQL database (copied from a template)."""
    global _template_sqlite, _template_pg
    if kind == "sqlite":
        if _template_sqlite is None:
            _template_sqlite = WORK / "template.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{_template_sqlite}{suffix}").unlink(missing_ok=True)
            _migrate(f"sqlite:///{_template_sqlite}")
        path = WORK / "db" / f"{label}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(_template_sqlite, path)
        return f"sqlite:///{path}"
    if _template_pg is None:
        _template_pg = pg_create("taisun_bench_tmpl")
        _migrate(_template_pg)
    return pg_create("taisun_bench", template=_template_pg)


def drop_db(url: str) -> None:
    if url.startswith("sqlite"):
        path = make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        pg_drop(url)


def engine_for(url: str) -> Any:
    from bot.core.store.db import make_engine

    return make_engine(url, connections=4, name="bench")


# --------------------------------------------------------------------------- config


def write_config(path: Path, *, service_url: str, commands_per_minute: int = 1_000_000) -> Path:
    """taisun.example.yml for the benchmark: open operator role, sre-leads approve, URLs on loopback."""
    data = yaml.safe_load((ROOT / "taisun.example.yml").read_text())
    data["roles"] = {
        "operator": ["*"],
        "approver": ["@sre-leads"],
        "responder": ["*"],
        "break_glass": ["@sre-leads"],
        "admin": ["@sre-leads"],
    }
    data["slack"] = {"ops_channel": CHANNEL, "report_channel": CHANNEL}
    data["defaults"].update(
        {
            "commands_per_minute": commands_per_minute,
            "verify_timeout_seconds": 3,
            "verify_interval_seconds": 0.1,
        }
    )
    for env in data["environments"].values():
        env["url"] = service_url
        env["freeze_windows"] = []  # a weekend run must not be refused
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


# --------------------------------------------------------------------------- cleanup


def cleanup() -> None:
    for p in list(_procs):
        with contextlib.suppress(Exception):
            p.stop()
    for url in list(_pg_dbs):
        with contextlib.suppress(Exception):
            pg_drop(url)


atexit.register(cleanup)


def _on_signal(signum: int, _frame: Any) -> None:
    cleanup()
    sys.exit(128 + signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
