"""The App Home tab."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services


def register(app: App, svc: Services) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            svc.home.opened(str(event["user"]))
