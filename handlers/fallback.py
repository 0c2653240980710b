"""Registered last: anything no other listener took is acked quietly, never a 404 or a 500."""

from __future__ import annotations

import logging
import re

from slack_bolt import Ack, App

from bot.core.services import Services

log = logging.getLogger(__name__)
ANY = re.compile(r".*")


def unknown_action(ack: Ack, body: dict) -> None:
    ack()
    actions = body.get("actions") or [{}]
    log.info("ignored an unknown action", extra={"action_id": str(actions[0].get("action_id", ""))[:100]})


def unknown_view(ack: Ack, body: dict) -> None:
    ack()
    log.info(
        "ignored an unknown view submission",
        extra={"callback_id": str(body.get("view", {}).get("callback_id", ""))[:100]},
    )


def unknown_shortcut(ack: Ack) -> None:
    ack()


def unknown_event(body: dict) -> None:
    pass  # acked automatically; Slack must not retry an event we do not use


def unknown_options(ack: Ack) -> None:
    ack(options=[])


def register(app: App, svc: Services) -> None:
    app.action(ANY)(unknown_action)
    app.view(ANY)(unknown_view)
    app.shortcut(ANY)(unknown_shortcut)
    app.event(ANY)(unknown_event)
    app.options(ANY)(unknown_options)
