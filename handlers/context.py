"""What a subcommand handler gets: who, where, what, and the services."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core import blocks
from bot.core.commands import Command
from bot.core.i18n import t
from bot.core.ops import Request
from bot.core.services import Services
from bot.slack.server import arrived_at

log = logging.getLogger(__name__)
Reply = dict[str, Any] | None


def waited_too_long(svc: Services, request: BoltRequest) -> float | None:
    """Seconds the request has waited, when that is past the ack deadline; None otherwise.

    Under load a request can wait in the listener pool. Slack gives up at 3 s and tells the user
    it failed, so a request that is about to miss that must not start anything. (Socket Mode and
    the shell carry no arrival time: never late.)
    """
    arrived = arrived_at(request)
    if arrived is None:
        return None
    waited = time.monotonic() - arrived
    return waited if waited > svc.config.slack.ack_deadline_seconds else None


@dataclass
class Invocation:
    svc: Services
    cmd: Command
    user_id: str
    user_name: str
    channel_id: str
    response_url: str
    trigger_id: str
    client: WebClient
    respond: Callable[..., Any]

    @property
    def lang(self) -> str:
        """The language to answer this person in (their Slack locale once known)."""
        return self.svc.lang_for(self.user_id)

    def request(self, operation: str, params: dict[str, Any] | None = None, dry_run: bool = False) -> Request:
        return Request(
            operation=operation,
            env=self.cmd.env,
            params=params
            if params is not None
            else {k: v for k, v in self.cmd.args.items() if k != "dry_run"},
            user_id=self.user_id,
            user_name=self.user_name,
            channel=self.channel_id,
            response_url=self.response_url,
            dry_run=dry_run or bool(self.cmd.args.get("dry_run")),
        )

    def later(self, fn: Callable[[], Reply]) -> None:
        """Run slow work (network checks) off the ack path and reply to the user when done."""
        respond, lang = self.respond, self.lang

        def run() -> None:
            try:
                reply = fn()
            except Exception as e:  # the user must hear about it, not just the log
                log.exception("background reply failed")
                reply = blocks.error(t("reply.went_wrong", lang, error=type(e).__name__))
            if reply:
                respond(**reply)

        self.svc.later(run)
