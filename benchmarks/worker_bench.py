"""6. Jobs in their own process: the production-deploy request against the bare Bolt app, with
`taisun worker` running the jobs those requests create, and again while a 1 GB backup and 50 followed
deploys run in the worker.

One run, PostgreSQL: `taisun serve --workers 2 --threads 8` with TAISUN_JOBS=worker, one `taisun worker`
(TAISUN_WORKERS=64, under `nice -n 5` as deploy/systemd/taisun-worker.service runs it), and the bare
Bolt app of section 1 under the same gunicorn settings. The two are measured in alternation, window
after window, so drift on the shared machine hits both alike:

  A. quiet: bare, bot, embedded, bare, bot, embedded ... Before every window the jobs of the last one
     are prepared (no job waits), so a bare window never pays for the jobs of the bot window before
     it; how long the worker took to catch up after each bot window is reported. "embedded" is the
     reference: `taisun serve` as before, its jobs in its own processes (its own database).
  B. background: 50 deploys to environments of their own (no approval) are dispatched to FakeGitHub,
     whose runs stay in progress, so the worker follows all 50 (a GET per run every 3 s); a
     `/taisun backup run` streams a ~1 GB PostgreSQL database (pg_dump → gzip → S3 on moto) in
     the worker. Then bare, bot, bare, bot ... while they run; before each window the worker has
     prepared the previous window's requests. Each window records whether the backup and the 50
     follows were still running at its end.

Every request is `/taisun deploy production v1.2.3` (a new job and audit row each; the worker prepares
it against FakeGitHub — tag, compare, cd.yml — and posts its approval card), 16 connections, the
requests of section 1. Targets: ≥ 0.5× the bare app's req/s and ack p99 ≤ 1.5× the bare app's.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select

from benchmarks import loadgen
from benchmarks.ack import USERS
from benchmarks.backup_bench import make_db
from benchmarks.common import (
    ALICE,
    BOT_TOKEN,
    CHANNEL,
    GITHUB_TOKEN,
    SIGNING_SECRET,
    CpuWatch,
    drop_db,
    engine_for,
    fresh_db,
    log,
    pg_drop,
    start_bare,
    start_bot,
    start_worker,
)  # fmt: skip
from bot.slack import signing
from bot.slack.localslack import LocalSlack
from tests.fakes.github import FakeGitHub

PROD_DEPLOY = "deploy production v1.2.3"
WORKER_THREADS = 64  # 50 followed deploys + the backup + the prepares of the requests measured
WORKER_NICE = 5  # as deploy/systemd/taisun-worker.service
RATIO_TARGET = 0.5
P99_TARGET = 1.5


def _bench_envs(n: int) -> list[str]:
    return [f"bench{i:02d}" for i in range(1, n + 1)]


def write_config(path: Path, base: Path, *, service_url: str, followed: int, bucket: str) -> Path:
    """The benchmark config (benchmarks/common.write_config) plus `followed` environments without
    approval for the background deploys, and backups to `bucket` of BACKUP_DATABASE_URL."""
    data = yaml.safe_load(base.read_text())
    template = dict(data["environments"]["staging"])
    for key in ("aliases", "restart", "cache", "database"):
        template.pop(key, None)
    for name in _bench_envs(followed):
        data["environments"][name] = {**template, "url": service_url, "approval_required": False}
    data["backup"].update({"bucket": bucket, "memory_paths": [], "dsn_env": "BACKUP_DATABASE_URL"})
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _slash(url: str, text: str, slack: LocalSlack, i: int) -> None:
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

    def backup(self) -> tuple[str, dict[str, Any]]:
        from bot.core.store.models import Job

        with self.engine.connect() as c:
            row = c.execute(
                select(Job.state, Job.progress)
                .where(Job.operation == "backup")
                .order_by(Job.created_at.desc())
            ).first()
        return (row[0], row[1] or {}) if row else ("", {})

    def dispose(self) -> None:
        self.engine.dispose()


def _wait(what: str, predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def requests(slack: LocalSlack | None, n: int, tag: str) -> list[loadgen.Req]:
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
                "/slack/events", body, signing.sign(SIGNING_SECRET, body, ts) | {"Content-Type": ctype}
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


def _window(
    url: str, slack: LocalSlack | None, *, duration: float, name: str, groups: dict[str, int]
) -> dict[str, Any]:
    """One load window. `groups`: process groups whose CPU per request is reported (the app measured,
    the worker): less sensitive to the shared machine's other load than req/s and latency are."""
    # More distinct requests than the bot can take in the window (it is well under 1,500 req/s here);
    # the bare app dedupes nothing, so it replays 512 like section 1.
    reqs = requests(slack, int(1500 * duration) if slack else 512, name)
    before = {k: _group_cpu_seconds(pid) for k, pid in groups.items()}
    with CpuWatch() as cpu:
        res = loadgen.run(url, reqs, duration=duration, name=name)
    res["cpu"] = cpu.result
    res["cpu_ms_per_request"] = {
        k: round((_group_cpu_seconds(pid) - before[k]) * 1000 / max(res["requests"], 1), 2)
        for k, pid in groups.items()
    }
    return res


