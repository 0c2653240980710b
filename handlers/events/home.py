"""The App Home tab, and what Slack tells about people (their locale) as it changes."""

from __future__ import annotations

from slack_bolt import BoltContext

from bot.core.people import display_name
from handlers.common import services


def home_opened(event: dict, context: BoltContext) -> None:
    if event.get("tab", "home") == "home" and event.get("user"):
        services(context).home.opened(str(event["user"]))


def user_changed(event: dict, context: BoltContext) -> None:
    # Slack sends this when someone edits their profile, with their locale: a person the bot
    # knows is answered in their new language from their next request, by every process.
    user = event.get("user")
    if isinstance(user, dict) and user.get("id") and user.get("locale"):
        services(context).people.heard(
            str(user["id"]), str(user["locale"]), display_name(user), only_known=True
        )
