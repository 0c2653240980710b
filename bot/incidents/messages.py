"""Block Kit for incidents, runbook checklists and alert groups: pure functions, data in, dicts out.

Written for 3 a.m.: the state of each step on one line with who did it and when, the
text and command only for steps still open, and the buttons next to the step they act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.core.blocks import Action, Block, button, confirm_dialog, context, section
from bot.core.i18n import coarse_duration, duration, t
from bot.core.mrkdwn import Mrkdwn, channel_link, escape, escape_within, link, mention, slack_time, trusted
from bot.core.states import IncidentState, JobState, RunState, StepState
from bot.incidents.runbooks import PHASE_INFO, Runbook, Step

MAX_BLOCKS = 50  # Slack's limit per message

STEP_ICON = {
    StepState.PENDING: "⬜",
    StepState.RUNNING: "⏳",
    StepState.DONE: "✅",
    StepState.PASSED: "✅",
    StepState.FAILED: "❌",
    StepState.SKIPPED: "⏭️",
}
SEVERITY_ICON = {"sev1": "🔴", "sev2": "🟠", "sev3": "🟡", "sev4": "🔵"}


@dataclass
class StepView:
    """A step's stored state, as the checklist shows it (`result` is mrkdwn the bot rendered, `reason` plain)."""

    state: str = StepState.PENDING
    actor_id: str = ""
    reason: str = ""
    result: str = ""
    job_id: str = ""
    job_state: str = ""
    updated_at: datetime | None = None


@dataclass
class RunView:
    id: str
    runbook: Runbook
    environment: str
    drill: bool
    state: str
    started_by: str
    created_at: datetime
    finished_at: datetime | None = None
    incident_ref: str = ""
    current_phase: str = ""
    steps: dict[str, StepView] = field(default_factory=dict)


def _step_value(run_id: str, step_id: str) -> str:
    return f"{run_id}|{step_id}"


def _is_overdue(step: Step, view: StepView, started: datetime, now: datetime) -> bool:
    if not step.overdue_minutes or view.state not in (StepState.PENDING, StepState.FAILED, StepState.RUNNING):
        return False
    return (now - started).total_seconds() >= step.overdue_minutes * 60


def _status_line(view: StepView, lang: str = "en") -> str:
    who = mention(view.actor_id) if view.actor_id else t("rb.the_bot", lang)
    # Built as markup: an f-string would make the date plain text, shown escaped (&lt;!date…&gt;).
    when = Mrkdwn(" ") + slack_time(view.updated_at, "{time}") if view.updated_at else Mrkdwn("")
    if view.state == StepState.DONE:
        if view.result:
            return t("rb.status.done_result", lang, who=who, when=when, result=trusted(view.result[:300]))
        return t("rb.status.done", lang, who=who, when=when)
    if view.state == StepState.PASSED:
        return t("rb.status.passed", lang, when=when, result=trusted(view.result[:300]))
    if view.state == StepState.FAILED:
        return t("rb.status.failed", lang, when=when, result=trusted(view.result[:500]))
    if view.state == StepState.SKIPPED:  # the reason is what a person typed: plain text, escaped by t()
        return t("rb.status.skipped", lang, who=who, when=when, reason=view.reason[:300])
    if view.state == StepState.RUNNING:
        if view.job_id:
            if view.job_state in JobState.ACTIVE or not view.job_state:
                what = t(f"rb.job_state.{view.job_state or 'requested'}", lang)
            else:
                what = view.job_state
            return t("rb.status.job", lang, job=view.job_id[:8], what=what, who=who)
        return t("rb.status.checking", lang)
    return ""


def _step_detail(step: Step, lang: str) -> str:
    lines: list[str] = []
    text = step.text_for(lang)
    if text:
        lines.append(escape(text))
    if step.manual is not None and step.manual.command:
        lines.append(f"```{escape(step.manual.command)}```")
    if step.check is not None:
        lines.append(f"`check` {code(step.check.describe())}")
    if step.action is not None:
        lines.append(f"`action` {code(step.action.describe())}")
    return "\n".join(lines)


def code(text: str) -> Mrkdwn:
    """An identifier or command shown as code (a backtick inside would end the span early)."""
    return Mrkdwn(f"`{escape_within('`', text)}`")


