"""The Mark done form of a security task: an optional note or link, kept with the task and in the audit log."""

from __future__ import annotations

from slack_bolt import Ack, BoltContext

from bot.core.blocks import Action
from bot.core.replies import Reply
from bot.security import tasks
from bot.security.tasks import SecurityError
from handlers.common import run_guarded, services, user_of


def submit_done(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    svc = services(context)
    user_id, user_name = user_of(body)
    values = view.get("state", {}).get("values", {})
    note = str((values.get("note", {}).get(Action.SECURITY_NOTE) or {}).get("value") or "")
    meta = str(view.get("private_metadata") or "")

    def record() -> Reply | None:
        if not (meta.isascii() and meta.isdigit()):
            raise SecurityError(key="security.err.gone")
        tasks.mark_done(svc, int(meta), user_id, user_name, note)
        return None

    reply = run_guarded(record, svc.lang_for(user_id))
    if reply and reply.refused:
        ack(response_action="errors", errors={"note": reply.field_error()})
        return
    ack()
