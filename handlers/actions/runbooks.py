"""Buttons on a runbook run's checklist: done, re-check, skip (asks why), run the step's operation."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core.blocks import Action
from bot.core.i18n import msg, t, user_message
from bot.core.ops import NeedsVersion
from bot.core.replies import Reply
from bot.core.services import Services
from bot.incidents import messages as blocks_incident
from bot.incidents import runs as runbook_runs
from handlers.common import (
    answer,
    channel_of,
    run_guarded,
    services,
    split,
    step_attempt,
    too_late,
    user_of,
    value_of,
)


def done(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    runbook_runs.complete_step(svc, *split(value), user_id, user_name)
    return None


def recheck(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    runbook_runs.recheck(svc, *split(value), user_id, user_name)
    return None


def skip(ack: Ack, body: dict, client: WebClient, respond: Any, context: BoltContext) -> None:
    svc = services(context)
    user_id, user_name = user_of(body)
    value = value_of(body)

    def open_modal() -> Reply | None:
        attempt = step_attempt(user_name, channel_of(body), "skip_step", value)
        svc.policy.require(user_id, "responder", None, msg("act.skip_step"), attempt)
        run_id, step_id = split(value)
        loaded = runbook_runs.load_run(svc, run_id)
        lang = svc.lang_for(user_id)
        title = loaded.book.step(step_id).title_for(lang)
        client.views_open(
            trigger_id=body.get("trigger_id", ""), view=blocks_incident.skip_modal(title, value, lang)
        )
        return None

    reply = run_guarded(open_modal, svc.lang_for(user_id))
    ack()
    answer(respond, reply)


def run_step(
    ack: Ack, body: dict, client: WebClient, respond: Any, request: BoltRequest, context: BoltContext
) -> None:
    svc = services(context)
    user_id, user_name = user_of(body)
    if too_late(svc, request, ack, respond, svc.lang_for(user_id), what=Action.STEP_RUN):
        return
    value = value_of(body)
    channel = str((body.get("channel") or {}).get("id", ""))

    def request_step() -> Reply | None:
        attempt = step_attempt(user_name, channel, "run_step", value)
        svc.policy.require(user_id, "responder", None, msg("act.run_step"), attempt)
        run_id, step_id = split(value)
        try:
            job = runbook_runs.request_action(svc, run_id, step_id, user_id, user_name, channel=channel)
        except NeedsVersion as e:
            loaded = runbook_runs.load_run(svc, run_id)
            title = loaded.book.step(step_id).title_for(lang)
            meta = json.dumps({"value": value, "channel": channel})
            client.views_open(
                trigger_id=body.get("trigger_id", ""),
                view=blocks_incident.version_modal(title, meta, lang, why=user_message(e, lang)),
            )
            return None
        key = "rb.reply.requested_dry" if job.dry_run else "rb.reply.requested"
        return Reply(t(key, lang, what=svc.describe(job, lang), job=job.id[:8]))

    lang = svc.lang_for(user_id)
    reply = run_guarded(request_step, lang)
    ack()
    answer(respond, reply)
