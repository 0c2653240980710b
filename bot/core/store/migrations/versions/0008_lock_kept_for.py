"""a lock the bot keeps after a rollback remembers who rolled back

The lock a rollback leaves is held by the bot ("fix before deploying again"); `kept_for` is the
person whose rollback left it, who may release it (as an admin may). Empty for every other lock.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kept_for", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.drop_column("kept_for")
