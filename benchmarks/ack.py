"""1. The ack path: signed slash commands at 16 connections, the bot vs a bare Bolt app.

Per database (SQLite, PostgreSQL), in one pass so the comparison is side by side:
  bare app (ack only)  →  /taisun help, /taisun status  →  /taisun deploy stg v1.2.3
  →  /taisun deploy production v1.2.3
Each deploy scenario gets a fresh database and bot (their job backlogs would otherwise
load the next scenario). The bot and the bare app run under gunicorn with the same
workers/threads. Requests rotate over 64 users and unique trigger ids.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks import loadgen
from benchmarks.common import (
    BOT_TOKEN,
    SIGNING_SECRET,
    WORK,
    CpuWatch,
    drop_db,
    engine_for,
    fresh_db,
    log,
    start_bare,
    start_bot,
)
from bot.slack import signing
from bot.slack.localslack import LocalSlack

USERS = [f"U0BENCH{i:03d}" for i in range(64)]
N_REQUESTS = 512  # distinct signed requests replayed round-robin

SCENARIOS = {
    "help": "help",
    "status": "status",
    "deploy_stg": "deploy stg v1.2.3",
    "deploy_prod": "deploy production v1.2.3",
    "deploy_prod_noworkers": "deploy production v1.2.3",
}
# Diagnostic only: the same request with the bot's job workers off (TAISUN_WORKERS=0), to
# separate what the ack path costs by itself from the load the jobs it creates add.
NO_WORKERS = {"TAISUN_WORKERS": "0"}


def requests_for(text: str, slack: LocalSlack | None) -> list[loadgen.Req]:
    ts = int(time.time())
    out = []
    for i in range(N_REQUESTS):
        user = USERS[i % len(USERS)]
        resp_url = slack.response_url(f"{user}-{i}") if slack else f"http://127.0.0.1:9/respond/{user}-{i}"
        body, ctype = signing.slash_command(
            text, user_id=user, user_name=user.lower(), channel_id="C0OPS", response_url=resp_url,
            trigger_id=f"bench-{ts}-{i}",
        )  # fmt: skip
        headers = signing.sign(SIGNING_SECRET, body, ts) | {"Content-Type": ctype}
        out.append(loadgen.Req("/slack/events", body, headers))
    return out


def _counts(db_url: str) -> dict[str, int]:
    from bot.core.store.models import AuditEvent, Job

    engine = engine_for(db_url)
    try:
        with engine.connect() as c:
            jobs = c.execute(select(func.count()).select_from(Job)).scalar_one()
            audit = dict(c.execute(select(AuditEvent.action, func.count()).group_by(AuditEvent.action)).all())
    finally:
        engine.dispose()
    return {"jobs": int(jobs), **{f"audit:{k}": int(v) for k, v in audit.items()}}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in sorted(set(before) | set(after))
        if after.get(k, 0) - before.get(k, 0)
    }


def _measure(
    url: str, reqs: list[loadgen.Req], *, duration: float, warmup: float, name: str
) -> dict[str, Any]:
    if warmup > 0:
        loadgen.run(url, reqs, duration=warmup, name=name + "-warmup")
    with CpuWatch() as cpu:
        res = loadgen.run(url, reqs, duration=duration, name=name)
    res["cpu"] = cpu.result
    return res


def _log_counts(log_path: Path) -> dict[str, int]:
    """Error lines and Bolt's "didn't call ack()" warnings (an ack slower than 3 s) in a bot's log."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    lower = [ln.lower() for ln in lines]
    return {
        "error_lines": sum(1 for ln in lower if '"level": "error"' in ln or '"level": "critical"' in ln),
        "ack_timeouts": sum(1 for ln in lines if "didn't call ack()" in ln),
    }


def run(
    db_kinds: list[str],
    *,
    service_url: str,
    config: Path,
    duration: float,
    warmup: float,
    diagnostic: bool = True,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bare_slack = LocalSlack(token=BOT_TOKEN).start()
    bare, bare_url = start_bare(name="ack-bare", slack_url=bare_slack.url)
    try:
        for kind in db_kinds:
            log(f"ack path on {kind}: bare Bolt app")
            base = _measure(
                bare_url, requests_for("help", None), duration=duration, warmup=warmup, name=f"bare-{kind}"
            )
            base.update(db=kind, scenario="bare bolt app (ack only)", ratio=1.0)
            rows.append(base)
            groups = [["help", "status"], ["deploy_stg"], ["deploy_prod"]]
            if diagnostic:
                groups.append(["deploy_prod_noworkers"])
            for group in groups:
                db_url = fresh_db(kind, f"ack-{kind}-{group[0]}")
                slack = LocalSlack(token=BOT_TOKEN).start()
                slack.add_usergroup("sre-leads", {"U0BOB", "U0CAROL"})
                name = f"ack-bot-{kind}-{group[0]}"
                extra = NO_WORKERS if group[0] == "deploy_prod_noworkers" else None
                bot, bot_url = start_bot(
                    name=name, db_url=db_url, config=config, slack_url=slack.url, extra_env=extra
                )
                try:
                    for sc in group:
                        log(f"ack path on {kind}: /taisun {SCENARIOS[sc]}")
                        reqs = requests_for(SCENARIOS[sc], slack)
                        if warmup > 0:
                            loadgen.run(bot_url, reqs, duration=warmup, name=f"{name}-{sc}-warmup")
                        before, responds0 = _counts(db_url), slack.count("respond")
                        with CpuWatch() as cpu:
                            res = loadgen.run(bot_url, reqs, duration=duration, name=f"{name}-{sc}")
                        res["cpu"] = cpu.result
                        after, responds1 = _counts(db_url), slack.count("respond")
                        res.update(db=kind, scenario=f"/taisun {SCENARIOS[sc]}")
                        if sc == "deploy_prod_noworkers":
                            res.update(
                                scenario=res["scenario"] + " [diagnostic: job workers off]", diagnostic=True
                            )
                        res["ratio"] = round(res["rps"] / base["rps"], 3) if base["rps"] else None
                        res["db_rows"] = _delta(before, after)
                        if sc == "status":
                            res["followups_delivered_during_run"] = responds1 - responds0
                        rows.append(res)
                    time.sleep(0.2)
                    rows[-1]["bot_log"] = _log_counts(WORK / "logs" / f"{name}.log")  # the whole group
                finally:
                    bot.stop(fast=True)
                    slack.stop()
                    drop_db(db_url)
    finally:
        bare.stop()
        bare_slack.stop()
    return rows
