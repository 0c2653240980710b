"""The incident declaration form: opened by `/taisun incident declare` and the message shortcut."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk import WebClient

from bot.core.blocks import Action
from bot.core.i18n import msg
from bot.core.policy import Attempt
from bot.core.replies import Reply
from bot.core.services import Services
from bot.incidents import messages as blocks_incident
from bot.incidents import runs as runbook_runs
from bot.incidents import service as incidents
from handlers.common import run_guarded, services, user_of


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


def submit_declare(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    svc = services(context)
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

    def declare() -> Reply | None:
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
    if reply and reply.refused:
        ack(response_action="errors", errors={"title": reply.field_error()})
        return
    ack()