def _summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    bare = [w for w in windows if w["app"] == "bare"]
    bot = [w for w in windows if w["app"] == "bot"]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.fmean(r[key] for r in rows), 2) if rows else 0.0

    out = {
        "bare_rps": mean(bare, "rps"), "bot_rps": mean(bot, "rps"),
        "bare_p99_ms": mean(bare, "p99_ms"), "bot_p99_ms": mean(bot, "p99_ms"),
        "bare_p50_ms": mean(bare, "p50_ms"), "bot_p50_ms": mean(bot, "p50_ms"),
        "errors": sum(w["errors"] + w["non_2xx"] for w in windows),
        "other_cpu_max_pct": max((w["cpu"]["other_pct"] for w in windows), default=0.0),
    }  # fmt: skip
    out["ratio"] = round(out["bot_rps"] / out["bare_rps"], 3) if out["bare_rps"] else None
    out["p99_vs_bare"] = round(out["bot_p99_ms"] / out["bare_p99_ms"], 2) if out["bare_p99_ms"] else None
    out["ratio_ok"] = bool(out["ratio"] is not None and out["ratio"] >= RATIO_TARGET)
    out["p99_ok"] = bool(out["p99_vs_bare"] is not None and out["p99_vs_bare"] <= P99_TARGET)
    # Each round on its own: bot window ÷ the bare window just before it.
    out["round_ratios"] = [round(b["rps"] / a["rps"], 3) for a, b in zip(bare, bot, strict=False) if a["rps"]]
    out["round_p99_vs_bare"] = [
        round(b["p99_ms"] / a["p99_ms"], 2) for a, b in zip(bare, bot, strict=False) if a["p99_ms"]
    ]
    for app, rows in (("bare", bare), ("bot", bot)):
        per = [r["cpu_ms_per_request"]["app"] for r in rows if "app" in r.get("cpu_ms_per_request", {})]
        if per:
            out[f"{app}_cpu_ms_per_request"] = round(statistics.fmean(per), 2)
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