def _step_buttons(run: RunView, step: Step, view: StepView, lang: str) -> list[Block]:
    value = _step_value(run.id, step.id)
    out: list[Block] = []
    if step.action is not None:
        op = step.action.operation
        action, env = code(step.action.describe()), run.environment or "?"
        out.append(
            button(
                t("rb.btn.run_dry" if run.drill else "rb.btn.run", lang, operation=op),
                Action.STEP_RUN,
                value,
                style="primary",
                confirm=confirm_dialog(
                    t("rb.confirm.run_title", lang, operation=op)[:100],
                    t(
                        "rb.confirm.run_text_dry" if run.drill else "rb.confirm.run_text",
                        lang,
                        action=action,
                        env=env,
                    ),
                    lang=lang,
                    yes=t("rb.confirm.run_yes", lang),
                ),
            )
        )
    if step.check is not None:
        label = t("rb.btn.recheck" if view.state == StepState.FAILED else "rb.btn.check", lang)
        out.append(button(label, Action.STEP_RECHECK, value))
    out.append(
        button(t("rb.btn.done", lang), Action.STEP_DONE, value, style=None if step.action else "primary")
    )
    out.append(button(t("rb.btn.skip", lang), Action.STEP_SKIP, value))
    return out


def checklist_blocks(run: RunView, lang: str, now: datetime | None = None) -> list[Block]:
    """The checklist message: header, then each step with its state and, while open, its buttons."""
    now = now or datetime.now(UTC)
    book = run.runbook
    done = sum(1 for v in run.steps.values() if v.state in StepState.TERMINAL)
    total = len(book.steps)
    tags = []
    if run.incident_ref:
        tags.append(run.incident_ref)
    if run.environment:
        tags.append(f"`{run.environment}`")
    drill = f"  {t('rb.drill_badge', lang)}" if run.drill else ""
    head = f"📋 *{escape(book.title_for(lang))}*" + (f" · {' · '.join(tags)}" if tags else "") + drill
    if run.state == RunState.COMPLETED:
        head = "✅ " + head.removeprefix("📋 ")
    blocks: list[Block] = [section(head)]
    facts = [
        t("rb.started_by", lang, user=mention(run.started_by), time=slack_time(run.created_at, "{time}")),
        t("rb.steps_done", lang, done=done, total=total),
    ]
    if run.current_phase:
        facts.append(t("rb.phase", lang, phase=escape(Runbook.phase_title(run.current_phase, lang))))
    if run.finished_at:
        facts.append(t("rb.completed_at", lang, time=slack_time(run.finished_at, "{time}")))
    blocks.append(context(" · ".join(facts)))
    if run.state != RunState.COMPLETED and (book.summary or book.symptoms):
        bits = [escape(book.summary_for(lang))] if book.summary else []
        if book.symptoms:
            bits.append(t("rb.symptoms", lang, items="; ".join(escape(s) for s in book.symptoms_for(lang))))
        if book.causes:
            bits.append(t("rb.causes", lang, items="; ".join(escape(c) for c in book.causes_for(lang))))
        blocks.append(context("\n".join(bits)))

    # In an incident flow, the text of later phases' steps stays folded until their phase comes.
    phases = list(book.phases or [])
    reached = phases[: phases.index(run.current_phase) + 1] if run.current_phase in phases else phases
    step_blocks: list[tuple[Block, Block | None]] = []
    number = 0
    for phase, steps in book.steps_by_phase().items():
        if phase is not None:
            marker = "▶️ " if phase == run.current_phase and run.state != RunState.COMPLETED else ""
            step_blocks.append((section(f"{marker}*{escape(Runbook.phase_title(phase, lang))}*"), None))
        for step in steps:
            number += 1
            view = run.steps.get(step.id, StepView())
            icon = STEP_ICON.get(view.state, "•")
            overdue = " " + t("rb.overdue", lang) if _is_overdue(step, view, run.created_at, now) else ""
            line = f"{icon} *{number}. {escape(step.title_for(lang))}*{overdue}"
            status = _status_line(view, lang)
            if status:
                line += f"\n{status}"
            is_open = view.state in StepState.OPEN and run.state != RunState.COMPLETED
            if is_open and (phase is None or phase in reached):
                detail = _step_detail(step, lang)
                if detail:
                    line += f"\n{detail}"
            actions = (
                {
                    "type": "actions",
                    "block_id": f"step:{step.id}",
                    "elements": _step_buttons(run, step, view, lang),
                }
                if is_open
                else None
            )
            step_blocks.append((section(line), actions))

    budget = MAX_BLOCKS - len(blocks) - 1
    needed = sum(1 + (a is not None) for _, a in step_blocks)
    dropped = 0
    for text_block, actions in step_blocks:
        blocks.append(text_block)
        if actions is not None:
            if needed > budget:
                needed -= 1
                dropped += 1
                continue
            blocks.append(actions)
    if dropped:
        blocks.append(context(t("rb.buttons_later", lang, n=dropped)))
    return blocks


