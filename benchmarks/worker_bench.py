"""6. Jobs in their own process: the production-deploy request against the bare Bolt app, with
`taisun worker` running the jobs those requests create, and again while a 1 GB backup and 50 followed
deploys run in the worker.

One run, PostgreSQL: `taisun serve --workers 2 --threads 8` with TAISUN_JOBS=worker, one `taisun worker`
(TAISUN_WORKERS=64, in a session of its own as systemd starts it, at TAISUN_WORKER_NICE's default, its job
threads under SCHED_IDLE, and — where the benchmark may make one — in a cgroup with cpu.idle set, as
taisun-worker.service's CPUWeight=idle puts it; the result's worker_cgroup says which), and the bare
Bolt app of section 1 under the same gunicorn settings. The two are measured in alternation, window
after window, so drift on the shared machine hits both alike:

  A. quiet: bare, bot, embedded, bare, bot, embedded ... Before every window the jobs of the last one
     are prepared (no job waits) and the bots and the worker have gone idle (their cards posted, their
     audit rows linked), so a bare window never pays for the work of the bot window before it; how
     long the worker took to catch up after each bot window is reported. "embedded" is the reference:
     `taisun serve` as before, its jobs in its own processes (its own database).
  B. background: 50 deploys to environments of their own (no approval) are dispatched to FakeGitHub,
     whose runs stay in progress, so the worker follows all 50 (a GET per run every 3 s); before every
     window a `/taisun backup run` starts streaming a ~1 GB PostgreSQL database (pg_dump → gzip → S3
     on moto) in the worker, so each app's window meets a dump at the same stage. Then bare, bot,
     bare, bot ... while they run; before each window the worker has prepared the previous window's
     requests. Each window records whether its backup and the 50 follows were still running at its end.
  C. capped: the same background, the worker restarted with `backup.max_rate_mib_per_s` (CAPPED_MIB_S), as a
     host whose one PostgreSQL serves both the acks and the backed-up database would set it: paced rounds
     only, with backups back to back (the moment one ends the next is requested), so one streams through
     every window. B's paced
     rounds are the uncapped reference: pg_dump's server backend, at the server's priority, takes a core
     from the server every ack commits to.

Every request is `/taisun deploy production v1.2.3` (a new job and audit row each; the worker prepares
it against FakeGitHub — tag, compare, cd.yml — and posts its approval card), 16 connections, the
requests of section 1. A 200 that is not the bot's "🔎 Checking" reply (an error reply: "I cannot reach my
database", "too busy", a rate limit) is counted with the errors, and a flat-out window's req/s counts only
the requests taken. PostgreSQL's client connections are sampled through the run (ConnWatch: the peak of
each application_name against max_connections). Targets: ≥ 0.5× the bare app's req/s (flat out) and ack p99 ≤ 1.5× the bare
app's at equal offered load.

Why the p99 is judged paced: flat out, 16 connections are a closed loop, and by Little's law its mean
latency is 16 ÷ its throughput. An app at exactly 0.5× the bare app's req/s has twice its mean latency,
so no app could meet both targets flat out: there the p99 says the req/s again (it is reported, as
flat_p99_vs_bare). Both apps, and the durable floor (the bare app writing a dedupe key and a row to
PostgreSQL before each ack: what any bot that keeps what it acked pays), are paced at PACED_RATE
requests/s for PACED_SECONDS, PACED_ROUNDS times each, alternating (latency from when each request was due, so a stall counts in full); the p99 is
pooled over every round's requests (6,000 per app) and each round's ratio is reported beside it.
Quiet: after each round's flat-out windows. With the background: the paced rounds first, while the
backup streams.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from sqlalchemy import func, select

from benchmarks import loadgen
from benchmarks.ack import USERS
from benchmarks.backup_bench import make_db
from benchmarks.common import (
    ALICE,
    CHANNEL,
    GITHUB_TOKEN,
    PY,
    ROOT,
    SIGNING_SECRET,
    ConnWatch,
    CpuWatch,
    drop_db,
    engine_for,
    fresh_db,
    idle_cgroup,
    log,
    move_tree,
    paced,
    pct,
    pg_drop,
    remove_cgroup,
    start_bare,
    start_bot,
    start_worker,
)  # fmt: skip
from bot.core.states import JobState
from bot.slack import signing

PROD_DEPLOY = "deploy production v1.2.3"
WORKER_THREADS = 64  # 50 followed deploys + the backup + the prepares of the requests measured
RATIO_TARGET = 0.5
P99_TARGET = 1.5
# Latency at equal offered load: both apps paced at this rate (well inside both capacities). Flat out,
# with 16 connections, a closed loop's latency is 16 ÷ its throughput: there the p99 says the req/s again.
PACED_RATE = 100.0
# 2,000 requests a window: a p99 of 800 (8 s) was the 8 slowest, and moved 1.0–2.4× between rounds.
PACED_SECONDS = 20.0
# Three paced rounds per phase, pooled: one round's p99 is the 20 slowest of 2,000, and a single stall of
# the shared machine (run 6: the bare app's p99 346 ms at 100 req/s) decided a two-round mean.
PACED_ROUNDS = 3
# Phase C: backup.max_rate_mib_per_s for a host whose one PostgreSQL holds both the acks' database and the
# backed-up one (0 skips the phase). 32 MiB/s: the 1 GB database's ~860 MB of SQL in ~26 s.
CAPPED_MIB_S = 32.0


T = TypeVar("T")


def _rotated(apps: Sequence[T], r: int) -> list[T]:
    """Round r's order of the apps' windows, each round starting one app later: with a backup in the
    background, whichever window meets the dump's heaviest stretch (or a new backup's start) decided the
    pooled p99 — in a fixed order always the same app's (run 13, §6k)."""
    k = r % len(apps)
    return [*apps[k:], *apps[:k]]


