"""The /taisun slash command: parse, authorize, ack fast, hand off."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import Ack, App, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import blocks
from bot.audit import AuditWriteFailed
from bot.commands import UsageError, parse
from bot.i18n import t, user_message
from bot.locks import EnvironmentLocked
from bot.ops.base import OpError
from bot.policy import NotAllowed
from bot.ratelimit import RateLimiter
from bot.services import Services
from handlers.context import Invocation, Reply, waited_too_long

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
    deploy they were told did not happen, and a retry would make a second one.
    """
    waited = waited_too_long(svc, request)
    if waited is None:
        return False
    ack()
    svc.metrics.command(what[:20], "late")
    log.warning(
        "request not run: it waited too long for a worker", extra={"waited_s": round(waited, 2), "what": what}
    )
    svc.later(lambda: respond(**blocks.error(t("reply.too_late", lang, seconds=f"{waited:.1f}"))))
    return True


def register(app: App, svc: Services) -> None:
    from handlers import core, incident, ops, runbook  # noqa: F401  (register subcommands)

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
