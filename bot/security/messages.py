"""Block Kit for security operations: the due task, the task list, the Home lines, the watched secrets,
the scan's report and the access review. Pure functions: data in, text and blocks out.

Everything people typed (a note) or outside systems wrote (a finding's title, a secret's name) is
escaped by `t()`; mentions, links and dates are the bot's own markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.blocks import Action, Block, button, confirm_dialog, context, section
from bot.core.i18n import t
from bot.core.mrkdwn import Mrkdwn, escape, escape_within, link, mention, plain_text, slack_time, trusted
from bot.core.states import JobState, OccurrenceState, ReviewState
from bot.security.report import Finding, group_by_severity

__all__ = ["section"]

SEVERITY_ICON = {"critical": "🟥", "high": "🟧", "moderate": "🟨", "medium": "🟨", "low": "🟦"}
LINES_PER_SEVERITY = 5
MAX_REPORT_LINES = 15


def when(moment: datetime | None) -> Mrkdwn:
    """A date and time Slack shows in each reader's own timezone."""
    return slack_time(moment, "{date_short_pretty} {time}")


def _mode(mode: str, lang: str) -> Mrkdwn:
    return t(f"security.mode.{mode}", lang)


def _note(note: str, lang: str) -> Mrkdwn:
    return t("security.note", lang, note=note) if note else Mrkdwn("")


# --------------------------------------------------------------------------- a due task


@dataclass
class OccurrenceView:
    id: int
    task_id: str
    title: str
    kind: str
    mode: str
    cadence: Mrkdwn
    due_at: datetime
    state: str
    owners: Mrkdwn
    overdue: bool
    done_at: datetime | None
    done_by: str
    note: str
    snoozed_until: datetime | None
    snoozed_by: str
    snooze_hours: float
    details: dict[str, Any]
    job_state: str = ""
    job_result: str = ""
    review_id: int | None = None


def due_text(view: OccurrenceView, lang: str) -> Mrkdwn:
    """The notification text of the task's message."""
    if view.state == OccurrenceState.DONE:
        return t("security.due.text_done", lang, title=view.title)
    return t("security.due.text", lang, title=view.title)


def due_blocks(view: OccurrenceView, lang: str) -> list[Block]:
    if view.state == OccurrenceState.DONE:
        head = t(
            "security.due.done", lang, title=view.title, when=when(view.done_at), user=mention(view.done_by)
        )
        head += _note(view.note, lang)
    elif view.state == OccurrenceState.MISSED:
        head = t("security.due.missed", lang, title=view.title, due=when(view.due_at))
    else:
        head = t("security.due.head", lang, title=view.title, due=when(view.due_at))
    out: list[Block] = [
        section(head),
        context(
            t(
                "security.due.facts",
                lang,
                cadence=view.cadence,
                mode=_mode(view.mode, lang),
                owners=view.owners,
            )
        ),
    ]
    if view.state == OccurrenceState.DUE:
        if view.snoozed_until and view.snoozed_until > datetime.now(UTC):
            out.append(
                context(
                    t(
                        "security.due.snoozed",
                        lang,
                        until=when(view.snoozed_until),
                        user=mention(view.snoozed_by),
                    )
                )
            )
        elif view.overdue:
            out.append(section(t("security.due.overdue", lang, due=when(view.due_at))))
    out += _kind_blocks(view, lang)
    if view.state == OccurrenceState.DUE:
        hours = f"{view.snooze_hours:g}"
        out.append(
            {
                "type": "actions",
                "block_id": f"sectask:{view.id}",
                "elements": [
                    button(
                        t("security.button.done", lang), Action.SECURITY_DONE, str(view.id), style="primary"
                    ),
                    button(
                        t("security.button.snooze", lang, hours=hours), Action.SECURITY_SNOOZE, str(view.id)
                    ),
                ],
            }
        )
    return out


