"""Buttons on a job's card: approve, reject, cancel, roll back, and taking a lock over.
Values carry only ids; everything is re-checked from the database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from slack_bolt import Ack, BoltContext, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core import blocks, locking
from bot.core.i18n import t
from bot.core.ops import Request
from bot.core.replies import Refused, Reply
from bot.core.services import Services
from bot.slack.messages import reject_modal
from handlers.common import answer, channel_of, run_guarded, services, too_late, user_of, value_of

log = logging.getLogger(__name__)


def approve(svc: Services, job_id: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    job = svc.jobs.approve(job_id, user_id, user_name)
    svc.metrics.approved((datetime.now(UTC) - job.created_at).total_seconds())
    return None  # the card itself changes to show who approved


def reject(
    ack: Ack, body: dict, client: WebClient, respond: Respond, request: BoltRequest, context: BoltContext
) -> None:
    """Reject asks why in a small form (the requester's own Reject withdraws at once)."""
    svc = services(context)
    user_id, user_name = user_of(body)
    lang = svc.lang_for(user_id)
    if too_late(svc, request, ack, respond, lang, what=blocks.Action.REJECT):
        return
    ack()

    def ask_why() -> Reply | None:
        job = svc.jobs.may_reject(value_of(body, limit=100), user_id, user_name)
        if user_id == job.requested_by:
            job = svc.jobs.reject(job.id, user_id, user_name)
            return Reply(t("reply.withdrawn", lang, what=svc.describe(job, lang), job=job.id[:8]))
        channel = str((body.get("channel") or {}).get("id") or job.channel)
        view = reject_modal(job, svc.describe(job, lang), channel, svc.jobs.reason_required(job), lang)
        client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        return None

    answer(respond, run_guarded(ask_why, lang))


def cancel(svc: Services, job_id: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    svc.jobs.cancel(job_id, user_id, user_name)
    return None


def rollback(svc: Services, job_id: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    """The failed deploy card's button: back to the version its dialog named, or a refusal
    when the environment has moved on since (the check is Rollback.check_request's)."""
    failed = svc.jobs.get(job_id)
    env = svc.config.environments.get(failed.environment)
    channel = str((body.get("channel") or {}).get("id") or failed.channel)
    job = svc.jobs.request(
        Request("rollback", env, {"after_failed_job": failed.id}, user_id, user_name, channel)
    )
    lang = svc.lang_for(user_id)
    return Reply(
        t("reply.rolling_back", lang, env=failed.environment, target=job.params["version"], job=job.id[:8])
    )


def take_over(svc: Services, env_name: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    """The lock refusal's button: an approver takes the manual lock over (bot.core.locking)."""
    env = svc.config.environments.get(env_name)
    lang = svc.lang_for(user_id)
    if env is None:
        raise Refused(key="lock.env_gone")
    done = locking.take_over(svc, env, user_id, user_name, channel_of(body))
    if done.outcome == "job_holds":
        raise Refused(key="lock.job_holds_now")
    if done.outcome == "kept":
        assert done.info is not None
        raise Refused(done.info.not_yours(lang))
    return Reply(t("lock.you_hold", lang, env=env.name))
