"""Block Kit for incidents, runbook checklists and alert groups: pure functions, data in, dicts out.

Written for 3 a.m.: the state of each step on one line with who did it and when, the
text and command only for steps still open, and the buttons next to the step they act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.blocks import Action, Block, button, confirm_dialog, context, duration, escape, section, slack_time
from bot.runbooks import Runbook, Step

MAX_BLOCKS = 50  # Slack's limit per message

STEP_ICON = {
    "pending": "⬜",
    "running": "⏳",
    "done": "✅",
    "passed": "✅",
    "failed": "❌",
    "skipped": "⏭️",
}
SEVERITY_ICON = {"sev1": "🔴", "sev2": "🟠", "sev3": "🟡", "sev4": "🔵"}
JOB_STATE_TEXT = {
    "validating": "being checked",
    "pending_approval": "waiting for approval",
    "queued": "queued",
    "running": "running",
}


@dataclass
class StepView:
    """A step's stored state, as the checklist shows it."""

    state: str = "pending"
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
    if not step.overdue_minutes or view.state not in ("pending", "failed", "running"):
        return False
    return (now - started).total_seconds() >= step.overdue_minutes * 60


def _status_line(view: StepView) -> str:
    who = f"<@{view.actor_id}>" if view.actor_id else "the bot"
    when = f" {slack_time(view.updated_at, '{time}')}" if view.updated_at else ""
    if view.state == "done":
        extra = f": {escape(view.result[:300])}" if view.result else ""
        return f"done by {who}{when}{extra}"
    if view.state == "passed":
        return f"passed{when}: {escape(view.result[:300])}"
    if view.state == "failed":
        return f"*failed*{when}: {escape(view.result[:500])}"
    if view.state == "skipped":
        return f"skipped by {who}{when}: _{escape(view.reason[:300])}_"
    if view.state == "running":
        if view.job_id:
            what = JOB_STATE_TEXT.get(view.job_state, view.job_state or "requested")
            return f"job `{view.job_id[:8]}` {what} (requested by {who})"
        return "checking…"
    return ""


def _step_detail(step: Step, lang: str) -> str:
    lines: list[str] = []
    text = step.text_for(lang)
    if text:
        lines.append(escape(text))
    if step.manual is not None and step.manual.command:
        lines.append(f"```{step.manual.command}```")
    if step.check is not None:
        lines.append(f"`check` {escape(step.check.describe())}")
    if step.action is not None:
        lines.append(f"`action` {escape(step.action.describe())}")
    return "\n".join(lines)


def _step_buttons(run: RunView, step: Step, view: StepView, lang: str) -> list[Block]:
    value = _step_value(run.id, step.id)
    out: list[Block] = []
    if step.action is not None:
        dry = " (dry run)" if run.drill else ""
        out.append(
            button(
                f"Run {step.action.operation}{dry}",
                Action.STEP_RUN,
                value,
                style="primary",
                confirm=confirm_dialog(
                    f"Run {step.action.operation}?"[:100],
                    f"{escape(step.action.describe())} on *{run.environment or '?'}*{dry}. "
                    "The usual approvals and locks apply.",
                    yes="Run",
                ),
            )
        )
    if step.check is not None:
        out.append(
            button("Run check again" if view.state == "failed" else "Run check", Action.STEP_RECHECK, value)
        )
    out.append(button("Done", Action.STEP_DONE, value, style=None if step.action else "primary"))
    out.append(button("Skip…", Action.STEP_SKIP, value))
    return out


