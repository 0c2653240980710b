"""Events API listeners."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services


def register(app: App, svc: Services) -> None:
    @app.event("app_mention")
    def mention(event: dict, say) -> None:  # type: ignore[no-untyped-def]
        say(text="Type `/taisun help` to see what I can do.", thread_ts=event.get("ts"))
