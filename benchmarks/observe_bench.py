"""6. Observability: `/taisun metrics` and `/taisun slo` against a real Prometheus holding 30 days of
history (tests/prom_fixture.py: Debian's prometheus, blocks backfilled by promtool, a live exporter),
and the ack path while they run.

  answer latency   a signed /taisun metrics production (6 PromQL queries) or /taisun slo (3
                   environments × 3 SLOs × 30d/1h/6h = 27 queries, each 30-day one over ~45,000
                   samples a series) sent one after another; the clock runs from sending the request
                   to the answer arriving at the local Slack's response_url. Also the same work
                   in-process (Observability.metrics/slo_reports), without Slack.
  ack path         /taisun help at 16 connections (a closed loop that saturates the machine), alone,
                   then again while 4 people keep asking for metrics and SLOs (each waits for their
                   answer, then asks again); and /taisun help at a steady 20 requests/s, alone and
                   while they ask (latency from when each request was due).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks import loadgen
from benchmarks.common import (
    BOT_TOKEN,
    SIGNING_SECRET,
    WORK,
    CpuWatch,
    drop_db,
    fresh_db,
    log,
    paced,
    pct,
    start_bot,
)
from bot.slack import signing
from bot.slack.localslack import LocalSlack, Message

PACED_RATE = 20.0


def _config(base: Path, prom_url: str) -> Path:
    data = yaml.safe_load(base.read_text())
    for name, env in data["environments"].items():
        env["observability"] = {"prometheus": {"url": prom_url, "selector": f'env="{name}"'}}
    path = WORK / "taisun-observe.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


class Answers:
    """Arrival times of response_url answers, by the key in their URL."""

    def __init__(self, slack: LocalSlack):
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()
        slack.on_change(self._seen)

    def _seen(self, kind: str, obj: Any) -> None:
        # The ack is the HTTP answer; what comes to the response_url is the answer after it.
        if kind == "ephemeral" and isinstance(obj, Message) and obj.ts.startswith("respond-"):
            with self.cond:
                self.at.setdefault(obj.ts.removeprefix("respond-"), time.perf_counter())
                self.cond.notify_all()

    def wait(self, key: str, timeout: float = 60.0) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while key not in self.at:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.at[key]


def _ask(
    client: httpx.Client, slack: LocalSlack, answers: Answers, text: str, user: str, key: str
) -> tuple[float, float | None]:
    """(ack ms, answer ms or None) of one command."""
    body, ctype = signing.slash_command(
        text, user_id=user, user_name=user.lower(), channel_id="C0OPS", response_url=slack.response_url(key),
        trigger_id=f"obs-{key}",
    )  # fmt: skip
    headers = signing.sign(SIGNING_SECRET, body) | {"Content-Type": ctype}
    t0 = time.perf_counter()
    r = client.post("/slack/events", content=body, headers=headers)
    ack = (time.perf_counter() - t0) * 1000
    if r.status_code != 200 or "Prometheus" not in r.text:
        raise RuntimeError(f"unexpected ack {r.status_code}: {r.text[:300]}")
    arrived = answers.wait(key)
    return ack, None if arrived is None else (arrived - t0) * 1000


def _series(name: str, fn: Callable[[int], tuple[float, float | None]], n: int) -> dict[str, Any]:
    acks, answers, lost = [], [], 0
    for i in range(n):
        ack, answer = fn(i)
        acks.append(ack)
        if answer is None:
            lost += 1
        else:
            answers.append(answer)
    return {
        "scenario": name, "n": n, "lost": lost,
        "ack_p50_ms": round(pct(acks, 50), 1), "ack_p99_ms": round(pct(acks, 99), 1),
        "answer_p50_ms": round(pct(answers, 50), 1), "answer_p99_ms": round(pct(answers, 99), 1),
        "answer_max_ms": round(max(answers), 1) if answers else None,
    }  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (Prometheus), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _in_process(config: Path, n: int) -> list[dict[str, Any]]:
    from bot.core.config import load_config
    from bot.observability.service import Observability

    cfg = load_config(config)
    obs = Observability(cfg)
    prod, envs = cfg.environments["production"], list(cfg.environments.values())
    out = []
    try:
        for name, fn in (("Observability.metrics(production)", lambda: obs.metrics(prod)),
                         ("Observability.slo_reports(3 environments)", lambda: obs.slo_reports(envs))):  # fmt: skip
            fn()  # connections warm
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
            out.append(
                {
                    "scenario": name,
                    "n": n,
                    "p50_ms": round(pct(times, 50), 1),
                    "p99_ms": round(pct(times, 99), 1),
                }
            )
    finally:
        obs.close()
    return out


def run(db_kind: str, *, base_config: Path, n: int, duration: float) -> dict[str, Any]:
    from tests.prom_fixture import start_prometheus, unavailable_reason

    why = unavailable_reason()
    if why:
        return {"error": why}
    log("observability: building 30 days of history and starting prometheus")
    t0 = time.monotonic()
    prom = start_prometheus()
    result: dict[str, Any] = {
        "prometheus_setup_s": round(time.monotonic() - t0, 1),
        "prometheus_timings": prom.timings,
    }
    count = prom.query('count({env=~".+"})')
    result["series"] = int(float(count[0]["value"][1])) if count else None
    config = _config(base_config, prom.url)
    db_url = fresh_db(db_kind, "observe")
    slack = LocalSlack(token=BOT_TOKEN).start()
    answers = Answers(slack)
    bot, url = start_bot(name="observe", db_url=db_url, config=config, slack_url=slack.url)
    client = httpx.Client(base_url=url, timeout=30)
    try:
        result["in_process"] = _in_process(config, n)
        log(f"observability: {n} × /taisun metrics production, {n} × /taisun slo")
        result["answers"] = [
            _series("/taisun metrics production", lambda i: _ask(client, slack, answers, "metrics production", f"U0OBS{i % 8:03d}", f"m{i}"), n),
            _series("/taisun slo (3 environments)", lambda i: _ask(client, slack, answers, "slo", f"U0OBS{i % 8:03d}", f"s{i}"), n),
        ]  # fmt: skip

        from benchmarks.ack import requests_for

        reqs = requests_for("help", slack)
        loadgen.run(url, reqs, duration=1.0, name="observe-help-warmup")
        log("observability: ack path (/taisun help, 16 connections) alone")
        with CpuWatch() as cpu:
            alone = loadgen.run(url, reqs, duration=duration, name="observe-help-alone")
        alone["cpu"] = cpu.result
        paced_alone = paced(url, reqs, rate=PACED_RATE, duration=duration)
        stop = threading.Event()
        done: list[float] = []
        lost = [0]

        def asker(k: int) -> None:
            i = 0
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    text = "slo" if i % 2 else "metrics production"
                    try:
                        _, answer = _ask(c, slack, answers, text, f"U0ASK{k:03d}", f"bg{k}-{i}")
                    except (RuntimeError, httpx.HTTPError):
                        answer = None
                    if answer is None:
                        lost[0] += 1
                    else:
                        done.append(answer)
                    i += 1

        threads = [threading.Thread(target=asker, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        log("observability: ack path while 4 people keep asking for metrics and SLOs")
        prom_cpu0, t_busy = _cpu_seconds(prom.proc.pid), time.monotonic()
        with CpuWatch() as cpu:
            busy = loadgen.run(url, reqs, duration=duration, name="observe-help-busy")
        busy["cpu"] = cpu.result
        busy["prometheus_cpu_pct_of_machine"] = round(
            100
            * (_cpu_seconds(prom.proc.pid) - prom_cpu0)
            / (time.monotonic() - t_busy)
            / (os.cpu_count() or 1),
            1,
        )
        paced_busy = paced(url, reqs, rate=PACED_RATE, duration=duration)
        stop.set()
        for t in threads:
            t.join(60)
        busy["observability_answers_during"] = len(done)
        busy["observability_answer_p50_ms"] = round(pct(done, 50), 1) if done else None
        busy["observability_answer_p99_ms"] = round(pct(done, 99), 1) if done else None
        busy["observability_lost"] = lost[0]
        result["ack"] = {"alone": alone, "while_observing": busy}
        result["paced"] = {"alone": paced_alone, "while_observing": paced_busy}
    finally:
        client.close()
        bot.stop(fast=True)
        slack.stop()
        drop_db(db_url)
        prom.stop()
    return result
