"""The durable outbox of Slack thread replies (posted in order once their thread exists)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.store.models.base import Base, utcnow


class Outbox(Base):
    """A thread reply waiting to be posted once its thread exists (durable across restarts)."""

    __tablename__ = "slack_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)  # "inc:<id>", "run:<id>"
    # "thread" (the subject's thread), "channel" (the subject's channel, top level) or a channel id.
    target: Mapped[str] = mapped_column(String(64), default="thread")
    text: Mapped[str] = mapped_column(Text, default="")
    blocks: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"blocks": [...]}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_ts: Mapped[str] = mapped_column(String(64), default="")
