"""The job card and the other messages of the Slack surface itself (help, the jobs list)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.core.blocks import STEP_ICON, Action, Block, button, confirm_dialog, context, section
from bot.core.commands import Spec, specs
from bot.core.i18n import MESSAGES, duration, t
from bot.core.mrkdwn import Mrkdwn, escape, link, mention, plain_text, slack_time, trusted
from bot.core.states import JobState
from bot.deploys.messages import outside_facts, started_by
from bot.deploys.timeline import is_outside


def help_blocks(allowed: Iterable[Spec], lang: str = "en") -> list[Block]:
    allowed_names = {s.name for s in allowed}
    lines = []
    for spec in specs():
        desc = spec.ja if lang == "ja" else spec.en
        line = Mrkdwn("`/taisun {}`\n      {}").format(spec.usage, desc)  # `<env>` in a usage is text
        if spec.name not in allowed_names:
            line += t("help.no_role", lang)
        lines.append(line)
    return [section(t("help.title", lang)), section("\n".join(lines)), context(t("help.aliases", lang))]


STATE_EMOJI = {
    JobState.VALIDATING: "🔎", JobState.PENDING_APPROVAL: "⏳", JobState.QUEUED: "🕐", JobState.RUNNING: "🚀", JobState.SUCCEEDED: "✅",
    JobState.SIMULATED: "🧪", JobState.FAILED: "❌", JobState.REJECTED: "🚫", JobState.EXPIRED: "⌛", JobState.CANCELLED: "🛑", JobState.INVALID: "⚠️",
    JobState.REFUSED: "🔒",
}  # fmt: skip


def state_label(state: str, lang: str = "en", dry_run: bool = False) -> Mrkdwn:
    """A job state as people read it; a dry run that ran says "Dry run — nothing was changed"."""
    if state == JobState.SIMULATED and dry_run:
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
    dry = f"  `{t('card.dry_run', lang)}`" if job.dry_run and state != JobState.SIMULATED else ""
    label = state_label(state, lang, job.dry_run)
    head = f"{STATE_EMOJI.get(state, '•')} *{escape(description)}*{dry}\n*{label}*"
    blocks: list[Block] = [section(head)]
    if is_outside(job):  # started on GitHub: who (in the title), how and which run
        facts = [outside_facts(job, lang)]
    elif (job.params or {}).get("auto_rollback_of"):  # started by a deploy's watch (bot/deploys/watch.py)
        of = str(job.params["auto_rollback_of"])[:8]
        facts = [t("card.auto_rollback", lang, job=of, user=mention(job.requested_by))]
    else:
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
    if job.result and state not in (JobState.RUNNING, JobState.QUEUED, JobState.SIMULATED):
        result = trusted(job.result)
        blocks.append(section(result if state == JobState.SUCCEEDED else t("card.why", lang, reason=result)))
    if state == JobState.PENDING_APPROVAL:
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
    elif state in JobState.UNDER_WAY:
        started = job.started_at or job.created_at
        elapsed = duration((datetime.now(UTC) - started).total_seconds(), lang)
        blocks.append(context(t("card.running_for", lang, elapsed=elapsed, job=job.id[:8])))
    elif state == JobState.FAILED and can_rollback:
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
        stuck = j.state == JobState.RUNNING and j.lease_expires_at and j.lease_expires_at < now
        lines.append(
            t("jobs.line_stuck" if stuck else "jobs.line", lang, job=j.id[:8], what=escape(describe(j, lang)),
              state=state_label(j.state, lang), user=started_by(j, lang))
        )  # fmt: skip
    return [section(t("jobs.title", lang)), section("\n".join(lines))]
