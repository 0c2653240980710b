"""What every listener shares: who is asking and in which language, the ack deadline, the one
place the bot's refusals become what the person sees (run_guarded), and the adapter that puts a
button on a function.

Listeners are plain module-level functions in commands/, actions/, views/, events/ and
shortcuts/; each package's register(app, svc) puts them on the Bolt app. A listener finds the
services in Bolt's context (put there by handlers.middleware.give_services).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltResponse, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.core import audit, deadline
from bot.core.commands import Command
from bot.core.i18n import msg, t, user_message
from bot.core.ops import Request
from bot.core.policy import Attempt
from bot.core.replies import Refusal, Reply
from bot.core.services import Services
from bot.slack.server import arrived_at

log = logging.getLogger(__name__)
SERVICES = "taisun_services"  # the key of the Services in Bolt's context


def services(context: BoltContext) -> Services:
    """The bot's services, as handlers.middleware.give_services put them in this request's context."""
    svc: Services = context[SERVICES]
    return svc


def user_of(body: dict[str, Any]) -> tuple[str, str]:
    """(user id, user name) of the person who clicked or submitted."""
    user = body.get("user") or {}
    return str(user.get("id", "")), str(user.get("username") or user.get("name") or "")


def value_of(body: dict[str, Any], limit: int = 2000) -> str:
    """The clicked button's value (the bot's own ids; re-checked from the database)."""
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value") or "")[:limit]


def channel_of(body: dict[str, Any]) -> str:
    channel = body.get("channel")
    return str(channel.get("id", "")) if isinstance(channel, dict) else ""


def selected(values: dict[str, Any], block: str, action: str) -> dict[str, Any]:
    """A form element's state: the `action` element in input block `block` ({} when absent)."""
    return values.get(block, {}).get(action) or {}


def split(value: str) -> tuple[str, str]:
    """(run id, step id) of a runbook step's button or form value "<run>|<step>"."""
    run_id, _, step_id = value.partition("|")
    return run_id, step_id


def step_attempt(user_name: str, channel: str, what: str, value: str) -> Attempt:
    """A runbook step's button or form as the policy audits its refusal."""
    run_id, step_id = split(value)
    return Attempt("runbook", user_name, channel, {"action": what, "run": run_id, "step": step_id})


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
    reader_lang: str = ""  # decided as the request came in (bot.slack.app's know_the_reader)

    @property
    def lang(self) -> str:
        """The language to answer this person in (their Slack locale once known)."""
        return self.reader_lang or self.svc.lang_for(self.user_id)

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

    def later(self, fn: Callable[[], Reply | None]) -> None:
        """Run slow work (network checks) off the ack path and reply to the user when done."""
        respond, lang = self.respond, self.lang

        def run() -> None:
            try:
                reply = run_guarded(fn, lang)
            except Exception as e:  # the user must hear about it, not just the log
                log.exception("background reply failed")
                reply = Reply.refusal(t("reply.went_wrong", lang, error=type(e).__name__))
            if reply and (payload := reply.payload()):
                respond(**payload)

        self.svc.later(run)


def run_guarded(fn: Callable[[], Reply | None], lang: str = "en") -> Reply | None:
    """The one error mapper: the bot's refusals (and a database that cannot be reached) become a
    refused Reply in the reader's language; it is what the person sees (`payload()`, or
    `field_error()` in a form) and what the command metric counts as "refused"."""
    try:
        return fn()
    except Refusal as e:
        return Reply.refusal(user_message(e, lang), e.extra_blocks)
    except SQLAlchemyError:
        log.exception("database error while handling a request")
        return Reply.refusal(t("reply.db_down", lang))


def answer(respond: Callable[..., Any], reply: Reply | None) -> None:
    """A button's answer, if it has one: a private message beside the card (the card stays)."""
    if reply and (payload := reply.payload()):
        respond(replace_original=False, **payload)


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
    svc.later(lambda: respond(**Reply.refusal(t("reply.too_late", lang, seconds=f"{waited:.1f}")).payload()))
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
            respond(**Reply.refusal(t("reply.too_late_work", lang, seconds=f"{late.waited:.1f}")).payload())

    svc.later(record_and_tell)


def on_error(
    error: Exception, body: dict, respond: Respond | None, context: BoltContext, logger: logging.Logger
) -> Any:
    """Where an exception from a listener ends: a late answer is told and audited, the rest logged."""
    if isinstance(error, deadline.AnswerTooLate):
        answer_too_late(services(context), body if isinstance(body, dict) else {}, respond, error)
        # If Slack is still listening it gets an empty answer; the reply comes by response_url.
        return BoltResponse(status=200, body="")
    logger.exception(f"Failed to run listener function (error: {error})")
    return None


# A button's work: (services, value, user id, user name, payload) -> an ephemeral reply or None.
Click = Callable[[Services, str, str, str, dict[str, Any]], Reply | None]


def on_click(app: App, action_id: str, fn: Click, role: str = "responder", thing: str = "incident") -> None:
    """A button: check the role, run fn, ack, reply ephemerally.

    A refusal is audited as `<thing>.refused`, naming the button and its value.

    fn only writes to the database (Slack calls go to the sender thread), so it ends well
    inside Slack's 3 s and the click's effect is recorded before the ack.
    """

    @app.action(action_id)
    def click(ack: Ack, body: dict, respond: Respond, request: BoltRequest, context: BoltContext) -> None:
        svc = services(context)
        user_id, user_name = user_of(body)
        if too_late(svc, request, ack, respond, svc.lang_for(user_id), what=action_id):
            return

        def guarded() -> Reply | None:
            attempt = Attempt(
                thing, user_name, channel_of(body), {"button": action_id, "value": value_of(body)}
            )
            svc.policy.require(user_id, role, None, msg("act.do_that"), attempt)
            return fn(svc, value_of(body), user_id, user_name, body)

        reply = run_guarded(guarded, svc.lang_for(user_id))
        ack()
        answer(respond, reply)


def on_job_click(app: App, action_id: str, fn: Click) -> None:
    """A job card's button: ack at once, then fn (it checks roles itself: approver, requester...)."""

    @app.action(action_id)
    def click(ack: Ack, body: dict, respond: Respond, request: BoltRequest, context: BoltContext) -> None:
        svc = services(context)
        user_id, user_name = user_of(body)
        if too_late(svc, request, ack, respond, svc.lang_for(user_id), what=action_id):
            return
        ack()
        value = value_of(body, limit=100)
        reply = run_guarded(lambda: fn(svc, value, user_id, user_name, body), svc.lang_for(user_id))
        answer(respond, reply)
