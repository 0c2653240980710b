"""Turns a job row into the Slack message it lives in: the outbox's subject "job:<id>"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import update

from bot.core.ops import REGISTRY
from bot.core.outbox import Managed, Syncer
from bot.core.states import JobState
from bot.core.store.models import Job
from bot.slack.messages import job_blocks, job_text

if TYPE_CHECKING:
    from bot.core.services import Services


def job_card(svc: Services, job_id: str) -> Managed | None:
    """The job's card as it should look now (None: nothing to show yet)."""
    with svc.read_sessions() as s:
        job = s.get(Job, job_id)
    if job is None or job.state == JobState.VALIDATING and not job.message_ts:
        return None  # nothing worth a channel message until the request is checked
    op = REGISTRY.get(job.operation)
    # A request refused before it had a card concerns only the requester: tell them, not the channel.
    private = (
        not job.message_ts and job.state in (JobState.INVALID, JobState.REFUSED) and bool(job.response_url)
    )
    # A channel card is read by many: the workspace language. A private reply: the requester's.
    lang = svc.lang_for(job.requested_by) if private else svc.config.language
    description = svc.describe(job, lang)
    can_rollback = (
        bool(op and op.offers_rollback)
        and not job.dry_run
        and bool(job.progress.get("rollback_to"))
        and not job.progress.get("auto_rollback_started_at")  # the bot already rolled it back
    )
    # A rollback leaves the environment locked: its card says so, and who may release it.
    left_locked = job.state in (JobState.SUCCEEDED, JobState.SIMULATED) and bool(
        op and op.keep_lock_after(job, lang)
    )
    return Managed(
        slot="card",
        channel=job.channel or svc.config.slack.ops_channel,
        fallback_channel=svc.config.slack.ops_channel,
        ts=job.message_ts,
        response_url=job.response_url if private else "",
        text=job_text(job, description, lang),
        blocks=job_blocks(
            job,
            description,
            destructive=bool(op and op.destructive),
            can_rollback=can_rollback,
            left_locked=left_locked,
            lang=lang,
        ),
    )


def job_syncer(svc: Services) -> Syncer:
    """Job cards in the outbox: one card per job, posted by the process that first sends it."""

    def messages(key: str) -> list[Managed] | None:
        card = job_card(svc, key.split(":", 1)[1])
        return [card] if card is not None else None

    def store(key: str, slot: str, channel: str, ts: str) -> None:
        if not ts:
            return  # nothing was claimed: a job's card is posted by whoever sends it first
        with svc.sessions.begin() as s:
            s.execute(
                update(Job).where(Job.id == key.split(":", 1)[1], Job.message_ts == "")
                .values(message_ts=ts, channel=channel)
            )  # fmt: skip

    return Syncer(
        prefix="job",
        messages=messages,
        claim=lambda key, slot: True,
        store=store,
        thread=lambda key: None,
    )
