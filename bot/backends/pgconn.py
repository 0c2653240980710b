"""The guide's "DB connection reset" runbook: count connections, end the idle ones.

The guide runs::

    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE state = 'idle' AND query_start < NOW() - INTERVAL '1 hour';

Here the age is measured from ``state_change`` instead of ``query_start``. For an idle
backend ``state_change`` is the moment it *became* idle (its last query finished),
while ``query_start`` is when that last query *started*: a connection whose report
query ran for 70 minutes and finished a second ago has ``query_start`` 70 minutes
ago but has been idle for one second, and the guide's query would kill it. Since
``state_change >= query_start`` always holds, this criterion is the stricter one:
it terminates a subset of what the guide's query would.

Scope is deliberately narrow: only ``client backend`` processes of the DSN's own
database, only ``state = 'idle'`` (not ``idle in transaction``, which is counted
and reported but left alone, since ending it rolls back someone's open
transaction), and never this tool's own backend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.core.logs import redact

APPLICATION_NAME = "taisun-chatops"


class PgConnError(Exception):
    """Base class: the message is safe to show (no passwords) and says what to do."""


class PgConnectFailed(PgConnError):
    """The database could not be reached or refused the login."""


class PgPermissionDenied(PgConnError):
    """The login may not read or signal other sessions."""


class InvalidDsn(PgConnError):
    """The DSN is not a libpq connection string or URL."""


@dataclass(frozen=True)
class ConnCounts:
    """Client connections to one database (this tool's own connection excluded)."""

    total: int
    idle: int
    idle_older: int  # idle for longer than the limit: what a reset would terminate
    idle_in_transaction: int = 0  # reported only; never terminated here


@dataclass(frozen=True)
class ResetResult:
    """What a reset saw and did. In a dry run `terminated` lists the pids it would end."""

    before: ConnCounts
    terminated: list[int]
    after: ConnCounts
    dry_run: bool = False
    failed: list[int] = field(default_factory=list)  # pg_terminate_backend returned false


# --- DSN helpers (shared with backup.py) ------------------------------------------


def parse_dsn(dsn: str) -> dict[str, str]:
    """libpq's own parse of a URL or key=value DSN; InvalidDsn without echoing it."""
    try:
        return {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.ProgrammingError:
        # libpq's message quotes fragments of the string, which may be the password.
        raise InvalidDsn(
            "the database DSN could not be parsed (details withheld: they may contain the password); "
            "expected postgresql://user:password@host:5432/dbname or 'host=... dbname=...'"
        ) from None


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """(DSN without its password, the password or None): hand the password to a
    child process in PGPASSWORD so it never shows up in `ps` output."""
    params = parse_dsn(dsn)
    password = params.pop("password", None)
    return make_conninfo(**params), password


def safe_dsn(dsn: str) -> str:
    """postgresql://user@host:port/dbname for messages: never the password, never other options."""
    try:
        p = parse_dsn(dsn)
    except InvalidDsn:
        return "<unparseable DSN>"
    user = f"{p['user']}@" if p.get("user") else ""
    host = p.get("host") or p.get("hostaddr") or "localhost"
    port = f":{p['port']}" if p.get("port") else ""
    return f"postgresql://{user}{host}{port}/{p.get('dbname', '')}"


def _err_text(exc: BaseException, dsn: str) -> str:
    """First line of a driver error, with any secret removed."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    try:
        password = parse_dsn(dsn).get("password")
    except InvalidDsn:
        password = None
    if password:
        text = text.replace(password, "***")
    return redact(text)


def _connect(dsn: str) -> psycopg.Connection:
    parse_dsn(dsn)  # InvalidDsn early, with a safe message
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name=APPLICATION_NAME)
    except psycopg.OperationalError as exc:
        raise PgConnectFailed(
            f"cannot connect to {safe_dsn(dsn)}: {_err_text(exc, dsn)}. "
            "Check that the database is up and the DSN's host, port, user and password are right."
        ) from None


# --- the runbook ---------------------------------------------------------------------

# Shared WHERE clause: this database's client sessions, except our own.
_SCOPE = "datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
_IDLE_OLDER = "state = 'idle' AND state_change < now() - make_interval(secs => %(secs)s)"

_COUNT_SQL = f"""
SELECT count(*),
       count(*) FILTER (WHERE state = 'idle'),
       count(*) FILTER (WHERE {_IDLE_OLDER}),
       count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))
