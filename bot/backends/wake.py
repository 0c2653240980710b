"""Signals between processes: "a job may be runnable now", from `taisun serve` to `taisun worker` (JOBS),
and "a job changed", from `taisun worker` to `taisun serve` (CHANGES: the App Home tabs people look at).

A signal carries no data and may be lost: the workers' poll (a second) stays the floor, and the
job rows in the database are the only truth. A signal only makes a worker look now instead of
at its next poll.

- PostgreSQL: NOTIFY / LISTEN on the bot's own database (no other service needed);
- Redis (REDIS_URL, when the database is not PostgreSQL): PUBLISH / SUBSCRIBE.

Sending never blocks the caller (the ack path): send() sets a flag, and one sender thread per
process sends a single signal for every call that came in while it was sending the last one and the
10 ms after it (under a burst of commands, a NOTIFY per request was ~3 % of serve's CPU).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

import psycopg
import redis
import redis.exceptions

log = logging.getLogger(__name__)

JOBS = "taisun_jobs"
CHANGES = "taisun_job_changes"
RECONNECT_CAP_SECONDS = 10.0
SIGNAL_INTERVAL_SECONDS = 0.01  # at most one signal per this interval (100 a second)


class WakeSignal(Protocol):
    """What the job engine needs from a wake signal: send one, and hear them."""

    kind: str  # "postgresql", "redis" or "none" (/health says which)

    def send(self) -> None: ...
    def listen(self, on_wake: Callable[[], None]) -> None: ...
    def stop(self) -> None: ...


class NoSignal:
    """Nothing crosses processes (SQLite without Redis, or jobs embedded in `taisun serve`)."""

    kind = "none"

    def send(self) -> None:
        pass

    def listen(self, on_wake: Callable[[], None]) -> None:
        pass

    def stop(self) -> None:
        pass


def _backoff(failures: int) -> float:
    return float(min(RECONNECT_CAP_SECONDS, 0.5 * 2 ** max(0, failures - 1)))


class _Signal(ABC):
    """One sender thread (coalescing) and one listener thread, each reconnecting with backoff."""

    kind = "none"

    def __init__(self) -> None:
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- sending ---------------------------------------------------------------------
    def send(self) -> None:
        """Ask for a signal to be sent soon; returns at once."""
        if self._sender is None:
            with self._start_lock:
                if self._sender is None:
                    self._sender = threading.Thread(
                        target=self._send_loop, name="taisun-wake-send", daemon=True
                    )
                    self._sender.start()
        self._pending.set()

    def _send_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._pending.wait()
            if self._stop.is_set():
                return
            self._pending.clear()  # calls from now on ask for another signal after this one
            try:
                self._publish()
                failures = 0
                # A burst of requests is one signal per interval, not one per request: the worker's
                # thread that takes a job rings for the next, so one signal drains the queue.
                self._stop.wait(SIGNAL_INTERVAL_SECONDS)
            except Exception as e:
                failures += 1
                self._disconnect_sender()
                # Lost signals cost a poll period, nothing more: a warning, not an error.
                log.warning(
                    "could not send a job wake signal", extra={"via": self.kind, "error": repr(e)[:300]}
                )
                self._pending.set()
                self._stop.wait(_backoff(failures))

    # -- listening -------------------------------------------------------------------
    def listen(self, on_wake: Callable[[], None]) -> None:
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen_loop, args=(on_wake,), name="taisun-wake-listen", daemon=True
            )
            self._listener.start()

    def _listen_loop(self, on_wake: Callable[[], None]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen(on_wake)  # returns when stopped; raises when the connection fails
                return
            except Exception as e:
                failures += 1
                log.warning("job wake signals lost for now; polling meanwhile",
                            extra={"via": self.kind, "error": repr(e)[:300]})  # fmt: skip
                on_wake()  # a signal may have been missed while disconnected: look once
                self._stop.wait(_backoff(failures))

    def stop(self) -> None:
        self._stop.set()
        self._pending.set()
        for t in (self._sender, self._listener):
            if t is not None:
                t.join(2)
        self._disconnect_sender()

    # -- per transport ---------------------------------------------------------------
    @abstractmethod
    def _publish(self) -> None:
        """Send one signal on this transport."""

    def _disconnect_sender(self) -> None:  # noqa: B027 — optional: a transport with a connection closes it
        return None

    @abstractmethod
    def _listen(self, on_wake: Callable[[], None]) -> None:
        """Block, calling on_wake for each signal, until stopped or the connection fails."""


class PostgresSignal(_Signal):
    """NOTIFY <channel> / LISTEN <channel>, each on a connection of its own (autocommit)."""

    kind = "postgresql"

    def __init__(self, dsn: str, channel: str = JOBS):
        super().__init__()
        self.dsn = dsn
        self.channel = channel
        self._conn: psycopg.Connection | None = None

    def _publish(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        self._conn.execute(f"NOTIFY {self.channel}")

    def _disconnect_sender(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as e:
                log.debug("closing the wake connection failed", extra={"error": repr(e)})

    def _listen(self, on_wake: Callable[[], None]) -> None:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {self.channel}")
            on_wake()  # anything that became runnable before LISTEN took effect
            while not self._stop.is_set():
                # A timeout, so stop() is noticed; several notifications at once are one wake.
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    on_wake()


class RedisSignal(_Signal):
    """PUBLISH <channel> / SUBSCRIBE <channel> on the bot's own Redis (REDIS_URL)."""

    kind = "redis"

    def __init__(self, url: str, channel: str = JOBS):
        super().__init__()
        self.url = url
        self.channel = channel
        self._client: redis.Redis | None = None

    def _publish(self) -> None:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=5)
        self._client.publish(self.channel, b"1")

    def _disconnect_sender(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except redis.exceptions.RedisError as e:
                log.debug("closing the wake client failed", extra={"error": repr(e)})

    def _listen(self, on_wake: Callable[[], None]) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            on_wake()
            while not self._stop.is_set():
                if pubsub.get_message(timeout=1.0) is not None:
                    on_wake()
        finally:
            pubsub.close()
            client.close()
