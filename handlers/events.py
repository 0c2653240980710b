"""Events API listeners."""

from __future__ import annotations

from slack_bolt import App

from bot.core.i18n import t
from bot.core.services import Services


def register(app: App, svc: Services) -> None:
    @app.event("app_mention")
    def mention(event: dict, say) -> None:  # type: ignore[no-untyped-def]
        # A reply in the channel's thread, read by everyone there: the workspace language.
        say(text=t("help.mention_reply", svc.config.language), thread_ts=event.get("ts"))
