"""Closed-loop HTTP load on loopback: wrk (Debian's package) when installed, else Python processes.

Requests are prepared up front (signed Slack requests stay valid for 5 minutes) and
replayed round-robin, so many user ids and trigger ids are in the mix. Both tools keep
`connections` keep-alive connections busy for `duration` seconds and report requests/s,
latency percentiles and errors (connect/read/timeout and non-2xx statuses).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.common import WORK, pct


@dataclass(frozen=True)
class Req:
    path: str
    body: str
    headers: dict[str, str]


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


_LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def _lua_str(s: str) -> str:
    level = 1
    while f"]{'=' * level}]" in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[{s}]{eq}]"


def _write_lua(reqs: list[Req], name: str, threads: int = 2) -> Path:
    # Each wrk thread runs its own copy of the script: thread k sends requests k, k + threads, ... so no
    # two threads send the same request (the bot answers a repeated delivery quietly, as a Slack retry).
    lines = [
        "local reqs = {}",
        "local started = 0",
        "setup = function(thread)",
        '  thread:set("offset", started)',
        "  started = started + 1",
        "end",
        "init = function(args)",
    ]
    for r in reqs:
        hdrs = ", ".join(f"[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in r.headers.items())
        lines.append(
            f'  reqs[#reqs + 1] = wrk.format("POST", {_lua_str(r.path)}, {{{hdrs}}}, {_lua_str(r.body)})'
        )
    lines += [
        "end",
        "local i = 0",
        "request = function()",
        f"  local k = (i * {threads} + (offset or 0)) % #reqs + 1",
        "  i = i + 1",
        "  return reqs[k]",
        "end",
        _LUA_DONE,
    ]
    path = WORK / "wrk" / f"{name}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _run_wrk(
    url: str, reqs: list[Req], *, connections: int, duration: float, threads: int, name: str
) -> dict[str, Any]:
    script = _write_lua(reqs, name, threads)
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    d = json.loads(line.removeprefix("WRKJSON "))
    seconds = d["duration_us"] / 1e6
    errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
    return {
        "tool": "wrk",
        "requests": d["requests"],
        "seconds": round(seconds, 2),
        "rps": round(d["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(d["p50_us"] / 1000, 2),
        "p90_ms": round(d["p90_us"] / 1000, 2),
        "p99_ms": round(d["p99_us"] / 1000, 2),
        "max_ms": round(d["max_us"] / 1000, 2),
        "errors": errors,
        "non_2xx": d["status"],
    }


# --------------------------------------------------------------------------- Python fallback


def _py_worker(url: str, reqs: list[Req], conns: int, duration: float, offset: int, q: Any) -> None:
    parts = urlsplit(url)
    stop_at = time.monotonic() + duration
    lat: list[float] = []
    counts = {"errors": 0, "non_2xx": 0}
    lock = threading.Lock()

    def loop(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        i = offset + k
        mine: list[float] = []
        errs = non2xx = 0
        while time.monotonic() < stop_at:
            r = reqs[i % len(reqs)]
            i += conns
            t0 = time.perf_counter()
            try:
                conn.request("POST", r.path, body=r.body.encode(), headers=r.headers)
                resp = conn.getresponse()
                resp.read()
                mine.append(time.perf_counter() - t0)
                if not 200 <= resp.status < 400:
                    non2xx += 1
            except (OSError, http.client.HTTPException):
                errs += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.close()
        with lock:
            lat.extend(mine)
            counts["errors"] += errs
            counts["non_2xx"] += non2xx

    ts = [threading.Thread(target=loop, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((lat, counts))


def _run_python(
    url: str, reqs: list[Req], *, connections: int, duration: float, procs: int = 2
) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    per = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    started = time.monotonic()
    ps = [
        ctx.Process(target=_py_worker, args=(url, reqs, n, duration, i * 1000, q)) for i, n in enumerate(per)
    ]
    for p in ps:
        p.start()
    lat: list[float] = []
    errors = non_2xx = 0
    for _ in ps:
        got, counts = q.get(timeout=duration + 60)
        lat += got
        errors += counts["errors"]
        non_2xx += counts["non_2xx"]
    for p in ps:
        p.join(10)
    seconds = time.monotonic() - started
    return {
        "tool": "python",
        "requests": len(lat),
        "seconds": round(seconds, 2),
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": round(pct(lat, 50) * 1000, 2),
        "p90_ms": round(pct(lat, 90) * 1000, 2),
        "p99_ms": round(pct(lat, 99) * 1000, 2),
        "max_ms": round(max(lat, default=0) * 1000, 2),
        "errors": errors,
        "non_2xx": non_2xx,
    }


def run(
    url: str, reqs: list[Req], *, connections: int = 16, duration: float = 10.0, name: str = "load"
) -> dict[str, Any]:
    """Closed-loop load with `connections` connections for `duration` s against base `url`."""
    if tool() == "wrk":
        return _run_wrk(url, reqs, connections=connections, duration=duration, threads=2, name=name)
    return _run_python(url, reqs, connections=connections, duration=duration)
