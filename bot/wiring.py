"""The composition root: builds the Services, registers the operations, installs the capabilities
and puts the Slack surface and the listeners on top. The only module that knows every room.

A new operation is its module plus one line in OPERATIONS; a new capability is its package
plus one line in install_capabilities().
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import handlers
from bot.alerts.service import install as install_alerts
from bot.audit.anchors import Anchorer, configured_sinks
from bot.backends.wake import CHANGES, JOBS, NoSignal, PostgresSignal, RedisSignal, WakeSignal
from bot.core import deadline
from bot.core.audit import AuditChainer, audit_key, refusal_recorder
from bot.core.commands import register_command
from bot.core.config import Config, Settings, load_config
from bot.core.jobs import JobRunner, JobService
from bot.core.metrics import Metrics
from bot.core.ops import Operation, register
from bot.core.people import People
from bot.core.policy import Directory, Policy
from bot.core.secrets import load_secrets
from bot.core.services import Services
from bot.core.store.db import ensure_migrated, make_engine, session_factory
from bot.deploys import webhook as deploy_webhook
from bot.deploys.operations import Deploy, Rollback
from bot.deploys.timeline import DEPLOYS_COMMAND
from bot.incidents.service import install as install_incidents
from bot.observability.service import Observability
from bot.operations.backup import Backup, Restore
from bot.operations.cache import CacheClear
from bot.operations.dbreset import DbConnectionReset
from bot.operations.pitr import Drill, PitrBackup
from bot.operations.pitr import install as install_backup_schedule
from bot.operations.restart import Restart
from bot.security.scan import SecurityScan
from bot.security.service import install as install_security
from bot.slack.app import create_app
from bot.slack.client import SlackError, group_fetcher, make_web_client
from bot.slack.home import Home
from bot.slack.outbox import SlackOutbox
from bot.slack.render import job_syncer
from bot.slack.server import SlackAuthWatch, WorkerApp, WsgiApp

# Every operation the bot runs as a durable job, one line each.
OPERATIONS: tuple[Operation, ...] = (
    Deploy(),
    Rollback(),
    Restart(),
    CacheClear(),
    DbConnectionReset(),
    Backup(),
    Restore(),
    PitrBackup(),
    Drill(),
    SecurityScan(),
)


_registered = False


def register_operations() -> None:
    """Put every operation in the registry the job engine, the grammar and the runbooks read
    (once per process, like the import-time registration it replaces: the registry is the process's)."""
    global _registered
    if not _registered:
        for op in OPERATIONS:
            register(op)
        register_command(DEPLOYS_COMMAND)  # the deploy timeline (no operation: it only reads)
        _registered = True


def install_capabilities(svc: Services) -> None:
    """Capabilities with message senders, periodic work or HTTP routes of their own."""
    install_incidents(svc)  # incidents and runbook runs (their messages, nudges, job polling)
    install_alerts(svc)  # POST /alerts/alertmanager and the alert-group messages
    install_backup_schedule(svc)  # daily full, hourly incremental, weekly drill; the RPO/RTO status
    deploy_webhook.install(svc)  # POST /github/webhook, the poller: deploys started on GitHub
    install_security(svc)  # the periodic security tasks, their messages and the access review


def _anchorer(svc: Services) -> Anchorer | None:
    """Writes the audit chain's head to S3 / Slack as audit.anchor says; None when it names neither."""

    def post(channel: str, text: str) -> str:
        return str(svc.slack.chat_postMessage(channel=channel, text=text)["ts"])

    anchor = svc.config.audit.anchor
    sinks = configured_sinks(anchor, post if svc.settings.slack_bot_token else None, svc.config.language)
    return Anchorer(svc.sessions.begin, sinks, timedelta(minutes=anchor.interval_minutes)) if sinks else None


def wake_signal(settings: Settings, engine: Any, channel: str = JOBS) -> WakeSignal:
    """How `taisun serve` wakes `taisun worker` processes (and how a worker tells serve a job changed):
    NOTIFY on PostgreSQL, else Redis pub/sub when REDIS_URL is set, else nothing (the workers poll
    every second; Home tabs refresh on the changes serve makes itself)."""
    if engine.dialect.name == "postgresql":
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresSignal(dsn, channel)
    if settings.redis_url:
        return RedisSignal(settings.redis_url, channel)
    return NoSignal()


def build_services(
    settings: Settings, config: Config | None = None, *, workers: int | None = None, role: str = "embedded"
) -> Services:
    """Everything the handlers and workers need. Starts nothing; call .start().

    role: "embedded" (one process runs everything: `taisun serve` by default, the shell, the CLI with
    workers=0), "serve" (`taisun serve` with TAISUN_JOBS=worker: no job threads, wakes the workers) or
    "worker" (`taisun worker`: job threads woken by serve's signal).
    """
    register_operations()
    load_secrets(settings)  # *_SECRET_ID: the bot's own secrets from AWS Secrets Manager, once
    config = config or load_config(settings.config_path)
    engine = make_engine(
        settings.database_url,
        connections=settings.taisun_db_connections,
        name="taisun" if role == "embedded" else f"taisun-{role}",
    )
    # SQLite takes its write lock at BEGIN; hot reads (lock checks, polls) must not queue for it.
    # PostgreSQL reads in autocommit: under READ COMMITTED each statement has its own snapshot anyway,
    # and a read then costs one round trip, not BEGIN, the query and ROLLBACK.
    read_engine = (
        make_engine(settings.database_url, read_only=True)
        if engine.dialect.name == "sqlite"
        else engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    slack = make_web_client(settings)
    sessions = session_factory(engine)
    svc = Services(
        settings=settings,
        config=config,
        engine=engine,
        sessions=sessions,
        read_sessions=session_factory(read_engine),
        slack=slack,
        slack_error=SlackError,
        policy=Policy(
            config, Directory(group_fetcher(slack)), record=refusal_recorder(sessions.begin, config.language)
        ),
        metrics=Metrics(),
    )
    if engine.dialect.name == "postgresql":
        svc.on_stop.append(svc.metrics.watch_pool(engine, settings.taisun_db_connections))
    # Writes made on a request's ack path take effect only while the answer can be on time.
    deadline.install(svc.sessions)
    svc.jobs = JobService(svc)
    svc.chain_here = role != "serve"
    svc.chainer = AuditChainer(
        svc.sessions.begin, key=audit_key(settings.taisun_audit_key), anchorer=_anchorer(svc)
    )
    threads = workers if workers is not None else settings.taisun_workers
    svc.runner = JobRunner(
        svc,
        threads=0 if role == "serve" else threads,
        lease_seconds=settings.taisun_lease_seconds,
        signal=wake_signal(settings, engine) if role in ("serve", "worker") else None,
        housekeeping=role == "serve",
        idle_policy=role == "worker" and settings.taisun_worker_idle_policy,
    )
    svc.outbox = SlackOutbox(svc)
    svc.outbox.register(job_syncer(svc))

    def user_of(user_id: str) -> dict[str, Any] | None:
        return svc.slack.users_info(user=user_id, include_locale=True).get("user")

    svc.people = People(
        svc.sessions, svc.read_sessions, user_of,
        default=config.language, use_locale=config.use_user_locale, later=svc.later,
    )  # fmt: skip

    svc.observability = Observability(config)
    home = Home(svc)
    svc.home = home
    svc.outbox.job_hooks.append(home.changed)
    svc.people.learned_hooks.append(home.relearned)
    if role in ("serve", "worker"):
        # People open Home in serve; jobs change in the worker: it tells serve, which redraws their tabs.
        changes = wake_signal(settings, engine, CHANGES)
        if role == "worker":
            svc.outbox.job_hooks.append(changes.send)
        else:
            svc.on_start.append(lambda: changes.listen(home.changed))
        svc.on_stop.append(changes.stop)
    return svc


def build_wsgi(settings: Any, *, socket_mode: bool = False, start_background: bool = True) -> WsgiApp:
    """Build services, the Bolt app and the WSGI router; start the bot's threads.

    With TAISUN_JOBS=worker this process runs no job: `taisun worker` does (build_worker)."""
    svc = build_services(settings, role="serve" if settings.taisun_jobs == "worker" else "embedded")
    ensure_migrated(svc.engine)
    install_capabilities(svc)
    bolt = create_app(settings, svc, handlers.register_listeners)
    watch = SlackAuthWatch(svc)
    wsgi = WsgiApp(None if socket_mode else bolt, svc, watch)
    wsgi.bolt_app = bolt  # type: ignore[attr-defined]
    if start_background:
        svc.start()
        watch.start()
    return wsgi


def build_worker(settings: Settings, *, start_background: bool = True) -> WorkerApp:
    """`taisun worker`: the job threads with everything a job's changes need (the job cards, the
    capabilities' messages and sweeps, the audit chainer), no Bolt app; its HTTP side is /health and
    /metrics. Jobs requested in `taisun serve` wake it through wake_signal()."""
    svc = build_services(settings, role="worker")
    ensure_migrated(svc.engine)
    install_capabilities(svc)
    svc.http_routes.clear()  # the alert webhook is serve's: a worker answers /health and /metrics only
    watch = SlackAuthWatch(svc)
    app = WorkerApp(svc, watch)
    if start_background:
        svc.start()
        watch.start()
    return app
