"""incidents, runbook runs, alerts: checklists, timeline, nudges, alert groups, Slack outbox

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import bot.core.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alertname", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("message_ts", sa.String(length=64), nullable=False),
        sa.Column("episode_started_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sent_version", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("updated_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alertname"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("phase_times", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("declared_by", sa.String(length=64), nullable=False),
        sa.Column("declared_by_name", sa.String(length=255), nullable=False),
        sa.Column("commander", sa.String(length=64), nullable=False),
        sa.Column("scribe", sa.String(length=64), nullable=False),
        sa.Column("comms", sa.String(length=64), nullable=False),
        sa.Column("status_text", sa.Text(), nullable=False),
        sa.Column("status_by", sa.String(length=64), nullable=False),
        sa.Column("status_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("origin_channel", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("header_ts", sa.String(length=64), nullable=False),
        sa.Column("dedicated_channel", sa.String(length=64), nullable=False),
        sa.Column("dedicated_name", sa.String(length=80), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("detected_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("declared_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("mitigated_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=False),
        sa.Column("postmortem", sa.Text(), nullable=False),
        sa.Column("updated_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index(op.f("ix_incidents_state"), "incidents", ["state"], unique=False)
    incident_counter = op.create_table(
        "incident_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # One row; declaring an incident takes the next number from it under a row lock.
    op.bulk_insert(incident_counter, [{"id": 1, "value": 0}])
    op.create_table(
        "nudges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("posted_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("snoozed_until", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("snoozed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject", "kind", "target", name="uq_nudges_once"),
    )
    op.create_table(
        "slack_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("created_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_ts", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_slack_outbox_subject"), "slack_outbox", ["subject"], unique=False)
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("alertname", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("starts_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=False),
        sa.Column("first_seen_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["alert_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_alerts_group_status", "alerts", ["group_id", "status"], unique=False)
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "key", name="uq_incident_events_key"),
    )
    op.create_index("ix_incident_events_incident_at", "incident_events", ["incident_id", "at"], unique=False)
    op.create_table(
        "incident_followups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("issue_url", sa.String(length=500), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_incident_followups_incident_id"), "incident_followups", ["incident_id"], unique=False
    )
    op.create_table(
        "runbook_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("runbook_id", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("alert_group_id", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("started_by_name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("thread_ts", sa.String(length=64), nullable=False),
        sa.Column("message_ts", sa.String(length=64), nullable=False),
        sa.Column("created_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_runbook_runs_incident_id"), "runbook_runs", ["incident_id"], unique=False)
    op.create_index(op.f("ix_runbook_runs_state"), "runbook_runs", ["state"], unique=False)
    op.create_table(
        "runbook_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("job_state", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", bot.core.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runbook_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", name="uq_runbook_steps_step"),
    )
    op.create_index(op.f("ix_runbook_steps_state"), "runbook_steps", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runbook_steps_state"), table_name="runbook_steps")
    op.drop_table("runbook_steps")
    op.drop_index(op.f("ix_runbook_runs_state"), table_name="runbook_runs")
    op.drop_index(op.f("ix_runbook_runs_incident_id"), table_name="runbook_runs")
    op.drop_table("runbook_runs")
    op.drop_index(op.f("ix_incident_followups_incident_id"), table_name="incident_followups")
    op.drop_table("incident_followups")
    op.drop_index("ix_incident_events_incident_at", table_name="incident_events")
    op.drop_table("incident_events")
    op.drop_index("ix_alerts_group_status", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index(op.f("ix_slack_outbox_subject"), table_name="slack_outbox")
    op.drop_table("slack_outbox")
    op.drop_table("nudges")
    op.drop_table("incident_counter")
    op.drop_index(op.f("ix_incidents_state"), table_name="incidents")
    op.drop_table("incidents")
    op.drop_table("alert_groups")
