"""@taisun in a channel: a pointer to /taisun help."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.core.i18n import t
from handlers.common import services


def mention(event: dict, say: Any, context: BoltContext) -> None:
    # A reply in the channel's thread, read by everyone there: the workspace language.
    say(text=t("help.mention_reply", services(context).config.language), thread_ts=event.get("ts"))
