"""audit chain keyed with TAISUN_AUDIT_KEY, and its head anchored outside the database

A row chained with the key carries an HMAC-SHA256 (`keyed`); rows chained before keep their
SHA-256 and still verify. audit_head records the key's id (never the key) and the last head
written to S3 / Slack, so replicas take turns anchoring.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import bot.core.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyed", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("anchored_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("anchored_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    # Keyed rows would no longer verify without their flag: downgrade only a database never keyed.
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("anchored_at")
        batch_op.drop_column("anchored_seq")
        batch_op.drop_column("key_id")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("keyed")
