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
from bot.core import deadline
from bot.core.audit import AuditChainer, audit_key, refusal_recorder
from bot.core.config import Config, Settings, load_config
from bot.core.jobs import JobRunner, JobService
from bot.core.metrics import Metrics
from bot.core.ops import Operation, register
from bot.core.people import People
from bot.core.policy import Directory, Policy
from bot.core.services import Services
from bot.core.store.db import ensure_migrated, make_engine, session_factory
from bot.deploys.operations import Deploy, Rollback
from bot.incidents.service import install as install_incidents
from bot.observability.service import Observability
from bot.operations.backup import Backup, Restore
from bot.operations.cache import CacheClear
from bot.operations.dbreset import DbConnectionReset
from bot.operations.restart import Restart
from bot.slack.app import create_app
from bot.slack.client import SlackError, group_fetcher, make_web_client
from bot.slack.home import Home
from bot.slack.message_sync import MessageSync
from bot.slack.notifier import Notifier
from bot.slack.render import render_job_message
from bot.slack.server import SlackAuthWatch, WsgiApp

# Every operation the bot runs as a durable job, one line each.
OPERATIONS: tuple[Operation, ...] = (
    Deploy(),
    Rollback(),
    Restart(),
    CacheClear(),
    DbConnectionReset(),
    Backup(),
    Restore(),
)


_registered = False


def register_operations() -> None:
    """Put every operation in the registry the job engine, the grammar and the runbooks read
    (once per process, like the import-time registration it replaces: the registry is the process's)."""
    global _registered
    if not _registered:
        for op in OPERATIONS:
            register(op)
        _registered = True


def install_capabilities(svc: Services) -> None:
    """Capabilities with message senders, periodic work or HTTP routes of their own."""
    install_incidents(svc)  # incidents and runbook runs (their messages, nudges, job polling)
    install_alerts(svc)  # POST /alerts/alertmanager and the alert-group messages


def _anchorer(svc: Services) -> Anchorer | None:
    """Writes the audit chain's head to S3 / Slack as audit.anchor says; None when it names neither."""

    def post(channel: str, text: str) -> str:
        return str(svc.slack.chat_postMessage(channel=channel, text=text)["ts"])

    anchor = svc.config.audit.anchor
    sinks = configured_sinks(anchor, post if svc.settings.slack_bot_token else None, svc.config.language)
    return Anchorer(svc.sessions.begin, sinks, timedelta(minutes=anchor.interval_minutes)) if sinks else None


def build_services(
    settings: Settings, config: Config | None = None, *, workers: int | None = None
) -> Services:
    """Everything the handlers and workers need. Starts nothing; call .start()."""
    register_operations()
    config = config or load_config(settings.config_path)
    engine = make_engine(settings.database_url)
    # SQLite takes its write lock at BEGIN; hot reads (lock checks, polls) must not queue for it.
    read_engine = (
        make_engine(settings.database_url, read_only=True) if engine.dialect.name == "sqlite" else engine
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
    # Writes made on a request's ack path take effect only while the answer can be on time.
    deadline.install(svc.sessions)
    svc.jobs = JobService(svc)
    svc.chainer = AuditChainer(
        svc.sessions.begin, key=audit_key(settings.taisun_audit_key), anchorer=_anchorer(svc)
    )
    svc.runner = JobRunner(
        svc,
        threads=workers if workers is not None else settings.taisun_workers,
        lease_seconds=settings.taisun_lease_seconds,
    )
    svc.notifier = Notifier(svc, slack, lambda job_id: render_job_message(svc, job_id))
    svc.messages = MessageSync(svc)

    def user_of(user_id: str) -> dict[str, Any] | None:
        return svc.slack.users_info(user=user_id, include_locale=True).get("user")

    svc.people = People(
        svc.sessions, svc.read_sessions, user_of,
        default=config.language, use_locale=config.use_user_locale, later=svc.later,
    )  # fmt: skip

    svc.observability = Observability(config)
    home = Home(svc)
    svc.home = home
    svc.notifier.changed_hooks.append(home.changed)
    svc.people.learned_hooks.append(home.relearned)
    return svc


def build_wsgi(settings: Any, *, socket_mode: bool = False, start_background: bool = True) -> WsgiApp:
    """Build services, the Bolt app and the WSGI router; start the bot's threads."""
    svc = build_services(settings)
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
