"""Buttons on a due security task (Mark done asks for a note, Snooze) and on an access review (Keep, Remove).
Values carry only ids; who may press them is checked from the config and the database."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core.blocks import Action
from bot.core.i18n import t
from bot.core.replies import Reply
from bot.core.services import Services
from bot.security import messages, review, tasks
from bot.security.tasks import SecurityError
from handlers.common import answer, channel_of, run_guarded, services, too_late, user_of, value_of


def _id(value: str) -> int:
    """The id a button carries; a value the bot did not write names nothing (never a 500)."""
    if not (value.isascii() and value.isdigit()):
        raise SecurityError(key="security.err.gone")
    return int(value)


def done(
    ack: Ack, body: dict, client: WebClient, respond: Any, request: BoltRequest, context: BoltContext
) -> None:
    """Mark done: the owner checks, then a small form asks for a note or a link."""
    svc = services(context)
    user_id, user_name = user_of(body)
    lang = svc.lang_for(user_id)
    if too_late(svc, request, ack, respond, lang, what=Action.SECURITY_DONE):
        return
    value = value_of(body, limit=20)

    def open_form() -> Reply | None:
        occ = tasks.occurrence(svc, _id(value))
        task = tasks.find_task(svc, occ.task)
        tasks.require_owner(svc, task, user_id, user_name, "done", channel_of(body))
        if occ.state != "due":
            raise SecurityError(key="security.err.not_due")
        view = messages.done_modal(occ.id, tasks.title(task, lang), lang)
        client.views_open(trigger_id=body.get("trigger_id", ""), view=view)
        return None

    reply = run_guarded(open_form, lang)
    ack()
    answer(respond, reply)


def snooze(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    occ = tasks.snooze(svc, _id(value), user_id, user_name, channel=channel_of(body))
    until = messages.when(occ.snoozed_until)
    return Reply(t("security.reply.snoozed_button", svc.lang_for(user_id), until=until))


def keep(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    review.decide(svc, _id(value), "keep", user_id, user_name, channel_of(body))
    return None  # the review's message shows the decision


def remove(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    review.decide(svc, _id(value), "remove", user_id, user_name, channel_of(body))
    return None
