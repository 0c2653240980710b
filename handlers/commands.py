"""The /taisun slash command: parse, authorize, ack fast, hand off."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltResponse, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.core import audit, blocks, deadline
from bot.core.audit import AuditWriteFailed
from bot.core.commands import UsageError, parse
from bot.core.i18n import msg, t, user_message
from bot.core.locks import EnvironmentLocked
from bot.core.ops import OpError
from bot.core.policy import NotAllowed
from bot.core.ratelimit import RateLimiter
from bot.core.services import Services
from handlers.context import Invocation, Reply, arrived_at, waited_too_long

log = logging.getLogger(__name__)

Handler = Callable[[Invocation], Reply]
SUBCOMMANDS: dict[str, Handler] = {}


def subcommand(name: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        SUBCOMMANDS[name] = fn
        return fn

    return deco


def run_guarded(fn: Callable[[], Reply], lang: str = "en") -> Reply:
    """Turn the bot's known refusals into a clear ephemeral message in the reader's language."""
    try:
        return fn()
    except (UsageError, NotAllowed, EnvironmentLocked, OpError, AuditWriteFailed) as e:
        return blocks.error(user_message(e, lang))
    except SQLAlchemyError:
        log.exception("database error while handling a command")
        return blocks.error(t("reply.db_down", lang))


def too_late(svc: Services, request: BoltRequest, ack: Ack, respond: Respond, lang: str, what: str) -> bool:
    """True when the request waited past the ack deadline: nothing is run, and the user hears why.

    Slack has told them (or is about to) that the command failed; running it anyway would make a
    deploy they were told did not happen, and a retry would make a second one. When it is on time,
    the listener's own database writes are held to the same deadline until it acks (bot/core/deadline.py;
    a write that comes too late is rolled back and answered by answer_too_late).
    """
    waited = waited_too_long(svc, request)
    if waited is None:
        arrived = arrived_at(request)
        if arrived is not None:
            deadline.watch(
                arrived, svc.config.slack.ack_deadline_seconds, lambda: getattr(ack, "answered_at", None)
            )
        return False
    ack()
    svc.metrics.command(what[:20], "late")
    log.warning(
        "request not run: it waited too long for a worker", extra={"waited_s": round(waited, 2), "what": what}
    )
    svc.later(lambda: respond(**blocks.error(t("reply.too_late", lang, seconds=f"{waited:.1f}"))))
    return True


def _what_was_asked(body: dict[str, Any]) -> tuple[str, str, str, dict[str, str]]:
    """(user id, user name, what, audit params) of a command, click or form, for the 'not run' record."""
    if body.get("command"):
        text = str(body.get("text") or "")
        words = text.split()
        what = words[0].lower() if words else "help"
        return (
            str(body.get("user_id", "")),
            str(body.get("user_name", "")),
            what,
            {"command": f"{body['command']} {text}".strip()},
        )
    user = body.get("user") or {}
    action = (body.get("actions") or [{}])[0]
    what = str(
        action.get("action_id") or (body.get("view") or {}).get("callback_id") or body.get("type") or ""
    )
    name = str(user.get("username") or user.get("name") or "")
    return (
        str(user.get("id", "")),
        name,
        what,
        {"action": what, "value": str(action.get("value") or "")[:200]},
    )


def answer_too_late(
    svc: Services, body: dict[str, Any], respond: Respond | None, late: deadline.AnswerTooLate
) -> None:
    """The listener's own work outlasted the deadline and was rolled back: audit that, tell the person."""
    deadline.clear()  # the row below records the request; it is not part of it
    user_id, user_name, what, params = _what_was_asked(body)
    channel = str(body.get("channel_id") or (body.get("channel") or {}).get("id") or "")
    svc.metrics.command(what[:20], "late")
    log.warning("request not run: its own work outlasted the ack deadline",
                extra={"waited_s": round(late.waited, 2), "what": what[:40]})  # fmt: skip
    lang = svc.lang_for(user_id)

    def record_and_tell() -> None:
        try:
            with svc.sessions.begin() as s:
                audit.append(
                    s, actor_id=user_id, actor_name=user_name, action="request.late", channel=channel,
                    params=params, outcome="not_run",
                    detail=msg("audit.why.late", waited=f"{late.waited:.1f}", deadline=f"{late.deadline:g}"),
                    lang=svc.config.language,
                )  # fmt: skip
        except SQLAlchemyError:
            log.exception("could not audit a request that came too late")
        if respond is not None:
            respond(**blocks.error(t("reply.too_late_work", lang, seconds=f"{late.waited:.1f}")))

    svc.later(record_and_tell)


def register(app: App, svc: Services) -> None:
    from handlers import core, incident, ops, runbook  # noqa: F401  (register subcommands)

    @app.error
    def on_error(error: Exception, body: dict, respond: Respond | None, logger: logging.Logger) -> Any:
        """Where an exception from a listener ends: a late answer is told and audited, the rest logged."""
        if isinstance(error, deadline.AnswerTooLate):
            answer_too_late(svc, body if isinstance(body, dict) else {}, respond, error)
            # If Slack is still listening it gets an empty answer; the reply comes by response_url.
            return BoltResponse(status=200, body="")
        logger.exception(f"Failed to run listener function (error: {error})")
        return None

    # One window per person for every replica sharing this database (Redis when REDIS_URL is set).
    limiter = RateLimiter(
        svc.config.defaults.commands_per_minute, redis_url=svc.settings.redis_url,
        namespace=svc.settings.database_url,
    )  # fmt: skip

    @app.command("/taisun")
    def taisun(ack: Ack, body: dict, client: WebClient, respond: Respond, request: BoltRequest) -> None:
        text = body.get("text") or ""
        user_id = str(body.get("user_id", ""))
        lang = svc.lang_for(user_id)
        if too_late(
            svc, request, ack, respond, lang, what=text.split()[0].lower() if text.split() else "help"
        ):
            return
        wait = limiter.allow(user_id)
        if wait:
            svc.metrics.command("rate_limited", "refused")
            ack(**blocks.error(t("reply.rate_limited", lang, limit=limiter.limit, wait=f"{wait:.0f}")))
            return
        after: list[Callable[[], None]] = []

        def handle() -> Reply:
            cmd = parse(text, svc.config)
            handler = SUBCOMMANDS.get(cmd.name)
            if handler is None:
                return blocks.error(t("reply.unavailable", lang, name=cmd.name))
            inv = Invocation(
                svc=svc,
                cmd=cmd,
                user_id=body.get("user_id", ""),
                user_name=body.get("user_name", ""),
                channel_id=body.get("channel_id", ""),
                response_url=body.get("response_url", ""),
                trigger_id=body.get("trigger_id", ""),
                client=client,
                respond=respond,
            )
            reply = handler(inv)
            if reply and "_after" in reply:
                after.append(reply.pop("_after"))
            return reply

        reply = run_guarded(handle, lang)
        name = text.split()[0].lower() if text.split() else "help"
        svc.metrics.command(
            name[:20], "refused" if reply and str(reply.get("text", "")).startswith(":warning:") else "ok"
        )
        if reply and (reply.get("text") or reply.get("blocks")):
            ack(**reply)
        else:
            ack()
        for fn in after:  # e.g. views.open, which must use the trigger_id within 3 s
            fn()
