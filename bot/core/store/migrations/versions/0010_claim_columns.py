"""claims get their own columns instead of markers in data columns

A replica doing a one-off side effect used to write its claim into the column the side effect
fills in: "pending:<time>" in a message ts, "creating:<time>" in an incident's channel or a
follow-up's issue URL, "starting" in an alert group's run id. Each claim now has its own
`<thing>_claimed_at` / `<thing>_claimed_by` columns (bot.core.claims); the data column stays
empty until the side effect is done. Claims open at upgrade keep their time, so they expire as
they would have (a "starting" run claim had no time: it gets the group's last update).

Revision ID: 0010
Revises: 0009
"""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import bot.core.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MARK_TIME = "%Y-%m-%dT%H:%M:%S"
UPGRADED = "(claimed before 0010)"

# (table, the data column, its claim columns' prefix, the marker prefix; "" for the "starting" run id)
CLAIMS: list[tuple[str, str, str, str]] = [
    ("incidents", "header_ts", "header", "pending:"),
    ("incidents", "dedicated_channel", "channel", "creating:"),
    ("incident_followups", "issue_url", "issue", "creating:"),
    ("runbook_runs", "message_ts", "message", "pending:"),
    ("alert_groups", "message_ts", "message", "pending:"),
    ("alert_groups", "run_id", "run", ""),  # "starting", no time: the row's updated_at
]


def _table(name: str, data: str, prefix: str) -> sa.TableClause:
    cols = [
        sa.column("id", sa.Integer if name != "runbook_runs" else sa.String),
        sa.column(data, sa.String),
        sa.column(f"{prefix}_claimed_at", bot.core.store.models.UTCDateTime()),
        sa.column(f"{prefix}_claimed_by", sa.String),
    ]
    if name == "alert_groups":
        cols.append(sa.column("updated_at", bot.core.store.models.UTCDateTime()))
    return sa.table(name, *cols)


def _marked_at(value: str, marker: str) -> datetime | None:
    try:
        return datetime.strptime(value.removeprefix(marker), MARK_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def upgrade() -> None:
    def add(table: str, *prefixes: str) -> None:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for prefix in prefixes:
                batch_op.add_column(
                    sa.Column(
                        f"{prefix}_claimed_at",
                        bot.core.store.models.UTCDateTime(timezone=True),
                        nullable=True,
                    )
                )
                batch_op.add_column(
                    sa.Column(f"{prefix}_claimed_by", sa.String(length=64), nullable=False, server_default="")
                )

    add("incidents", "header", "channel")
    add("incident_followups", "issue")
    add("runbook_runs", "message")
    add("alert_groups", "message", "run")

    conn = op.get_bind()
    now = datetime.now(UTC)
    for name, data, prefix, marker in CLAIMS:
        t = _table(name, data, prefix)
        col = t.c[data]
        if marker:
            rows: list[Any] = list(conn.execute(sa.select(t.c.id, col).where(col.startswith(marker))))
            for row_id, value in rows:
                at = _marked_at(value, marker) or now
                conn.execute(
                    t.update().where(t.c.id == row_id)
                    .values({data: "", f"{prefix}_claimed_at": at, f"{prefix}_claimed_by": UPGRADED})
                )  # fmt: skip
        else:
            rows = list(conn.execute(sa.select(t.c.id, t.c.updated_at).where(col == "starting")))
            for row_id, updated_at in rows:
                conn.execute(
                    t.update().where(t.c.id == row_id)
                    .values({data: "", f"{prefix}_claimed_at": updated_at or now, f"{prefix}_claimed_by": UPGRADED})
                )  # fmt: skip


def downgrade() -> None:
    conn = op.get_bind()
    for name, data, prefix, marker in CLAIMS:
        t = _table(name, data, prefix)
        at_col = t.c[f"{prefix}_claimed_at"]
        rows: list[Any] = list(
            conn.execute(sa.select(t.c.id, at_col).where(at_col.is_not(None), t.c[data] == ""))
        )
        for row_id, at in rows:
            value = f"{marker}{at.strftime(MARK_TIME)}" if marker else "starting"
            conn.execute(t.update().where(t.c.id == row_id).values({data: value}))

    def drop(table: str, *prefixes: str) -> None:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for prefix in prefixes:
                batch_op.drop_column(f"{prefix}_claimed_by")
                batch_op.drop_column(f"{prefix}_claimed_at")

    drop("alert_groups", "message", "run")
    drop("runbook_runs", "message")
    drop("incident_followups", "issue")
    drop("incidents", "header", "channel")