def run(
    *, base_config: Path, service_url: str, duration: float, rounds: int, backup_mb: int, followed: int
) -> dict[str, Any]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    aws_env = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }  # fmt: skip
    bucket = "taisun-bench-worker"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="ap-northeast-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})  # fmt: skip

    github = FakeGitHub("taisun/taisun-v2", token=GITHUB_TOKEN)
    github.start()
    for i, tag in enumerate(["v1.0.0", "v1.1.0", "v1.2.2", "v1.2.3"]):
        github.add_commit(f"feat: change {i}")
        github.add_tag(tag)
    github.declare_workflow("cd.yml", inputs=["environment", "version", "rollback"])
    github.run_script = ["queued"] + ["in_progress"] * 100_000  # followed for as long as the run lasts

    slack = LocalSlack(token=BOT_TOKEN).start()
    slack.add_usergroup("sre-leads", {"U0BOB", "U0CAROL"})
    bare_slack = LocalSlack(token=BOT_TOKEN).start()
    work = base_config.parent
    config = write_config(
        work / "taisun-worker-bench.yml",
        base_config,
        service_url=service_url,
        followed=followed,
        bucket=bucket,
    )
    envs = _bench_envs(followed)
    log(f"worker: filling a ~{backup_mb} MB database to back up")
    backup_dsn, backup_db_mb, _ = make_db(backup_mb)
    db_url = fresh_db("postgresql", "worker-bench")
    embedded_db = fresh_db("postgresql", "worker-bench-embedded")
    # serve checks a backup request (are the AWS settings and the DSN there?) as it takes it: it shares
    # the worker's environment, as /etc/taisun/env is shared by the two units.
    shared_env = {**aws_env, "BACKUP_DATABASE_URL": backup_dsn}
    bot_env = {"TAISUN_JOBS": "worker", **shared_env}
    procs: list[Any] = []
    jobs = Jobs(db_url, envs)
    result: dict[str, Any] = {
        "db": "postgresql", "request": f"/taisun {PROD_DEPLOY}", "window_s": duration, "rounds": rounds,
        "worker_threads": WORKER_THREADS, "worker_nice": WORKER_NICE, "backup_db_mb": round(backup_db_mb),
        "followed_deploys": followed,
    }  # fmt: skip
    try:
        bare, bare_url = start_bare(name="worker-bare", slack_url=bare_slack.url)
        procs.append(bare)
        bot, bot_url = start_bot(
            name="worker-serve", db_url=db_url, config=config, slack_url=slack.url,
            github_token=GITHUB_TOKEN, github_url=github.url, extra_env=bot_env,
        )  # fmt: skip
        procs.append(bot)
        worker, _ = start_worker(
            name="worker-worker", db_url=db_url, config=config, slack_url=slack.url, threads=WORKER_THREADS,
            nice=WORKER_NICE, github_token=GITHUB_TOKEN, github_url=github.url,
            extra_env=shared_env,
        )  # fmt: skip
        procs.append(worker)
        # The reference, quiet phase only: `taisun serve` with its jobs embedded (the default), its own database.
        embedded, embedded_url = start_bot(
            name="worker-embedded", db_url=embedded_db, config=config, slack_url=slack.url,
            github_token=GITHUB_TOKEN, github_url=github.url, extra_env=shared_env,
        )  # fmt: skip
        procs.append(embedded)
        embedded_jobs = Jobs(embedded_db, envs)

        log("worker: warm-up (one window each, not counted)")
        _window(bare_url, None, duration=2, name="worker-bare-warmup", groups={})
        _window(bot_url, slack, duration=2, name="worker-bot-warmup", groups={})
        _window(embedded_url, slack, duration=2, name="worker-embedded-warmup", groups={})
        _wait("the worker prepares the warm-up's jobs", lambda: jobs.waiting() == 0, 600)
        _wait("the embedded bot prepares the warm-up's jobs", lambda: embedded_jobs.waiting() == 0, 600)

        windows: list[dict[str, Any]] = []
        apps = (
            ("bare", bare_url, None, jobs, {"app": bare.pid}),
            ("bot", bot_url, slack, jobs, {"app": bot.pid, "worker": worker.pid}),
            ("embedded", embedded_url, slack, embedded_jobs, {"app": embedded.pid}),
        )
        for r in range(rounds):
            for app, url, sl, js, groups in apps:
                log(f"worker A{r + 1}: {app} ({duration:g} s)")
                before = js.count()
                w = _window(url, sl, duration=duration, name=f"worker-A{r}-{app}", groups=groups)
                w.update(app=app, phase="quiet", round=r + 1)
                if app != "bare":
                    w["jobs_created"] = js.count() - before  # one per request: none was a replay
                    w["left_waiting"] = js.waiting()
                    w["caught_up_s"] = _wait("the jobs are prepared", lambda js=js: js.waiting() == 0, 900)
                windows.append(w)
        result["quiet"] = {"windows": windows, **_summary(windows)}
        embedded_jobs.dispose()
        embedded.stop(fast=True)
        procs.remove(embedded)

        log(f"worker B: {followed} deploys to follow and a backup, in the worker")
        for i, env in enumerate(envs):
            _slash(bot_url, f"deploy {env} v1.2.3", slack, i)
        result["follow_setup_s"] = _wait(
            f"{followed} deploys followed", lambda: jobs.following() == followed, 300
        )
        _slash(bot_url, "backup run", slack, 999)
        result["backup_setup_s"] = _wait(
            "the backup streams", lambda: jobs.backup()[0] == "running" and jobs.waiting() == 0, 120
        )
        backup_started = time.monotonic()
        windows = []
        for r in range(rounds):
            for app, url, sl, groups in (
                ("bare", bare_url, None, {"app": bare.pid, "worker": worker.pid}),
                ("bot", bot_url, slack, {"app": bot.pid, "worker": worker.pid}),
            ):
                _wait("the worker prepares the last window's requests", lambda: jobs.waiting() == 0, 900)
                log(f"worker B{r + 1}: {app} ({duration:g} s), backup {jobs.backup()[0]}")
                before = jobs.count()
                w = _window(url, sl, duration=duration, name=f"worker-B{r}-{app}", groups=groups)
                w.update(app=app, phase="background", round=r + 1)
                w["backup_running_at_end"] = jobs.backup()[0] == "running"
                w["followed_at_end"] = jobs.following()
                if app == "bot":
                    w["jobs_created"] = jobs.count() - before
                    w["left_waiting"] = jobs.waiting()
                windows.append(w)
        result["background"] = {"windows": windows, **_summary(windows)}
        state, progress = jobs.backup()
        if state == "running":
            _wait("the backup ends", lambda: jobs.backup()[0] != "running", 900)
            state, progress = jobs.backup()
        result["backup"] = {
            "state": state,
            "seconds_after_windows_began": round(time.monotonic() - backup_started, 1),
        }
        result["github_dispatches"] = len(github.dispatches)
    finally:
        jobs.dispose()
        for p in reversed(procs):
            p.stop(fast=True)
        slack.stop()
        bare_slack.stop()
        github.stop()
        moto.stop()
        drop_db(db_url)
        drop_db(embedded_db)
        pg_drop(backup_dsn)
    return result