def _kind_blocks(view: OccurrenceView, lang: str) -> list[Block]:
    if view.kind == "dependency_scan":
        summary = view.details.get("summary")
        if summary:
            return [section(scan_summary_line(summary, lang))]
        job = str(view.details.get("job_id") or "")[:8]
        if view.job_state in (JobState.FAILED, JobState.INVALID, JobState.REFUSED):
            return [section(t("security.due.scan_failed", lang, reason=trusted(view.job_result) or "—"))]
        if view.job_state in JobState.FOR_WORKERS:
            return [context(t("security.due.scan_running", lang, job=job))]
        return []
    if view.kind == "secret_rotation":
        if "checked_at" not in view.details:
            return (
                [context(t("security.due.secrets_checking", lang))]
                if view.state == OccurrenceState.DUE
                else []
            )
        return secrets_blocks(view.details.get("secrets") or [], lang)
    if view.kind == "access_review":
        if view.review_id is not None:
            return [context(t("security.due.review_posted", lang, id=view.review_id))]
        if view.details.get("review_error") and view.state == OccurrenceState.DUE:
            return [section(t("security.due.review_failed", lang, error=str(view.details["review_error"])))]
        return (
            [context(t("security.due.review_preparing", lang))] if view.state == OccurrenceState.DUE else []
        )
    if view.mode == "external" and view.state == OccurrenceState.DUE:
        return [context(t("security.due.external", lang))]
    return []


def done_modal(occurrence_id: int, title: str, lang: str) -> dict[str, Any]:
    """Mark done: an optional note or link (the report, the PR that rotated the keys…)."""
    return {
        "type": "modal",
        "callback_id": Action.SECURITY_DONE_MODAL,
        "private_metadata": str(occurrence_id),
        "title": {"type": "plain_text", "text": plain_text(t("security.modal.title", lang))[:24]},
        "submit": {"type": "plain_text", "text": plain_text(t("security.modal.submit", lang))[:24]},
        "close": {"type": "plain_text", "text": plain_text(t("security.modal.cancel", lang))[:24]},
        "blocks": [
            section(t("security.modal.text", lang, title=title)),
            {"type": "input", "block_id": "note", "optional": True,
             "label": {"type": "plain_text", "text": plain_text(t("security.modal.note", lang))},
             "element": {"type": "plain_text_input", "action_id": Action.SECURITY_NOTE, "max_length": 500,
                         "placeholder": {"type": "plain_text", "text": plain_text(t("security.modal.placeholder", lang))}}},
        ],
    }  # fmt: skip


# --------------------------------------------------------------------------- the watched secrets


def secret_line(item: dict[str, Any], lang: str) -> Mrkdwn:
    """One watched secret: its name and where it lives, how old, flagged when over its limit."""
    name, source = str(item.get("name", "")), str(item.get("source", ""))
    if item.get("error"):
        return t("security.secret.error", lang, name=name, source=source, error=str(item["error"]))
    if item.get("last_rotated") is None:
        return t("security.secret.never", lang, name=name, source=source)
    rotated = datetime.fromisoformat(str(item["last_rotated"]))
    key = "security.secret.overdue" if item.get("overdue") else "security.secret.ok"
    return t(
        key, lang, name=name, source=source, days=f"{float(item.get('age_days') or 0):.0f}",
        max=item.get("max_age_days", ""), when=when(rotated),
    )  # fmt: skip


def secrets_blocks(items: list[dict[str, Any]], lang: str) -> list[Block]:
    if not items:
        return [context(t("security.secrets.none", lang))]
    flagged = sum(1 for i in items if i.get("overdue") or i.get("error") or i.get("last_rotated") is None)
    head = t(
        "security.secrets.head_flagged" if flagged else "security.secrets.head_ok",
        lang,
        n=len(items),
        flagged=flagged,
    )
    lines = [secret_line(i, lang) for i in items]
    return [section(head), *[section("\n".join(lines[i : i + 20])) for i in range(0, len(lines), 20)]]


# --------------------------------------------------------------------------- the task list, Home


@dataclass
class TaskLine:
    title: str
    mode: str
    cadence: Mrkdwn
    owners: Mrkdwn
    enabled: bool
    last_done_at: datetime | None
    last_done_by: str
    last_note: str
    due_at: datetime | None  # the open occurrence's
    overdue: bool
    snoozed_until: datetime | None
    next_due: datetime


