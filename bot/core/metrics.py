"""Prometheus metrics. Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR aggregates them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from bot.core.store.db import pool_counts

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.core.store.models import Job

COMMANDS = Counter(
    "taisun_commands_total", "Slash commands by subcommand and outcome", ["command", "outcome"]
)
ACK_SECONDS = Histogram(
    "taisun_ack_seconds",
    "Time from receiving a Slack request to acking it",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5),
)
JOBS = Counter("taisun_jobs_finished_total", "Jobs that reached a final state", ["operation", "outcome"])
JOB_SECONDS = Histogram(
    "taisun_job_duration_seconds",
    "Job run time by operation and outcome",
    ["operation", "outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
APPROVAL_WAIT = Histogram(
    "taisun_approval_wait_seconds",
    "From request to approval",
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600),
)
ALERTS = Counter("taisun_alerts_received_total", "Alertmanager alerts received", ["status"])
SLACK_ERRORS = Counter(
    "taisun_slack_api_errors_total", "Slack Web API calls that failed", ["method", "error"]
)
OPEN_INCIDENTS = Gauge(
    "taisun_open_incidents", "Incidents declared and not resolved", multiprocess_mode="max"
)
SLACK_RETRIES = Counter(
    "taisun_slack_api_retries_total", "Slack Web API retries (rate limits, 5xx)", ["reason"]
)
DUPLICATES = Counter(
    "taisun_duplicate_deliveries_total",
    "Slack deliveries answered quietly because the same request was already taken "
    "(Slack retries, Socket Mode redelivery, another replica)",
    ["kind"],
)

# --- RPO/RTO (#17): set from the sources of truth (pgBackRest, pg_stat_archiver, the jobs table) ---
BACKUP_LAST_SUCCESS = Gauge(
    "taisun_backup_last_success_timestamp_seconds",
    "When the newest backup of each kind finished (full, diff, incr, logical) or WAL was last archived (wal)",
    ["kind"],
    multiprocess_mode="max",
)
BACKUP_RPO = Gauge(
    "taisun_backup_rpo_seconds",
    "Data the team would lose right now: seconds since the newest point a restore can reach",
    multiprocess_mode="livemostrecent",
)
DRILL_SECONDS = Gauge(
    "taisun_restore_drill_duration_seconds",
    "How long the newest restore drill took from start to an open, checked database",
    multiprocess_mode="mostrecent",
)
DRILL_SUCCESS = Gauge(
    "taisun_restore_drill_success", "1 when the newest restore drill passed, 0 when it failed",
    multiprocess_mode="mostrecent",
)  # fmt: skip
GITHUB_WEBHOOKS = Counter(
    "taisun_github_webhooks_total",
    "GitHub webhook deliveries by event and what became of them "
    "(recorded, known, duplicate, ignored, unattributed, pong, unauthorized, malformed, error)",
    ["event", "result"],
)
GITHUB_POLLS = Counter(
    "taisun_github_polls_total",
    "Polls of an environment's deploy workflow runs: changed, not_modified (a 304, free) or error",
    ["result"],
)
OUTSIDE_DEPLOYS = Counter(
    "taisun_outside_deploys_total",
    "Deploys started outside the bot (push, tag, workflow_dispatch, deployment) that joined the timeline",
    ["origin"],
)

DB_CONNECTIONS = Gauge(
    "taisun_db_connections",
    "Connections of the bot's database pools: open (in the pool or lent out) and in_use (lent out now)",
    ["state"],
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_LIMIT = Gauge(
    "taisun_db_connections_limit",
    "The most connections the bot's database pools may open (TAISUN_DB_CONNECTIONS per process)",
    multiprocess_mode="livesum",
)


class Metrics:
    """The bot's hooks into the metrics above."""

    def command(self, name: str, outcome: str) -> None:
        COMMANDS.labels(name, outcome).inc()

    def ack(self, kind: str, seconds: float) -> None:
        ACK_SECONDS.labels(kind).observe(seconds)

    def job_finished(self, job: Job, state: str) -> None:
        JOBS.labels(job.operation, state).inc()
        if job.started_at and job.finished_at:
            JOB_SECONDS.labels(job.operation, state).observe(
                (job.finished_at - job.started_at).total_seconds()
            )

    def duplicate(self, kind: str) -> None:
        DUPLICATES.labels(kind).inc()

    def approved(self, wait_seconds: float) -> None:
        APPROVAL_WAIT.observe(wait_seconds)

    def watch_pool(self, engine: Engine, limit: int) -> Callable[[], None]:
        """Count a PostgreSQL pool's connections (open, lent out) against its limit in /metrics.

        Sampled every POOL_SAMPLE_SECONDS and at each scrape, not counted on every checkout: an event
        hook there cost ~15 µs a checkout, several per ack. Returns what stops counting this pool."""
        with _pools_lock:
            _pools.append((engine, limit))
            global _sampler
            if _sampler is None or not _sampler.is_alive():  # one per process (gunicorn forks before this)
                _sampler = threading.Thread(target=_sample_forever, name="taisun-pool-gauge", daemon=True)
                _sampler.start()
        sample_pools()

        def unwatch() -> None:
            with _pools_lock:
                if (engine, limit) in _pools:
                    _pools.remove((engine, limit))
            sample_pools()

        return unwatch


POOL_SAMPLE_SECONDS = 5.0
_pools: list[tuple[Engine, int]] = []
_pools_lock = threading.Lock()
_sampler: threading.Thread | None = None


def sample_pools() -> None:
    """Set this process's pool gauges from its pools as they are now."""
    in_use = opened = limit = 0
    with _pools_lock:
        watched = list(_pools)
    for engine, most in watched:
        lent, open_now = pool_counts(engine)
        in_use, opened, limit = in_use + lent, opened + open_now, limit + most
    DB_CONNECTIONS.labels("in_use").set(in_use)
    DB_CONNECTIONS.labels("open").set(opened)
    DB_CONNECTIONS_LIMIT.set(limit)


def _sample_forever() -> None:
    while True:
        time.sleep(POOL_SAMPLE_SECONDS)
        try:
            sample_pools()
        except Exception:  # a gauge is never worth a dead thread
            logging.getLogger(__name__).debug("sampling the pools failed", exc_info=True)


def render() -> tuple[bytes, str]:
    """The /metrics body: this process, or every gunicorn worker when multiprocess mode is on."""
    sample_pools()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