FROM pg_stat_activity WHERE {_SCOPE}
"""  # noqa: S608 - constant SQL fragments only; values are bound parameters

# Selection and termination in one statement keeps the window in which a session
# could turn active between "chosen" and "killed" as small as PostgreSQL allows.
_TERMINATE_SQL = f"""
SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
WHERE {_SCOPE} AND {_IDLE_OLDER} ORDER BY pid
"""  # noqa: S608

_CANDIDATES_SQL = f"SELECT pid FROM pg_stat_activity WHERE {_SCOPE} AND {_IDLE_OLDER} ORDER BY pid"  # noqa: S608


def _seconds(older_than_minutes: float) -> float:
    if older_than_minutes < 0:
        raise ValueError("older_than_minutes must be >= 0")
    return float(older_than_minutes) * 60.0


def _counts(conn: psycopg.Connection, secs: float) -> ConnCounts:
    row = conn.execute(_COUNT_SQL, {"secs": secs}).fetchone()
    assert row is not None
    return ConnCounts(total=row[0], idle=row[1], idle_older=row[2], idle_in_transaction=row[3])


def _privilege_error(dsn: str, exc: BaseException) -> PgPermissionDenied:
    return PgPermissionDenied(
        f"not allowed on {safe_dsn(dsn)}: {_err_text(exc, dsn)}. "
        "The login needs the pg_signal_backend role (GRANT pg_signal_backend TO <user>) "
        "and cannot end superuser sessions unless it is a superuser."
    )


def connection_counts(dsn: str, *, older_than_minutes: float = 60) -> ConnCounts:
    """Connections to the DSN's database; `idle_older` uses the same criterion as a reset."""
    secs = _seconds(older_than_minutes)
    with _connect(dsn) as conn:
        try:
            return _counts(conn, secs)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _privilege_error(dsn, exc) from None
        except psycopg.Error as exc:
            raise PgConnError(
                f"reading pg_stat_activity on {safe_dsn(dsn)} failed: {_err_text(exc, dsn)}"
            ) from None


def reset_idle_connections(
    dsn: str, *, older_than_minutes: float = 60, dry_run: bool = False, settle_s: float = 3.0
) -> ResetResult:
    """Terminate idle sessions of the DSN's database idle for longer than the limit.

    `older_than_minutes` may be fractional (tests use seconds). `settle_s` bounds how
    long to wait for terminated backends to leave pg_stat_activity before `after` is
    counted: pg_terminate_backend only sends the signal.
    """
    secs = _seconds(older_than_minutes)
    with _connect(dsn) as conn:
        try:
            before = _counts(conn, secs)
            if dry_run:
                pids = [r[0] for r in conn.execute(_CANDIDATES_SQL, {"secs": secs}).fetchall()]
                return ResetResult(before=before, terminated=pids, after=before, dry_run=True)
            rows = conn.execute(_TERMINATE_SQL, {"secs": secs}).fetchall()
            terminated = [pid for pid, ok in rows if ok]
            failed = [pid for pid, ok in rows if not ok]
            deadline = time.monotonic() + settle_s
            while terminated and time.monotonic() < deadline:
                left = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [terminated]
                ).fetchone()
                if not left or left[0] == 0:
                    break
                time.sleep(0.05)
            after = _counts(conn, secs)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _privilege_error(dsn, exc) from None
        except psycopg.Error as exc:
            raise PgConnError(
                f"resetting idle connections on {safe_dsn(dsn)} failed: {_err_text(exc, dsn)}"
            ) from None
    return ResetResult(before=before, terminated=terminated, after=after, failed=failed)
