"""security operations: the periodic tasks' occurrences, scan findings, access reviews, their messages

Each "has this happened already?" is a unique constraint: a due task is posted once (task, due_at), a
finding gets one issue (key), a review belongs to one occurrence, and a person's role is decided once
per review. The audit log gets an index on (actor_id, ts): the access review reads each person's last
action, and the Home tab each viewer's recent ones.

Messages and issues are claimed in their own columns (bot.core.claims), like every other claim.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

import bot.core.store.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Time = bot.core.store.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "security_occurrences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=40), nullable=False),
        sa.Column("due_at", Time(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("schedule", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("done_at", Time(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=64), nullable=False),
        sa.Column("done_by_name", sa.String(length=255), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("snoozed_until", Time(timezone=True), nullable=True),
        sa.Column("snoozed_by", sa.String(length=64), nullable=False),
        sa.Column("nudged_at", Time(timezone=True), nullable=True),
        sa.Column("nudges", sa.Integer(), nullable=False),
        sa.Column("created_at", Time(timezone=True), nullable=False),
        sa.Column("updated_at", Time(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task", "due_at", name="uq_security_occurrence"),
    )
    op.create_index("ix_security_occurrences_task_state", "security_occurrences", ["task", "state"])
    op.create_table(
        "security_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=64), nullable=False),
        sa.Column("message_claimed_at", Time(timezone=True), nullable=True),
        sa.Column("message_claimed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject", "slot", name="uq_security_message"),
    )
    op.create_table(
        "security_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("advisory", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("fixed_in", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", Time(timezone=True), nullable=False),
        sa.Column("last_seen_at", Time(timezone=True), nullable=False),
        sa.Column("last_job_id", sa.String(length=36), nullable=False),
        sa.Column("issue_url", sa.Text(), nullable=False),
        sa.Column("issue_claimed_at", Time(timezone=True), nullable=True),
        sa.Column("issue_claimed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "security_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("started_by_name", sa.String(length=255), nullable=False),
        sa.Column("started_at", Time(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("inactive_days", sa.Integer(), nullable=False),
        sa.Column("completed_at", Time(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("occurrence_id"),
    )
    op.create_table(
        "security_review_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=128), nullable=False),
        sa.Column("entry", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("last_action", sa.String(length=64), nullable=False),
        sa.Column("last_action_at", Time(timezone=True), nullable=True),
        sa.Column("inactive", sa.Boolean(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", Time(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["review_id"], ["security_reviews.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("review_id", "role", "entry", "user_id", name="uq_security_review_item"),
    )
    op.create_index("ix_security_review_items_review", "security_review_items", ["review_id", "position"])
    op.create_index("ix_audit_actor_ts", "audit_events", ["actor_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_audit_actor_ts", table_name="audit_events")
    op.drop_index("ix_security_review_items_review", table_name="security_review_items")
    op.drop_table("security_review_items")
    op.drop_table("security_reviews")
    op.drop_table("security_findings")
    op.drop_table("security_messages")
    op.drop_index("ix_security_occurrences_task_state", table_name="security_occurrences")
    op.drop_table("security_occurrences")