def _bench_envs(n: int) -> list[str]:
    return [f"bench{i:02d}" for i in range(1, n + 1)]


REMOTES_NICE = 19  # Slack, GitHub, S3 and the service stand-ins: other machines in production


class SlackAt:
    """The local Slack (in the remotes' process) as the requests need it: its response URLs."""

    def __init__(self, url: str):
        self.url = url

    def response_url(self, key: str) -> str:
        return f"{self.url.removesuffix('api/')}respond/{key}"


class Remotes:
    """benchmarks/remotes.py: the stand-ins for Slack, GitHub, S3 and the service, in a session of their
    own at niceness `nice`, so the CPU they spend serving the worker is not taken from the acks."""

    def __init__(self, nice: int):
        self.proc = subprocess.Popen(
            [PY, "-m", "benchmarks.remotes", str(nice)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.urls: dict[str, str] = json.loads(self.proc.stdout.readline())
        self.dispatches: int | None = None

    def stop(self) -> int | None:
        """Stop them; how many workflow dispatches GitHub's stand-in received."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            self.dispatches = json.loads(line)["dispatches"] if line else None
            self.proc.wait(30)
        return self.dispatches


def write_config(
    path: Path, base: Path, *, service_url: str, followed: int, bucket: str, max_rate_mib_per_s: float = 0.0
) -> Path:
    """The benchmark config (benchmarks/common.write_config) plus `followed` environments without
    approval for the background deploys, and backups to `bucket` of BACKUP_DATABASE_URL, read at most
    `max_rate_mib_per_s` (0: no cap)."""
    data = yaml.safe_load(base.read_text())
    for env in data["environments"].values():  # the service stand-in of the remotes' process
        env["url"] = service_url
    template = dict(data["environments"]["staging"])
    for key in ("aliases", "restart", "cache", "database"):
        template.pop(key, None)
    for name in _bench_envs(followed):
        data["environments"][name] = {**template, "url": service_url, "approval_required": False}
    data["backup"].update(
        {
            "bucket": bucket,
            "memory_paths": [],
            "dsn_env": "BACKUP_DATABASE_URL",
            "max_rate_mib_per_s": max_rate_mib_per_s,
        }
    )
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _slash(url: str, text: str, slack: SlackAt, i: int) -> None:
    body, ctype = signing.slash_command(
        text, user_id=ALICE, user_name="alice", channel_id=CHANNEL,
        response_url=slack.response_url(f"bg-{i}"), trigger_id=f"bg-{time.time_ns()}-{i}",
    )  # fmt: skip
    headers = signing.sign(SIGNING_SECRET, body) | {"Content-Type": ctype}
    r = httpx.post(url + "/slack/events", content=body.encode(), headers=headers, timeout=10)
    r.raise_for_status()


class Jobs:
    """What the worker has in hand, read from the bot's database."""

    def __init__(self, db_url: str, followed: list[str]):
        self.engine = engine_for(db_url)
        self.followed = followed

    def waiting(self) -> int:
        """Jobs that still need a prepare step (requested, not yet taken or decided)."""
        from bot.core.store.models import Job

        with self.engine.connect() as c:
            return int(
                c.execute(select(func.count()).select_from(Job).where(Job.state == "validating")).scalar_one()
            )

    def count(self) -> int:
        from bot.core.store.models import Job

        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(Job)).scalar_one())

    def following(self) -> int:
        """Background deploys whose run is dispatched and being followed."""
        from bot.core.store.models import Job

        with self.engine.connect() as c:
            rows = c.execute(
                select(Job.state, Job.progress).where(
                    Job.environment.in_(self.followed), Job.operation == "deploy"
                )
            ).all()
        return sum(1 for state, progress in rows if state == "running" and (progress or {}).get("run_id"))

    def followed_states(self) -> dict[str, int]:
        from bot.core.store.models import Job

        with self.engine.connect() as c:
            rows = c.execute(select(Job.state, Job.progress).where(Job.environment.in_(self.followed))).all()
        return dict(Counter(f"{state}, {bool((progress or {}).get('run_id'))}" for state, progress in rows))

    def backup(self) -> tuple[str, dict[str, Any]]:
        from bot.core.store.models import Job

        with self.engine.connect() as c:
            row = c.execute(
                select(Job.state, Job.progress)
                .where(Job.operation == "backup")
                .order_by(Job.created_at.desc())
            ).first()
        return (row[0], row[1] or {}) if row else ("", {})

    def backup_streaming(self) -> bool:
        """The last backup runs and has begun its object (the dump flows)."""
        state, progress = self.backup()
        return state == "running" and "key" in progress

    def dispose(self) -> None:
        self.engine.dispose()


