"""The runbook step forms: why a step is skipped, and which version a rollback step goes to."""

from __future__ import annotations

import json
import re

from slack_bolt import Ack, BoltContext

from bot.core.blocks import Action
from bot.core.i18n import msg, t_plain
from bot.core.replies import Reply
from bot.incidents import runs as runbook_runs
from handlers.common import run_guarded, services, split, step_attempt, user_of


def submit_skip(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    svc = services(context)
    user_id, user_name = user_of(body)
    values = view.get("state", {}).get("values", {})
    reason = str((values.get("reason", {}).get(Action.STEP_SKIP_REASON) or {}).get("value") or "")

    def record() -> Reply | None:
        attempt = step_attempt(user_name, "", "skip_step", view.get("private_metadata", ""))
        svc.policy.require(user_id, "responder", None, msg("act.skip_step"), attempt)
        runbook_runs.skip_step(svc, *split(view.get("private_metadata", "")), user_id, user_name, reason)
        return None

    reply = run_guarded(record, svc.lang_for(user_id))
    if reply and reply.refused:
        ack(response_action="errors", errors={"reason": reply.field_error()})
        return
    ack()


def submit_version(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    svc = services(context)
    user_id, user_name = user_of(body)
    values = view.get("state", {}).get("values", {})
    version = str((values.get("version", {}).get(Action.STEP_VERSION) or {}).get("value") or "").strip()
    if not re.fullmatch(svc.config.github.tag_pattern, version):
        ack(
            response_action="errors",
            errors={"version": t_plain("rb.reply.not_a_tag", svc.lang_for(user_id), version=version)},
        )
        return
    meta = json.loads(view.get("private_metadata") or "{}")

    def request() -> Reply | None:
        attempt = step_attempt(
            user_name, str(meta.get("channel", "")), "run_step", str(meta.get("value", ""))
        )
        svc.policy.require(user_id, "responder", None, msg("act.run_step"), attempt)
        run_id, step_id = split(str(meta.get("value", "")))
        runbook_runs.request_action(
            svc,
            run_id,
            step_id,
            user_id,
            user_name,
            channel=str(meta.get("channel", "")),
            version=version,
        )
        return None

    reply = run_guarded(request, svc.lang_for(user_id))
    if reply and reply.refused:
        ack(response_action="errors", errors={"version": reply.field_error()})
        return
    ack()
