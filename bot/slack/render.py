"""Turns a job row into the Slack message it lives in (used by the Notifier thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.ops import REGISTRY
from bot.core.store.models import Job
from bot.slack.messages import job_blocks, job_text

if TYPE_CHECKING:
    from bot.core.services import Services


def render_job_message(svc: Services, job_id: str) -> dict[str, Any] | None:
    with svc.read_sessions() as s:
        job = s.get(Job, job_id)
    if job is None or job.state == "validating" and not job.message_ts:
        return None  # nothing worth a channel message until the request is checked
    op = REGISTRY.get(job.operation)
    # A request refused before it had a card concerns only the requester: tell them, not the channel.
    private = not job.message_ts and job.state in ("invalid", "refused") and bool(job.response_url)
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
    left_locked = job.state in ("succeeded", "simulated") and bool(op and op.keep_lock_after(job, lang))
    return {
        "channel": job.channel or svc.config.slack.ops_channel,
        "fallback_channel": svc.config.slack.ops_channel,
        "ts": job.message_ts,
        "response_url": job.response_url if private else "",
        "version": job.updated_at.isoformat(),
        "text": job_text(job, description, lang),
        "blocks": job_blocks(
            job,
            description,
            destructive=bool(op and op.destructive),
            can_rollback=can_rollback,
            left_locked=left_locked,
            lang=lang,
        ),
    }