def _wait(what: str, predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


# The bot took the request: its "🔎 Checking …" reply (either language), as Bolt writes it (JSON, \u-escaped).
# Anything else in a 200 — "I cannot reach my database", "too busy", a rate limit — is counted, not timed.
TAKEN = json.dumps("🔎")[1:-1]


def _expect(app: str) -> str:
    """What a good answer of this app contains: the bots' "🔎 Checking" reply; the bare apps ack empty."""
    return TAKEN if app in ("bot", "embedded") else ""


def requests(slack: SlackAt | None, n: int, tag: str, expect: str = "") -> list[loadgen.Req]:
    """n signed `/taisun deploy production v1.2.3`, each with a trigger id never sent before: the bot
    answers a repeated delivery quietly (Slack's retries), so a replayed request would measure that."""
    ts = int(time.time())
    out = []
    for i in range(n):
        user = USERS[i % len(USERS)]
        resp_url = slack.response_url(f"{user}-{i}") if slack else f"http://127.0.0.1:9/respond/{user}-{i}"
        body, ctype = signing.slash_command(
            PROD_DEPLOY, user_id=user, user_name=user.lower(), channel_id=CHANNEL, response_url=resp_url,
            trigger_id=f"wb-{tag}-{ts}-{i}",
        )  # fmt: skip
        out.append(
            loadgen.Req(
                "/slack/events",
                body,
                signing.sign(SIGNING_SECRET, body, ts) | {"Content-Type": ctype},
                expect=expect,
            )
        )
    return out


def _group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every live process in process group `pgid` (a server and its workers)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _settle(pgids: list[int], *, below: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until these process groups together use under `below` of a core for a second: the last
    window's aftermath (cards still being posted, audit rows being linked, an embedded bot's jobs) must
    not run inside the next app's window. Seconds waited (`timeout` when they never went quiet)."""
    started = time.monotonic()
    last = sum(_group_cpu_seconds(p) for p in pgids)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = sum(_group_cpu_seconds(p) for p in pgids)
        if now - last < below:
            break
        last = now
    return round(time.monotonic() - started, 1)


def _window(
    url: str, slack: SlackAt | None, *, duration: float, name: str, groups: dict[str, int], app: str
) -> dict[str, Any]:
    """One load window. `groups`: process groups whose CPU per request is reported (the app measured,
    the worker): less sensitive to the shared machine's other load than req/s and latency are."""
    # More distinct requests than the bot can take in the window (it is well under 1,500 req/s here);
    # the bare app dedupes nothing, so it replays 512 like section 1.
    reqs = requests(slack, int(1500 * duration) if slack else 512, name, _expect(app))
    before = {k: _group_cpu_seconds(pid) for k, pid in groups.items()}
    with CpuWatch() as cpu:
        res = loadgen.run(url, reqs, duration=duration, name=name)
    if res.get("unexpected"):  # req/s counts the requests taken, not the error replies sent back fast
        res["rps_all"] = res["rps"]
        res["rps"] = round(res["rps"] * (1 - res["unexpected"] / max(res["requests"], 1)), 1)
    res["cpu"] = cpu.result
    res["cpu_ms_per_request"] = {
        k: round((_group_cpu_seconds(pid) - before[k]) * 1000 / max(res["requests"], 1), 2)
        for k, pid in groups.items()
    }
    return res


def _paced_window(
    url: str, slack: SlackAt | None, *, rate: float, duration: float, name: str, app: str
) -> dict[str, Any]:
    """One window at a steady `rate`, latency from when each request was due (benchmarks.common.paced)."""
    reqs = requests(slack, int(rate * duration) + 1, name, _expect(app))
    with CpuWatch() as cpu:
        res = paced(url, reqs, rate=rate, duration=duration, keep_latencies=True)
    res["cpu"] = cpu.result
    return res


def _paced_summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ack latency at equal offered load: each app's percentiles over all its paced rounds' requests,
    the bot's p99 against the bare app's, and each round's ratio. Drops the windows' raw latencies."""
    lat = {
        app: [ms for w in windows if w["app"] == app for ms in w.pop("latencies_ms", [])]
        for app in ("bare", "durable", "bot")
    }
    bare = [w for w in windows if w["app"] == "bare"]
    bot = [w for w in windows if w["app"] == "bot"]
    if not lat["bare"] or not lat["bot"]:
        return {}
    out = {
        "rate": bare[0]["rate"], "rounds": len(bot), "requests": {app: len(v) for app, v in lat.items()},
        "bare_p50_ms": round(pct(lat["bare"], 50), 1), "bot_p50_ms": round(pct(lat["bot"], 50), 1),
        "bare_p99_ms": round(pct(lat["bare"], 99), 1), "bot_p99_ms": round(pct(lat["bot"], 99), 1),
        "non_2xx": sum(w["non_2xx"] for w in windows),
        "unexpected": sum(w.get("unexpected", 0) for w in windows),
    }  # fmt: skip
    out["p99_vs_bare"] = round(out["bot_p99_ms"] / out["bare_p99_ms"], 2) if out["bare_p99_ms"] else None
    out["p99_ok"] = bool(out["p99_vs_bare"] is not None and out["p99_vs_bare"] <= P99_TARGET)
    out["round_p99_vs_bare"] = [
        round(b["p99_ms"] / a["p99_ms"], 2) for a, b in zip(bare, bot, strict=False) if a["p99_ms"]
    ]
    if lat["durable"]:  # the floor: the bare app writing its dedupe key and a row before each ack
        out["durable_p50_ms"] = round(pct(lat["durable"], 50), 1)
        out["durable_p99_ms"] = round(pct(lat["durable"], 99), 1)
        out["durable_p99_vs_bare"] = (
            round(out["durable_p99_ms"] / out["bare_p99_ms"], 2) if out["bare_p99_ms"] else None
        )
        # Each round's bot against the floor of the same round: a stall of the database or the machine
        # reaches both (the bare app writes nothing), so this says what the bot's own ack path adds.
        durable = [w for w in windows if w["app"] == "durable"]
        out["round_p99_vs_floor"] = [
            round(b["p99_ms"] / f["p99_ms"], 2) for f, b in zip(durable, bot, strict=False) if f["p99_ms"]
        ]
    return out


def _summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    bare = [w for w in windows if w["app"] == "bare"]
    bot = [w for w in windows if w["app"] == "bot"]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.fmean(r[key] for r in rows), 2) if rows else 0.0

    out = {
        "bare_rps": mean(bare, "rps"), "bot_rps": mean(bot, "rps"),
        "bare_p99_ms": mean(bare, "p99_ms"), "bot_p99_ms": mean(bot, "p99_ms"),
        "bare_p50_ms": mean(bare, "p50_ms"), "bot_p50_ms": mean(bot, "p50_ms"),
        "errors": sum(w["errors"] + w["non_2xx"] + w.get("unexpected", 0) for w in windows),
        "other_cpu_max_pct": max((w["cpu"]["other_pct"] for w in windows), default=0.0),
    }  # fmt: skip
    out["ratio"] = round(out["bot_rps"] / out["bare_rps"], 3) if out["bare_rps"] else None
    # Flat out the p99 restates the req/s (Little's law, see the module's text): reported, not judged.
    out["flat_p99_vs_bare"] = round(out["bot_p99_ms"] / out["bare_p99_ms"], 2) if out["bare_p99_ms"] else None
    out["ratio_ok"] = bool(out["ratio"] is not None and out["ratio"] >= RATIO_TARGET)
    # Each round on its own: bot window ÷ the bare window just before it.
    out["round_ratios"] = [round(b["rps"] / a["rps"], 3) for a, b in zip(bare, bot, strict=False) if a["rps"]]
    out["round_p99_vs_bare"] = [
        round(b["p99_ms"] / a["p99_ms"], 2) for a, b in zip(bare, bot, strict=False) if a["p99_ms"]
    ]
    for app, rows in (("bare", bare), ("bot", bot)):
        per = [r["cpu_ms_per_request"]["app"] for r in rows if "app" in r.get("cpu_ms_per_request", {})]
        if per:
            out[f"{app}_cpu_ms_per_request"] = round(statistics.fmean(per), 2)
    durable = [w for w in windows if w["app"] == "durable"]
    if durable:  # the floor: the bare app committing a dedupe key and a request row before each ack
        out["durable_rps"], out["durable_p99_ms"] = mean(durable, "rps"), mean(durable, "p99_ms")
        out["durable_cpu_ms_per_request"] = round(
            statistics.fmean(r["cpu_ms_per_request"]["app"] for r in durable), 2
        )
        out["durable_ratio"] = round(out["durable_rps"] / out["bare_rps"], 3) if out["bare_rps"] else None
        out["bot_vs_durable"] = round(out["bot_rps"] / out["durable_rps"], 3) if out["durable_rps"] else None
        out["bot_p99_vs_durable"] = (
            round(out["bot_p99_ms"] / out["durable_p99_ms"], 2) if out["durable_p99_ms"] else None
        )
    embedded = [w for w in windows if w["app"] == "embedded"]
    if embedded:  # the reference: the same request with the jobs in the web process, as before
        out["embedded_rps"], out["embedded_p99_ms"] = mean(embedded, "rps"), mean(embedded, "p99_ms")
        out["embedded_cpu_ms_per_request"] = round(
            statistics.fmean(r["cpu_ms_per_request"]["app"] for r in embedded), 2
        )
        out["embedded_ratio"] = round(out["embedded_rps"] / out["bare_rps"], 3) if out["bare_rps"] else None
        out["embedded_p99_vs_bare"] = (
            round(out["embedded_p99_ms"] / out["bare_p99_ms"], 2) if out["bare_p99_ms"] else None
        )
    return out


class BackToBack(threading.Thread):
    """`/taisun backup run` again the moment the last backup has ended, so a backup streams all the time
    (a new one's few seconds of start-up — the worker taking the job, pg_dump's catalog reads — aside)."""

    def __init__(self, jobs: Jobs, bot_url: str, slack: SlackAt):
        super().__init__(name="backups-back-to-back", daemon=True)
        self.jobs, self.bot_url, self.slack = jobs, bot_url, slack
        self.started: list[float] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.2):
                if self.jobs.backup()[0] in FINAL_STATES:
                    _slash(self.bot_url, "backup run", self.slack, 1000 + len(self.started))
                    self.started.append(time.monotonic())
                    _wait("the next backup is taken", lambda: self.jobs.backup()[0] not in FINAL_STATES, 60)
        except BaseException as e:  # reported with the phase
            self.error = e

    def streaming(self) -> bool:
        return self.jobs.backup_streaming()


FINAL_STATES = {state.value for state in JobState.FINAL} | {""}  # "": no backup yet


def _fresh_backup(jobs: Jobs, bot_url: str, slack: SlackAt, n: int) -> float:
    """Phase B, before each window: the last backup ended, a new one requested and streaming (its first
    object key saved), so every app's window meets a dump at the same stage. Seconds it took."""
    started = time.monotonic()
    _wait("the last backup ends", lambda: jobs.backup()[0] in FINAL_STATES, 900)
    _slash(bot_url, "backup run", slack, n)
    _wait("the backup streams", jobs.backup_streaming, 120)
    return time.monotonic() - started


def _capped_phase(
    jobs: Jobs,
    followed: int,
    paced_rounds: int,
    apps: tuple[tuple[str, str, SlackAt | None], ...],
    bot_url: str,
    slack: SlackAt,
    cap: float,
) -> dict[str, Any]:
    """Paced rounds with capped backups streaming back to back through every window, the follows resumed."""
    _wait(f"the new worker resumes the {followed} follows", lambda: jobs.following() == followed, 300)
    feeder = BackToBack(jobs, bot_url, slack)
    feeder.start()
    windows: list[dict[str, Any]] = []
    try:
        for r in range(paced_rounds):
            for app, url, sl in _rotated(apps, r):
                _wait("the worker prepares the last window's requests", lambda: jobs.waiting() == 0, 900)
                _wait("a backup streams", feeder.streaming, 120)
                log(
                    f"worker C{r + 1}: {app} paced at {PACED_RATE:g} req/s ({PACED_SECONDS:g} s), capped backups stream"
                )
                w = _paced_window(
                    url,
                    sl,
                    rate=PACED_RATE,
                    duration=PACED_SECONDS,
                    name=f"worker-C{r}-{app}-paced",
                    app=app,
                )
                w.update(app=app, phase="capped", round=r + 1, backup_running_at_end=feeder.streaming())
                windows.append(w)
    finally:
        feeder.stopping.set()
        feeder.join(70)
    if feeder.error is not None:
        raise feeder.error
    _wait("the last backup ends", lambda: jobs.backup()[0] in FINAL_STATES, 900)
    state, progress = jobs.backup()
    return {
        "max_rate_mib_per_s": cap, "backups_started": len(feeder.started), "last_backup": state,
        "last_backup_seconds": progress.get("seconds"), "followed_at_end": jobs.following(),
        "paced": {"windows": windows, **_paced_summary(windows)},
    }  # fmt: skip


def run(
    *,
    base_config: Path,
    duration: float,
    rounds: int,
    backup_mb: int,
    followed: int,
    capped_mib_s: float = CAPPED_MIB_S,
) -> dict[str, Any]:
    import boto3

    remotes = Remotes(REMOTES_NICE)
    endpoint = remotes.urls["s3"]
    aws_env = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }  # fmt: skip
    bucket = "taisun-bench-worker"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="ap-northeast-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})  # fmt: skip
    github_url = remotes.urls["github"]
    slack, bare_slack = SlackAt(remotes.urls["slack"]), SlackAt(remotes.urls["bare_slack"])
    service_url = remotes.urls["service"]
    work = base_config.parent
    config = write_config(
        work / "taisun-worker-bench.yml",
        base_config,
        service_url=service_url,
        followed=followed,
        bucket=bucket,
    )
    envs = _bench_envs(followed)
    paced_rounds = PACED_ROUNDS if rounds > 1 else 1  # --quick: one of each
    log(f"worker: filling a ~{backup_mb} MB database to back up")
    backup_dsn, backup_db_mb, _ = make_db(backup_mb)
    db_url = fresh_db("postgresql", "worker-bench")
    embedded_db = fresh_db("postgresql", "worker-bench-embedded")
    # serve checks a backup request (are the AWS settings and the DSN there?) as it takes it: it shares
    # the worker's environment, as /etc/taisun/env is shared by the two units.
    shared_env = {**aws_env, "BACKUP_DATABASE_URL": backup_dsn}
    bot_env = {"TAISUN_JOBS": "worker", **shared_env}
    procs: list[Any] = []
    worker_cgroup = None
    durable_db = ""
    jobs = Jobs(db_url, envs)
    result: dict[str, Any] = {
        "db": "postgresql", "request": f"/taisun {PROD_DEPLOY}", "window_s": duration, "rounds": rounds,
        "paced_rounds": paced_rounds, "worker_threads": WORKER_THREADS, "remotes_nice": REMOTES_NICE, "backup_db_mb": round(backup_db_mb),
        "followed_deploys": followed,
    }  # fmt: skip
    conns = ConnWatch().__enter__()  # PostgreSQL's connections through the whole run, per application_name
    try:
        bare, bare_url = start_bare(name="worker-bare", slack_url=bare_slack.url)
        procs.append(bare)
        durable_db = fresh_db("postgresql", "worker-bench-durable")
        durable, durable_url = start_bare(
            name="worker-durable", slack_url=bare_slack.url, database_url=durable_db
        )
        procs.append(durable)
        bot, bot_url = start_bot(
            name="worker-serve", db_url=db_url, config=config, slack_url=slack.url,
            github_token=GITHUB_TOKEN, github_url=github_url, extra_env=bot_env,
        )  # fmt: skip
        procs.append(bot)
        worker, worker_url = start_worker(
            name="worker-worker", db_url=db_url, config=config, slack_url=slack.url, threads=WORKER_THREADS,
            github_token=GITHUB_TOKEN, github_url=github_url, extra_env=shared_env,
        )  # fmt: skip
        procs.append(worker)
        # As taisun-worker.service runs it: CPUWeight=idle puts the unit in a cgroup with cpu.idle set.
        worker_cgroup = idle_cgroup("taisun-bench-worker")
        if worker_cgroup is not None:
            move_tree(worker_cgroup, worker.pid)
        result["worker_cgroup"] = "cpu.idle" if worker_cgroup is not None else None
        result["worker_priority"] = httpx.get(worker_url + "/health", timeout=10).json()["priority"]
        # The reference, quiet phase only: `taisun serve` with its jobs embedded (the default), its own database.
        embedded, embedded_url = start_bot(
            name="worker-embedded", db_url=embedded_db, config=config, slack_url=slack.url,
            github_token=GITHUB_TOKEN, github_url=github_url, extra_env=shared_env,
        )  # fmt: skip
        procs.append(embedded)
        embedded_jobs = Jobs(embedded_db, envs)

        log("worker: warm-up (one window each, not counted)")
        _window(bare_url, None, duration=2, name="worker-bare-warmup", groups={}, app="bare")
        _window(durable_url, bare_slack, duration=2, name="worker-durable-warmup", groups={}, app="durable")
        _window(bot_url, slack, duration=2, name="worker-bot-warmup", groups={}, app="bot")
        _window(embedded_url, slack, duration=2, name="worker-embedded-warmup", groups={}, app="embedded")
        _wait("the worker prepares the warm-up's jobs", lambda: jobs.waiting() == 0, 600)
        _wait("the embedded bot prepares the warm-up's jobs", lambda: embedded_jobs.waiting() == 0, 600)

        windows: list[dict[str, Any]] = []
        apps = (
            ("bare", bare_url, None, jobs, {"app": bare.pid}),
            ("durable", durable_url, bare_slack, jobs, {"app": durable.pid}),
            ("bot", bot_url, slack, jobs, {"app": bot.pid, "worker": worker.pid}),
            ("embedded", embedded_url, slack, embedded_jobs, {"app": embedded.pid}),
        )
        paced_windows: list[dict[str, Any]] = []
        # Quiet means quiet: before each window the bots and the worker have finished the last one's work.
        quiet = [bot.pid, worker.pid, embedded.pid]
        for r in range(rounds):
            for app, url, sl, js, groups in apps:
                settled = _settle(quiet)
                log(f"worker A{r + 1}: {app} ({duration:g} s)")
                before = js.count()
                w = _window(url, sl, duration=duration, name=f"worker-A{r}-{app}", groups=groups, app=app)
                w.update(app=app, phase="quiet", round=r + 1, settled_s=settled)
                if app not in ("bare", "durable"):
                    w["jobs_created"] = js.count() - before  # one per request: none was a replay
                    w["left_waiting"] = js.waiting()
                    w["caught_up_s"] = _wait("the jobs are prepared", lambda js=js: js.waiting() == 0, 900)
                windows.append(w)
        for r in range(paced_rounds):
            for app, url, sl, js in (
                ("bare", bare_url, None, jobs),
                ("durable", durable_url, bare_slack, jobs),
                ("bot", bot_url, slack, jobs),
            ):
                settled = _settle(quiet)
                log(f"worker A{r + 1}: {app} paced at {PACED_RATE:g} req/s ({PACED_SECONDS:g} s)")
                w = _paced_window(
                    url,
                    sl,
                    rate=PACED_RATE,
                    duration=PACED_SECONDS,
                    name=f"worker-A{r}-{app}-paced",
                    app=app,
                )
                w.update(app=app, phase="quiet", round=r + 1, settled_s=settled)
                paced_windows.append(w)
                _wait("the jobs are prepared", lambda js=js: js.waiting() == 0, 900)
        result["quiet"] = {"windows": windows, **_summary(windows), "paced": {
            "windows": paced_windows, **_paced_summary(paced_windows)}}  # fmt: skip
        embedded_jobs.dispose()
        embedded.stop(fast=True)
        procs.remove(embedded)

        log(f"worker B: {followed} deploys to follow and a backup, in the worker")
        for i, env in enumerate(envs):
            _slash(bot_url, f"deploy {env} v1.2.3", slack, i)
        try:
            result["follow_setup_s"] = _wait(
                f"{followed} deploys followed", lambda: jobs.following() == followed, 300
            )
        except TimeoutError as e:  # say where they are: found their runs, still looking, or failed
            raise TimeoutError(f"{e}; (state, has a run): {jobs.followed_states()}") from None
        backups_started = 0
        backup_started = time.monotonic()
        windows = []
        paced_windows = []
        # The paced rounds first (a bot window's thousands of jobs take the worker minutes to prepare
        # beside a backup). Every window starts with a backup of its own just streaming: the vacuumed
        # 1 GB dump can end inside one 20 s window, and one backup for all rounds met only the first
        # window's app (§6k). Each window says whether its backup still ran at its end.
        for r in range(paced_rounds):
            for app, url, sl in _rotated(
                (("bare", bare_url, None), ("durable", durable_url, bare_slack), ("bot", bot_url, slack)), r
            ):
                _wait("the worker prepares the last window's requests", lambda: jobs.waiting() == 0, 900)
                _fresh_backup(jobs, bot_url, slack, 900 + backups_started)
                backups_started += 1
                log(
                    f"worker B{r + 1}: {app} paced at {PACED_RATE:g} req/s ({PACED_SECONDS:g} s), a backup streams"
                )
                w = _paced_window(
                    url,
                    sl,
                    rate=PACED_RATE,
                    duration=PACED_SECONDS,
                    name=f"worker-B{r}-{app}-paced",
                    app=app,
                )
                w.update(
                    app=app,
                    phase="background",
                    round=r + 1,
                    backup_running_at_end=jobs.backup()[0] == "running",
                )
                paced_windows.append(w)
        for r in range(rounds):
            for app, url, sl, groups in (
                ("bare", bare_url, None, {"app": bare.pid, "worker": worker.pid}),
                ("bot", bot_url, slack, {"app": bot.pid, "worker": worker.pid}),
            ):
                _wait("the worker prepares the last window's requests", lambda: jobs.waiting() == 0, 900)
                _fresh_backup(jobs, bot_url, slack, 900 + backups_started)
                backups_started += 1
                log(f"worker B{r + 1}: {app} ({duration:g} s), a backup streams")
                before = jobs.count()
                w = _window(url, sl, duration=duration, name=f"worker-B{r}-{app}", groups=groups, app=app)
                w.update(app=app, phase="background", round=r + 1)
                w["backup_running_at_end"] = jobs.backup()[0] == "running"
                w["followed_at_end"] = jobs.following()
                if app == "bot":
                    w["jobs_created"] = jobs.count() - before
                    w["left_waiting"] = jobs.waiting()
                windows.append(w)
        result["background"] = {"windows": windows, **_summary(windows), "paced": {
            "windows": paced_windows, **_paced_summary(paced_windows)}}  # fmt: skip
        state, progress = jobs.backup()
        if state == "running":
            _wait("the backup ends", lambda: jobs.backup()[0] != "running", 900)
            state, progress = jobs.backup()
        result["backup"] = {
            "state": state,
            "backups_started": backups_started,
            "last_backup_seconds": progress.get("seconds"),
            "seconds_after_windows_began": round(time.monotonic() - backup_started, 1),
        }
        if capped_mib_s > 0 and paced_rounds:
            # C. The same background with the dump read at most capped_mib_s (backup.max_rate_mib_per_s), as
            # a host whose PostgreSQL serves the acks and the backed-up database would run it. The worker is
            # restarted with that config (a graceful stop hands the 50 follows back; the new one resumes
            # them), and every paced window runs with a backup streaming: when one ends, the next starts.
            capped_config = write_config(
                work / "taisun-worker-bench-capped.yml", base_config, service_url=service_url, followed=followed,
                bucket=bucket, max_rate_mib_per_s=capped_mib_s,
            )  # fmt: skip
            log(f"worker C: the worker restarted with backup.max_rate_mib_per_s={capped_mib_s:g}")
            worker.stop()
            procs.remove(worker)
            worker, worker_url = start_worker(
                name="worker-worker-capped", db_url=db_url, config=capped_config, slack_url=slack.url,
                threads=WORKER_THREADS, github_token=GITHUB_TOKEN, github_url=github_url, extra_env=shared_env,
            )  # fmt: skip
            procs.append(worker)
            if worker_cgroup is not None:
                move_tree(worker_cgroup, worker.pid)
            result["capped"] = _capped_phase(
                jobs, followed, paced_rounds, (("bare", bare_url, None), ("durable", durable_url, bare_slack),
                                               ("bot", bot_url, slack)), bot_url, slack, capped_mib_s,
            )  # fmt: skip
        result["github_dispatches"] = remotes.stop()
    finally:
        conns.__exit__()
        result["connections"] = conns.result
        jobs.dispose()
        for p in reversed(procs):
            p.stop(fast=True)
        remove_cgroup(worker_cgroup)
        remotes.stop()
        drop_db(db_url)
        drop_db(embedded_db)
        if durable_db:
            drop_db(durable_db)
        pg_drop(backup_dsn)
    return result
