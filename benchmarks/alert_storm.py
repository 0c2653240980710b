"""3. Alert storm: Alertmanager v4 webhooks, 100 alerts a post over 20 alertnames, as fast as the bot takes them.

Alertmanager groups by alertname and sends groups in parallel, so each post carries
100 alerts of one alertname and 8 posts are in flight at once. Every alert has its
own fingerprint. Measured: alerts stored per second (first post sent → last answer),
webhook latency, the Slack messages the storm became (chat.postMessage and
chat.update calls at the local Slack, once every group's newest state was sent), and
alerts lost (fingerprints sent with a 200 answer but missing from the database).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from benchmarks.common import (
    ALERT_TOKEN,
    BOT_TOKEN,
    CpuWatch,
    drop_db,
    engine_for,
    fresh_db,
    log,
    pct,
    start_bot,
)
from bot.slack.localslack import LocalSlack

ALERTNAMES = [
    "HighLatencyCritical", "HighLatencyWarning", "HighErrorRateCritical", "HighErrorRateWarning",
    "HighCPU", "HighMemory", "DiskFillingUp", "DiskAlmostFull", "PodCrashLooping", "PodNotReady",
    "DBConnectionsHigh", "DBReplicationLag", "RedisMemoryHigh", "RedisDown", "QueueBacklog",
    "CertificateExpiring", "5xxSpike", "SlowQueries", "NodeNotReady", "TargetDown",
]  # fmt: skip
PER_POST = 100
SENDERS = 8


def payloads(total: int) -> tuple[list[bytes], list[str]]:
    posts, fingerprints = [], []
    starts = datetime.now(UTC) - timedelta(minutes=5)
    for p in range(total // PER_POST):
        name = ALERTNAMES[p % len(ALERTNAMES)]
        alerts = []
        for k in range(PER_POST):
            n = p * PER_POST + k
            fp = f"{n:016x}"
            fingerprints.append(fp)
            alerts.append({
                "status": "firing",
                "labels": {"alertname": name, "instance": f"app-{n % 250:03d}:9100", "job": "taisun",
                           "severity": "critical" if name.endswith("Critical") else "warning",
                           "environment": "production", "shard": str(n)},
                "annotations": {"summary": f"{name} on app-{n % 250:03d}", "description": "benchmark storm"},
                "startsAt": (starts + timedelta(milliseconds=n)).isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus.local/graph?g0.expr={name}",
                "fingerprint": fp,
            })  # fmt: skip
        body = {
            "version": "4", "groupKey": f'{{}}:{{alertname="{name}"}}', "truncatedAlerts": 0, "status": "firing",
            "receiver": "taisun", "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name},
            "commonAnnotations": {}, "externalURL": "http://alertmanager.local", "alerts": alerts,
        }  # fmt: skip
        posts.append(json.dumps(body).encode())
    return posts, fingerprints


def run_one_db(kind: str, *, total: int, config: Path) -> dict[str, Any]:
    from bot.core.store.models import Alert, AlertGroup

    slack = LocalSlack(token=BOT_TOKEN).start()
    db_url = fresh_db(kind, f"storm-{kind}")
    bot, url = start_bot(name=f"storm-{kind}", db_url=db_url, config=config, slack_url=slack.url)
    posts, fingerprints = payloads(total)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    failed_posts: list[int] = []
    lock = threading.Lock()
    local = threading.local()

    def send(i: int) -> None:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=url, timeout=60)
        t0 = time.perf_counter()
        try:
            r = local.c.post(
                "/alerts/alertmanager", content=posts[i],
                headers={"Authorization": f"Bearer {ALERT_TOKEN}", "Content-Type": "application/json"},
            )  # fmt: skip
            code = r.status_code
        except httpx.HTTPError:
            code = 0
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)
            statuses[code] = statuses.get(code, 0) + 1
            if code != 200:
                failed_posts.append(i)

    engine = engine_for(db_url)
    try:
        started = time.perf_counter()
        with CpuWatch() as cpu, ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(send, range(len(posts))))
        wall = time.perf_counter() - started
        # Slack catches up: wait (bounded) until every group's newest version was rendered.
        settle_start = time.perf_counter()
        settled = False
        while time.perf_counter() - settle_start < 60:
            with engine.connect() as c:
                behind = c.execute(
                    select(func.count())
                    .select_from(AlertGroup)
                    .where(AlertGroup.version > AlertGroup.sent_version)
                ).scalar_one()
                groups = c.execute(select(func.count()).select_from(AlertGroup)).scalar_one()
            if groups and not behind:
                settled = True
                break
            time.sleep(0.2)
        settle = time.perf_counter() - settle_start
        with engine.connect() as c:
            stored = set(c.execute(select(Alert.fingerprint)).scalars())
            groups = c.execute(select(func.count()).select_from(AlertGroup)).scalar_one()
        accepted = {
            fp
            for i, _ in enumerate(posts)
            if i not in failed_posts
            for fp in fingerprints[i * PER_POST : (i + 1) * PER_POST]
        }
        channel_calls = [(m, p) for m, p in slack.calls if m in ("chat.postMessage", "chat.update")]
    finally:
        engine.dispose()
        bot.stop(fast=True)
        slack.stop()
        drop_db(db_url)
    return {
        "db": kind,
        "alerts_sent": len(fingerprints),
        "posts": len(posts),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(wall, 2),
        "alerts_per_s": round(len(fingerprints) / wall, 1) if wall else 0.0,
        "webhook_p50_ms": round(pct(lat, 50) * 1000, 1),
        "webhook_p99_ms": round(pct(lat, 99) * 1000, 1),
        "webhook_max_ms": round(max(lat, default=0) * 1000, 1),
        "alerts_stored": len(stored),
        "alerts_lost": len(accepted - stored),
        "alert_groups": int(groups),
        "slack_post_message": sum(1 for m, _ in channel_calls if m == "chat.postMessage"),
        "slack_update": sum(1 for m, _ in channel_calls if m == "chat.update"),
        "slack_settled": settled,
        "slack_settle_s": round(settle, 1),
        "cpu": cpu.result,
    }


def run(db_kinds: list[str], *, total: int, config: Path) -> list[dict[str, Any]]:
    rows = []
    for kind in db_kinds:
        log(f"alert storm on {kind}: {total} alerts")
        rows.append(run_one_db(kind, total=total, config=config))
    return rows