def checklist_text(run: RunView, lang: str) -> str:
    done = sum(1 for v in run.steps.values() if v.state in StepState.TERMINAL)
    return t(
        "rb.checklist_text", lang, title=run.runbook.title_for(lang), done=done, total=len(run.runbook.steps)
    )


# -- incidents --------------------------------------------------------------------------


@dataclass
class IncidentView:
    id: int
    ref: str
    title: str
    severity: str
    state: str
    phase: str
    phases: Sequence[str]
    commander: str
    scribe: str
    comms: str
    status_text: str
    status_by: str
    status_at: datetime | None
    detected_at: datetime
    declared_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    dedicated_channel: str = ""
    environment: str = ""
    source: str = ""
    channel_creating: bool = False  # a replica is creating its channel now


def _since(start: datetime, end: datetime | None, lang: str) -> str:
    return f"+{duration((end - start).total_seconds(), lang)}" if end else "—"


def milestone_line(inc: IncidentView, lang: str = "en") -> str:
    """detected 02:01 · acknowledged +3m · mitigated +25m · resolved —"""
    return t(
        "inc.milestones",
        lang,
        detected=slack_time(inc.detected_at, "{time}"),
        acknowledged=_since(inc.detected_at, inc.acknowledged_at, lang),
        mitigated=_since(inc.detected_at, inc.mitigated_at, lang),
        resolved=_since(inc.detected_at, inc.resolved_at, lang),
    )


def incident_header_blocks(inc: IncidentView, lang: str, now: datetime | None = None) -> list[Block]:
    """The incident's header message (the thread parent): severity, status, roles, phase, clock."""
    now = now or datetime.now(UTC)
    icon = "✅" if inc.state == IncidentState.RESOLVED else SEVERITY_ICON.get(inc.severity, "🚨")
    state = t("inc.state.resolved" if inc.state == IncidentState.RESOLVED else "inc.state.open", lang)
    head = f"{icon} *{inc.ref} · {inc.severity.upper()} · {escape_within('*', inc.title)}*  `{state}`"
    phase_no = inc.phases.index(inc.phase) + 1 if inc.phase in inc.phases else 0
    phase = escape(Runbook.phase_title(inc.phase, lang))
    unassigned = t("inc.unassigned", lang)
    roles = t(
        "inc.header.roles",
        lang,
        **{role: mention(who) if who else unassigned for role, who in
           (("commander", inc.commander), ("scribe", inc.scribe), ("comms", inc.comms))},
    )  # fmt: skip
    end = inc.resolved_at or now
    clock = t(
        "inc.header.elapsed", lang, elapsed=coarse_duration((end - inc.detected_at).total_seconds(), lang)
    )
    phase_line = t("inc.header.phase", lang, phase=phase, n=phase_no, total=len(inc.phases))
    lines = [head, phase_line, roles, clock, milestone_line(inc, lang)]
    blocks: list[Block] = [section("\n".join(lines))]
    if inc.status_text:
        blocks.append(
            section(
                t(
                    "inc.header.status",
                    lang,
                    text=inc.status_text[:1500],
                    user=mention(inc.status_by),
                    time=slack_time(inc.status_at, "{time}"),
                )
            )
        )
    else:
        blocks.append(context(t("inc.header.no_status", lang)))
    if inc.state != IncidentState.RESOLVED:
        elements = []
        if not inc.acknowledged_at:
            elements.append(button(t("inc.btn.ack", lang), Action.INCIDENT_ACK, str(inc.id), style="primary"))
        if not inc.mitigated_at:
            elements.append(button(t("inc.btn.mitigated", lang), Action.INCIDENT_MITIGATED, str(inc.id)))
        if not inc.dedicated_channel and not inc.channel_creating:
            elements.append(button(t("inc.btn.promote", lang), Action.INCIDENT_PROMOTE, str(inc.id)))
        elements.append(
            button(
                t("inc.btn.resolve", lang),
                Action.INCIDENT_RESOLVE,
                str(inc.id),
                style="danger",
                confirm=confirm_dialog(
                    t("inc.confirm.resolve_title", lang, ref=inc.ref),
                    t("inc.confirm.resolve_text", lang),
                    lang=lang,
                    yes=t("inc.btn.resolve", lang),
                ),
            )
        )
        blocks.append({"type": "actions", "block_id": f"incident:{inc.id}", "elements": elements})
    where = []
    if inc.dedicated_channel:
        where.append(t("inc.where.channel", lang, channel=channel_link(inc.dedicated_channel)))
    if inc.environment:
        where.append(t("inc.where.environment", lang, env=inc.environment))
    where.append(t("inc.where.thread", lang))
    blocks.append(context(" · ".join(where)))
    return blocks


