"""Tables for Alertmanager alerts: one group per alertname, one row per fingerprint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.store.models.base import Base, utcnow


class AlertGroup(Base):
    """All alerts with one alertname: one Slack message, updated in place."""

    __tablename__ = "alert_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alertname: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(64), default="")
    # "" until posted (claimed by the replica posting it: bot.core.claims).
    message_ts: Mapped[str] = mapped_column(String(64), default="")
    message_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    message_claimed_by: Mapped[str] = mapped_column(String(64), default="")
    # Starts when the group fires after being quiet: a new episode gets a new message.
    episode_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped by every webhook that touches the group; the sender renders until it catches up.
    version: Mapped[int] = mapped_column(Integer, default=0)
    sent_version: Mapped[int] = mapped_column(Integer, default=0)
    incident_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # The runbook run started from the group message; "" until started (claimed by the click starting it).
    run_id: Mapped[str] = mapped_column(String(36), default="")
    run_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    run_claimed_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """One alert, deduplicated by Alertmanager's fingerprint (the newest occurrence wins)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("alert_groups.id", ondelete="CASCADE"))
    alertname: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    severity: Mapped[str] = mapped_column(String(32), default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    generator_url: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_alerts_group_status", "group_id", "status"),)
