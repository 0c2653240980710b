"""The core's tables: jobs, locks, the audit chain, delivery keys, people, the bot's own marks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.store.models.base import Base, utcnow


class AuditEvent(Base):
    """One append-only, hash-chained audit row.

    Written in the transaction of the change it records, without seq/prev_hash/hash; the
    chainer (bot.audit.AuditChainer) links it into the chain moments later.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)
    ts: Mapped[datetime]
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(255), default="")
    action: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    # When the bot wrote `detail` from its catalogue: the message itself (bot.core.i18n.msg), so each reader
    # sees it in their language; `detail` is its text in the workspace language, for the record.
    detail_msg: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    job_id: Mapped[str] = mapped_column(String(36), default="")
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    # hash is an HMAC-SHA256 with TAISUN_AUDIT_KEY when keyed, else a plain SHA-256 (rows chained
    # before the database had a key keep theirs).
    hash: Mapped[str | None] = mapped_column(String(64))
    keyed: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (
        Index("ix_audit_env_id", "environment", "id"),
        # The rows still waiting for the chainer: a handful at any time, found without a scan.
        Index(
            "ix_audit_unchained",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
        # Each person's last action (the access review) and recent ones (the Home tab).
        Index("ix_audit_actor_ts", "actor_id", "ts"),
    )


class AuditHead(Base):
    """A single row: the last sequence number and hash. The chainer locks it to chain rows in order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    # The id (not the secret) of the key the chain is keyed with since the audit.keyed row; None: unkeyed.
    key_id: Mapped[str | None] = mapped_column(String(16), default=None)
    # The last head written outside the database (S3 / Slack), so replicas anchor in turn.
    anchored_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    anchored_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    """A durable operation: requested → (pending_approval →) queued → running → final."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(24), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_by_name: Mapped[str] = mapped_column(String(255), default="")
    approved_by: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")
    message_ts: Mapped[str] = mapped_column(String(32), default="")
    response_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # What the operation has done so far (e.g. the workflow run id), so a resumed job never repeats it.
    # Its texts (steps, fields, flag, result) and `result` are Slack mrkdwn the bot rendered,
    # with whatever people or outside systems wrote escaped in them (bot.core.mrkdwn): shown as stored.
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[str] = mapped_column(Text, default="")
    dry_run: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_jobs_env_state", "environment", "state"),)


class Lock(Base):
    """One change at a time per environment: held by a job or by a person."""

    __tablename__ = "locks"

    environment: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder_id: Mapped[str] = mapped_column(String(64))
    holder_name: Mapped[str] = mapped_column(String(255), default="")
    job_id: Mapped[str] = mapped_column(String(36), default="")
    reason: Mapped[str] = mapped_column(Text, default="")  # plain text (often typed by a person)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    reminded: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[str] = mapped_column(String(64), default="")
    # A lock the bot kept after a rollback: who rolled back (they or an admin may release it).
    kept_for: Mapped[str] = mapped_column(String(64), default="", server_default="")


class DedupeKey(Base):
    """Slack retries and duplicate events: the first insert wins, the rest are ignored."""

    __tablename__ = "dedupe_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class BotMeta(Base):
    """Facts about the database itself, one row each: `shell` marks the local shell's demo database."""

    __tablename__ = "bot_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Person(Base):
    """What Slack said about someone who used the bot: their locale and display name, for every process.

    Learned once (users.info, or a payload that carries it) and asked again after a while, so all
    workers and replicas answer a person in the same language and Slack is asked once for them.
    """

    __tablename__ = "people"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    locale: Mapped[str] = mapped_column(String(32), default="")  # e.g. ja-JP; "" when Slack did not say
    name: Mapped[str] = mapped_column(String(255), default="")  # display name; "" when unknown
    # When Slack last told us (or failed to): None means never; old means ask again (bot.core.people).
    asked_at: Mapped[datetime | None] = mapped_column(default=None)
    # A process is asking Slack until then; the others wait for its answer instead of asking too.
    asking_until: Mapped[datetime | None] = mapped_column(default=None)
