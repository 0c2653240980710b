"""Message shortcuts: "Declare an incident" from a message."""

from __future__ import annotations

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.core.blocks import Action
from bot.core.i18n import msg
from bot.core.mrkdwn import to_plain
from bot.core.policy import Attempt
from bot.core.services import Services
from handlers.common import channel_of, run_guarded, services, user_of
from handlers.views.incidents import open_declare_modal


def from_message(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    svc = services(context)
    user_id, user_name = user_of(body)
    channel = channel_of(body)
    message = body.get("message") or {}

    def allowed() -> None:
        attempt = Attempt("incident", user_name, channel, {"action": "declare_from_message"})
        svc.policy.require(user_id, "responder", None, msg("act.declare"), attempt)

    refused = run_guarded(allowed, svc.lang_for(user_id))
    if refused:
        client.chat_postEphemeral(channel=channel, user=user_id, text=refused.text)
        return
    open_declare_modal(
        client, svc, str(body.get("trigger_id", "")), channel, lang=svc.lang_for(user_id),
        message_ts=str(message.get("ts", "")), message_user=str(message.get("user", "")),
        text=to_plain(str(message.get("text", "")))[:1500],  # Slack's own markup, read as plain text
    )  # fmt: skip


def register(app: App, svc: Services) -> None:
    app.shortcut(Action.INCIDENT_FROM_MESSAGE)(from_message)
