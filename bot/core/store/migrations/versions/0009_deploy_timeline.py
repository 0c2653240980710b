"""the deploy timeline: workflow runs seen (each counted once) and the poller's place per environment

`deploy_runs` holds every deploy workflow run the bot has seen — dispatched by itself, announced by
a webhook, or found by the poller — unique per (repository, run_key), so a run seen twice is one
deploy. `github_polls` keeps each environment's ETag and newest run for the poller.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import bot.core.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploy_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("deployment_id", sa.BigInteger(), nullable=True),
        sa.Column("run_number", sa.Integer(), nullable=True),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("html_url", sa.Text(), nullable=False),
        sa.Column("run_created_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seen_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_via", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository", "run_key", name="uq_deploy_runs_repository_run_key"),
    )
    op.create_index("ix_deploy_runs_job_id", "deploy_runs", ["job_id"], unique=False)
    op.create_table(
        "github_polls",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("next_poll_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("polled_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("github_polls")
    op.drop_index("ix_deploy_runs_job_id", table_name="deploy_runs")
    op.drop_table("deploy_runs")
