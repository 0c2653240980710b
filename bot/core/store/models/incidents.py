"""Tables for incidents and runbook runs.

Everything a replica needs to carry on where another stopped lives here: incident
numbers, checklist state, the timeline, nudges already posted, alert groups and the
Slack messages that show them. A one-off side effect (posting a message, creating a channel,
opening an issue) is claimed in its own `<thing>_claimed_at`/`_by` columns (bot.core.claims),
so two replicas never do it twice and a dead replica's claim expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.states import IncidentState, RunState, StepState
from bot.core.store.models.base import Base, utcnow


class Incident(Base):
    """One incident: INC-<number>, its roles, phase, milestones and where it lives in Slack."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Shown as INC-<number>; unique so two replicas declaring at once get different numbers.
    number: Mapped[int] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(16))
    # open → resolved
    state: Mapped[str] = mapped_column(String(16), default=IncidentState.OPEN, index=True)
    phase: Mapped[str] = mapped_column(String(32), default="Detection")
    # {"Detection": iso, "Triage": iso, ...}: when each phase was entered.
    phase_times: Mapped[dict[str, Any]] = mapped_column(default=dict)
    environment: Mapped[str] = mapped_column(String(64), default="")
    declared_by: Mapped[str] = mapped_column(String(64))
    declared_by_name: Mapped[str] = mapped_column(String(255), default="")
    commander: Mapped[str] = mapped_column(String(64), default="")
    scribe: Mapped[str] = mapped_column(String(64), default="")
    comms: Mapped[str] = mapped_column(String(64), default="")
    status_text: Mapped[str] = mapped_column(Text, default="")
    status_by: Mapped[str] = mapped_column(String(64), default="")
    status_at: Mapped[datetime | None] = mapped_column(default=None)
    # Where it was declared, and where the header message (thread parent) lives.
    origin_channel: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")
    # The header message; "" until posted (claimed by the replica posting it).
    header_ts: Mapped[str] = mapped_column(String(64), default="")
    header_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    header_claimed_by: Mapped[str] = mapped_column(String(64), default="")
    # The incident's own channel (inc-<n>-<slug>); "" until created (claimed by the replica creating it).
    dedicated_channel: Mapped[str] = mapped_column(String(64), default="")
    dedicated_name: Mapped[str] = mapped_column(String(80), default="")
    channel_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    channel_claimed_by: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(255), default="")  # "alert:<group id>", "message:<ch>/<ts>"
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    declared_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    mitigated_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str] = mapped_column(String(64), default="")
    postmortem: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def ref(self) -> str:
        return f"INC-{self.number}"


class IncidentCounter(Base):
    """A single row: the last incident number. Declaring locks it, so replicas number in turn."""

    __tablename__ = "incident_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class IncidentEvent(Base):
    """One timeline entry. `at` is when it happened (a pinned message keeps its post time)."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set for entries that must appear once whatever replays happen (a pin, an alert episode).
    key: Mapped[str | None] = mapped_column(String(255), default=None)

    __table_args__ = (
        UniqueConstraint("incident_id", "key", name="uq_incident_events_key"),
        Index("ix_incident_events_incident_at", "incident_id", "at"),
    )


class IncidentFollowup(Base):
    """An improvement item from the postmortem; issue_url once a GitHub issue was opened."""

    __tablename__ = "incident_followups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    # "" → the issue's URL (claimed by one click while it is opened)
    issue_url: Mapped[str] = mapped_column(String(500), default="")
    opened_by: Mapped[str] = mapped_column(String(64), default="")
    issue_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    issue_claimed_by: Mapped[str] = mapped_column(String(64), default="")


class Nudge(Base):
    """A reminder posted once per (subject, kind, target); a snooze lets it come back once later."""

    __tablename__ = "nudges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(64))  # "inc:<id>" or "run:<id>"
    kind: Mapped[str] = mapped_column(String(32))  # no_commander, no_status, overdue
    target: Mapped[str] = mapped_column(String(128), default="")  # step id, or the status epoch
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    snoozed_by: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (UniqueConstraint("subject", "kind", "target", name="uq_nudges_once"),)


class RunbookRun(Base):
    """A runbook walked as a checklist: one Slack message, steps in its thread."""

    __tablename__ = "runbook_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    runbook_id: Mapped[str] = mapped_column(String(64))
    # The validated runbook as it was when the run started (a later edit never breaks a run).
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    environment: Mapped[str] = mapped_column(String(64), default="")
    drill: Mapped[bool] = mapped_column(default=False)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None, index=True
    )
    alert_group_id: Mapped[int | None] = mapped_column(Integer, default=None)
    started_by: Mapped[str] = mapped_column(String(64))
    started_by_name: Mapped[str] = mapped_column(String(255), default="")
    # open → completed (every step done or skipped)
    state: Mapped[str] = mapped_column(String(16), default=RunState.OPEN, index=True)
    channel: Mapped[str] = mapped_column(String(64), default="")
    # The thread the checklist is posted into ("" = top level; results then go in its own thread).
    thread_ts: Mapped[str] = mapped_column(String(64), default="")
    # The checklist message; "" until posted (claimed by the replica posting it).
    message_ts: Mapped[str] = mapped_column(String(64), default="")
    message_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    message_claimed_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class RunbookStep(Base):
    """The state of one step of a run: pending → (running →) done | passed | failed | skipped."""

    __tablename__ = "runbook_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runbook_runs.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # manual, check, action
    phase: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16), default=StepState.PENDING, index=True)
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")  # a skip reason: plain text a person typed
    result: Mapped[str] = mapped_column(Text, default="")  # mrkdwn the bot rendered (outside text escaped)
    job_id: Mapped[str] = mapped_column(String(36), default="")
    job_state: Mapped[str] = mapped_column(String(24), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("run_id", "step_id", name="uq_runbook_steps_step"),)
