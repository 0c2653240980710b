"""`/taisun incident …`: declare, list, and act on the incident of this channel (or the one named)."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.core import blocks
from bot.core.commands import UsageError
from bot.core.i18n import msg, t
from bot.core.policy import Attempt
from bot.core.replies import Reply
from bot.core.services import Services
from bot.incidents import messages as blocks_incident
from bot.incidents import service as incidents
from bot.incidents.service import IncidentError
from handlers.common import Invocation
from handlers.views.incidents import open_declare_modal


def incident(inv: Invocation) -> Reply | None:
    svc, args = inv.svc, inv.cmd.args
    action = args["action"]
    where = inv.cmd.env.name if inv.cmd.env else ""
    attempt = Attempt("incident", inv.user_name, inv.channel_id, args, environment=where)
    svc.policy.require(inv.user_id, "responder", None, msg("act.incident"), attempt)
    if action == "declare":
        if args.get("modal"):
            return Reply(
                after=lambda: open_declare_modal(
                    inv.client,
                    svc,
                    inv.trigger_id,
                    inv.channel_id,
                    lang=inv.lang,
                    environment=inv.cmd.env.name if inv.cmd.env else "",
                )
            )
        inc = incidents.declare(
            svc, severity=args["severity"], title=args["title"], user_id=inv.user_id, user_name=inv.user_name,
            channel=inv.channel_id, environment=inv.cmd.env.name if inv.cmd.env else "",
        )  # fmt: skip
        assert inc is not None
        return Reply(_declared_text(svc, inc, inv.lang, assumed=inv.cmd.env is None))
    if action == "list":
        views = [incidents.view(i) for i in incidents.open_incidents(svc)]
        return Reply(
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
        return Reply(prompt, blocks_incident.pick_incident_blocks(prompt, views, json.dumps(args)))
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


def apply(
    svc: Services, incident_id: int, args: dict[str, Any], user_id: str, user_name: str
) -> Reply | None:
    """Run one incident subcommand against a known incident."""
    action = args.get("action")
    lang = svc.lang_for(user_id)
    if action == "status":
        if not args.get("text"):
            inc = incidents.get(svc, incident_id)
            phase = blocks_incident.phase_name(inc.phase, lang)
            if inc.status_text:
                return Reply(
                    t("inc.reply.status_current", lang, ref=inc.ref, phase=phase, text=inc.status_text,
                      user=blocks.mention(inc.status_by))
                )  # fmt: skip
            return Reply(t("inc.reply.status_none", lang, ref=inc.ref, phase=phase))
        inc = incidents.set_status(svc, incident_id, args["text"], user_id, user_name)
        return Reply(t("inc.reply.status_updated", lang, ref=inc.ref))
    if action == "assign":
        inc = incidents.assign(svc, incident_id, args["role"], args["user"], user_id, user_name)
        role = t(f"inc.role_lc.{args['role']}", lang)
        return Reply(t("inc.reply.assigned", lang, user=blocks.mention(args["user"]), role=role, ref=inc.ref))
    if action == "severity":
        inc = incidents.set_severity(svc, incident_id, args["severity"], user_id, user_name)
        return Reply(t("inc.reply.severity", lang, ref=inc.ref, severity=inc.severity))
    if action == "promote":
        inc = incidents.promote(svc, incident_id, user_id, user_name)
        return Reply(t("inc.reply.promoting", lang, ref=inc.ref))
    if action == "resolve":
        inc = incidents.resolve(svc, incident_id, user_id, user_name)
        return Reply(t("inc.reply.resolved", lang, ref=inc.ref))
    raise UsageError(key="inc.reply.unknown_action", action=action)


def incident_id(value: str) -> int:
    """The incident a button names; a value the bot did not write names no incident (never a 500)."""
    if not (value.isascii() and value.isdigit()):
        raise IncidentError(key="inc.err.gone")
    return int(value)
