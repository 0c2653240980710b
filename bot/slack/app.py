"""create_app(): the slack_bolt.App, wired to the bot's services."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from sqlalchemy.exc import SQLAlchemyError

from bot.core import deadline, dedupe
from bot.core.config import Settings
from bot.core.services import Services
from bot.slack.server import arrived_at

log = logging.getLogger(__name__)
Next = Callable[[], BoltResponse]


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
    """Bolt's ack(), remembering when it was called (the answer deadline counts only a timely answer),
    and waking the request's thread the moment it is.

    Without process_before_response, Bolt's request thread waits for the listener's ack() by reading
    `ack.response` every 10 ms (ThreadListenerRunner.run): up to 10 ms added to every answer. Read by
    the thread that made this ack (the request's, in the first middleware), `response` waits on an
    event instead, in slices short enough for Bolt's loop to keep counting its ack timeout; any other
    thread (the listener's) reads it as the plain attribute it is in Bolt.
    """

    answered_at: float | None = None
    _SLICE = 0.05  # seconds: how long one read waits before Bolt's loop checks its own timeout

    def __init__(self) -> None:
        self._answered = threading.Event()
        self._waiter = threading.get_ident()
        super().__init__()  # sets response = None, through the setter below

    @property  # type: ignore[override]
    def response(self) -> BoltResponse | None:
        if self._response is None and threading.get_ident() == self._waiter:
            self._answered.wait(self._SLICE)
        return self._response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        self._response = value
        if value is not None:
            self._answered.set()

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


READER_LANG = "taisun_reader_lang"  # the language a request is answered in, in Bolt's context

# Of a request's answer deadline, what stays for the listener's own work when a new person's
# language is looked up first (the listeners answer in milliseconds; this is ample margin).
ANSWER_RESERVE = 1.0


def _reader_of(body: dict) -> tuple[str, str]:  # type: ignore[type-arg]
    """(user id, locale or "") of the person a request comes from: command, click, form or event."""
    if body.get("user_id"):  # slash command
        return str(body["user_id"]), ""
    user = body.get("user")
    if isinstance(user, dict) and user.get("id"):  # interactive payloads
        return str(user["id"]), str(user.get("locale") or "")
    event = body.get("event")
    if isinstance(event, dict) and isinstance(event.get("user"), str):
        return event["user"], ""
    return "", ""


class TimeTheAnswer(Middleware):
    """Every listener of this request gets (and Bolt waits on) one TimedAck."""

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:  # noqa: A002
        req.context["ack"] = TimedAck()
        return next()


class DropDuplicateDeliveries(Middleware):
    """Slack retries deliveries, Socket Mode redelivers after a reconnect, and a retry may reach
    another replica: the database decides which delivery is the first; the rest get an empty 200
    (the first one answers the person)."""

    def __init__(self, svc: Services):
        self.svc = svc

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:  # noqa: A002
        named = dedupe.delivery_key(req.body)
        if named is None:
            return next()
        kind, key = named
        try:
            first = dedupe.first_time(self.svc.sessions, key)
        except SQLAlchemyError as e:
            # Cannot tell: let it through, and the listener says the database is down.
            log.warning("could not check for a duplicate delivery", extra={"error": repr(e)[:200]})
            return next()
        if first:
            return next()
        self.svc.metrics.duplicate(kind)
        retry = (req.headers.get("x-slack-retry-num") or [""])[0]
        log.info("duplicate Slack delivery answered quietly", extra={"kind": kind, "retry_num": retry})
        return BoltResponse(status=200, body="")


class KnowTheReader(Middleware):
    """Whose request this is, in which language to answer. A locale the payload carries is used as
    is; someone Slack has not told us about yet waits a moment for users.info, as far as this
    request's answer deadline allows (events are acked first and wait in their listener)."""

    def __init__(self, svc: Services):
        self.svc = svc

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:  # noqa: A002
        body = req.body if isinstance(req.body, dict) else {}
        user_id, locale = _reader_of(body)
        if not user_id:
            return next()
        svc = self.svc
        if locale:
            svc.people.heard(user_id, locale)
        elif body.get("type") != "event_callback":
            arrived = arrived_at(req)
            waited = time.monotonic() - arrived if arrived is not None else 0.0
            budget = min(
                svc.people.first_wait, svc.config.slack.ack_deadline_seconds - ANSWER_RESERVE - waited
            )
            # Decided once for the request: an answer from Slack arriving meanwhile (a day-old
            # locale is asked again in the background) applies from the next request on.
            req.context[READER_LANG] = svc.people.language(user_id, wait=max(budget, 0.0))
        return next()


def create_app(settings: Settings, svc: Services, register_listeners: Callable[[App, Services], None]) -> App:
    """A Bolt app whose Web API calls go to SLACK_API_URL and whose acks never wait on slow work.

    The listeners (handlers/, the floor above) are put on it by `register_listeners`."""
    executor = ListenerExecutor(settings.taisun_listener_threads)
    svc.listeners = executor
    app = App(
        signing_secret=settings.slack_signing_secret or None,
        client=svc.slack,
        # auth.test at start-up would make the bot unusable offline; /health reports Slack auth instead.
        token_verification_enabled=False,
        # Our own pool: Bolt's default has 5 threads shared by acks and lazy listeners.
        listener_executor=executor,
        # A signing secret from Secrets Manager may rotate: then the WSGI app alone verifies requests,
        # with the secret as it is now (bot/slack/server.py); Bolt's copy would keep the first one.
        request_verification_enabled=bool(settings.slack_signing_secret)
        and not settings.slack_signing_secret_secret_id,
        logger=logging.getLogger("slack_bolt"),
        process_before_response=False,
    )

    # Class middlewares: Bolt calls process() as it is; a function middleware has its arguments built
    # for it (kwargs injection) on every request — py-spy put that at 7 % of serve's CPU.
    app.use(TimeTheAnswer())
    app.use(DropDuplicateDeliveries(svc))
    app.use(KnowTheReader(svc))
    if hasattr(
        svc.slack, "token_listeners"
    ):  # SLACK_BOT_TOKEN_SECRET_ID: requests' clients get the new token
        svc.slack.token_listeners.append(lambda token: setattr(app, "_token", token))
    register_listeners(app, svc)
    app.taisun_services = svc  # type: ignore[attr-defined]
    return app
