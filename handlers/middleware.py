"""Middleware every request passes before a listener: the services in Bolt's context, and
which workspace each request's person comes from, noted before any listener checks a role.

`*` in a role means members of the installed workspace (bot/core/policy.py Workspaces). In a channel
shared with another organisation (Slack Connect) that organisation's people send signed requests
too; each names the person's own team, which is noted here for the role checks that follow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bot.core.services import Services
from handlers.common import SERVICES

Next = Callable[[], BoltResponse]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _id_of(value: Any) -> str:
    return _str(value.get("id")) if isinstance(value, dict) else ""


def actor_workspace(body: Any) -> tuple[str, str, str]:
    """(user_id, team_id, enterprise_id) of the person acting in a Slack payload; '' where unknown.

    Slash commands carry team_id / enterprise_id; interactive payloads the user's own team_id (and
    team.id); events user_team / team. The person's own fields come first: in a shared channel the
    payload's other team fields may describe the channel's host, not the person.
    """
    if not isinstance(body, dict):
        return "", "", ""
    if "command" in body:
        return _str(body.get("user_id")), _str(body.get("team_id")), _str(body.get("enterprise_id"))
    user = body.get("user")
    if isinstance(user, dict):
        own_team = _str(user.get("team_id"))
        if own_team:
            return _str(user.get("id")), own_team, _str(user.get("enterprise_id"))
        return _str(user.get("id")), _id_of(body.get("team")), _id_of(body.get("enterprise"))
    event = body.get("event")
    if isinstance(event, dict) and isinstance(event.get("user"), str):
        return event["user"], _str(event.get("user_team")) or _str(event.get("team")), ""
    return "", "", ""


class GiveServices(Middleware):
    """The services in each request's context (handlers.common.services(context) reads them)."""

    def __init__(self, svc: Services):
        self.svc = svc

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:  # noqa: A002
        req.context[SERVICES] = self.svc
        return next()


class NoteActorWorkspace(Middleware):
    """The workspace of the person acting, noted before any listener checks a role."""

    def __init__(self, svc: Services):
        self.svc = svc

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:  # noqa: A002
        self.svc.policy.workspaces.saw(*actor_workspace(req.body))
        return next()


def register(app: App, svc: Services) -> None:
    """Registered before every listener: the services in each request's context, then its workspace.
    Class middlewares, called as they are (a function middleware's arguments are built per request)."""
    app.use(GiveServices(svc))
    app.use(NoteActorWorkspace(svc))
