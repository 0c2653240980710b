"""First-time checks backed by the database, shared by every replica."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.store.models import DedupeKey


def first_time(sessions: sessionmaker[Session], key: str) -> bool:
    """True the first time `key` is seen by any replica; False for every repeat."""
    try:
        with sessions.begin() as s:
            s.add(DedupeKey(key=key[:255], created_at=datetime.now(UTC)))
        return True
    except IntegrityError:
        return False


def prune(sessions: sessionmaker[Session], older_than: timedelta = timedelta(days=2)) -> int:
    with sessions.begin() as s:
        res = s.execute(delete(DedupeKey).where(DedupeKey.created_at < datetime.now(UTC) - older_than))
        return res.rowcount or 0