def task_list_blocks(lines: list[TaskLine], lang: str) -> list[Block]:
    out: list[Block] = [section(t("security.list.title", lang))]
    for line in lines:
        head = t(
            "security.list.task", lang, title=line.title, mode=_mode(line.mode, lang), cadence=line.cadence
        )
        if not line.enabled:
            out.append(section(head + t("security.list.disabled", lang)))
            continue
        if line.last_done_at is not None:
            last = t(
                "security.list.last_done", lang, when=when(line.last_done_at), user=mention(line.last_done_by)
            )
            last += _note(line.last_note, lang)
        else:
            last = t("security.list.never_done", lang)
        if line.due_at is not None:
            state = t(
                "security.list.overdue" if line.overdue else "security.list.due", lang, due=when(line.due_at),
                next=when(line.next_due),
            )  # fmt: skip
            if line.snoozed_until and line.snoozed_until > datetime.now(UTC):
                state += t("security.list.snoozed", lang, until=when(line.snoozed_until))
        else:
            state = t("security.list.next", lang, next=when(line.next_due))
        owners = t("security.list.owners", lang, owners=line.owners)
        out.append(section(Mrkdwn("\n").join([head, last, state, owners])))
    out.append(context(t("security.list.help", lang)))
    return out[:50]


def home_lines(lines: list[TaskLine], lang: str) -> list[Mrkdwn]:
    """Due tasks, overdue first (none when nothing is due: the Home tab stays as it was)."""
    due = sorted(
        (x for x in lines if x.enabled and x.due_at is not None), key=lambda x: (not x.overdue, x.due_at)
    )
    out = []
    for x in due[:5]:
        line = t(
            "security.home.overdue" if x.overdue else "security.home.due",
            lang,
            title=x.title,
            due=when(x.due_at),
        )
        if x.snoozed_until and x.snoozed_until > datetime.now(UTC):
            line += t("security.list.snoozed", lang, until=when(x.snoozed_until))
        out.append(line)
    return out


# --------------------------------------------------------------------------- the scan's report


def scan_summary_line(summary: dict[str, Any], lang: str) -> Mrkdwn:
    """ "7 vulnerabilities: critical 1 · high 2 · … · 2 issues opened"."""
    counts = summary.get("counts") or {}
    total = int(summary.get("total") or 0)
    if not total:
        return t(
            "security.scan.clean",
            lang,
            run=link(str(summary.get("run_url") or ""), t("security.scan.run", lang)),
        )
    parts = Mrkdwn(" · ").join(t("security.scan.count", lang, severity=k, n=v) for k, v in counts.items())
    return t(
        "security.scan.summary", lang, n=total, counts=parts, opened=int(summary.get("issues_opened") or 0),
        run=link(str(summary.get("run_url") or ""), t("security.scan.run", lang)),
    )  # fmt: skip


def scan_report(findings: list[Finding], issues: dict[str, str], lang: str) -> Mrkdwn:
    """The findings grouped by severity (the guide's jq), a few lines each, with their issues."""
    lines: list[Mrkdwn] = []
    for severity, group in group_by_severity(findings):
        icon = SEVERITY_ICON.get(severity, "▫️")
        lines.append(t("security.scan.group", lang, icon=icon, severity=severity, n=len(group)))
        for f in group[:LINES_PER_SEVERITY]:
            what = escape_within("`", f.package or "?")
            title = link(f.url, f.title or f.advisory) if f.url else escape(f.title or f.advisory)
            line = t("security.scan.finding", lang, package=what, version=f.version or "", title=title,
                     advisory=f.advisory or "—")  # fmt: skip
            if issues.get(f.key):
                line += Mrkdwn(" · ") + link(issues[f.key], t("security.scan.issue", lang))
            lines.append(line)
        if len(group) > LINES_PER_SEVERITY:
            lines.append(t("security.scan.more", lang, n=len(group) - LINES_PER_SEVERITY))
        if len(lines) >= MAX_REPORT_LINES:
            break
    return Mrkdwn("\n").join(lines)


def issue_title(f: Finding) -> str:
    what = f.title or f.advisory or "vulnerability"
    return f"[security] {f.severity}: {f.package or '?'} — {what}" + (
        f" ({f.advisory})" if f.advisory else ""
    )


def issue_body(f: Finding, marker: str, run_url: str) -> str:
    rows = [
        ("Severity", f.severity), ("Package", f.package), ("Version", f.version), ("Advisory", f.advisory),
        ("Fixed in", f.fixed_in), ("Details", f.url), ("Found by", run_url),
    ]  # fmt: skip
    table = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in rows if v)
    return (
        f"The weekly dependency scan (`npm run security:scan`) reported this {f.severity} finding.\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        f"Opened by TAISUN ChatOps once for this advisory in this package; later scans do not open it again.\n"
        f"{marker}\n"
    )


