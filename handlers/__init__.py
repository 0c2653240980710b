"""Slack listeners only: parse, authorise, ack fast, hand off to the capabilities' services.

Shaped like Slack's Bolt starter template: a package per listener kind, each with
register(app, svc); listeners are plain module-level functions.
"""

from __future__ import annotations

from slack_bolt import App

from bot.core.services import Services
from handlers import actions, commands, common, events, fallback, middleware, shortcuts, views


def register_listeners(app: App, svc: Services) -> None:
    middleware.register(app, svc)  # first: the services in each request's context, and its workspace
    app.error(common.on_error)
    commands.register(app, svc)
    actions.register(app, svc)
    views.register(app, svc)
    events.register(app, svc)
    shortcuts.register(app, svc)
    fallback.register(app, svc)  # last: takes only what nothing else did
