"""First-time checks backed by the database, shared by every replica."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot.core.store.hot import HotStatement
from bot.core.store.models import DedupeKey

# Slack retries within minutes and Socket Mode redelivers after a reconnect; a day is ample.
TTL = timedelta(days=1)


def _insert_once(insert: Any, *, unflushed: bool = False) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING key, built once (bound values at each call).

    unflushed (PostgreSQL): its commit does not wait for its WAL to reach the disk. Written as INSERT …
    SELECT whose WHERE calls set_config('synchronous_commit', 'off', true): the setting is local to the
    statement's own transaction and is read when it commits. Safe for a delivery key because WAL is one
    sequence: whatever the request then commits (the job and its audit row, an approval) is flushed
    with synchronous_commit on, and that flush carries the key's earlier record to the disk with it.
    Only a request that writes nothing after its key (help, status, a form opened) can lose its key,
    and only if the database server itself crashes within its WAL writer's delay (wal_writer_delay,
    200 ms by default, up to three times that): Slack's retry of it is answered again — it changed
    nothing. Measured (BENCHMARKS §6j): with the worker committing beside the acks, the key's own WAL
    flush was as long a wait as the job's, or longer.
    """
    table = DedupeKey.__table__
    key, created_at = (
        bindparam("key", type_=table.c.key.type),
        bindparam("created_at", type_=table.c.created_at.type),
    )
    if unflushed:
        no_flush = func.set_config("synchronous_commit", "off", True).is_not(None)
        stmt = insert(table).from_select(
            [table.c.key, table.c.created_at], select(key, created_at).where(no_flush)
        )
    else:
        stmt = insert(table).values(key=key, created_at=created_at)
    return stmt.on_conflict_do_nothing(index_elements=[table.c.key]).returning(table.c.key)


_PG_INSERT = HotStatement(_insert_once(postgresql.insert, unflushed=True))
_SQLITE_INSERT = _insert_once(sqlite.insert)


def first_time(sessions: sessionmaker[Session], key: str) -> bool:
    """True the first time `key` is seen by any replica; False for every repeat.

    It runs before every Slack request is acked, so it is one statement, INSERT … ON CONFLICT DO
    NOTHING RETURNING, on a connection of the sessions' engine: no ORM unit of work, no exception for
    a repeat. (It runs in the request's thread before any listener, so the answer deadline, which
    binds listener threads, does not apply.)
    """
    engine = sessions.kw["bind"]
    values = {"key": key[:255], "created_at": datetime.now(UTC)}
    if engine.dialect.name == "postgresql":
        # One statement is its own transaction: in autocommit it is one round trip, not BEGIN, INSERT
        # and COMMIT; sent by psycopg itself (bot.core.store.hot); its commit waits for no WAL flush
        # (_insert_once says why that loses nothing a request wrote).
        return _PG_INSERT.first(engine, values) is not None
    with engine.begin() as conn:  # SQLite: through the engine's writer queue, as every write
        return conn.execute(_SQLITE_INSERT, values).first() is not None


def prune(sessions: sessionmaker[Session], older_than: timedelta = TTL) -> int:
    """Forget keys older than the TTL (a repeat after that runs again)."""
    with sessions.begin() as s:
        res = s.execute(delete(DedupeKey).where(DedupeKey.created_at < datetime.now(UTC) - older_than))
        return res.rowcount or 0


def delivery_key(body: Any) -> tuple[str, str] | None:
    """(kind, key) naming one request Slack may deliver more than once; None when it has no such name.

    Every delivery of the same request carries the same trigger_id (commands, clicks, form
    submissions) or event_id (events); a second click on a button is a new trigger_id.
    """
    if not isinstance(body, dict):
        return None
    if body.get("event_id"):
        return "event", f"event:{body['event_id']}"
    trigger = str(body.get("trigger_id") or "")
    if body.get("command") and trigger:
        return "command", f"command:{trigger}"
    kind = body.get("type")
    if kind == "block_actions":
        user = (body.get("user") or {}).get("id", "")
        action = (body.get("actions") or [{}])[0]
        once = trigger or str(action.get("action_ts") or "")
        if once:
            return "click", f"click:{user}:{action.get('action_id', '')}:{once}"
    if kind == "view_submission" and trigger:
        return "form", f"form:{trigger}"
    return None
