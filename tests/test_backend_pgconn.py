"""bot.backends.pgconn against a real PostgreSQL: only old idle sessions of the target db end."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from bot.backends.pgconn import (
    InvalidDsn,
    PgConnectFailed,
    connection_counts,
    reset_idle_connections,
    safe_dsn,
    split_dsn,
)
from tests.backend_fixtures import free_port, pg_db  # noqa: F401

AGE_S = 1.0  # "older than" limit used by the tests, instead of an hour


def _alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def test_reset_terminates_only_old_idle_sessions_of_the_target_db(pg_db: Callable[[], str]) -> None:
    target, other = pg_db(), pg_db()
    conns: list[psycopg.Connection] = []

    def connect(dsn: str) -> psycopg.Connection:
        c = psycopg.connect(dsn, autocommit=True)
        conns.append(c)
        return c

    try:
        old_idle = [connect(target) for _ in range(3)]
        for c in old_idle:
            c.execute("SELECT 1")  # used once, then idle
        # idle in transaction, holding a lock: never terminated by this runbook
        holder = psycopg.connect(target)
        conns.append(holder)
        holder.execute("SELECT pg_advisory_xact_lock(4242)")
        # active for the whole test: blocked behind holder's lock
        active = connect(target)
        waiter = threading.Thread(target=lambda: active.execute("SELECT pg_advisory_xact_lock(4242)"))
        waiter.start()
        other_db_idle = connect(other)  # same age, other database: out of scope

        time.sleep(AGE_S + 0.5)
        young_idle = connect(target)

        counts = connection_counts(target, older_than_minutes=AGE_S / 60)
        assert (counts.total, counts.idle, counts.idle_older, counts.idle_in_transaction) == (6, 4, 3, 1)

        dry = reset_idle_connections(target, older_than_minutes=AGE_S / 60, dry_run=True)
        assert dry.dry_run and sorted(dry.terminated) == sorted(c.info.backend_pid for c in old_idle)
        # dry run touched nothing (checked from outside: a query would make them young again)
        with psycopg.connect(other) as probe:  # not the target db: never in its counts
            pids = [c.info.backend_pid for c in old_idle]
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            ).fetchone()
            assert row == (3,)

        result = reset_idle_connections(target, older_than_minutes=AGE_S / 60)
        assert sorted(result.terminated) == sorted(c.info.backend_pid for c in old_idle)
        assert result.before == counts
        assert (result.after.total, result.after.idle, result.after.idle_older) == (3, 1, 0)
        assert not any(_alive(c) for c in old_idle)
        assert waiter.is_alive()  # still waiting, i.e. still active and connected
        holder.commit()  # lets the waiter finish
        waiter.join(timeout=10)
        assert _alive(active) and _alive(holder) and _alive(young_idle) and _alive(other_db_idle)
    finally:
        for c in conns:
            c.close()


def test_guide_default_hour_terminates_nothing_young(pg_db: Callable[[], str]) -> None:
    dsn = pg_db()
    with psycopg.connect(dsn) as c:
        c.execute("SELECT 1")
        c.commit()
        result = reset_idle_connections(dsn)  # 60 minutes
        assert result.terminated == [] and result.before.total == 1 and result.before.idle == 1
        assert _alive(c)


def test_unreachable_database_message_has_no_password() -> None:
    dsn = f"postgresql://app:hunter2secret@127.0.0.1:{free_port()}/taisun"
    with pytest.raises(PgConnectFailed) as err:
        connection_counts(dsn)
    msg = str(err.value)
    assert "hunter2secret" not in msg
    assert f"postgresql://app@127.0.0.1:{dsn.split(':')[3].split('/')[0]}/taisun" in msg


def test_dsn_helpers_never_echo_the_password() -> None:
    with pytest.raises(InvalidDsn) as err:
        connection_counts("host=x password=abcdef123 bogus")
    assert "abcdef123" not in str(err.value)
    assert split_dsn("postgresql://u:p%40ss@h:5433/db") == ("user=u dbname=db host=h port=5433", "p@ss")
    assert safe_dsn("host=h password=zzz dbname=d user=u") == "postgresql://u@h/d"
    with pytest.raises(ValueError):
        reset_idle_connections("dbname=x", older_than_minutes=-1)
