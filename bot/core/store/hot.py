"""The ack path's statements on PostgreSQL, sent through psycopg itself.

Every Slack request is answered after two statements: its delivery key (bot.core.dedupe) and, for a
command that requests a job, the job with its audit row (bot.core.audit.append_along). SQLAlchemy's
execution of a cached Core statement costs about 0.1 ms of CPU more than psycopg's own execute
(0.19 against 0.09 ms per statement on the benchmark machine), a tenth of what serve spends on a
request. A HotStatement is still a SQLAlchemy statement: SQLAlchemy compiles it once per dialect
(its SQL and its types' bind processors, so a value is sent exactly as through the ORM), and it runs
on a connection of the engine's pool (with the pool's own checks), in autocommit: one statement,
one round trip. Driver errors come out as SQLAlchemy's (OperationalError for a database that cannot
be reached), and a connection the database dropped leaves the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class _Compiled:
    sql: str
    compiled: Any  # sqlalchemy.sql.compiler.SQLCompiler
    processors: dict[str, Any]  # bind name -> the type's bind processor (None: sent as it is)


class HotStatement:
    """One Core statement for the ack path: compiled once, then `first(engine, params)`."""

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        self._compiled: _Compiled | None = None

    def _compile(self, engine: Engine) -> _Compiled:
        compiled = self.statement.compile(dialect=engine.dialect)
        processors = {
            name: bind.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
            for name, bind in compiled.binds.items()
        }
        return _Compiled(compiled.string, compiled, processors)

    def first(self, engine: Engine, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run it in autocommit on PostgreSQL; its first row, or None."""
        c = self._compiled
        if c is None:
            c = self._compiled = self._compile(engine)
        values = c.compiled.construct_params(params)
        for name, process in c.processors.items():
            if process is not None and name in values:
                values[name] = process(values[name])
        error = engine.dialect.loaded_dbapi.Error
        pooled = None
        try:
            pooled = engine.raw_connection()  # a refused connection raises the driver's own error too
            driver = pooled.driver_connection
            assert driver is not None
            driver.autocommit = True  # one statement, its own transaction: no BEGIN, no COMMIT
            try:
                row = driver.execute(c.sql, values).fetchone()
            finally:
                if not driver.closed:
                    driver.autocommit = False  # back to the pool as the ORM expects it
        except error as e:
            gone = pooled is None or engine.dialect.is_disconnect(e, pooled.dbapi_connection, None)
            if gone and pooled is not None:
                pooled.invalidate(e)
            raise DBAPIError.instance(
                c.sql, values, e, error, connection_invalidated=gone, dialect=engine.dialect
            ) from e
        finally:
            if pooled is not None:
                pooled.close()
        return tuple(row) if row is not None else None
