"""Engines, sessions and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseNotMigrated(Exception):
    """The schema is older than this version of the bot."""


class WrongDatabase(Exception):
    """The shell's demo database given to a real bot, or a real bot's database given to the shell."""


SHELL_MARK = "shell"  # the bot_meta row `taisun shell` writes into its own database


def normalize_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 here."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(
    url: str, *, connections: int = 20, name: str = "taisun-cli", read_only: bool = False
) -> Engine:
    """An engine tuned for many short transactions from several threads (and processes).

    connections (PostgreSQL): the most this engine opens (TAISUN_DB_CONNECTIONS): half kept in
    the pool, the rest opened under a burst and closed when returned. name: the application_name
    pg_stat_activity shows (taisun-serve, taisun-worker, ...), unless the URL names one itself.
    read_only (SQLite): plain deferred transactions for reads, which then never queue behind
    writers in WAL mode. Never write through such an engine.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # pysqlite's own BEGIN is deferred: a transaction that reads and then writes
            # fails with "database is locked" when another writer got in between, and
            # its SAVEPOINTs misbehave. Take the write lock up front instead.
            dbapi_conn.isolation_level = None

        if read_only:

            @event.listens_for(engine, "begin")
            def _sqlite_read_begin(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN")

            return engine

        # SQLite has one writer. Threads of this process queue for it on a lock here, in order,
        # instead of polling in SQLite's busy handler (sleeps of up to 100 ms at a time, which made
        # the ack path's p99 a second under load); other processes still meet the busy handler.
        writer = threading.RLock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            writer.acquire()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                writer.release()
                raise
            conn.info["taisun_writer"] = True

        def _release(conn):  # type: ignore[no-untyped-def]
            if conn.info.pop("taisun_writer", False):
                writer.release()

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)
        return engine
    parsed = make_url(url)
    if "application_name" not in parsed.query:
        parsed = parsed.update_query_dict({"application_name": name})
    kept = max(1, connections // 2)
    engine = create_engine(
        parsed,
        pool_size=kept,
        max_overflow=connections - kept,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )
    _ping_when_idle(engine)
    return engine


def pool_counts(engine: Engine) -> tuple[int, int]:
    """(lent out now, open) of an engine's connection pool; (0, 0) for a pool that does not count."""
    pool = engine.pool
    lent = int(getattr(pool, "checkedout", lambda: 0)())
    return lent, lent + int(getattr(pool, "checkedin", lambda: 0)())


IDLE_PING_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping, but only for a connection that has sat in the pool for a while.

    A restarted or failed-over database leaves stale connections behind; a ping on checkout
    finds them and the pool reconnects, so the first command afterwards works. Pinging every
    checkout (pool_pre_ping) cost one round trip per transaction, a fifth of the ack path's
    time under load (BENCHMARKS.md); a connection used moments ago is as good as a ping.
    """

    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("checked_in", 0.0) < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception:
            alive = False
        if not alive:
            raise exc.DisconnectionError("stale connection")  # the pool retries with a new one


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


MIGRATION_LOCK = 7_411_873  # pg_advisory_lock key: replicas started together migrate one at a time


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns it. Safe to run from several replicas at once."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                command.upgrade(_alembic_config(engine), "head")
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
    else:
        command.upgrade(_alembic_config(engine), "head")
    return head_revision()


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    return script.get_current_head() or ""


def current_revision(engine: Engine) -> str:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""


def ensure_migrated(engine: Engine) -> None:
    """Refuse to run on a schema that is not at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = _where(engine)
        state = f"at revision {current}" if current else "empty (never migrated)"
        raise DatabaseNotMigrated(
            f"The database {where} is {state}; this version needs {head}. "
            "Run `taisun migrate` (or `taisun serve --migrate`)."
        )


def _where(engine: Engine) -> str:
    return make_url(normalize_url(str(engine.url))).render_as_string(hide_password=True)


def shell_marked_at(engine: Engine) -> datetime | None:
    """When `taisun shell` first wrote into this database; None for any other database."""
    from bot.core.store.models import BotMeta

    with engine.connect() as conn:
        if not inspect(conn).has_table(BotMeta.__tablename__):
            return None
        return conn.execute(select(BotMeta.created_at).where(BotMeta.key == SHELL_MARK)).scalar()


def mark_shell_database(engine: Engine) -> None:
    """Mark a (migrated) database as the shell's, so `taisun serve` refuses it."""
    from bot.core.store.models import BotMeta

    if shell_marked_at(engine) is None:
        with session_factory(engine).begin() as s:
            s.add(BotMeta(key=SHELL_MARK, value="demo data written by `taisun shell`"))


def ensure_not_shell_database(engine: Engine) -> None:
    """Refuse to run a real bot on the shell's demo database (its locks, incidents, audit rows, cards)."""
    since = shell_marked_at(engine)
    if since is not None:
        raise WrongDatabase(
            f"The database {_where(engine)} holds the demo data of `taisun shell` (since "
            f"{since:%Y-%m-%d %H:%M} UTC): a real bot on it would start with the demo's locks, incidents and "
            "audit rows and edit the demo's messages in your Slack. Point DATABASE_URL at the bot's own "
            "database (default sqlite:///taisun.db in the current folder; create it with `taisun migrate`)."
        )


def ensure_shell_database(engine: Engine) -> None:
    """Refuse to play the shell's demo on a real bot's database (one migrated without the shell's mark)."""
    if current_revision(engine) and shell_marked_at(engine) is None:
        raise WrongDatabase(
            f"The database {_where(engine)} belongs to a real bot (it has no mark of `taisun shell`): the "
            "shell would write its demo locks, incidents and audit rows into it. Leave out --database to "
            "use the shell's own (.taisun/shell.db), or name a new file."
        )
