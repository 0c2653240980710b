"""The answer deadline: a request's database writes take effect only while its answer can still be on time.

Slack waits 3 s for a request's answer and then tells the person it failed. A listener that writes
the job row, an approval or a lock and only then answers must not commit those writes once the
answer can no longer arrive in time (another session holding a lock, as a migration's CREATE INDEX
does, is enough): the person was told it failed, so it must not happen.

A listener thread watches its request (``watch``) until it has answered; while it watches, any
flush or commit of a write in that thread past the deadline raises AnswerTooLate instead, and
SQLAlchemy rolls the transaction back. Other threads (job workers, background replies) never
watch, and a listener that has answered is no longer bound by the deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker


class AnswerTooLate(Exception):
    """The request's answer could not reach Slack in time; its writes were rolled back."""

    def __init__(self, waited: float, deadline: float):
        self.waited = waited
        self.deadline = deadline
        super().__init__(
            f"answer would come {waited:.1f} s after the request arrived (deadline {deadline:g} s)"
        )


@dataclass(frozen=True)
class _Watch:
    arrived: float  # time.monotonic() when the request reached this process
    seconds: float  # how long after arrival an answer is still on time
    answered_at: Callable[[], float | None]  # time.monotonic() of the request's answer, if given


_local = threading.local()


def watch(arrived: float, seconds: float, answered_at: Callable[[], float | None]) -> None:
    """From now on in this thread, writes past arrived + seconds fail unless the answer went out in time."""
    _local.watch = _Watch(arrived, seconds, answered_at)


def clear() -> None:
    """Stop watching in this thread (the listener pool calls it after every listener)."""
    _local.watch = None


def check() -> None:
    """Raise AnswerTooLate when this thread's unanswered request is past its deadline."""
    w: _Watch | None = getattr(_local, "watch", None)
    if w is None:
        return
    waited = time.monotonic() - w.arrived
    if waited <= w.seconds:
        return
    # After its own timeout Bolt hands the request to the next matching listener (our quiet
    # fallback), whose answer is no answer to this one: only an answer given in time counts.
    answered = w.answered_at()
    if answered is None or answered - w.arrived > w.seconds:
        raise AnswerTooLate(waited, w.seconds)


def budget() -> float | None:
    """Seconds this thread's unanswered request may still write in (≤ 0: none left); None when no
    deadline binds it (not watching, or it was answered in time). For a write that carries its own
    deadline to the database (bot.core.audit.append_along) instead of the commit hooks below."""
    w: _Watch | None = getattr(_local, "watch", None)
    if w is None:
        return None
    answered = w.answered_at()
    if answered is not None and answered - w.arrived <= w.seconds:
        return None
    return w.arrived + w.seconds - time.monotonic()


def missed() -> AnswerTooLate:
    """The error for a write the database held to this thread's deadline and found past it."""
    w: _Watch | None = getattr(_local, "watch", None)
    if w is None:  # cannot happen: the write was bound by budget()
        return AnswerTooLate(0.0, 0.0)
    return AnswerTooLate(time.monotonic() - w.arrived, w.seconds)


def install(sessions: sessionmaker[Session]) -> None:
    """Hold every write made through these sessions to the deadline of the thread's request."""

    @event.listens_for(sessions, "do_orm_execute")
    def _note_write(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            state.session.info["taisun_wrote"] = True

    @event.listens_for(sessions, "after_flush")
    def _flushed(session: Session, _context: Any) -> None:
        # Runs after the INSERTs/UPDATEs were sent (and any lock they waited on was granted),
        # before COMMIT: raising here rolls the whole transaction back.
        check()

    @event.listens_for(sessions, "before_commit")
    def _committing(session: Session) -> None:
        # Writes sent with session.execute(update(...)) need no flush: check them here.
        if session.info.get("taisun_wrote"):
            check()

    @event.listens_for(sessions, "after_transaction_end")
    def _forget(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the whole transaction, not a savepoint inside it
            session.info.pop("taisun_wrote", None)
