"""The one Slack outbox: every message the bot keeps in Slack goes out from here.

Job cards, incident headers, runbook checklists, alert groups and the thread replies queued
in the durable outbox table are all "subjects" ("job:<id>", "inc:3", "run:<id>", "alert:7").
Listeners, workers and the webhook only write rows and mark a subject changed; one sender
thread per process renders each changed subject from the database and posts or edits its
messages, newest state only, at most once per `min_interval` per subject. So a storm of
changes becomes a handful of edits, and Slack's rate limits and slack-sdk's retry sleeps
never touch the ack path.

One way out to Slack (`_call`: slack-sdk's retry handlers for 429/5xx/resets underneath, each
error counted and logged), and one way to try again: a subject whose send failed is sent
again, newest state, with exponential backoff (1 s … 30 s, `max_failures` times).

A message is posted under a claim in its row (a capability's Syncer), so two replicas never
post the same message twice; a reply in the outbox table under a claim on its row. The thread
starts once the process starts its background work (`start()`), runs while there is something
to send and ends after a quiet spell, so an idle bot has no sender thread polling anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from sqlalchemy import and_, select, update

from bot.core import metrics
from bot.core.claims import Claim
from bot.core.outbox import Syncer, job_subject, now
from bot.core.store.models import Outbox

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

IDLE_EXIT_SECONDS = 5.0
TICK_SECONDS = 0.5
REPLY_CLAIM = Claim(Outbox.claimed_at, Outbox.claimed_by)


@dataclass
class _State:
    dirty: dict[str, float] = field(default_factory=dict)  # subject -> when it was first marked
    last: dict[str, float] = field(default_factory=dict)  # subject -> when it was last sent
    not_before: dict[str, float] = field(default_factory=dict)  # subject -> backoff after a failure
    failures: dict[str, int] = field(default_factory=dict)
    busy: bool = False
    ticking: bool = False


class SlackOutbox:
    """The sender: one thread, newest state only, at most one send per subject per interval."""

    def __init__(self, svc: Services):
        self.svc = svc
        self.syncers: dict[str, Syncer] = {}
        self.tickers: list[Callable[[], bool]] = []
        # Called whenever a job changed (the App Home views, a terminal's progress line).
        self.job_hooks: list[Callable[[], None]] = []
        self.max_failures = 8
        self.sent = 0
        self._st = _State()
        self._hash: dict[tuple[str, str], str] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._started = False
        self._stop = False

    # -- registration ------------------------------------------------------------------
    def register(self, syncer: Syncer) -> None:
        self.syncers[syncer.prefix] = syncer

    def add_ticker(self, fn: Callable[[], bool]) -> None:
        """fn() runs every half second while it returns True (after tick_soon())."""
        self.tickers.append(fn)

    # -- signals ---------------------------------------------------------------------
    def mark(self, *keys: str) -> None:
        """These subjects changed: render and send them soon."""
        with self._cond:
            for key in keys:
                if key:
                    self._st.dirty.setdefault(key, time.monotonic())
            self._ensure_thread()
            self._cond.notify_all()

    def job_changed(self, job_id: str) -> None:
        """A job changed: its card is sent soon, and whoever shows jobs is told."""
        self.mark(job_subject(job_id))
        for hook in self.job_hooks:
            hook()

    def tick_soon(self) -> None:
        with self._cond:
            self._st.ticking = True
            self._ensure_thread()
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every changed subject is sent (tests and shutdown); False at once when this
        process never started sending and something waits."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._started:
                return not self._st.dirty
            while (self._st.dirty or self._st.busy) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not self._st.dirty and not self._st.busy

    def start(self) -> None:
        """Start sending (until then changes are only noted: `taisun backup run` posts no job card)."""
        with self._cond:
            self._started = True
            if self._st.dirty or self._st.ticking:
                self._ensure_thread()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(5)

    # -- the thread --------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        """Called with the condition held."""
        if self._thread is None and self._started and not self._stop:
            self._thread = threading.Thread(target=self._loop, name="taisun-outbox", daemon=True)
            self._thread.start()

    def _interval(self, key: str) -> float:
        syncer = self.syncers.get(key.split(":", 1)[0])
        return syncer.min_interval if syncer else 1.0

    def _next(self, last_tick: float) -> tuple[str | None, bool]:
        """(a ready key or None, whether tickers are due); None, False when the thread should end."""
        idle_since = time.monotonic()
        st = self._st
        with self._cond:
            while not self._stop:
                t = time.monotonic()
                ready = [
                    k
                    for k in st.dirty
                    if t - st.last.get(k, 0) >= self._interval(k) and t >= st.not_before.get(k, 0)
                ]
                tick_due = st.ticking and t - last_tick >= TICK_SECONDS
                if len(st.last) > 5000:  # forget subjects not sent for an hour
                    st.last = {k: v for k, v in st.last.items() if t - v < 3600}
                if ready:
                    key = min(ready, key=lambda k: st.dirty[k])
                    del st.dirty[key]
                    st.not_before.pop(key, None)
                    st.last[key] = t
                    st.busy = True
                    return key, tick_due
                if tick_due:
                    return None, True
                if not st.dirty and not st.ticking and t - idle_since > IDLE_EXIT_SECONDS:
                    self._thread = None
                    return None, False
                self._cond.wait(0.05 if st.dirty or st.ticking else 1.0)
            self._thread = None
            return None, False

    def _loop(self) -> None:
        last_tick = 0.0
        while True:
            key, tick = self._next(last_tick)
            if key is None and not tick:
                return
            if tick:
                last_tick = time.monotonic()
                self._run_tickers()
            if key is None:
                continue
            try:
                ok = self._sync(key)
            except Exception:
                log.exception("could not send a Slack message", extra={"subject": key})
                ok = False
            with self._cond:
                self._st.busy = False
                if ok:
                    self._st.failures.pop(key, None)
                else:
                    self._retry_later(key)
                self._cond.notify_all()

    def _retry_later(self, key: str) -> None:
        """Called with the condition held: Slack failed even after the client's retries; back off."""
        n = self._st.failures.get(key, 0) + 1
        if n > self.max_failures:
            self._st.failures.pop(key, None)
            log.error("gave up sending a Slack message", extra={"subject": key, "attempts": n - 1})
            return
        self._st.failures[key] = n
        self._st.not_before[key] = time.monotonic() + min(2 ** (n - 1), 30)
        self._st.dirty.setdefault(key, time.monotonic())

    def _run_tickers(self) -> None:
        keep = False
        for fn in self.tickers:
            try:
                keep = bool(fn()) or keep
            except Exception:
                log.exception("outbox ticker failed")
                keep = True
        with self._cond:
            self._st.ticking = keep

    # -- one subject -------------------------------------------------------------------
    def _sync(self, key: str) -> bool:
        """Send what changed in one subject; False when Slack could not be reached (try again later)."""
        syncer = self.syncers.get(key.split(":", 1)[0])
        if syncer is None:
            return True
        msgs = syncer.messages(key)
        if msgs is None:
            return True
        ok, again = True, False
        for m in msgs:
            digest = hashlib.sha256(
                json.dumps([m.text, m.blocks], sort_keys=True, ensure_ascii=False).encode()
            ).hexdigest()
            if m.response_url:
                # A private answer to the requester only (a request refused before it had a card).
                if self._hash.get((key, m.slot)) != digest:
                    self._respond(m.response_url, m.text, m.blocks)
                    self._hash[(key, m.slot)] = digest
            elif not m.ts:
                if not m.channel or not syncer.claim(key, m.slot):
                    continue
                kwargs: dict[str, Any] = {"channel": m.channel, "text": m.text, "blocks": m.blocks}
                if m.thread_ts:
                    kwargs["thread_ts"] = m.thread_ts
                resp = self._call("chat_postMessage", **kwargs)
                if (
                    resp is None
                    and m.fallback_channel
                    and m.fallback_channel != m.channel
                    and not m.thread_ts
                ):
                    resp = self._call("chat_postMessage", **{**kwargs, "channel": m.fallback_channel})
                if resp is None:
                    syncer.store(key, m.slot, "", "")  # let go of the claim
                    ok = False
                    continue
                syncer.store(key, m.slot, str(resp["channel"]), str(resp["ts"]))
                self._hash[(key, m.slot)] = digest
                again = True  # the state may have moved on while we posted
            elif self._hash.get((key, m.slot)) != digest:
                if self._call("chat_update", channel=m.channel, ts=m.ts, text=m.text, blocks=m.blocks):
                    self._hash[(key, m.slot)] = digest
                else:
                    ok = False
        self._drain_outbox(key, syncer)
        if syncer.synced:
            syncer.synced(key)
        if again:
            self.mark(key)
        return ok

    def _drain_outbox(self, key: str, syncer: Syncer) -> None:
        with self.svc.read_sessions() as s:
            rows = list(
                s.scalars(
                    select(Outbox).where(Outbox.subject == key, Outbox.sent_ts == "").order_by(Outbox.id)
                )
            )
        if not rows:
            return
        thread = syncer.thread(key)
        for row in rows:
            if row.target == "thread":
                if thread is None:
                    return  # keep order: nothing after it goes out before it
                channel, thread_ts = thread
            elif row.target == "channel":
                if thread is None:
                    return
                channel, thread_ts = thread[0], ""
            else:
                channel, thread_ts = row.target, ""
            if not self._claim_outbox(row.id):
                continue
            kwargs: dict[str, Any] = {"channel": channel, "text": row.text}
            if row.blocks.get("blocks"):
                kwargs["blocks"] = row.blocks["blocks"]
            if thread_ts:
                kwargs["thread_ts"] = thread_ts
            resp = self._call("chat_postMessage", **kwargs)
            with self.svc.sessions.begin() as s:
                s.execute(
                    update(Outbox)
                    .where(Outbox.id == row.id)
                    .values(sent_ts=str(resp["ts"]) if resp else "error")
                )

    def _claim_outbox(self, row_id: int) -> bool:
        with self.svc.sessions.begin() as s:
            return REPLY_CLAIM.take(s, and_(Outbox.id == row_id, Outbox.sent_ts == ""))

    # -- the one way out ------------------------------------------------------------------
    def _call(self, method: str, **kwargs: Any) -> Any:
        """One Web API call (the client retries 429s, 5xx and resets); None when it failed."""
        try:
            self.sent += 1
            return getattr(self.svc.slack, method)(**kwargs)
        except SlackApiError as e:
            err = e.response.get("error", "unknown") if e.response is not None else "unknown"
            metrics.SLACK_ERRORS.labels(method, err).inc()
            log.warning("slack api error", extra={"method": method, "error": err})
            return None
        except Exception as e:
            metrics.SLACK_ERRORS.labels(method, type(e).__name__).inc()
            log.warning("slack api call failed", extra={"method": method, "error": repr(e)})
            return None

    def _respond(self, url: str, text: str, blocks: list[Any]) -> None:
        """An ephemeral answer through the request's response_url (the client's retry handlers too)."""
        try:
            self.sent += 1
            resp = WebhookClient(url, timeout=10, retry_handlers=list(self.svc.slack.retry_handlers)).send(
                text=text, blocks=blocks, response_type="ephemeral", replace_original=False
            )
            if resp.status_code != 200:
                log.warning("response_url post failed", extra={"status": resp.status_code})
        except Exception as e:
            log.warning("response_url post failed", extra={"error": repr(e)})

    # -- recovery ----------------------------------------------------------------------
    def pending_subjects(self, older_than_seconds: float = 5.0) -> list[str]:
        """Subjects with replies nobody sent (a replica died, or the thread appeared late)."""
        cutoff = now() - timedelta(seconds=older_than_seconds)
        with self.svc.read_sessions() as s:
            return list(
                s.scalars(
                    select(Outbox.subject)
                    .where(Outbox.sent_ts == "", Outbox.created_at < cutoff)
                    .distinct()
                    .limit(200)
                )
            )