def phase_name(phase: str, lang: str) -> str:
    """A phase's short name ("Triage" / "トリアージ"); unknown phases as they are."""
    info = PHASE_INFO.get(phase)
    return str(info.name.get(lang)) if info else phase


def incident_text(inc: IncidentView, lang: str = "en") -> str:
    fields = {"ref": inc.ref, "severity": inc.severity.upper(), "title": inc.title}
    if inc.state == IncidentState.RESOLVED:
        return t("inc.text_resolved", lang, **fields)
    return t("inc.text", lang, phase=phase_name(inc.phase, lang), **fields)


def incident_list_blocks(
    incidents: Sequence[IncidentView], now: datetime | None = None, lang: str = "en"
) -> list[Block]:
    now = now or datetime.now(UTC)
    if not incidents:
        return [section(t("inc.list.empty", lang))]
    lines = []
    for inc in incidents:
        icon = SEVERITY_ICON.get(inc.severity, "🚨") if inc.state != IncidentState.RESOLVED else "✅"
        who = mention(inc.commander) if inc.commander else t("inc.list.no_commander", lang)
        end = inc.resolved_at or now
        where = f" · {channel_link(inc.dedicated_channel)}" if inc.dedicated_channel.startswith("C") else ""
        lines.append(
            f"{icon} *{inc.ref}* {inc.severity} · {escape(inc.title)} — {phase_name(inc.phase, lang)} · {who} · "
            f"{duration((end - inc.detected_at).total_seconds(), lang)}{where}"
        )
    return [section(t("inc.list.title", lang)), section("\n".join(lines))]


def pick_incident_blocks(prompt: str, incidents: Sequence[IncidentView], payload: str) -> list[Block]:
    """Which incident? One button per open incident; the value carries the original command."""
    elements = [
        button(f"{inc.ref} {inc.title}"[:75], Action.INCIDENT_PICK, f"{inc.id}|{payload}"[:2000])
        for inc in incidents[:20]
    ]
    out = [section(prompt)]
    for i in range(0, len(elements), 5):
        out.append({"type": "actions", "block_id": f"pick:{i}", "elements": elements[i : i + 5]})
    return out


def nudge_blocks(text: str, nudge_ids: Sequence[int], minutes: int = 15, lang: str = "en") -> list[Block]:
    value = ",".join(str(i) for i in nudge_ids)[:2000]
    return [
        section(text),
        {
            "type": "actions",
            "block_id": "nudge",
            "elements": [button(t("inc.nudge.snooze", lang, minutes=minutes), Action.NUDGE_SNOOZE, value)],
        },
    ]


def followup_blocks(ref: str, followups: Sequence[tuple[int, str, str]], lang: str = "en") -> list[Block]:
    """(id, title, issue_url) per improvement item, each with an 'Open GitHub issue' button."""
    if not followups:
        return [context(t("inc.followups.none", lang, ref=ref))]
    blocks: list[Block] = [section(t("inc.followups.title", lang, ref=ref))]
    for fid, title, url in followups[:20]:
        if url:
            blocks.append(section(f"• {escape(title)} — {link(url, t('inc.followups.issue', lang))}"))
        else:
            blocks.append(
                section(
                    f"• {escape(title)}",
                    accessory=button(
                        t("inc.followups.open_issue", lang), Action.INCIDENT_FOLLOWUP_ISSUE, str(fid)
                    ),
                )
            )
    return blocks


