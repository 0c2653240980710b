"""audit_events.detail_msg: a detail the bot wrote from its catalogue, shown in each reader's language

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail_msg", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Rows chained with a detail_msg hash it: downgrade only a database that never stored one.
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("detail_msg")