def checklist_blocks(run: RunView, lang: str, now: datetime | None = None) -> list[Block]:
    """The checklist message: header, then each step with its state and, while open, its buttons."""
    now = now or datetime.now(UTC)
    book = run.runbook
    done = sum(1 for v in run.steps.values() if v.state in ("done", "passed", "skipped"))
    total = len(book.steps)
    tags = []
    if run.incident_ref:
        tags.append(run.incident_ref)
    if run.environment:
        tags.append(f"`{run.environment}`")
    drill = "  `DRILL — every action runs as a dry run`" if run.drill else ""
    head = f"📋 *{escape(book.title_for(lang))}*" + (f" · {' · '.join(tags)}" if tags else "") + drill
    if run.state == "completed":
        head = "✅ " + head.removeprefix("📋 ")
    blocks: list[Block] = [section(head)]
    facts = [
        f"started by <@{run.started_by}> {slack_time(run.created_at, '{time}')}",
        f"{done}/{total} steps done",
    ]
    if run.current_phase:
        facts.append(f"phase: *{escape(Runbook.phase_title(run.current_phase, lang))}*")
    if run.finished_at:
        facts.append(f"completed {slack_time(run.finished_at, '{time}')}")
    blocks.append(context(" · ".join(facts)))
    if run.state != "completed" and (book.summary or book.symptoms):
        bits = [escape(book.summary_for(lang))] if book.summary else []
        if book.symptoms:
            bits.append("*Symptoms:* " + "; ".join(escape(s) for s in book.symptoms_for(lang)))
        if book.causes:
            bits.append("*Causes:* " + "; ".join(escape(c) for c in book.causes_for(lang)))
        blocks.append(context("\n".join(bits)))

    # In an incident flow, the text of later phases' steps stays folded until their phase comes.
    phases = list(book.phases or [])
    reached = phases[: phases.index(run.current_phase) + 1] if run.current_phase in phases else phases
    step_blocks: list[tuple[Block, Block | None]] = []
    number = 0
    for phase, steps in book.steps_by_phase().items():
        if phase is not None:
            marker = "▶️ " if phase == run.current_phase and run.state != "completed" else ""
            step_blocks.append((section(f"{marker}*{escape(Runbook.phase_title(phase, lang))}*"), None))
        for step in steps:
            number += 1
            view = run.steps.get(step.id, StepView())
            icon = STEP_ICON.get(view.state, "•")
            overdue = " ⏰ *overdue*" if _is_overdue(step, view, run.created_at, now) else ""
            line = f"{icon} *{number}. {escape(step.title_for(lang))}*{overdue}"
            status = _status_line(view)
            if status:
                line += f"\n{status}"
            is_open = view.state in ("pending", "failed") and run.state != "completed"
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
        blocks.append(context(f"Buttons for {dropped} later step(s) appear as earlier ones are finished."))
    return blocks


def checklist_text(run: RunView, lang: str) -> str:
    done = sum(1 for v in run.steps.values() if v.state in ("done", "passed", "skipped"))
    return f"{run.runbook.title_for(lang)}: {done}/{len(run.runbook.steps)} steps done"


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


def coarse_duration(seconds: float) -> str:
    """Whole minutes ("<1m", "12m", "1h 05m"): the header is re-rendered by the sweep, and an
    elapsed time in seconds would make every sweep an edit."""
    minutes = int(max(0, seconds)) // 60
    if minutes < 1:
        return "<1m"
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _since(start: datetime, end: datetime | None) -> str:
    return f"+{duration((end - start).total_seconds())}" if end else "—"


def milestone_line(inc: IncidentView) -> str:
    """detected 02:01 · acknowledged +3m · mitigated +25m · resolved —"""
    return " · ".join(
        [
            f"detected {slack_time(inc.detected_at, '{time}')}",
            f"acknowledged {_since(inc.detected_at, inc.acknowledged_at)}",
            f"mitigated {_since(inc.detected_at, inc.mitigated_at)}",
            f"resolved {_since(inc.detected_at, inc.resolved_at)}",
        ]
    )


