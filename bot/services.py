"""The bot's services, built once per process from settings and config, and passed explicitly."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import deadline
from bot.audit import AuditChainer, audit_key, refusal_recorder
from bot.backends.http import RecentChecks
from bot.config import Config, Settings, load_config
from bot.jobs import JobRunner, JobService
from bot.metrics import Metrics
from bot.ops.base import REGISTRY
from bot.policy import Directory, Policy
from bot.slack import Notifier, group_fetcher, make_web_client
from bot.store.db import make_engine, session_factory
from bot.store.models import Job

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    # Read-only sessions (on SQLite a second engine with deferred transactions).
    read_sessions: sessionmaker[Session]
    slack: WebClient
    policy: Policy
    metrics: Metrics
    jobs: JobService = field(init=False)
    runner: JobRunner = field(init=False)
    notifier: Notifier = field(init=False)
    chainer: AuditChainer = field(init=False)
    # Live /health + /version results people look at, shared for 2 s between those asking at once.
    recent_checks: RecentChecks = field(default_factory=RecentChecks)
    home: Any = field(init=False)
    people: Any = field(init=False)  # bot.people.People: each person's language and name
    sweep_hooks: list[Callable[[], None]] = field(default_factory=list)
    # Short post-ack work (live status checks, follow-up replies); never Bolt's listener pool.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="taisun-bg")
    )
    # Extension slots filled by feature modules (incidents, alerts...).
    extras: dict[str, Any] = field(default_factory=dict)

    # Bolt's listener pool (set by create_app); counted so tests and the shell can wait for it.
    listeners: Any = None
    _pending: int = 0
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)

    def later(self, fn: Callable[[], Any]) -> None:
        """Run short work off the ack path, counted so tests and the shell can wait for it."""

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("background task failed")
            finally:
                with self._pending_lock:
                    self._pending -= 1

        with self._pending_lock:
            self._pending += 1
        self.background.submit(run)

    @property
    def pending_background(self) -> int:
        """Post-ack work still in flight: background tasks and listeners that go on after ack()."""
        with self._pending_lock:
            pending = self._pending
        return pending + (self.listeners.inflight if self.listeners is not None else 0)

    def start(self) -> None:
        """Start the background threads (audit chainer, job workers, message sender)."""
        self.chainer.start()
        self.notifier.start()
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.chainer.stop()
        self.notifier.flush(5)
        self.notifier.stop()
        sync = self.extras.get("message_sync")
        if sync is not None:  # incident and alert messages
            sync.flush(5)
            sync.stop()

    def flush_messages(self, timeout: float = 0.2) -> bool:
        """True when no Slack message is waiting to be sent (job cards, incidents, alerts)."""
        ok = self.notifier.flush(timeout)
        sync = self.extras.get("message_sync")
        return (sync.flush(timeout) if sync is not None else True) and ok

    def lang_for(self, user_id: str) -> str:
        """The language to answer this person in (never waits on Slack: unknown → workspace language)."""
        return str(self.people.language(user_id))

    def user_name(self, user_id: str) -> str:
        """A person's Slack display name when known (read in the background), else their user ID."""
        return str(self.people.name(user_id)) or user_id

    def describe(self, job: Job, lang: str | None = None) -> str:
        op = REGISTRY.get(job.operation)
        return op.describe(job, lang or self.config.language) if op else job.operation


def _anchorer(svc: Services) -> Any:
    """Writes the audit chain's head to S3 / Slack as audit.anchor says; None when it names neither."""
    from datetime import timedelta

    from bot.anchors import Anchorer, configured_sinks

    def post(channel: str, text: str) -> str:
        return str(svc.slack.chat_postMessage(channel=channel, text=text)["ts"])

    anchor = svc.config.audit.anchor
    sinks = configured_sinks(anchor, post if svc.settings.slack_bot_token else None, svc.config.language)
    return Anchorer(svc.sessions.begin, sinks, timedelta(minutes=anchor.interval_minutes)) if sinks else None


def build_services(
    settings: Settings, config: Config | None = None, *, workers: int | None = None
) -> Services:
    """Everything the handlers and workers need. Starts nothing; call .start()."""
    import bot.ops  # noqa: F401  (registers the operations)

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
    from bot.render import render_job_message

    svc.notifier = Notifier(svc, slack, lambda job_id: render_job_message(svc, job_id))
    from bot.home import Home
    from bot.people import People

    def user_of(user_id: str) -> dict[str, Any] | None:
        return svc.slack.users_info(user=user_id, include_locale=True).get("user")

    svc.people = People(
        svc.sessions, svc.read_sessions, user_of,
        default=config.language, use_locale=config.use_user_locale, later=svc.later,
    )  # fmt: skip

    svc.home = Home(svc)
    svc.notifier.changed_hooks.append(svc.home.changed)
    svc.people.learned_hooks.append(svc.home.relearned)
    return svc
