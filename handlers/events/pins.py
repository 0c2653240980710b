"""A pin (📌 reaction) on a message in an incident's channel puts it on the incident's timeline."""

from __future__ import annotations

from slack_bolt import BoltContext

from bot.incidents import service as incidents
from handlers.common import services

PIN_REACTIONS = frozenset({"pushpin", "round_pushpin"})


def reaction_added(event: dict, context: BoltContext) -> None:
    svc = services(context)
    item = event.get("item") or {}
    if event.get("reaction") not in PIN_REACTIONS or item.get("type") != "message":
        return
    channel, ts, user = str(item.get("channel", "")), str(item.get("ts", "")), str(event.get("user", ""))
    svc.later(lambda: incidents.record_pin(svc, channel, ts, user))
