"""How the core and the capabilities talk to the Slack surface's one outbox, without importing it.

Every message the bot keeps in Slack belongs to a "subject" ("job:<id>", "inc:3", "run:<id>",
"alert:7"): its owner registers a Syncer that says which messages a subject owns now, and
marks a subject changed through `Services.outbox` (the surface's SlackOutbox; a job through
`job_changed`). Thread replies go through a durable outbox table, queued in the caller's
transaction with `outbox()`. Pure data and database code: nothing here talks to Slack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.core.claims import Claim
from bot.core.store.models import Outbox


def job_subject(job_id: str) -> str:
    """The subject of a job's card."""
    return f"job:{job_id}"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Managed:
    """One message a subject owns: what it should say now, and where it is (ts "" = not posted yet)."""

    slot: str
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    ts: str = ""
    thread_ts: str = ""
    # Where to post instead when `channel` refuses (the bot is not in it, a DM...).
    fallback_channel: str = ""
    # Set: an ephemeral answer to the requester through this response_url, not a channel message.
    response_url: str = ""


@dataclass
class Syncer:
    """What the sender needs to know about one kind of subject (incident, run, alert group)."""

    prefix: str
    # key -> the messages it owns now, or None when the subject is gone.
    messages: Callable[[str], list[Managed] | None]
    # (key, slot) -> True if this replica may post that message now (it took the claim).
    claim: Callable[[str, str], bool]
    # (key, slot, channel, ts) -> record the posted message and end the claim ("" ts: just end it).
    store: Callable[[str, str, str, str], None]
    # key -> (channel, thread_ts) for outbox replies, or None while the thread does not exist.
    thread: Callable[[str], tuple[str, str] | None]
    # Called after a subject was synced (alert groups record the version they showed).
    synced: Callable[[str], None] | None = None
    min_interval: float = 1.0


def claim_message(sessions: Any, ts: InstrumentedAttribute[str], claim: Claim, where: Any) -> bool:
    """Claim the posting of a message not posted yet (its ts column empty) for this replica."""
    with sessions.begin() as s:
        return claim.take(s, and_(where, ts == ""))


def outbox(
    s: Session,
    subject: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    target: str = "thread",
) -> None:
    """Queue a reply in the caller's transaction; it is posted once the subject's thread exists."""
    s.add(Outbox(subject=subject, target=target, text=text[:39000], blocks={"blocks": blocks or []}))
