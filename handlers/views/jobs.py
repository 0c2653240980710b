"""The Reject form: why a job is rejected (required for production changes and destructive ones)."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_bolt.request import BoltRequest

from bot.core.blocks import Action
from bot.core.i18n import t
from bot.core.replies import Reply
from handlers.common import run_guarded, selected, services, too_late

log = logging.getLogger(__name__)


def submit_reject(ack: Ack, body: dict, view: dict, request: BoltRequest, context: BoltContext) -> None:
    """The Reject form: the job is rejected with the reason typed, or the form says what is missing."""
    svc = services(context)
    user = body.get("user") or {}
    user_id, user_name = str(user.get("id", "")), str(user.get("username") or user.get("name") or "")
    lang = svc.lang_for(user_id)
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    channel = str(meta.get("channel") or svc.config.slack.ops_channel)

    def tell(**reply: Any) -> None:
        """A private note in the card's channel (a form submission has no response_url)."""
        svc.slack.chat_postEphemeral(
            channel=channel, user=user_id, text=reply.get("text", ""), blocks=reply.get("blocks")
        )

    if too_late(svc, request, ack, tell, lang, what="reject-form"):
        return
    values = (view.get("state") or {}).get("values") or {}
    reason = str(selected(values, "reason", Action.REJECT_REASON).get("value") or "")

    def reject() -> Reply:
        job = svc.jobs.reject(str(meta.get("job") or ""), user_id, user_name, reason=reason)
        return Reply(t("reply.rejected", lang, what=svc.describe(job, lang), job=job.id[:8]))

    reply = run_guarded(reject, lang)
    assert reply is not None
    if reply.refused:
        ack(response_action="errors", errors={"reason": reply.field_error()})
        return
    ack()
    svc.later(lambda: tell(**reply.payload()))
