"""Security operations as the rest of the bot sees them: the sweep, the messages, what a due task of
each kind adds, and install() for the composition root.

The cadence itself is bot/security/tasks.py; the kinds are rotation.py (the watched secrets),
review.py (the access review) and scan.py (the dependency scan, a job).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.core.outbox import Syncer
from bot.core.states import OccurrenceState
from bot.core.store.models import AccessReview, SecurityOccurrence
from bot.security import review, rotation, tasks
from bot.security.tasks import SecurityError, now

if TYPE_CHECKING:
    from bot.core.services import Services

__all__ = ["SecurityError", "install", "sweep"]

# Occurrences whose follow-up (the secrets' ages, the review) this process is making right now.
_following: set[int] = set()
_following_lock = threading.Lock()


def sweep(svc: Services, at: datetime | None = None) -> dict[str, int]:
    """Schedule, post what came due, add what each kind needs, nudge what is overdue."""
    counts = tasks.sweep(svc, at)
    follow_up(svc)
    return counts


def follow_up(svc: Services) -> None:
    """Due occurrences still without what their kind adds (just made due, or a crash in between):
    made after the sweep's transaction, because they ask AWS, GitHub or Slack; the next sweep tries again."""
    kinds = {task.id: task.kind for task in tasks.tasks(svc) if task.enabled}
    with svc.read_sessions() as s:
        due = list(
            s.scalars(select(SecurityOccurrence).where(SecurityOccurrence.state == OccurrenceState.DUE))
        )
        reviewed = set(
            s.scalars(select(AccessReview.occurrence_id).where(AccessReview.occurrence_id.is_not(None)))
        )
    for occ in due:
        kind = kinds.get(occ.task)
        if kind == "secret_rotation" and "checked_at" not in occ.details:
            work = rotation.record_check
        elif kind == "access_review" and occ.id not in reviewed:
            work = review.start_for_occurrence
        else:
            continue
        with _following_lock:
            if occ.id in _following:
                continue
            _following.add(occ.id)

        def run(occ_id: int = occ.id, work=work) -> None:  # type: ignore[no-untyped-def]
            try:
                work(svc, occ_id)
            finally:
                with _following_lock:
                    _following.discard(occ_id)

        svc.later(run)


def install(svc: Services) -> None:
    """Installed by the composition root (bot.wiring): the task and review messages, and the sweep."""
    sync = svc.outbox
    if tasks.TASK_PREFIX in sync.syncers:
        return
    sync.register(
        Syncer(
            prefix=tasks.TASK_PREFIX,
            messages=lambda key: tasks.task_messages(svc, key),
            claim=lambda key, slot: tasks.message_claim(svc, key, slot),
            store=lambda key, slot, channel, ts: tasks.message_store(svc, key, slot, channel, ts),
            thread=lambda key: tasks.message_thread(svc, key, "due"),
        )
    )
    review.install(svc)
    svc.sweep_hooks.append(lambda: sweep(svc, now()))
