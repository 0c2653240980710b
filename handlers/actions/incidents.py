"""Buttons on incident headers, pickers and nudges: acknowledge, mitigated, promote, resolve, pick,
follow-up issue, snooze."""

from __future__ import annotations

import json

from bot.core.i18n import t
from bot.core.replies import Reply
from bot.core.services import Services
from bot.incidents import service as incidents
from bot.incidents.service import IncidentError
from handlers.commands.incident import apply, incident_id


def ack_incident(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    incidents.acknowledge(svc, incident_id(value), user_id, user_name)
    return None


def mitigated(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    incidents.mark_mitigated(svc, incident_id(value), user_id, user_name)
    return None


def promote(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    inc = incidents.promote(svc, incident_id(value), user_id, user_name)
    return Reply(t("inc.reply.promoting", svc.lang_for(user_id), ref=inc.ref))


def resolve(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    inc = incidents.resolve(svc, incident_id(value), user_id, user_name)
    return Reply(t("inc.reply.resolved", svc.lang_for(user_id), ref=inc.ref))


def pick(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    number, _, payload = value.partition("|")
    try:
        args = json.loads(payload)
    except ValueError:
        raise IncidentError(key="inc.err.gone") from None
    if not isinstance(args, dict):
        raise IncidentError(key="inc.err.gone")
    return apply(svc, incident_id(number), args, user_id, user_name)


def followup(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    url = incidents.open_followup_issue(svc, incident_id(value), user_id, user_name)
    return Reply(t("inc.reply.opened", svc.lang_for(user_id), url=url))


def snooze(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    ids = [int(v) for v in value.split(",") if v.isdigit()]
    incidents.snooze(svc, ids, user_id)
    return Reply(t("inc.reply.snoozed", svc.lang_for(user_id), minutes=incidents.SNOOZE_MINUTES))
