"""Events API listeners: mentions, the Home tab, profile changes, pins in incident channels."""

from __future__ import annotations

from slack_bolt import App

from bot.core.services import Services
from handlers.events import home, mentions, pins


def register(app: App, svc: Services) -> None:
    app.event("app_mention")(mentions.mention)
    app.event("reaction_added")(pins.reaction_added)
    app.event("app_home_opened")(home.home_opened)
    app.event("user_change")(home.user_changed)
