"""Tables for security operations (#18): the periodic tasks' occurrences, scan findings, access reviews,
and the Slack messages that show them.

Every fact that decides "has this happened already?" is a row with a unique constraint, so two
replicas (or one restarted mid-way) post a due task once, open one issue per finding, and record one
decision per person and role.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.states import OccurrenceState, ReviewState
from bot.core.store.models.base import Base, utcnow


class SecurityOccurrence(Base):
    """One time a task is due: scheduled → due → done (or missed, when the next one came first)."""

    __tablename__ = "security_occurrences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default=OccurrenceState.SCHEDULED)
    # The schedule it was computed from ("weekly mon 09:00 Asia/Tokyo"): a changed config reschedules it.
    schedule: Mapped[str] = mapped_column(String(120), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")
    # What the task's kind recorded: the scan's job id, the review id, the secrets' ages (names only).
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    done_at: Mapped[datetime | None] = mapped_column(default=None)
    done_by: Mapped[str] = mapped_column(String(64), default="")
    done_by_name: Mapped[str] = mapped_column(String(255), default="")
    note: Mapped[str] = mapped_column(Text, default="")  # plain text as typed (a note or a link)
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    snoozed_by: Mapped[str] = mapped_column(String(64), default="")
    nudged_at: Mapped[datetime | None] = mapped_column(default=None)
    nudges: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("task", "due_at", name="uq_security_occurrence"),
        Index("ix_security_occurrences_task_state", "task", "state"),
    )


class SecurityMessage(Base):
    """A Slack message a security subject owns ("sectask:<id>", "secreview:<id>"), one per slot.

    `ts` is "" until posted; the replica posting it holds the claim (bot.core.claims)."""

    __tablename__ = "security_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64), default="")
    ts: Mapped[str] = mapped_column(String(64), default="")
    message_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    message_claimed_by: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (UniqueConstraint("subject", "slot", name="uq_security_message"),)


class SecurityFinding(Base):
    """A vulnerability the dependency scan reported, once per (advisory, package) however often it recurs."""

    __tablename__ = "security_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of advisory id and package
    severity: Mapped[str] = mapped_column(String(16))
    advisory: Mapped[str] = mapped_column(String(255), default="")  # CVE-…, GHSA-…
    package: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(128), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(Text, default="")
    fixed_in: Mapped[str] = mapped_column(String(128), default="")
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_job_id: Mapped[str] = mapped_column(String(36), default="")
    # The GitHub issue's html_url; "" until opened. The scan opening it holds the claim, by its job id
    # (a resumed job knows its own claim: it looks for the issue on GitHub before opening one).
    issue_url: Mapped[str] = mapped_column(Text, default="")
    issue_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    issue_claimed_by: Mapped[str] = mapped_column(String(64), default="")


class AccessReview(Base):
    """One access review: every role's members, resolved when it started, and the decisions on them."""

    __tablename__ = "security_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The quarterly occurrence it belongs to (one review each); None for one started by hand.
    occurrence_id: Mapped[int | None] = mapped_column(Integer, unique=True, default=None)
    state: Mapped[str] = mapped_column(String(16), default=ReviewState.OPEN)
    started_by: Mapped[str] = mapped_column(String(64))
    started_by_name: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(64), default="")
    inactive_days: Mapped[int] = mapped_column(Integer, default=90)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_by: Mapped[str] = mapped_column(String(64), default="")


class AccessReviewItem(Base):
    """One person holding one role through one config entry (a user ID, an @group, or `*` itself)."""

    __tablename__ = "security_review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("security_reviews.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(
        String(128)
    )  # the config field: roles.admin, environments.production.approvers
    entry: Mapped[str] = mapped_column(String(64))  # U0123 / @group / *
    user_id: Mapped[str] = mapped_column(String(64), default="")  # "" for `*` (everyone in the workspace)
    last_action: Mapped[str] = mapped_column(String(64), default="")
    last_action_at: Mapped[datetime | None] = mapped_column(default=None)
    inactive: Mapped[bool] = mapped_column(default=False)
    decision: Mapped[str] = mapped_column(String(8), default="")  # "" | keep | remove
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("review_id", "role", "entry", "user_id", name="uq_security_review_item"),
        Index("ix_security_review_items_review", "review_id", "position"),
    )
