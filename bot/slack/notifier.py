"""The job-card outbox: posts and edits job messages from a background thread, newest state only.

Nothing here runs on the ack path: job messages are posted and edited by a background
thread that coalesces updates (only the newest state of a message matters), so Slack's
rate limits and slack-sdk's retry sleeps never delay an ack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import update

from bot.core import metrics
from bot.core.store.models import Job

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)


class Notifier:
    """Posts and edits job messages from a background thread, newest state only."""

    def __init__(self, svc: Services, client: WebClient, render: Callable[[str], dict[str, Any] | None]):
        self.svc = svc
        self.client = client
        self.render = render  # job id -> {"channel","ts","text","blocks", "fallback_channel"} or None
        self._dirty: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.min_interval = 1.0  # chat.update per message at most once a second
        self._last_sent: dict[str, float] = {}
        self._not_before: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self.max_failures = 8
        self.changed_hooks: list[Callable[[], None]] = []  # e.g. refresh App Home views
        self._sending: str | None = None
        self.sent = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="taisun-notifier", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(5)
            self._thread = None

    def job_changed(self, job_id: str) -> None:
        with self._cond:
            self._dirty.setdefault(job_id, time.monotonic())
            self._cond.notify()
        for hook in self.changed_hooks:
            hook()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every pending update is sent (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._dirty or self._sending) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not (self._dirty or self._sending)

    def _next(self) -> str | None:
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                ready = [
                    j
                    for j in self._dirty
                    if now - self._last_sent.get(j, 0) >= self.min_interval
                    and now >= self._not_before.get(j, 0)
                ]
                if len(self._last_sent) > 5000:  # forget messages not touched for an hour
                    self._last_sent = {k: v for k, v in self._last_sent.items() if now - v < 3600}
                if ready:
                    job_id = ready[0]
                    del self._dirty[job_id]
                    self._sending = job_id
                    self._last_sent[job_id] = now
                    return job_id
                self._cond.wait(0.1 if self._dirty else 1.0)
            return None

    def _loop(self) -> None:
        while True:
            job_id = self._next()
            if job_id is None:
                return
            try:
                ok = self._send(job_id)
            except Exception:
                log.exception("could not update a job message", extra={"job_id": job_id})
                ok = False
            with self._cond:
                self._sending = None
                if ok:
                    self._failures.pop(job_id, None)
                else:
                    self._retry_later(job_id)
                self._cond.notify_all()

    def _retry_later(self, job_id: str) -> None:
        """Called with the condition held: Slack failed even after the client's retries; back off."""
        n = self._failures.get(job_id, 0) + 1
        if n > self.max_failures:
            self._failures.pop(job_id, None)
            log.error("gave up updating a job message", extra={"job_id": job_id, "attempts": n - 1})
            return
        self._failures[job_id] = n
        self._not_before[job_id] = time.monotonic() + min(2 ** (n - 1), 30)
        self._dirty.setdefault(job_id, time.monotonic())

    def _send(self, job_id: str) -> bool:
        """Post or edit the job's message; False when Slack could not be reached (try again later)."""
        msg = self.render(job_id)
        if msg is None:
            return True

        if msg.get("response_url"):
            self._respond(msg["response_url"], msg["text"], msg["blocks"])
            return True
        if msg.get("ts"):
            return (
                self._call(
                    "chat_update",
                    channel=msg["channel"],
                    ts=msg["ts"],
                    text=msg["text"],
                    blocks=msg["blocks"],
                )
                is not None
            )
        resp = self._call("chat_postMessage", channel=msg["channel"], text=msg["text"], blocks=msg["blocks"])
        if resp is None and msg.get("fallback_channel") and msg["fallback_channel"] != msg["channel"]:
            resp = self._call(
                "chat_postMessage", channel=msg["fallback_channel"], text=msg["text"], blocks=msg["blocks"]
            )
        if resp is not None:
            with self.svc.sessions.begin() as s:
                s.execute(
                    update(Job).where(Job.id == job_id, Job.message_ts == "")
                    .values(message_ts=resp["ts"], channel=resp["channel"])
                )  # fmt: skip
            # The state may have moved on while we posted: show the newest one.
            newer = self.render(job_id)
            if newer is not None and newer.get("version") != msg.get("version"):
                self.job_changed(job_id)
        return resp is not None

    def _respond(self, url: str, text: str, blocks: list[Any]) -> None:
        from slack_sdk.webhook import WebhookClient

        try:
            resp = WebhookClient(url, timeout=10, retry_handlers=list(self.client.retry_handlers)).send(
                text=text, blocks=blocks, response_type="ephemeral", replace_original=False
            )
            if resp.status_code != 200:
                log.warning("response_url post failed", extra={"status": resp.status_code})
        except Exception as e:
            log.warning("response_url post failed", extra={"error": repr(e)})

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            self.sent += 1
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as e:
            err = e.response.get("error", "unknown") if e.response is not None else "unknown"
            metrics.SLACK_ERRORS.labels(method, err).inc()
            log.warning("slack api error", extra={"method": method, "error": err})
            return None
        except Exception as e:
            metrics.SLACK_ERRORS.labels(method, type(e).__name__).inc()
            log.warning("slack api call failed", extra={"method": method, "error": repr(e)})
            return None
