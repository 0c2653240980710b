"""Incident listeners: `/taisun incident …`, the header's buttons, the declare modal, the
"Declare incident from this message" shortcut and :pushpin: reactions."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core import blocks
from bot.core.blocks import Action
from bot.core.commands import UsageError
from bot.core.i18n import msg, t
from bot.core.mrkdwn import to_plain
from bot.core.policy import Attempt, NotAllowed
from bot.core.services import Services
from bot.incidents import messages as blocks_incident
from bot.incidents import runs as runbook_runs
from bot.incidents import service as incidents
from bot.incidents.service import IncidentError
from handlers.commands import run_guarded, subcommand, too_late
from handlers.context import Invocation, Reply

log = logging.getLogger(__name__)

PIN_REACTIONS = frozenset({"pushpin", "round_pushpin"})
Click = Callable[[str, str, str, dict[str, Any]], Reply]


def user_of(body: dict[str, Any]) -> tuple[str, str]:
    user = body.get("user") or {}
    return str(user.get("id", "")), str(user.get("username") or user.get("name") or "")


def value_of(body: dict[str, Any]) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value") or "")[:2000]


def channel_of(body: dict[str, Any]) -> str:
    channel = body.get("channel")
    return str(channel.get("id", "")) if isinstance(channel, dict) else ""


def on_click(
    app: App, svc: Services, action_id: str, fn: Click, role: str = "responder", thing: str = "incident"
) -> None:
    """A button: check the role, run fn(value, user_id, user_name, body), ack, reply ephemerally.

    A refusal is audited as `<thing>.refused`, naming the button and its value.

    fn only writes to the database (Slack calls go to the sender thread), so it ends well
    inside Slack's 3 s and the click's effect is recorded before the ack.
    """

    @app.action(action_id)
    def _handler(ack: Ack, body: dict, respond: Respond, request: BoltRequest) -> None:
        user_id, user_name = user_of(body)
        if too_late(svc, request, ack, respond, svc.lang_for(user_id), what=action_id):
            return

        def guarded() -> Reply:
            attempt = Attempt(
                thing, user_name, channel_of(body), {"button": action_id, "value": value_of(body)}
            )
            svc.policy.require(user_id, role, None, msg("act.do_that"), attempt)
            return fn(value_of(body), user_id, user_name, body)

        reply = run_guarded(guarded, svc.lang_for(user_id))
        ack()
        if reply:
            respond(replace_original=False, **reply)


# --------------------------------------------------------------------------- the command


@subcommand("incident")
def incident(inv: Invocation) -> Reply:
    svc, args = inv.svc, inv.cmd.args
    action = args["action"]
    where = inv.cmd.env.name if inv.cmd.env else ""
    attempt = Attempt("incident", inv.user_name, inv.channel_id, args, environment=where)
    svc.policy.require(inv.user_id, "responder", None, msg("act.incident"), attempt)
    if action == "declare":
        if args.get("modal"):
            return {
                "text": "",
                "_after": lambda: open_declare_modal(
                    inv.client,
                    svc,
                    inv.trigger_id,
                    inv.channel_id,
                    lang=inv.lang,
                    environment=inv.cmd.env.name if inv.cmd.env else "",
                ),
            }
        inc = incidents.declare(
            svc, severity=args["severity"], title=args["title"], user_id=inv.user_id, user_name=inv.user_name,
            channel=inv.channel_id, environment=inv.cmd.env.name if inv.cmd.env else "",
        )  # fmt: skip
        assert inc is not None
        return blocks.message(_declared_text(svc, inc, inv.lang, assumed=inv.cmd.env is None))
    if action == "list":
        views = [incidents.view(i) for i in incidents.open_incidents(svc)]
        return blocks.message(
            t("inc.reply.open_list", inv.lang), blocks_incident.incident_list_blocks(views, lang=inv.lang)
        )
    target: incidents.Incident | list[incidents.Incident]
    ref = re.match(r"(?i)(INC-\d+)\s+", args.get("text", "") + " ") if action == "status" else None
    named = incidents.by_ref(svc, ref[1]) if ref else None
    if named is not None and ref is not None:
        args = {**args, "text": args["text"][len(ref[1]) :].strip()}
        target = named
    else:
        target = incidents.for_channel(svc, inv.channel_id)
    if isinstance(target, list):
        if not target:
            raise IncidentError(key="inc.reply.none_open")
        views = [incidents.view(i) for i in target]
        prompt = t("inc.reply.which", inv.lang)
        return blocks.message(prompt, blocks_incident.pick_incident_blocks(prompt, views, json.dumps(args)))
    return apply(svc, target.id, args, inv.user_id, inv.user_name)


def _declared_text(svc: Services, inc: incidents.Incident, lang: str, *, assumed: bool = False) -> str:
    """What the declarer is told: the incident, where it is, and (assumed) that no --env chose that."""
    own = inc.severity in svc.config.incidents.dedicated_channel_severities
    key = "inc.reply.declared_channel" if own else "inc.reply.declared_here"
    note = ""
    if assumed and inc.environment:
        other = next((name for name in svc.config.environments if name != inc.environment), "staging")
        note = t("inc.reply.env_assumed", lang, env=inc.environment, other=other)
    return t(
        key,
        lang,
        ref=inc.ref,
        severity=inc.severity,
        title=inc.title,
        env=inc.environment or "—",
        assumed=note,
    )


def apply(svc: Services, incident_id: int, args: dict[str, Any], user_id: str, user_name: str) -> Reply:
    """Run one incident subcommand against a known incident."""
    action = args.get("action")
    lang = svc.lang_for(user_id)
    if action == "status":
        if not args.get("text"):
            inc = incidents.get(svc, incident_id)
            phase = blocks_incident.phase_name(inc.phase, lang)
            if inc.status_text:
                return blocks.message(
                    t("inc.reply.status_current", lang, ref=inc.ref, phase=phase, text=inc.status_text,
                      user=blocks.mention(inc.status_by))
                )  # fmt: skip
            return blocks.message(t("inc.reply.status_none", lang, ref=inc.ref, phase=phase))
        inc = incidents.set_status(svc, incident_id, args["text"], user_id, user_name)
        return blocks.message(t("inc.reply.status_updated", lang, ref=inc.ref))
    if action == "assign":
        inc = incidents.assign(svc, incident_id, args["role"], args["user"], user_id, user_name)
        role = t(f"inc.role_lc.{args['role']}", lang)
        return blocks.message(
            t("inc.reply.assigned", lang, user=blocks.mention(args["user"]), role=role, ref=inc.ref)
        )
    if action == "severity":
        inc = incidents.set_severity(svc, incident_id, args["severity"], user_id, user_name)
        return blocks.message(t("inc.reply.severity", lang, ref=inc.ref, severity=inc.severity))
    if action == "promote":
        inc = incidents.promote(svc, incident_id, user_id, user_name)
        return blocks.message(t("inc.reply.promoting", lang, ref=inc.ref))
    if action == "resolve":
        inc = incidents.resolve(svc, incident_id, user_id, user_name)
        return blocks.message(t("inc.reply.resolved", lang, ref=inc.ref))
    raise UsageError(key="inc.reply.unknown_action", action=action)


# --------------------------------------------------------------------------- the declare modal


def open_declare_modal(
    client: WebClient,
    svc: Services,
    trigger_id: str,
    channel: str,
    *,
    lang: str = "en",
    environment: str = "",
    **extra: Any,
) -> None:
    metadata = json.dumps({"channel": channel, **extra})
    title = str(extra.get("text", "")).strip().splitlines()[0][:150] if extra.get("text") else ""
    default = runbook_runs.default_environment(svc.config)
    envs = list(svc.config.environments)
    client.views_open(
        trigger_id=trigger_id,
        view=blocks_incident.declare_modal(
            svc.config.incidents.severities,
            metadata,
            title,
            lang,
            environments=envs,
            environment=environment or (default.name if default else ""),
        ),  # fmt: skip
    )


def _modal_values(view: dict[str, Any]) -> tuple[str, str, str]:
    values = view.get("state", {}).get("values", {})

    def selected(block: str, action: str) -> str:
        return str(((values.get(block, {}).get(action) or {}).get("selected_option") or {}).get("value", ""))

    title = (values.get("title", {}).get(Action.INCIDENT_TITLE) or {}).get("value") or ""
    return (
        selected("severity", Action.INCIDENT_SEVERITY),
        str(title),
        selected("environment", Action.INCIDENT_ENV),
    )


# --------------------------------------------------------------------------- listeners


def incident_id(value: str) -> int:
    """The incident a button names; a value the bot did not write names no incident (never a 500)."""
    if not (value.isascii() and value.isdigit()):
        raise IncidentError(key="inc.err.gone")
    return int(value)


def register(app: App, svc: Services) -> None:
    def ack_incident(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        incidents.acknowledge(svc, incident_id(value), user_id, user_name)
        return None

    def mitigated(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        incidents.mark_mitigated(svc, incident_id(value), user_id, user_name)
        return None

    def promote(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        inc = incidents.promote(svc, incident_id(value), user_id, user_name)
        return blocks.message(t("inc.reply.promoting", svc.lang_for(user_id), ref=inc.ref))

    def resolve(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        inc = incidents.resolve(svc, incident_id(value), user_id, user_name)
        return blocks.message(t("inc.reply.resolved", svc.lang_for(user_id), ref=inc.ref))

    def pick(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        number, _, payload = value.partition("|")
        try:
            args = json.loads(payload)
        except ValueError:
            raise IncidentError(key="inc.err.gone") from None
        if not isinstance(args, dict):
            raise IncidentError(key="inc.err.gone")
        return apply(svc, incident_id(number), args, user_id, user_name)

    def followup(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        url = incidents.open_followup_issue(svc, incident_id(value), user_id, user_name)
        return blocks.message(t("inc.reply.opened", svc.lang_for(user_id), url=url))

    def snooze(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        ids = [int(v) for v in value.split(",") if v.isdigit()]
        incidents.snooze(svc, ids, user_id)
        return blocks.message(t("inc.reply.snoozed", svc.lang_for(user_id), minutes=incidents.SNOOZE_MINUTES))

    on_click(app, svc, Action.INCIDENT_ACK, ack_incident)
    on_click(app, svc, Action.INCIDENT_MITIGATED, mitigated)
    on_click(app, svc, Action.INCIDENT_PROMOTE, promote)
    on_click(app, svc, Action.INCIDENT_RESOLVE, resolve)
    on_click(app, svc, Action.INCIDENT_PICK, pick)
    on_click(app, svc, Action.INCIDENT_FOLLOWUP_ISSUE, followup)
    on_click(app, svc, Action.NUDGE_SNOOZE, snooze)

    @app.view(Action.INCIDENT_DECLARE_MODAL)
    def submit_declare(ack: Ack, body: dict, view: dict) -> None:
        user_id, user_name = user_of(body)
        severity, title, environment = _modal_values(view)
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        channel = str(meta.get("channel") or svc.config.slack.ops_channel)
        first = []
        source = ""
        if meta.get("message_ts"):
            ts = str(meta["message_ts"])
            source = f"message:{channel}/{ts}"
            author = str(meta.get("message_user", ""))
            at = datetime.fromtimestamp(float(ts), UTC)
            first.append(
                (
                    "message",
                    msg("inc.ev.from_message", user=incidents.plain(author), text=str(meta.get("text", ""))),
                    author,
                    at,
                )
            )

        def declare() -> Reply:
            attempt = Attempt(
                "incident", user_name, channel, {"action": "declare", "severity": severity, "title": title}
            )
            svc.policy.require(user_id, "responder", None, msg("act.declare"), attempt)
            incidents.declare(
                svc, severity=severity, title=title, user_id=user_id, user_name=user_name, channel=channel,
                source=source, first_events=first, environment=environment,
            )  # fmt: skip
            return None

        reply = run_guarded(declare, svc.lang_for(user_id))
        if reply:
            ack(
                response_action="errors",
                errors={"title": to_plain(reply["text"]).removeprefix(":warning: ")[:150]},
            )
            return
        ack()

    @app.shortcut(Action.INCIDENT_FROM_MESSAGE)
    def from_message(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        user_id, user_name = user_of(body)
        channel = channel_of(body)
        message = body.get("message") or {}
        try:
            attempt = Attempt("incident", user_name, channel, {"action": "declare_from_message"})
            svc.policy.require(user_id, "responder", None, msg("act.declare"), attempt)
        except NotAllowed as e:
            client.chat_postEphemeral(channel=channel, user=user_id, text=e.message(svc.lang_for(user_id)))
            return
        open_declare_modal(
            client, svc, str(body.get("trigger_id", "")), channel, lang=svc.lang_for(user_id),
            message_ts=str(message.get("ts", "")), message_user=str(message.get("user", "")),
            text=to_plain(str(message.get("text", "")))[:1500],  # Slack's own markup, read as plain text
        )  # fmt: skip

    @app.event("reaction_added")
    def reaction_added(event: dict) -> None:
        item = event.get("item") or {}
        if event.get("reaction") not in PIN_REACTIONS or item.get("type") != "message":
            return
        channel, ts, user = str(item.get("channel", "")), str(item.get("ts", "")), str(event.get("user", ""))
        svc.later(lambda: incidents.record_pin(svc, channel, ts, user))
