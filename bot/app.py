"""create_app(): the slack_bolt.App, wired to the bot's services."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import Ack, App, BoltResponse
from sqlalchemy.exc import SQLAlchemyError

from bot import deadline, dedupe
from bot.config import Settings
from bot.services import Services, build_services

log = logging.getLogger(__name__)


class ListenerExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, counting work in flight (listeners go on after ack())."""

    def __init__(self, threads: int):
        super().__init__(threads, thread_name_prefix="taisun-listener")
        self._inflight = 0
        self._count_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        with self._count_lock:
            self._inflight += 1
        future = super().submit(_unwatched_after, fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: object) -> None:
        with self._count_lock:
            self._inflight -= 1

    @property
    def inflight(self) -> int:
        with self._count_lock:
            return self._inflight


class TimedAck(Ack):
    """Bolt's ack(), remembering when it was called (the answer deadline counts only a timely answer)."""

    answered_at: float | None = None

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        if self.answered_at is None:
            self.answered_at = time.monotonic()
        return super().__call__(*args, **kwargs)


def _unwatched_after(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run one listener; whatever answer deadline it watched ends with it (pool threads are reused)."""
    try:
        return fn(*args, **kwargs)
    finally:
        deadline.clear()


def create_app(settings: Settings, svc: Services | None = None) -> App:
    """A Bolt app whose Web API calls go to SLACK_API_URL and whose acks never wait on slow work."""
    svc = svc or build_services(settings)
    executor = ListenerExecutor(settings.taisun_listener_threads)
    svc.listeners = executor
    app = App(
        signing_secret=settings.slack_signing_secret or None,
        client=svc.slack,
        # auth.test at start-up would make the bot unusable offline; /health reports Slack auth instead.
        token_verification_enabled=False,
        # Our own pool: Bolt's default has 5 threads shared by acks and lazy listeners.
        listener_executor=executor,
        request_verification_enabled=bool(settings.slack_signing_secret),
        logger=logging.getLogger("slack_bolt"),
        process_before_response=False,
    )

    @app.middleware
    def time_the_answer(context, next):  # type: ignore[no-untyped-def]
        context["ack"] = TimedAck()  # every listener of this request gets (and Bolt waits on) this one
        return next()

    @app.middleware
    def drop_duplicate_deliveries(body, request, next, logger):  # type: ignore[no-untyped-def]
        # Slack retries deliveries, Socket Mode redelivers after a reconnect, and a retry may reach
        # another replica: the database decides which delivery is the first; the rest get an
        # empty 200 (the first one answers the person).
        named = dedupe.delivery_key(body)
        if named is None:
            return next()
        kind, key = named
        try:
            first = dedupe.first_time(svc.sessions, key)
        except SQLAlchemyError as e:
            # Cannot tell: let it through, and the listener says the database is down.
            log.warning("could not check for a duplicate delivery", extra={"error": repr(e)[:200]})
            return next()
        if first:
            return next()
        svc.metrics.duplicate(kind)
        retry = (request.headers.get("x-slack-retry-num") or [""])[0]
        log.info("duplicate Slack delivery answered quietly", extra={"kind": kind, "retry_num": retry})
        return BoltResponse(status=200, body="")

    from handlers import register_listeners

    register_listeners(app, svc)
    app.taisun_services = svc  # type: ignore[attr-defined]
    return app