def incident_header_blocks(inc: IncidentView, lang: str, now: datetime | None = None) -> list[Block]:
    """The incident's header message (the thread parent): severity, status, roles, phase, clock."""
    now = now or datetime.now(UTC)
    icon = "✅" if inc.state == "resolved" else SEVERITY_ICON.get(inc.severity, "🚨")
    state = "RESOLVED" if inc.state == "resolved" else "OPEN"
    head = f"{icon} *{inc.ref} · {inc.severity.upper()} · {escape(inc.title)}*  `{state}`"
    phase_no = inc.phases.index(inc.phase) + 1 if inc.phase in inc.phases else 0
    phase = f"{escape(Runbook.phase_title(inc.phase, lang))} ({phase_no}/{len(inc.phases)})"
    roles = " · ".join(
        f"*{name}:* {f'<@{who}>' if who else '_unassigned_'}"
        for name, who in (("Commander", inc.commander), ("Scribe", inc.scribe), ("Comms", inc.comms))
    )
    end = inc.resolved_at or now
    clock = f"*Elapsed:* {coarse_duration((end - inc.detected_at).total_seconds())}"
    lines = [head, f"*Phase:* {phase}", roles, clock, milestone_line(inc)]
    blocks: list[Block] = [section("\n".join(lines))]
    if inc.status_text:
        blocks.append(
            section(
                f"*Status:* {escape(inc.status_text[:1500])}\n"
                f"_by <@{inc.status_by}> {slack_time(inc.status_at, '{time}')}_"
            )
        )
    else:
        blocks.append(context("No status update yet: `/taisun incident status <what we know>`"))
    if inc.state != "resolved":
        elements = []
        if not inc.acknowledged_at:
            elements.append(button("Acknowledge", Action.INCIDENT_ACK, str(inc.id), style="primary"))
        if not inc.mitigated_at:
            elements.append(button("Mitigated", Action.INCIDENT_MITIGATED, str(inc.id)))
        if not inc.dedicated_channel:
            elements.append(button("Promote to channel", Action.INCIDENT_PROMOTE, str(inc.id)))
        elements.append(
            button(
                "Resolve",
                Action.INCIDENT_RESOLVE,
                str(inc.id),
                style="danger",
                confirm=confirm_dialog(
                    f"Resolve {inc.ref}?", "The postmortem draft is posted in the thread.", yes="Resolve"
                ),
            )
        )
        blocks.append({"type": "actions", "block_id": f"incident:{inc.id}", "elements": elements})
    where = []
    if inc.dedicated_channel and not inc.dedicated_channel.startswith("creating:"):
        where.append(f"channel <#{inc.dedicated_channel}>")
    if inc.environment:
        where.append(f"environment `{inc.environment}`")
    where.append("checklist and timeline in the thread · react :pushpin: to add a message to the timeline")
    blocks.append(context(" · ".join(where)))
    return blocks


def incident_text(inc: IncidentView) -> str:
    state = "resolved" if inc.state == "resolved" else inc.phase
    return f"{inc.ref} {inc.severity.upper()}: {inc.title} ({state})"


def incident_list_blocks(incidents: Sequence[IncidentView], now: datetime | None = None) -> list[Block]:
    now = now or datetime.now(UTC)
    if not incidents:
        return [section("No open incidents. Declare one with `/taisun incident declare <sev> <title>`.")]
    lines = []
    for inc in incidents:
        icon = SEVERITY_ICON.get(inc.severity, "🚨") if inc.state != "resolved" else "✅"
        who = f"<@{inc.commander}>" if inc.commander else "_no commander_"
        end = inc.resolved_at or now
        where = f" · <#{inc.dedicated_channel}>" if inc.dedicated_channel.startswith("C") else ""
        lines.append(
            f"{icon} *{inc.ref}* {inc.severity} · {escape(inc.title)} — {inc.phase} · {who} · "
            f"{duration((end - inc.detected_at).total_seconds())}{where}"
        )
    return [section("*Incidents*"), section("\n".join(lines))]


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


def nudge_blocks(text: str, nudge_ids: Sequence[int], minutes: int = 15) -> list[Block]:
    value = ",".join(str(i) for i in nudge_ids)[:2000]
    return [
        section(text),
        {
            "type": "actions",
            "block_id": "nudge",
            "elements": [button(f"Snooze {minutes} min", Action.NUDGE_SNOOZE, value)],
        },
    ]


