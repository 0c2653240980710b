"""Block Kit builders: pure functions, data in, dicts out. Action ids live here, once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.commands import SPECS, Spec
from bot.i18n import MESSAGES, duration, outcome, render_plain, t
from bot.mrkdwn import (
    Mrkdwn,
    clip,
    escape,
    is_user_id,
    link,
    mention,
    plain_text,
    slack_time,
    trusted,
)

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
    # Incidents, runbook runs and alerts (messages in bot/blocks_incident.py).
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


STEP_ICON = {"running": "⏳", "done": "✅", "failed": "❌", "info": "•", "skipped": "⏭️"}


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


def help_blocks(allowed: Iterable[Spec], lang: str = "en") -> list[Block]:
    allowed_names = {s.name for s in allowed}
    lines = []
    for spec in SPECS:
        desc = spec.ja if lang == "ja" else spec.en
        line = Mrkdwn("`/taisun {}`\n      {}").format(spec.usage, desc)  # `<env>` in a usage is text
        if spec.name not in allowed_names:
            line += t("help.no_role", lang)
        lines.append(line)
    return [section(t("help.title", lang)), section("\n".join(lines)), context(t("help.aliases", lang))]


# -- status -----------------------------------------------------------------------------


def status_blocks(rows: list[dict[str, Any]], lang: str = "en") -> list[Block]:
    """rows: name, branch, url, health (text), healthy (bool|None), version, lock (text|None), latency_ms."""
    blocks: list[Block] = [section(t("status.title", lang))]
    for r in rows:
        icon = {True: "🟢", False: "🔴", None: "⚪"}[r.get("healthy")]
        lines = [
            t(
                "status.head",
                lang,
                icon=icon,
                env=r["name"],
                branch=r.get("branch") or "—",
                url=r.get("url") or t("status.no_url", lang),
            ),
            t("status.line", lang, health=r.get("health", "—"), version=r.get("version") or "—"),
        ]
        if r.get("lock"):
            lines.append(f"🔒 {r['lock']}")
        if r.get("last_deploy"):
            lines.append(t("status.last_deploy", lang, what=r["last_deploy"]))
        if r.get("last_simulation"):  # never counted as a deploy: said apart, after the real one
            lines.append(t("status.last_simulation", lang, what=r["last_simulation"]))
        blocks.append(section("\n".join(lines)))
    blocks.append(context(t("status.checked", lang, time=slack_time(datetime.now(UTC)))))
    return blocks


# -- audit ------------------------------------------------------------------------------


AUDIT_DETAIL_CHARS = 120


def audit_actor(ev: Any) -> Mrkdwn:
    """Who did it: a person as a mention; the bot, the CLI or Alertmanager by their name."""
    if is_user_id(ev.actor_id):
        return mention(ev.actor_id)
    return escape(ev.actor_name or ev.actor_id or "?")


def audit_detail(detail: str) -> Mrkdwn:
    """A stored detail (plain text, often what a person typed) as the audit view shows it: on one
    line, cut at a word boundary with "…", escaped once — shown as written, never parsed."""
    return escape(clip(detail, AUDIT_DETAIL_CHARS))


def audit_blocks(events: list[Any], environment: str | None, lang: str = "en") -> list[Block]:
    title = t("audit.title", lang) + (f" — {environment}" if environment else "")
    if not events:
        return [section(f"{title}\n{t('audit.empty', lang)}")]
    lines = []
    for ev in events:
        where = Mrkdwn(" `{}`").format(ev.environment) if ev.environment else ""
        # A detail the bot wrote from its catalogue reads in the reader's language; other text as stored.
        said = render_plain(ev.detail_msg, lang) if getattr(ev, "detail_msg", None) else ev.detail
        detail = Mrkdwn(" — ") + audit_detail(said) if said else ""
        lines.append(
            Mrkdwn("{}  {}  *{}*{}  _{}_{}").format(
                slack_time(ev.ts), audit_actor(ev), ev.action, where, outcome(ev.outcome, lang), detail
            )
        )
    return [section(title), *sections(lines), context(t("audit.footer", lang, n=len(events)))]


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

STATE_EMOJI = {
    "validating": "🔎", "pending_approval": "⏳", "queued": "🕐", "running": "🚀", "succeeded": "✅",
    "simulated": "🧪", "failed": "❌", "rejected": "🚫", "expired": "⌛", "cancelled": "🛑", "invalid": "⚠️",
    "refused": "🔒",
}  # fmt: skip


def state_label(state: str, lang: str = "en", dry_run: bool = False) -> Mrkdwn:
    """A job state as people read it; a dry run that ran says "Dry run — nothing was changed"."""
    if state == "simulated" and dry_run:
        return t("state.simulated_dry_run", lang)
    return t(f"state.{state}", lang) if f"state.{state}" in MESSAGES else escape(state)


def job_blocks(
    job: Any,
    description: str,
    *,
    destructive: bool = False,
    can_rollback: bool = False,
    left_locked: bool = False,
    lang: str = "en",
) -> list[Block]:
    """The one message a job lives in: approval card, then progress, then outcome."""
    state = job.state
    # Said once: the DRY RUN tag until the job ends, then the state ("Dry run — nothing was changed").
    dry = f"  `{t('card.dry_run', lang)}`" if job.dry_run and state != "simulated" else ""
    label = state_label(state, lang, job.dry_run)
    head = f"{STATE_EMOJI.get(state, '•')} *{escape(description)}*{dry}\n*{label}*"
    blocks: list[Block] = [section(head)]
    facts = [t("card.requested_by", lang, user=mention(job.requested_by))]
    if job.approved_by:
        facts.append(t("card.approved_by", lang, user=mention(job.approved_by)))
    facts.append(t("card.at", lang, time=slack_time(job.created_at)))
    own = (job.params or {}).get("through_own_lock")
    if own is not None:  # the requester holds the environment's lock and goes through it
        why = t("lock.why", lang, reason=escape(own.get("reason", ""))) if own.get("reason") else ""
        facts.append(
            t("card.through_own_lock", lang, user=mention(job.requested_by), env=job.environment, why=why)
        )
    blocks.append(context(" · ".join(facts)))
    # A job's progress and result are mrkdwn the bot rendered (escaped) when it stored them.
    progress = job.progress or {}
    fields = progress.get("fields") or []
    if fields:
        blocks.append(section("\n".join(f"*{escape(k)}*: {v}" for k, v in fields)[:3000]))
    if progress.get("flag"):
        blocks.append(section(f":rotating_light: {progress['flag']}"))
    steps = progress.get("steps") or []
    if steps:
        blocks.append(
            section("\n".join(f"{STEP_ICON.get(s['status'], '•')} {s['text']}" for s in steps)[-3000:])
        )
    links = progress.get("links") or []
    if links:
        blocks.append(context(Mrkdwn("  ").join(link(url, text) for text, url in links)))
    # A simulation's result ("nothing was changed, because …") is what its state and banner say.
    if job.result and state not in ("running", "queued", "simulated"):
        result = trusted(job.result)
        blocks.append(section(result if state == "succeeded" else t("card.why", lang, reason=result)))
    if state == "pending_approval":
        expires = t("card.expires", lang, time=slack_time(job.expires_at, "{time}")) if job.expires_at else ""
        confirm = confirm_dialog(
            t("card.confirm_approve_title", lang),
            t("card.confirm_approve_text", lang, what=escape(description)),
            lang=lang,
            yes=t("card.approve", lang),
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"job:{job.id}",
                "elements": [
                    button(t("card.approve", lang), Action.APPROVE, job.id, style="primary", confirm=confirm),
                    button(t("card.reject", lang), Action.REJECT, job.id, style="danger"),
                ],
            }
        )
        blocks.append(context(f"{expires} · {t('card.other_approver', lang)}"))
    elif state in ("running", "queued"):
        started = job.started_at or job.created_at
        elapsed = duration((datetime.now(UTC) - started).total_seconds(), lang)
        blocks.append(context(t("card.running_for", lang, elapsed=elapsed, job=job.id[:8])))
    elif state == "failed" and can_rollback:
        confirm = confirm_dialog(
            t("card.confirm_rollback_title", lang),
            # The version named here is the one the click dispatches (Rollback.check_request).
            t(
                "card.confirm_rollback_text",
                lang,
                env=job.environment,
                version=progress.get("rollback_to", ""),
            ),
            lang=lang,
            yes=t("card.rollback", lang),
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"job:{job.id}",
                "elements": [
                    button(t("card.rollback", lang), Action.ROLLBACK, job.id, style="danger", confirm=confirm)
                ],
            }
        )
    if left_locked:
        blocks.append(
            section(t("card.left_locked", lang, env=job.environment, user=mention(job.requested_by)))
        )
    if job.finished_at and job.started_at:
        elapsed = duration((job.finished_at - job.started_at).total_seconds(), lang)
        blocks.append(context(t("card.took", lang, elapsed=elapsed, job=job.id[:8])))
    elif job.finished_at:  # rejected, expired, cancelled before it started: still name the job
        blocks.append(context(t("card.job", lang, job=job.id[:8])))
    return blocks


def reject_modal(job: Any, description: str, channel: str, required: bool, lang: str = "en") -> Block:
    """The form a Reject click opens: why (required where changes need approval, else optional)."""
    hint = t("card.reject_reason_required" if required else "card.reject_reason_optional", lang)
    reason: Block = {
        "type": "input", "block_id": "reason", "optional": not required,
        "label": {"type": "plain_text", "text": plain_text(t("card.reject_reason", lang))},
        "hint": {"type": "plain_text", "text": plain_text(hint)[:2000]},
        "element": {"type": "plain_text_input", "action_id": Action.REJECT_REASON, "multiline": True, "max_length": 500},
    }  # fmt: skip
    return {
        "type": "modal",
        "callback_id": Action.REJECT_MODAL,
        "private_metadata": json.dumps({"job": job.id, "channel": channel}),
        "title": {"type": "plain_text", "text": plain_text(t("card.reject_title", lang))[:24]},
        "submit": {"type": "plain_text", "text": plain_text(t("card.reject", lang))},
        "close": {"type": "plain_text", "text": plain_text(t("card.cancel", lang))},
        "blocks": [
            section(t("card.reject_text", lang, what=description, user=mention(job.requested_by))),
            reason,
        ],
    }


def job_text(job: Any, description: str, lang: str = "en") -> str:
    """Notification fallback for a job message (Slack parses it as mrkdwn too)."""
    return escape(description) + Mrkdwn(": ") + state_label(job.state, lang, job.dry_run)


def jobs_list_blocks(jobs: list[Any], describe: Any, lang: str = "en") -> list[Block]:
    if not jobs:
        return [section(t("jobs.none", lang))]
    lines = []
    now = datetime.now(UTC)
    for j in jobs:
        stuck = j.state == "running" and j.lease_expires_at and j.lease_expires_at < now
        lines.append(
            t("jobs.line_stuck" if stuck else "jobs.line", lang, job=j.id[:8], what=escape(describe(j, lang)),
              state=state_label(j.state, lang), user=mention(j.requested_by))
        )  # fmt: skip
    return [section(t("jobs.title", lang)), section("\n".join(lines))]
