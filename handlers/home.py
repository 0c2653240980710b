"""The App Home tab, and what Slack tells about people (their locale) as it changes."""

from __future__ import annotations

from slack_bolt import App

from bot.core.people import display_name
from bot.core.services import Services


def register(app: App, svc: Services) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            svc.home.opened(str(event["user"]))

    @app.event("user_change")
    def user_changed(event: dict) -> None:
        # Slack sends this when someone edits their profile, with their locale: a person the bot
        # knows is answered in their new language from their next request, by every process.
        user = event.get("user")
        if isinstance(user, dict) and user.get("id") and user.get("locale"):
            svc.people.heard(str(user["id"]), str(user["locale"]), display_name(user), only_known=True)
