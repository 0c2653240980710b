"""Closed-loop HTTP load on loopback: wrk (Debian's package) when installed, else Python processes.

Requests are prepared up front (signed Slack requests stay valid for 5 minutes) and
replayed round-robin, so many user ids and trigger ids are in the mix. Both tools keep
`connections` keep-alive connections busy for `duration` seconds and report requests/s,
latency percentiles and errors (connect/read/timeout and non-2xx statuses), and, where the
requests say what a good answer contains (`Req.expect`), the 2xx answers that do not contain it:
a bot that answers "I cannot reach my database" quickly must not count as fast.
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
    expect: str = ""  # a substring of every good answer's raw body ("" = any 2xx will do)


def unexpected(req: Req, status: int, body: bytes) -> bool:
    """A 2xx answer that is not the answer asked for (a refusal, an error reply)."""
    return 200 <= status < 300 and bool(req.expect) and req.expect.encode() not in body


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


_LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"unexpected":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    unexpected_total()))
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
    expect = reqs[0].expect if reqs else ""
    assert all(r.expect == expect for r in reqs), "one expected answer per run"
    lines = [
        "local reqs = {}",
        "local started = 0",
        "local threads = {}",
        "unexpected = 0",
        "setup = function(thread)",
        '  thread:set("offset", started)',
        "  started = started + 1",
        "  table.insert(threads, thread)",
        "end",
        "unexpected_total = function()",
        "  local n = 0",
        '  for _, t in ipairs(threads) do n = n + (t:get("unexpected") or 0) end',
        "  return n",
        "end",
    ]
    if expect:  # wrk reads bodies only when the script has a response function
        lines += [
            "response = function(status, headers, body)",
            f"  if status >= 200 and status < 300 and not string.find(body, {_lua_str(expect)}, 1, true) then",
            "    unexpected = unexpected + 1",
            "  end",
            "end",
        ]
    lines += ["init = function(args)"]
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
        "unexpected": d["unexpected"],
    }


# --------------------------------------------------------------------------- Python fallback


def _py_worker(url: str, reqs: list[Req], conns: int, duration: float, offset: int, q: Any) -> None:
    parts = urlsplit(url)
    stop_at = time.monotonic() + duration
    lat: list[float] = []
    counts = {"errors": 0, "non_2xx": 0, "unexpected": 0}
    lock = threading.Lock()

    def loop(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        i = offset + k
        mine: list[float] = []
        errs = non2xx = odd = 0
        while time.monotonic() < stop_at:
            r = reqs[i % len(reqs)]
            i += conns
            t0 = time.perf_counter()
            try:
                conn.request("POST", r.path, body=r.body.encode(), headers=r.headers)
                resp = conn.getresponse()
                body = resp.read()
                mine.append(time.perf_counter() - t0)
                if not 200 <= resp.status < 400:
                    non2xx += 1
                odd += unexpected(r, resp.status, body)
            except (OSError, http.client.HTTPException):
                errs += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.close()
        with lock:
            lat.extend(mine)
            counts["errors"] += errs
            counts["non_2xx"] += non2xx
            counts["unexpected"] += odd

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
    errors = non_2xx = odd = 0
    for _ in ps:
        got, counts = q.get(timeout=duration + 60)
        lat += got
        errors += counts["errors"]
        non_2xx += counts["non_2xx"]
        odd += counts["unexpected"]
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
        "unexpected": odd,
    }


def run(
    url: str, reqs: list[Req], *, connections: int = 16, duration: float = 10.0, name: str = "load"
) -> dict[str, Any]:
    """Closed-loop load with `connections` connections for `duration` s against base `url`."""
    if tool() == "wrk":
        return _run_wrk(url, reqs, connections=connections, duration=duration, threads=2, name=name)
    return _run_python(url, reqs, connections=connections, duration=duration)