# --------------------------------------------------------------------------- the access review


@dataclass
class ReviewItemView:
    id: int
    role: str
    entry: str
    user_id: str
    last_action: str
    last_action_at: datetime | None
    inactive: bool
    decision: str
    decided_by: str


@dataclass
class ReviewView:
    id: int
    state: str
    started_by: str
    started_at: datetime
    inactive_days: int
    items: list[ReviewItemView]
    completed_at: datetime | None
    completed_by: str
    changes: list[Mrkdwn]


def review_text(view: ReviewView, lang: str) -> Mrkdwn:
    return t("security.review.text", lang, id=view.id)


def review_head_blocks(view: ReviewView, lang: str) -> list[Block]:
    people = {i.user_id for i in view.items if i.user_id}
    roles = {i.role for i in view.items}
    inactive = {i.user_id for i in view.items if i.inactive and i.user_id}
    decided = sum(1 for i in view.items if i.decision)
    head = t(
        "security.review.head", lang, id=view.id, user=mention(view.started_by), when=when(view.started_at),
        people=len(people), roles=len(roles), inactive=len(inactive), days=view.inactive_days,
    )  # fmt: skip
    out: list[Block] = [section(head)]
    if view.state == ReviewState.COMPLETE:
        done = t(
            "security.review.complete", lang, when=when(view.completed_at), user=mention(view.completed_by)
        )
        out.append(section(done))
        changes = view.changes or [t("security.review.no_changes", lang)]
        for i in range(0, len(changes), 25):
            out.append(section(Mrkdwn("\n").join(changes[i : i + 25])))
    else:
        out.append(context(t("security.review.progress", lang, decided=decided, total=len(view.items))))
    out.append(context(t("security.review.export", lang, id=view.id)))
    return out


def review_item_text(item: ReviewItemView, lang: str) -> Mrkdwn:
    if item.user_id:
        who = mention(item.user_id)
        if item.entry != item.user_id:
            who += t("security.review.via", lang, entry=item.entry)
    elif item.entry == "*":
        who = t("security.review.everyone", lang)
    else:
        who = t("security.review.empty_group", lang, entry=item.entry)
    if item.last_action_at is not None:
        last = t("security.review.last", lang, action=item.last_action, when=when(item.last_action_at))
    elif item.user_id:
        last = t("security.review.no_action", lang)
    else:
        last = Mrkdwn("")
    flag = t("security.review.inactive", lang) if item.inactive else Mrkdwn("")
    line = t("security.review.item", lang, role=item.role, who=who, last=last, flag=flag)
    if item.decision:
        line += Mrkdwn("\n") + t(
            f"security.review.decided_{item.decision}", lang, user=mention(item.decided_by)
        )
    return line


def review_page_blocks(items: list[ReviewItemView], lang: str, *, open_: bool) -> list[Block]:
    out: list[Block] = []
    for item in items:
        out.append(section(review_item_text(item, lang)))
        if open_:
            remove_confirm = confirm_dialog(
                t("security.review.remove_title", lang), t("security.review.remove_text", lang, role=item.role),
                lang=lang, yes=t("security.button.remove", lang),
            )  # fmt: skip
            out.append(
                {
                    "type": "actions",
                    "block_id": f"secreview-item:{item.id}",
                    "elements": [
                        button(t("security.button.keep", lang), Action.SECURITY_REVIEW_KEEP, str(item.id),
                               style="primary" if item.decision == "keep" else None),
                        button(t("security.button.remove", lang), Action.SECURITY_REVIEW_REMOVE, str(item.id),
                               style="danger" if item.decision == "remove" else None, confirm=remove_confirm),
                    ],
                }
            )  # fmt: skip
    return out


def change_line(item: ReviewItemView, lang: str) -> Mrkdwn:
    """What to change for a Remove: the bot edits neither Slack groups nor the config itself."""
    if item.entry == "*":
        return t("security.change.everyone", lang, role=item.role)
    if item.entry.startswith("@"):
        if not item.user_id:
            return t("security.change.group_entry", lang, entry=item.entry, role=item.role)
        return t("security.change.group", lang, user=mention(item.user_id), entry=item.entry, role=item.role)
    return t("security.change.user", lang, user=mention(item.user_id or item.entry), role=item.role)
