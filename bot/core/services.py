"""The bot's services: one container, built once per process by the composition root
(bot/wiring.py) and passed explicitly.

The container lives in the core, so it names what lives above the core only through the
narrow interfaces below: the Slack surface implements them, the core and the capabilities
call them ("job X changed", "subject inc:3 changed") without importing the surface.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.backends.http import RecentChecks
from bot.core.audit import AuditChainer
from bot.core.config import Config, Settings
from bot.core.jobs import JobRunner, JobService
from bot.core.metrics import Metrics
from bot.core.ops import REGISTRY
from bot.core.outbox import Syncer
from bot.core.people import People
from bot.core.policy import Policy
from bot.core.states import JobState
from bot.core.store.models import Job

if TYPE_CHECKING:  # built by the composition root; named here in annotations only
    from bot.observability.service import Observability

log = logging.getLogger(__name__)

# A WSGI handler a capability serves (POST /alerts/alertmanager).
WsgiRoute = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Clock:
    """The time work on a schedule goes by (a deploy's watch: measurement n is due at its start plus
    n intervals, and Prometheus is asked about that instant). Tests move it instead of sleeping."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class MessageOutbox(Protocol):
    """The one outbox every Slack message goes through (bot.slack.outbox.SlackOutbox): told which
    subject changed ("job:<id>", "inc:3", "run:<id>", "alert:7"), it renders and sends it later,
    off the ack path. The owner of a kind of subject registers its Syncer (bot.core.outbox)."""

    syncers: dict[str, Syncer]
    # Called whenever a job changed (the App Home views, a terminal's progress line).
    job_hooks: list[Callable[[], None]]

    def register(self, syncer: Syncer) -> None: ...
    def add_ticker(self, fn: Callable[[], bool]) -> None: ...
    def mark(self, *keys: str) -> None: ...
    def job_changed(self, job_id: str) -> None: ...
    def tick_soon(self) -> None: ...
    def pending_subjects(self, older_than_seconds: float = 5.0) -> list[str]: ...
    def start(self) -> None: ...
    def flush(self, timeout: float = 10.0) -> bool: ...
    def stop(self) -> None: ...


class HomeTab(Protocol):
    """The App Home tab (bot.slack.home.Home)."""

    def opened(self, user_id: str) -> None: ...
    def publish(self, user_id: str) -> None: ...
    def changed(self) -> None: ...
    def relearned(self, user_id: str) -> None: ...


class ListenerPool(Protocol):
    """Bolt's listener pool (bot.slack.app.ListenerExecutor), counted so tests and the shell can wait."""

    @property
    def inflight(self) -> int: ...


@dataclass
class Services:
    settings: Settings
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    # Read-only sessions (on SQLite a second engine with deferred transactions).
    read_sessions: sessionmaker[Session]
    # The Slack Web API client (slack_sdk.WebClient on SLACK_API_URL, built by the surface).
    slack: Any
    # What that client raises when Slack answers an error (slack_sdk's SlackApiError).
    slack_error: type[Exception]
    policy: Policy
    metrics: Metrics
    jobs: JobService = field(init=False)
    runner: JobRunner = field(init=False)
    outbox: MessageOutbox = field(init=False)
    chainer: AuditChainer = field(init=False)
    # Started with the other threads (e.g. `taisun serve` listening for the worker's job changes).
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Whether this process links audit rows into the chain. Not `taisun serve` when jobs run in
    # `taisun worker`: the worker's chainer links every process's rows (off the acks' CPU).
    chain_here: bool = True
    # Live /health + /version results people look at, shared for 2 s between those asking at once.
    recent_checks: RecentChecks = field(default_factory=RecentChecks)
    clock: Clock = field(default_factory=Clock)
    home: HomeTab = field(init=False)
    people: People = field(init=False)  # each person's language and name
    observability: Observability = field(init=False)  # metrics, SLOs, logs, traces (read-only)
    sweep_hooks: list[Callable[[], None]] = field(default_factory=list)
    # Short post-ack work (live status checks, follow-up replies); never Bolt's listener pool.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="taisun-bg")
    )
    # HTTP routes capabilities serve beside /slack/events, (method, path) -> WSGI handler.
    http_routes: dict[tuple[str, str], WsgiRoute] = field(default_factory=dict)

    # Bolt's listener pool (set by create_app); counted so tests and the shell can wait for it.
    listeners: ListenerPool | None = None
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
        """Start the background work (audit chainer, job workers, the Slack outbox)."""
        if self.chain_here:
            self.chainer.start()
        self.outbox.start()
        self.runner.start()
        for start in self.on_start:
            start()

    def stop(self, runner_timeout: float = 5.0) -> None:
        for stop in self.on_stop:
            stop()
        self.runner.stop(runner_timeout)
        if self.chain_here:
            self.chainer.stop()
        self.outbox.flush(5)  # job cards, incident, runbook-run and alert messages, thread replies
        self.outbox.stop()
        if hasattr(self, "observability"):
            self.observability.close()  # its pooled connections to Prometheus, Loki and Jaeger

    def quiet(self, flush_timeout: float = 0.2) -> bool:
        """Nothing in flight here: no post-ack work, no job for the workers, none this process still
        runs, and every Slack message sent (the shell reading a script, tests waiting for a bot).

        In this order. Post-ack work first: a listener that ends after it has committed what it decided
        (an approval queues its job) before the query reads it. Then the jobs the workers may take; then
        a job this process still runs, which may have left those states (a checked deploy awaits
        approval) and counts as running until its card is queued; then the outbox, which by then holds
        that card."""
        if self.pending_background:
            return False
        with self.sessions() as s:
            if s.scalar(select(Job.id).where(Job.state.in_(JobState.FOR_WORKERS)).limit(1)):
                return False
        return not self.runner.busy and self.flush_messages(flush_timeout)

    def flush_messages(self, timeout: float = 0.2) -> bool:
        """True when no Slack message is waiting to be sent (job cards, incidents, alerts)."""
        return self.outbox.flush(timeout)

    def lang_for(self, user_id: str) -> str:
        """The language to answer this person in (never waits on Slack: unknown → workspace language)."""
        return str(self.people.language(user_id))

    def user_name(self, user_id: str) -> str:
        """A person's Slack display name when known (read in the background), else their user ID."""
        return str(self.people.name(user_id)) or user_id

    def describe(self, job: Job, lang: str | None = None) -> str:
        op = REGISTRY.get(job.operation)
        return op.describe(job, lang or self.config.language) if op else job.operation