def markdown_blocks(title: str, markdown: str, chunk: int = 2900) -> list[Block]:
    """Markdown as code blocks (Slack has no Markdown renderer), split to fit Slack's limits."""
    blocks: list[Block] = [section(title)]
    lines = markdown.splitlines()
    buf: list[str] = []
    size = 0
    for line in lines:
        # The draft is plain text with people's words in it: escaped for Slack, and no line may end the block.
        line = escape(line).replace("```", "'''")[:chunk]
        if size + len(line) + 1 > chunk and buf:
            blocks.append(section("```" + "\n".join(buf) + "```"))
            buf, size = [], 0
        buf.append(line)
        size += len(line) + 1
    if buf:
        blocks.append(section("```" + "\n".join(buf) + "```"))
    return blocks[:MAX_BLOCKS]


# -- modals -----------------------------------------------------------------------------


def declare_modal(
    severities: Sequence[str],
    metadata: str,
    title: str = "",
    lang: str = "en",
    *,
    environments: Sequence[str] = (),
    environment: str = "",
) -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": s}, "value": s} for s in severities]
    env_options = [{"text": {"type": "plain_text", "text": e}, "value": e} for e in environments]
    env_el: dict[str, Any] = {
        "type": "static_select",
        "action_id": Action.INCIDENT_ENV,
        "options": env_options,
    }
    if environment in environments:
        env_el["initial_option"] = {"text": {"type": "plain_text", "text": environment}, "value": environment}
    title_el: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": Action.INCIDENT_TITLE,
        "max_length": 200,
        "placeholder": {"type": "plain_text", "text": t("inc.modal.what_placeholder", lang)},
    }
    if title:
        title_el["initial_value"] = title[:200]
    return {
        "type": "modal",
        "callback_id": Action.INCIDENT_DECLARE_MODAL,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": t("inc.modal.declare_title", lang)},
        "submit": {"type": "plain_text", "text": t("inc.modal.declare", lang)},
        "close": {"type": "plain_text", "text": t("inc.modal.cancel", lang)},
        "blocks": [
            {"type": "input", "block_id": "severity", "label": {"type": "plain_text", "text": t("inc.modal.severity", lang)},
             "element": {"type": "static_select", "action_id": Action.INCIDENT_SEVERITY, "options": options}},
            {"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": t("inc.modal.what", lang)},
             "element": title_el},
            *([{"type": "input", "block_id": "environment", "optional": True, "element": env_el,
                "label": {"type": "plain_text", "text": t("inc.modal.environment", lang)}}] if env_options else []),
        ],
    }  # fmt: skip


def skip_modal(step_title: str, metadata: str, lang: str = "en") -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": Action.STEP_SKIP_MODAL,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": t("rb.modal.skip_title", lang)},
        "submit": {"type": "plain_text", "text": t("rb.modal.skip", lang)},
        "close": {"type": "plain_text", "text": t("inc.modal.cancel", lang)},
        "blocks": [
            section(t("rb.modal.skip_why", lang, step=escape(step_title))),
            {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": t("rb.modal.reason", lang)},
             "element": {"type": "plain_text_input", "action_id": Action.STEP_SKIP_REASON, "max_length": 500,
                         "placeholder": {"type": "plain_text", "text": t("rb.modal.reason_placeholder", lang)}}},
        ],
    }  # fmt: skip


def version_modal(step_title: str, metadata: str, lang: str = "en", why: str = "") -> dict[str, Any]:
    """The step's params form: a release tag for a deploy step, or for a rollback step whose
    version could not be inferred (`why` says so)."""
    return {
        "type": "modal",
        "callback_id": Action.STEP_PARAMS_MODAL,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": t("rb.modal.version_title", lang)},
        "submit": {"type": "plain_text", "text": t("rb.modal.run", lang)},
        "close": {"type": "plain_text", "text": t("inc.modal.cancel", lang)},
        "blocks": [
            section(t("rb.modal.needs_tag", lang, step=escape(step_title))),
            *([context(why)] if why else []),
            {"type": "input", "block_id": "version", "label": {"type": "plain_text", "text": t("rb.modal.version", lang)},
             "element": {"type": "plain_text_input", "action_id": Action.STEP_VERSION,
                         "placeholder": {"type": "plain_text", "text": "v1.2.3"}}},
        ],
    }  # fmt: skip


# -- alerts -----------------------------------------------------------------------------
