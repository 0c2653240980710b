"""Block Kit builders: pure functions, data in, dicts out. Action ids live here, once."""

from __future__ import annotations

from typing import Any

from bot.core.i18n import t
from bot.core.mrkdwn import Mrkdwn, escape, plain_text

# Re-exported: builders of messages use them with the blocks.
from bot.core.mrkdwn import mention as mention
from bot.core.mrkdwn import slack_time as slack_time
from bot.core.states import Progress

Block = dict[str, Any]


class Action:
    """Every action id and callback id the bot uses (one source of truth)."""

    APPROVE = "taisun.job.approve"
    REJECT = "taisun.job.reject"
    REJECT_MODAL = "taisun.job.reject_modal"  # the Reject form, asking why
    REJECT_REASON = "taisun.job.reject_reason"
    CANCEL = "taisun.job.cancel"
    ROLLBACK = "taisun.job.rollback"
    LOCK_TAKEOVER = "taisun.lock.takeover"
    DEPLOY_MODAL = "taisun.deploy.modal"
    DEPLOY_ENV = "taisun.deploy.env"
    DEPLOY_VERSION = "taisun.deploy.version"
    DEPLOY_OPTIONS = "taisun.deploy.options"  # the form's checkboxes (dry run)
    # Incidents, runbook runs and alerts (messages in bot/incidents/messages.py).
    INCIDENT_DECLARE_MODAL = "taisun.incident.declare_modal"
    INCIDENT_FROM_MESSAGE = "taisun.incident.from_message"  # message shortcut callback id
    INCIDENT_SEVERITY = "taisun.incident.severity"
    INCIDENT_TITLE = "taisun.incident.title"
    INCIDENT_ENV = "taisun.incident.environment"
    INCIDENT_ACK = "taisun.incident.ack"
    INCIDENT_MITIGATED = "taisun.incident.mitigated"
    INCIDENT_PROMOTE = "taisun.incident.promote"
    INCIDENT_RESOLVE = "taisun.incident.resolve"
    INCIDENT_PICK = "taisun.incident.pick"
    INCIDENT_FOLLOWUP_ISSUE = "taisun.incident.followup_issue"
    NUDGE_SNOOZE = "taisun.nudge.snooze"
    STEP_DONE = "taisun.step.done"
    STEP_SKIP = "taisun.step.skip"
    STEP_RUN = "taisun.step.run"
    STEP_RECHECK = "taisun.step.recheck"
    STEP_SKIP_MODAL = "taisun.step.skip_modal"
    STEP_SKIP_REASON = "taisun.step.skip_reason"
    STEP_PARAMS_MODAL = "taisun.step.params_modal"
    STEP_VERSION = "taisun.step.version"
    ALERT_START_RUNBOOK = "taisun.alert.start_runbook"
    # Security operations (#18): a due task, its Done form, the access review (bot/security/messages.py).
    SECURITY_DONE = "taisun.security.done"
    SECURITY_SNOOZE = "taisun.security.snooze"
    SECURITY_DONE_MODAL = "taisun.security.done_modal"
    SECURITY_NOTE = "taisun.security.note"
    SECURITY_REVIEW_KEEP = "taisun.security.review_keep"
    SECURITY_REVIEW_REMOVE = "taisun.security.review_remove"


STEP_ICON = {
    Progress.RUNNING: "⏳", Progress.DONE: "✅", Progress.FAILED: "❌", Progress.INFO: "•",
    Progress.SKIPPED: "⏭️", Progress.WARNING: "⚠️",
}  # fmt: skip


def section(text: str, **extra: Any) -> Block:
    """A mrkdwn section: `text` is Slack markup as it is, so build it with t() or escape() people's words."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}, **extra}


def context(*texts: str) -> Block:
    """A context line of mrkdwn texts (as `section`: t() or escape() for people's words)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t[:3000]} for t in texts[:10]]}


def button(
    text: str, action_id: str, value: str, style: str | None = None, confirm: Block | None = None
) -> Block:
    b: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": plain_text(text)[:75]},
        "action_id": action_id,
        "value": value,
    }
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def confirm_dialog(title: str, text: str, *, lang: str, yes: str = "", no: str = "") -> Block:
    """A button's "are you sure?" dialog; its buttons say `yes` / `no` (default: Yes / Cancel in `lang`)."""
    yes, no = yes or t("card.yes", lang), no or t("card.cancel", lang)
    return {
        "title": {"type": "plain_text", "text": plain_text(title)[:100]},
        "text": {"type": "mrkdwn", "text": escape(text)[:300]},
        "confirm": {"type": "plain_text", "text": plain_text(yes)[:30]},
        "deny": {"type": "plain_text", "text": plain_text(no)[:30]},
    }


def message(text: str, blocks: list[Block] | None = None, ephemeral: bool = True) -> dict[str, Any]:
    """A reply payload for ack()/respond(): text is the notification fallback (plain text is escaped)."""
    out: dict[str, Any] = {"text": escape(text), "response_type": "ephemeral" if ephemeral else "in_channel"}
    if blocks:
        out["blocks"] = blocks
    return out


def error(text: str) -> dict[str, Any]:
    """A refusal: `text` is a catalogue message (or a plain text, escaped here)."""
    warning = Mrkdwn(":warning: ") + escape(text)
    return message(warning, [section(warning)])


# -- help -------------------------------------------------------------------------------


# -- status -----------------------------------------------------------------------------


# -- audit ------------------------------------------------------------------------------


def sections(lines: list[str], limit: int = 2900) -> list[Block]:
    """Lines packed into as many sections as they need (a section holds 3,000 characters)."""
    out: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) + 1 > limit:
            out.append(section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line[:limit])
        size += len(line) + 1
    if chunk:
        out.append(section("\n".join(chunk)))
    return out


# -- jobs -------------------------------------------------------------------------------
