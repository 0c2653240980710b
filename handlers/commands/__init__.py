"""The /taisun slash command: parse, authorise, ack fast, hand off to the subcommand's listener."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Ack, App, BoltContext, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core.commands import parse
from bot.core.i18n import t
from bot.core.ops import REGISTRY
from bot.core.ratelimit import RateLimiter
from bot.core.replies import Refused, Reply
from bot.core.services import Services
from bot.slack.app import READER_LANG
from handlers.commands import general, incident, jobs, observe, runbook, security
from handlers.common import Invocation, run_guarded, services, too_late

Handler = Callable[[Invocation], Reply | None]

# Every subcommand and its listener (one source of truth; the grammar is bot.core.commands').
SUBCOMMANDS: dict[str, Handler] = {
    "help": general.help_,
    "status": general.status,
    "deploys": general.deploys,
    "audit": general.audit_,
    "lock": general.lock,
    "unlock": general.unlock,
    "jobs": general.jobs,
    "incident": incident.incident,
    "runbook": runbook.runbook,
    "security": security.security,
    **jobs.SUBCOMMANDS,  # deploy (its form) and backup (list, restore)
    **observe.SUBCOMMANDS,  # metrics, slo, logs, trace (read-only, after the ack)
}


def handler_for(name: str) -> Handler | None:
    """The listener of a subcommand: its own, else an operation's (requested as it is), else None."""
    if name in SUBCOMMANDS:
        return SUBCOMMANDS[name]
    if name in REGISTRY:
        return lambda inv: jobs.request_job(inv, name)
    return None


LIMITER = "taisun_rate_limiter"  # the key of the per-person rate limiter in Bolt's context


def taisun(
    ack: Ack, body: dict, client: WebClient, respond: Respond, request: BoltRequest, context: BoltContext
) -> None:
    """`/taisun …`: one window of commands per person, the subcommand's reply as the ack."""
    svc = services(context)
    limiter: RateLimiter = context[LIMITER]
    text = body.get("text") or ""
    user_id = str(body.get("user_id", ""))
    lang = context.get(READER_LANG) or svc.lang_for(user_id)
    if too_late(svc, request, ack, respond, lang, what=text.split()[0].lower() if text.split() else "help"):
        return
    wait = limiter.allow(user_id)
    if wait:
        svc.metrics.command("rate_limited", "refused")
        ack(**Reply.refusal(t("reply.rate_limited", lang, limit=limiter.limit, wait=f"{wait:.0f}")).payload())
        return

    def handle() -> Reply | None:
        cmd = parse(text, svc.config)
        handler = handler_for(cmd.name)
        if handler is None:
            raise Refused(key="reply.unavailable", name=cmd.name)
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
            reader_lang=lang,
        )
        return handler(inv)

    reply = run_guarded(handle, lang) or Reply()
    name = text.split()[0].lower() if text.split() else "help"
    svc.metrics.command(name[:20], "refused" if reply.refused else "ok")
    ack(**reply.payload())
    if reply.after:  # e.g. views.open, which must use the trigger_id within 3 s
        reply.after()


def register(app: App, svc: Services) -> None:
    # One window per person for every replica sharing this database (Redis when REDIS_URL is set).
    limiter = RateLimiter(
        svc.config.defaults.commands_per_minute, redis_url=svc.settings.redis_url,
        namespace=svc.settings.database_url,
    )  # fmt: skip

    def give_limiter(context: BoltContext, next: Callable[[], object]) -> object:  # noqa: A002
        context[LIMITER] = limiter
        return next()

    app.command("/taisun", middleware=[give_limiter])(taisun)
