"""5. Audit queries over a 1,000,000-row log: `/taisun audit production 20` and `taisun audit verify`.

A valid hash chain is computed once in Python with bot.audit.compute_hash (the bot's
own canonical form), then bulk-loaded: COPY on PostgreSQL, executemany on SQLite (in
the exact storage format SQLAlchemy uses there), and audit_head is set to the last row,
so `taisun audit verify` must find the chain intact. Then, per database:
  - the served bot answers 100 signed `/taisun audit production 20` one after another;
  - `taisun audit verify --json` runs as a CLI process; rows/s = rows / its wall time.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psycopg
from sqlalchemy import make_url

from benchmarks.common import (
    BOT_TOKEN,
    PY,
    ROOT,
    SIGNING_SECRET,
    CpuWatch,
    base_env,
    drop_db,
    fresh_db,
    log,
    pct,
    start_bot,
)  # fmt: skip
from bot.core.audit import GENESIS, compute_hash
from bot.core.config import EXAMPLE_CONFIG
from bot.slack import signing
from bot.slack.localslack import LocalSlack

ENVS = ["production", "staging", "development"]
ACTIONS = [
    "deploy.requested", "deploy.awaiting_approval", "deploy.approved", "deploy.started", "deploy.succeeded",
    "rollback.requested", "restart.requested", "cache-clear.requested", "lock.acquired", "lock.released",
]  # fmt: skip
ACTORS = [("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0CAROL", "carol"), ("taisun", "TAISUN")]
COLUMNS = "seq, ts, actor_id, actor_name, action, environment, channel, params, outcome, detail, job_id, prev_hash, hash"


def make_chain(n: int) -> tuple[list[tuple[Any, ...]], str]:
    """n audit rows as tuples (COLUMNS order, ts as an aware datetime, params as a dict) and the last hash."""
    rows: list[tuple[Any, ...]] = []
    prev = GENESIS
    base = datetime.now(UTC) - timedelta(days=400)
    job = str(uuid.uuid4())
    for seq in range(1, n + 1):
        if seq % 5 == 1:
            job = str(uuid.UUID(int=seq * 2654435761 % (1 << 128)))
        actor_id, actor_name = ACTORS[seq % len(ACTORS)]
        ev = SimpleNamespace(
            seq=seq, ts=base + timedelta(milliseconds=seq * 31), actor_id=actor_id, actor_name=actor_name,
            action=ACTIONS[seq % len(ACTIONS)], environment=ENVS[seq % len(ENVS)], channel="C0OPS",
            params={"version": f"v1.{seq % 40}.{seq % 7}", "reason": "" if seq % 3 else "scheduled release"},
            outcome="ok", detail="" if seq % 11 else "verified: healthy", job_id=job, prev_hash=prev,
        )  # fmt: skip
        ev.hash = compute_hash(ev)  # type: ignore[arg-type]
        rows.append((ev.seq, ev.ts, ev.actor_id, ev.actor_name, ev.action, ev.environment, ev.channel, ev.params,
                     ev.outcome, ev.detail, ev.job_id, ev.prev_hash, ev.hash))  # fmt: skip
        prev = ev.hash
    return rows, prev


def load_sqlite(url: str, rows: list[tuple[Any, ...]], last: str) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(make_url(url).database)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.executemany(
                f"INSERT INTO audit_events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 (constants)
                (
                    (
                        r[0],
                        r[1].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                        *r[2:7],
                        json.dumps(r[7]),
                        *r[8:],
                    )
                    for r in rows
                ),
            )
            conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (len(rows), last))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


def load_pg(url: str, rows: list[tuple[Any, ...]], last: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY audit_events ({COLUMNS}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((*r[:7], json.dumps(r[7]), *r[8:]))
        conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (len(rows), last))
        conn.commit()
        conn.execute("ANALYZE audit_events")
        conn.commit()
    return time.perf_counter() - started


def _shape(reply: dict[str, Any]) -> tuple[int, int]:
    """(audit entries shown, longest section text) of an audit reply."""
    texts = [
        str((b.get("text") or {}).get("text", ""))
        for b in reply.get("blocks", [])
        if b.get("type") == "section"
    ]
    entries = len(texts[1].splitlines()) if len(texts) > 1 else 0
    return entries, max((len(t) for t in texts), default=0)


def query_latency(db_url: str, config: Path, n: int, kind: str) -> dict[str, Any]:
    slack = LocalSlack(token=BOT_TOKEN).start()
    bot, url = start_bot(name=f"audit-{kind}", db_url=db_url, config=config, slack_url=slack.url)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    shown = longest20 = shown100 = longest100 = 0
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(n + 5):
                body, ctype = signing.slash_command(
                    "audit production 20", user_id="U0ALICE", user_name="alice", channel_id="C0OPS",
                    response_url=slack.response_url(f"U0ALICE-{i}"),
                )  # fmt: skip
                headers = signing.sign(SIGNING_SECRET, body) | {"Content-Type": ctype}
                t0 = time.perf_counter()
                r = c.post("/slack/events", content=body, headers=headers)
                dt = time.perf_counter() - t0
                if i < 5:
                    continue  # warm-up: first requests per worker process
                lat.append(dt)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    shown, longest20 = _shape(r.json())
            # One more with the largest n the command accepts: Slack refuses a section over 3,000 characters.
            body, ctype = signing.slash_command(
                "audit production 100", user_id="U0ALICE", user_name="alice", channel_id="C0OPS",
                response_url=slack.response_url("U0ALICE-100"),
            )  # fmt: skip
            r = c.post(
                "/slack/events",
                content=body,
                headers=signing.sign(SIGNING_SECRET, body) | {"Content-Type": ctype},
            )
            shown100, longest100 = _shape(r.json()) if r.status_code == 200 else (0, 0)
    finally:
        bot.stop(fast=True)
        slack.stop()
    return {
        "requests": len(lat),
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": round(pct(lat, 50) * 1000, 1),
        "p99_ms": round(pct(lat, 99) * 1000, 1),
        "max_ms": round(max(lat, default=0) * 1000, 1),
        "entries_shown": shown,
        "longest_section_chars": longest20,
        "n100_entries_shown": shown100,
        "n100_longest_section_chars": longest100,
    }


def verify(db_url: str) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [PY, "-m", "bot", "audit", "verify", "--json"], cwd=ROOT,
        env=base_env(DATABASE_URL=db_url, TAISUN_CONFIG=str(EXAMPLE_CONFIG)),  # only the shell falls back to it
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    wall = time.perf_counter() - started
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = {"ok": False, "rows": 0, "problems": [proc.stderr[-500:]]}
    return {
        "seconds": round(wall, 1),
        "rows": report.get("rows", 0),
        "ok": bool(report.get("ok")) and proc.returncode == 0,
        "problems": (report.get("problems") or [])[:3],
        "rows_per_s": round(report.get("rows", 0) / wall) if wall else 0,
    }


def run(db_kinds: list[str], *, rows_n: int, queries: int, config: Path) -> list[dict[str, Any]]:
    log(f"audit: computing a {rows_n:,}-row hash chain with bot.audit.compute_hash")
    t = time.perf_counter()
    rows, last = make_chain(rows_n)
    chain_s = time.perf_counter() - t
    out = []
    for kind in db_kinds:
        db_url = fresh_db(kind, f"audit-{kind}")
        try:
            log(f"audit on {kind}: bulk load")
            load_s = (load_sqlite if kind == "sqlite" else load_pg)(db_url, rows, last)
            log(f"audit on {kind}: {queries} × /taisun audit production 20")
            q = query_latency(db_url, config, queries, kind)
            log(f"audit on {kind}: taisun audit verify")
            with CpuWatch() as cpu:
                v = verify(db_url)
            v["cpu"] = cpu.result
        finally:
            drop_db(db_url)
        out.append({
            "db": kind, "rows": rows_n, "chain_compute_s": round(chain_s, 1), "load_s": round(load_s, 1),
            "audit_query": q, "verify": v,
        })  # fmt: skip
    return out
