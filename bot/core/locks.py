"""Per-environment locks: one change at a time, each lock with an owner, a reason and an expiry."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.i18n import Msg, msg, render, t
from bot.core.mrkdwn import Mrkdwn, mention, slack_time
from bot.core.ops import REGISTRY
from bot.core.replies import Refusal
from bot.core.states import JobState
from bot.core.store.models import Job, Lock

SYSTEM_HOLDER = "taisun"  # the bot itself holds a lock (the one a rollback leaves)


@dataclass(frozen=True)
class LockInfo:
    environment: str
    holder_id: str
    holder_name: str
    reason: str
    job_id: str
    acquired_at: datetime
    expires_at: datetime | None
    kept_for: str = ""  # a lock the bot kept after a rollback: who rolled back

    @classmethod
    def of(cls, lock: Lock) -> LockInfo:
        return cls(
            lock.environment, lock.holder_id, lock.holder_name, lock.reason,
            lock.job_id, lock.acquired_at, lock.expires_at, lock.kept_for or "",
        )  # fmt: skip

    def holder(self, lang: str = "en") -> Mrkdwn:
        return render(self.holder_said(), lang)

    def holder_said(self) -> Msg | Mrkdwn:
        """Who holds it: a running job (in the reader's words), the bot, or a person."""
        if self.job_id:
            return msg("lock.holder_job", job=self.job_id[:8])
        if self.holder_id == SYSTEM_HOLDER:
            return msg("lock.holder_kept", user=mention(self.kept_for)) if self.kept_for else Mrkdwn("TAISUN")
        return mention(self.holder_id)

    def may_release(self, user_id: str, is_admin: bool) -> bool:
        """Who may unlock a lock no job holds: its holder, or the person whose rollback left the
        bot's lock, or an admin."""
        if self.holder_id == SYSTEM_HOLDER:
            return is_admin or (bool(self.kept_for) and user_id == self.kept_for)
        return is_admin or user_id == self.holder_id

    def not_yours(self, lang: str = "en") -> Mrkdwn:
        """Why someone else may not unlock it, and who may."""
        if self.holder_id != SYSTEM_HOLDER:
            key = "lock.not_yours"
        else:
            key = "lock.not_yours_kept" if self.kept_for else "lock.not_yours_bot"
        return t(key, lang, lock=self.describe(lang), user=mention(self.kept_for))

    def describe(self, lang: str = "en") -> Mrkdwn:
        fields = {
            "env": self.environment,
            "holder": self.holder(lang),
            "since": slack_time(self.acquired_at),
            "why": t("lock.why", lang, reason=self.reason) if self.reason else "",
        }
        if self.expires_at:
            return t("lock.describe_until", lang, until=slack_time(self.expires_at, "{time}"), **fields)
        return t("lock.describe", lang, **fields)


class EnvironmentLocked(Refusal):
    """Someone or something holds the environment; the message says who, why, since when and what to do."""

    key = "err.locked"

    def __init__(self, info: LockInfo):
        self.info = info
        if info.job_id:
            release = "err.locked.release_job"
        elif info.holder_id == SYSTEM_HOLDER:
            release = "err.locked.release_fixed_by" if info.kept_for else "err.locked.release_fixed"
        else:
            release = "err.locked.release_holder"
        self.release_key = release
        super().__init__(self.message("en"))

    def message(self, lang: str) -> Mrkdwn:
        return render(self.stored(), lang)

    def stored(self) -> Msg:
        """The refusal as a catalogue message: shown, and stored in the audit log, in each reader's language."""
        info = self.info
        return msg(
            self.key, env=info.environment, holder=info.holder_said(), since=slack_time(info.acquired_at),
            why=msg("lock.why", reason=info.reason) if info.reason else "",
            release=msg(self.release_key, env=info.environment, user=mention(info.kept_for)),
        )  # fmt: skip


def _is_stale(s: Session, lock: Lock, now: datetime) -> bool:
    if lock.expires_at is not None and lock.expires_at <= now:
        return True
    if lock.job_id:
        state = s.scalar(select(Job.state).where(Job.id == lock.job_id))
        return state is None or state in JobState.FINAL
    return False


def current(s: Session, environment: str, now: datetime | None = None) -> Lock | None:
    """The live lock on the environment, or None (expired and orphaned locks do not count)."""
    now = now or datetime.now(UTC)
    lock = s.get(Lock, environment)
    if lock is None or _is_stale(s, lock, now):
        return None
    return lock


def acquire(
    s: Session,
    environment: str,
    *,
    holder_id: str,
    holder_name: str = "",
    reason: str = "",
    job_id: str = "",
    expires_at: datetime | None = None,
    channel: str = "",
) -> Lock:
    """Take the lock in the caller's transaction or raise EnvironmentLocked.

    A concurrent taker loses on the primary key inside a savepoint and is told who won. When the
    winner has already let go again (a short job), the lock is free: try again.
    """
    what = {"holder_id": holder_id, "holder_name": holder_name, "reason": reason, "job_id": job_id,
            "expires_at": expires_at, "channel": channel}  # fmt: skip
    for _ in range(4):
        with contextlib.suppress(_WinnerGone):
            return _acquire_once(s, environment, **what)
    return _acquire_once(s, environment, **what)  # a fifth lost race in a row is an error


class _WinnerGone(Exception):
    """Lost the INSERT race, but the winner's lock was released before it could be read."""


def _acquire_once(
    s: Session,
    environment: str,
    *,
    holder_id: str,
    holder_name: str,
    reason: str,
    job_id: str,
    expires_at: datetime | None,
    channel: str,
) -> Lock:
    now = datetime.now(UTC)
    existing = s.get(Lock, environment, with_for_update=True, populate_existing=True)
    if existing is not None:
        if existing.job_id and existing.job_id == job_id:
            return existing
        if not _is_stale(s, existing, now):
            if job_id and not existing.job_id and existing.holder_id == holder_id:
                _one_job_through(s, existing, job_id)
                return existing  # the holder's own jobs go through their lock, which stays as it is
            raise EnvironmentLocked(LockInfo.of(existing))
        s.delete(existing)
        s.flush()
    lock = Lock(
        environment=environment, holder_id=holder_id, holder_name=holder_name, reason=reason,
        job_id=job_id, acquired_at=now, expires_at=expires_at, channel=channel,
    )  # fmt: skip
    try:
        # The INSERT must happen inside the savepoint (begin_nested flushes what is pending
        # first): losing the race then rolls back only the savepoint, and the caller can say
        # "locked by ..." instead of failing with an aborted transaction.
        with s.begin_nested():
            s.add(lock)
            s.flush()
    except IntegrityError:
        winner = s.get(Lock, environment, populate_existing=True)
        if winner is None:
            raise _WinnerGone from None
        if winner.job_id and winner.job_id == job_id:
            # Taken for this very job by someone else at the same moment (two approvers clicking
            # at once): not "locked by a running job" — the caller's next step sees who won.
            return winner
        raise EnvironmentLocked(LockInfo.of(winner)) from None
    return lock


# Any lock row on the environment, live or not: the ack path writes a request at once where there is
# none (the common case: the sweeper removes stale rows), and reads the lock to decide otherwise.
ANY_LOCK_ROW = select(Lock.environment).where(Lock.environment == bindparam("lock_environment")).exists()


def no_lock_row(environment: str) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """audit.append_along's `unless` for a request that may not go through a lock on `environment`."""
    return ANY_LOCK_ROW, {"lock_environment": environment}


def through_own_lock(lock: Lock | None, user_id: str) -> bool:
    """A person's jobs go through a lock they took by hand (branch-deploy's rule)."""
    return lock is not None and not lock.job_id and lock.holder_id == user_id


def _one_job_through(s: Session, lock: Lock, job_id: str) -> None:
    """One change at a time still: refuse while another job runs through the same manual lock.

    The caller holds the lock row (FOR UPDATE; SQLite writes one at a time), so two jobs cannot
    both pass this check."""
    locking = [name for name, op in REGISTRY.items() if op.needs_lock]
    other = s.scalars(
        select(Job).where(
            Job.environment == lock.environment, Job.id != job_id, Job.dry_run.is_(False),
            Job.state.in_(JobState.UNDER_WAY), Job.operation.in_(locking),
        ).limit(1)
    ).first()  # fmt: skip
    if other is not None:
        raise EnvironmentLocked(
            LockInfo(
                lock.environment,
                lock.holder_id,
                lock.holder_name,
                lock.reason,
                other.id,
                other.started_at or other.updated_at,
                None,
            )  # fmt: skip
        )


def release_for_job(s: Session, job_id: str) -> bool:
    res = s.execute(delete(Lock).where(Lock.job_id == job_id))
    return bool(res.rowcount)


def release(s: Session, environment: str) -> Lock | None:
    lock = s.get(Lock, environment, with_for_update=True)
    if lock is not None:
        s.delete(lock)
    return lock


def sweep_manual_locks(
    s: Session, *, remind_within: timedelta, now: datetime | None = None
) -> tuple[list[LockInfo], list[LockInfo]]:
    """Find manual locks to remind (expiring soon, not yet reminded) and expired ones to drop.

    The caller's transaction marks reminders and deletes expired locks with conditional
    statements, so several replicas sweeping at once remind and announce each lock once.
    """
    now = now or datetime.now(UTC)
    to_remind: list[LockInfo] = []
    expired: list[LockInfo] = []
    for lock in s.scalars(select(Lock).where(Lock.job_id == "", Lock.expires_at.is_not(None))):
        assert lock.expires_at is not None
        if lock.expires_at <= now:
            gone = s.execute(
                delete(Lock).where(Lock.environment == lock.environment, Lock.acquired_at == lock.acquired_at)
            )
            if gone.rowcount:
                expired.append(LockInfo.of(lock))
        elif not lock.reminded and lock.expires_at - now <= remind_within:
            marked = s.execute(
                update(Lock)
                .where(Lock.environment == lock.environment, Lock.reminded.is_(False))
                .values(reminded=True)
            )
            if marked.rowcount:
                to_remind.append(LockInfo.of(lock))
    return to_remind, expired
