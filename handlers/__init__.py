"""Slack listeners only: parse, authorize, ack fast, hand off to bot/ services."""

from __future__ import annotations

from slack_bolt import App

from bot.core.services import Services


def register_listeners(app: App, svc: Services) -> None:
    from handlers import (
        actions,
        alerts,
        commands,
        events,
        fallback,
        home,
        incident,
        runbook,
        views,
        workspace,
    )

    workspace.register(app, svc)  # first: notes who is acting from which workspace, before any role check
    commands.register(app, svc)
    actions.register(app, svc)
    views.register(app, svc)
    events.register(app, svc)
    incident.register(app, svc)
    runbook.register(app, svc)
    alerts.register(app, svc)
    home.register(app, svc)
    fallback.register(app, svc)  # last: takes only what nothing else did