def followup_blocks(ref: str, followups: Sequence[tuple[int, str, str]]) -> list[Block]:
    """(id, title, issue_url) per improvement item, each with an 'Open GitHub issue' button."""
    if not followups:
        return [context(f"No follow-up items for {ref}.")]
    blocks: list[Block] = [section(f"*Follow-ups for {ref}*")]
    for fid, title, url in followups[:20]:
        if url and not url.startswith("creating:"):
            blocks.append(section(f"• {escape(title)} — <{url}|issue>"))
        else:
            blocks.append(
                section(
                    f"• {escape(title)}",
                    accessory=button("Open GitHub issue", Action.INCIDENT_FOLLOWUP_ISSUE, str(fid)),
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
        line = line.replace("```", "'''")[:chunk]
        if size + len(line) + 1 > chunk and buf:
            blocks.append(section("```" + "\n".join(buf) + "```"))
            buf, size = [], 0
        buf.append(line)
        size += len(line) + 1
    if buf:
        blocks.append(section("```" + "\n".join(buf) + "```"))
    return blocks[:MAX_BLOCKS]


# -- modals -----------------------------------------------------------------------------


def declare_modal(severities: Sequence[str], metadata: str, title: str = "") -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": s}, "value": s} for s in severities]
    title_el: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": Action.INCIDENT_TITLE,
        "max_length": 200,
        "placeholder": {"type": "plain_text", "text": "API p99 over 1s"},
    }
    if title:
        title_el["initial_value"] = title[:200]
    return {
        "type": "modal",
        "callback_id": Action.INCIDENT_DECLARE_MODAL,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": "Declare incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": "severity", "label": {"type": "plain_text", "text": "Severity"},
             "element": {"type": "static_select", "action_id": Action.INCIDENT_SEVERITY, "options": options}},
            {"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "What is happening?"},
             "element": title_el},
        ],
    }  # fmt: skip


def skip_modal(step_title: str, metadata: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": Action.STEP_SKIP_MODAL,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": "Skip step"},
        "submit": {"type": "plain_text", "text": "Skip"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Skipping *{escape(step_title)}*. Why? (It goes into the timeline and the postmortem.)"),
            {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Reason"},
             "element": {"type": "plain_text_input", "action_id": Action.STEP_SKIP_REASON, "max_length": 500,
                         "placeholder": {"type": "plain_text", "text": "no deploy preceded the incident"}}},
        ],
    }  # fmt: skip


def version_modal(step_title: str, metadata: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": Action.STEP_PARAMS_MODAL,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": "Which version?"},
        "submit": {"type": "plain_text", "text": "Run"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"*{escape(step_title)}* needs a release tag."),
            {"type": "input", "block_id": "version", "label": {"type": "plain_text", "text": "Version"},
             "element": {"type": "plain_text_input", "action_id": Action.STEP_VERSION,
                         "placeholder": {"type": "plain_text", "text": "v1.2.3"}}},
        ],
    }  # fmt: skip


# -- alerts -----------------------------------------------------------------------------


@dataclass
class AlertGroupView:
    id: int
    alertname: str
    firing: int
    resolved: int
    severity: str
    summary: str
    instances: Sequence[str]
    runbook_id: str = ""
    runbook_title: str = ""
    incident_ref: str = ""
    run_started: bool = False
    generator_url: str = ""
    since: datetime | None = None


def alert_group_blocks(group: AlertGroupView) -> list[Block]:
    """One message per alertname: counts, severity, a few instances, and what to do about it."""
    if group.firing:
        icon = "🔥" if group.severity == "critical" else "⚠️"
        state = f"*{group.firing} firing*"
    else:
        icon, state = "✅", "*all resolved*"
    sev = f" · `{group.severity}`" if group.severity else ""
    head = f"{icon} *{escape(group.alertname)}* — {state} · {group.resolved} resolved{sev}"
    blocks: list[Block] = [section(head)]
    if group.summary:
        blocks.append(section(escape(group.summary[:1500])))
    if group.instances:
        more = group.firing - len(group.instances)
        lines = "\n".join(f"• {escape(i[:200])}" for i in group.instances)
        blocks.append(context(lines + (f"\n…and {more} more firing" if more > 0 else "")))
    facts = []
    if group.since:
        facts.append(f"since {slack_time(group.since, '{date_short_pretty} {time}')}")
    if group.incident_ref:
        facts.append(f"attached to *{group.incident_ref}*")
    if group.generator_url:
        facts.append(f"<{group.generator_url}|source>")
    if facts:
        blocks.append(context(" · ".join(facts)))
    if group.runbook_id and not group.run_started:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"alert:{group.id}",
                "elements": [
                    button(
                        f"Start runbook: {group.runbook_title or group.runbook_id}"[:75],
                        Action.ALERT_START_RUNBOOK,
                        str(group.id),
                        style="primary",
                    )
                ],
            }
        )
    elif group.runbook_id:
        blocks.append(
            context(f"Runbook *{escape(group.runbook_title or group.runbook_id)}* is running in the thread.")
        )
    return blocks


def alert_group_text(group: AlertGroupView) -> str:
    return f"{group.alertname}: {group.firing} firing, {group.resolved} resolved"
