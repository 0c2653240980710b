"""The cadence: the periodic security tasks, when each is due, who owns it, and what was done.

A task's occurrences are rows: `scheduled` (its next due time) → `due` (posted to the owners' channel)
→ `done` (someone marked it, with a note or a link; or the bot, for the automatic scan), or `missed`
when the next one came due first. Each step is a conditional UPDATE or a unique insert plus its audit
row in one transaction, so two replicas, or a restart, post a due task once and nudge it once per
interval. Time comes in as `at` (the sweep's moment), so tests move it instead of sleeping.

What each kind adds when it comes due: the dependency scan's job (in the same transaction), the
watched secrets' ages, or an access review (both just after, retried by the next sweep until there).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.core import audit
from bot.core.claims import Claim
from bot.core.config import SecurityTask
from bot.core.i18n import msg, t
from bot.core.mrkdwn import Mrkdwn, mention
from bot.core.ops import OpError
from bot.core.outbox import Managed, claim_message, outbox
from bot.core.policy import Attempt
from bot.core.states import JobState, OccurrenceState
from bot.core.store.models import AccessReview, Job, SecurityMessage, SecurityOccurrence
from bot.security import messages, schedule

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

SYSTEM, SYSTEM_NAME = "taisun", "TAISUN"
TASK_PREFIX, REVIEW_PREFIX = "sectask", "secreview"
SCAN_OPERATION = "security-scan"
MAX_OWNER_MENTIONS = 10


class SecurityError(OpError):
    """A security-task request that cannot be done; the message says why (in the reader's language)."""


def now() -> datetime:
    return datetime.now(UTC)


def task_subject(occurrence_id: int) -> str:
    return f"{TASK_PREFIX}:{occurrence_id}"


# --------------------------------------------------------------------------- tasks and owners


def tasks(svc: Services) -> list[SecurityTask]:
    """Every task the config names (the guide's four and its own), enabled or not, in order."""
    return svc.config.security.all_tasks()


def find_task(svc: Services, task_id: str) -> SecurityTask:
    task = svc.config.security.task(task_id)
    if task is None:
        names = ", ".join(t.id for t in tasks(svc))
        raise SecurityError(key="security.err.no_task", task=task_id, tasks=names)
    return task


def title(task: SecurityTask, lang: str) -> str:
    """The task's name: its config title, the guide's name for its four, else its id."""
    if task.title:
        return task.title
    key = f"security.task.{task.id}"
    return str(t(key, lang)) if _known(key) else task.id


def _known(key: str) -> bool:
    from bot.core.i18n import MESSAGES

    return key in MESSAGES


def channel_for(svc: Services, task: SecurityTask) -> str:
    return task.channel or svc.config.security.channel or svc.config.slack.ops_channel


def owners_of(svc: Services, task: SecurityTask) -> list[str]:
    """The task's owners as the config names them; roles.admin when it names none."""
    return list(task.owners) or svc.policy.members_of("admin")


def owner_mentions(svc: Services, task: SecurityTask) -> Mrkdwn:
    """The owners as mentions (a group's members, read from Slack; `*` as everyone)."""
    people: list[str] = []
    for member in owners_of(svc, task):
        if member == "*":
            return t("security.owners.everyone", svc.config.language)
        found = sorted(svc.policy.directory.members(member)) if member.startswith("@") else [member]
        people += [p for p in found if p not in people]
    if not people:
        return t("security.owners.none", svc.config.language)
    shown = Mrkdwn(" ").join(mention(p) for p in people[:MAX_OWNER_MENTIONS])
    more = len(people) - MAX_OWNER_MENTIONS
    return shown + (Mrkdwn(f" +{more}") if more > 0 else Mrkdwn(""))


def require_owner(
    svc: Services, task: SecurityTask, user_id: str, user_name: str, action: str, channel: str = ""
) -> None:
    """The task's owners (or, when it names none, admins) may act on it; admins always may. A refusal is
    audited by the policy check."""
    if task.owners and svc.policy.is_member(user_id, list(task.owners)):
        return
    attempt = Attempt("security", user_name, channel, {"task": task.id, "action": action})
    svc.policy.require(user_id, "admin", None, msg("security.act.task", task=task.id), attempt)


# --------------------------------------------------------------------------- the schedule


def _insert(s: Session) -> Any:
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def insert_ignore(s: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if rows:
        s.execute(_insert(s)(model).values(rows).on_conflict_do_nothing(index_elements=keys))


def _ensure_scheduled(svc: Services, task: SecurityTask, t_now: datetime) -> None:
    """The task's next occurrence exists, computed from the schedule as the config says it now."""
    tz = svc.config.tz
    key = schedule.schedule_key(task, tz)
    with svc.read_sessions() as s:
        rows = list(
            s.scalars(
                select(SecurityOccurrence).where(
                    SecurityOccurrence.task == task.id, SecurityOccurrence.state == OccurrenceState.SCHEDULED
                )
            )
        )
    if any(r.schedule == key for r in rows):
        return
    with svc.sessions.begin() as s:
        if rows:  # the config's schedule changed: the old next time no longer holds
            s.execute(
                update(SecurityOccurrence)
                .where(
                    SecurityOccurrence.id.in_([r.id for r in rows]),
                    SecurityOccurrence.state == OccurrenceState.SCHEDULED,
                )
                .values(state="rescheduled", updated_at=t_now)
            )
        due = schedule.next_after(task, t_now, tz)
        insert_ignore(
            s, SecurityOccurrence,
            [{"task": task.id, "due_at": due, "state": OccurrenceState.SCHEDULED, "schedule": key, "channel": "", "details": {},
              "done_by": "", "done_by_name": "", "note": "", "snoozed_by": "", "nudges": 0,
              "created_at": t_now, "updated_at": t_now}],
            ["task", "due_at"],
        )  # fmt: skip


def _make_due(svc: Services, task: SecurityTask, t_now: datetime) -> int | None:
    """The scheduled occurrence whose time has come becomes due, once across replicas; returns its id."""
    tz = svc.config.tz
    key = schedule.schedule_key(task, tz)
    with svc.read_sessions() as s:
        ripe = s.scalars(
            select(SecurityOccurrence)
            .where(
                SecurityOccurrence.task == task.id,
                SecurityOccurrence.state == OccurrenceState.SCHEDULED,
                SecurityOccurrence.schedule == key,
                SecurityOccurrence.due_at <= t_now,
            )
            .order_by(SecurityOccurrence.due_at.desc())
        ).first()
    if ripe is None:
        return None
    channel = channel_for(svc, task)
    lang = svc.config.language
    job_id = ""
    with svc.sessions.begin() as s:
        res = s.execute(
            update(SecurityOccurrence)
            .where(SecurityOccurrence.id == ripe.id, SecurityOccurrence.state == OccurrenceState.SCHEDULED)
            .values(state=OccurrenceState.DUE, channel=channel, updated_at=t_now)
        )
        if res.rowcount != 1:
            return None  # another replica made it due
        occ = s.get(SecurityOccurrence, ripe.id)
        assert occ is not None
        # Anything older still open (or still scheduled, from a bot that was down) was missed.
        older = list(
            s.scalars(
                select(SecurityOccurrence).where(
                    SecurityOccurrence.task == task.id,
                    SecurityOccurrence.id != occ.id,
                    SecurityOccurrence.state.in_((OccurrenceState.DUE, OccurrenceState.SCHEDULED)),
                    SecurityOccurrence.due_at < occ.due_at,
                )
            )
        )
        for old in older:
            was_posted = old.state == OccurrenceState.DUE
            old.state, old.updated_at = OccurrenceState.MISSED, t_now
            if was_posted:
                audit.append(
                    s, actor_id=SYSTEM, actor_name=SYSTEM_NAME, action="security.task_missed", channel=old.channel,
                    params={"task": task.id, "occurrence": old.id, "due_at": old.due_at.isoformat()}, outcome="expired",
                    detail=msg("security.audit.missed", next=occ.due_at.strftime("%Y-%m-%d %H:%M UTC")), lang=lang,
                )  # fmt: skip
        nxt = schedule.next_after(task, max(t_now, occ.due_at), tz)
        insert_ignore(
            s, SecurityOccurrence,
            [{"task": task.id, "due_at": nxt, "state": OccurrenceState.SCHEDULED, "schedule": key, "channel": "", "details": {},
              "done_by": "", "done_by_name": "", "note": "", "snoozed_by": "", "nudges": 0,
              "created_at": t_now, "updated_at": t_now}],
            ["task", "due_at"],
        )  # fmt: skip
        insert_ignore(
            s,
            SecurityMessage,
            [{"subject": task_subject(occ.id), "slot": "due", "channel": channel, "ts": ""}],
            ["subject", "slot"],
        )
        if task.kind == "dependency_scan":
            job_id = _scan_job(s, svc, occ, channel, "schedule", SYSTEM, SYSTEM_NAME, now())
            occ.details = {**occ.details, "job_id": job_id}
        audit.append(
            s, actor_id=SYSTEM, actor_name=SYSTEM_NAME, action="security.task_due", channel=channel,
            params={"task": task.id, "occurrence": occ.id, "due_at": occ.due_at.isoformat(), "kind": task.kind,
                    "owners": owners_of(svc, task), **({"job_id": job_id} if job_id else {})},
            outcome="ok",
        )  # fmt: skip
        missed_ids = [o.id for o in older if o.state == OccurrenceState.MISSED]
    svc.outbox.mark(task_subject(occ.id), *(task_subject(i) for i in missed_ids))
    if job_id:
        svc.runner.wake()
    return occ.id


def _scan_job(
    s: Session, svc: Services, occ: SecurityOccurrence | None, channel: str, trigger: str,
    user_id: str, user_name: str, t_now: datetime,
) -> str:  # fmt: skip
    """The dependency scan's job row and its `requested` audit row, in the caller's transaction."""
    params: dict[str, Any] = {"trigger": trigger}
    if occ is not None:
        params |= {"occurrence_id": occ.id, "task": occ.task}
    job = Job(
        id=str(uuid.uuid4()), operation=SCAN_OPERATION, environment="", params=params, state=JobState.VALIDATING,
        requested_by=user_id, requested_by_name=user_name, channel=channel, created_at=t_now, updated_at=t_now,
    )  # fmt: skip
    s.add(job)
    s.flush()
    audit.append(
        s, actor_id=user_id, actor_name=user_name, action=f"{SCAN_OPERATION}.requested", channel=channel,
        params=params, outcome="ok", job_id=job.id,
    )  # fmt: skip
    return job.id


def _nudge(svc: Services, t_now: datetime) -> int:
    """Overdue, not snoozed, not reminded within nudge_every_hours: remind the owners (once per replica set)."""
    every = timedelta(hours=svc.config.security.nudge_every_hours)
    by_id = {t.id: t for t in tasks(svc) if t.enabled}
    with svc.read_sessions() as s:
        due = list(
            s.scalars(select(SecurityOccurrence).where(SecurityOccurrence.state == OccurrenceState.DUE))
        )
    sent = 0
    lang = svc.config.language
    for occ in due:
        task = by_id.get(occ.task)
        if task is None or t_now < occ.due_at + timedelta(days=task.overdue_days):
            continue
        if occ.snoozed_until is not None and occ.snoozed_until > t_now:
            continue
        if occ.nudged_at is not None and occ.nudged_at > t_now - every:
            continue
        with svc.sessions.begin() as s:
            res = s.execute(
                update(SecurityOccurrence)
                .where(
                    SecurityOccurrence.id == occ.id,
                    SecurityOccurrence.state == OccurrenceState.DUE,
                    SecurityOccurrence.nudged_at.is_(None)
                    if occ.nudged_at is None
                    else SecurityOccurrence.nudged_at == occ.nudged_at,
                )
                .values(nudged_at=t_now, nudges=SecurityOccurrence.nudges + 1, updated_at=t_now)
            )
            if res.rowcount != 1:
                continue  # another replica reminded them
            text = t(
                "security.nudge", lang, owners=owner_mentions(svc, task), title=title(task, lang),
                due=messages.when(occ.due_at), days=f"{(t_now - occ.due_at).total_seconds() / 86400:.0f}",
            )  # fmt: skip
            outbox(s, task_subject(occ.id), text, [messages.section(text)])
            audit.append(
                s, actor_id=SYSTEM, actor_name=SYSTEM_NAME, action="security.task_nudged", channel=occ.channel,
                params={"task": task.id, "occurrence": occ.id, "due_at": occ.due_at.isoformat(),
                        "nudge": occ.nudges + 1},
                outcome="ok",
            )  # fmt: skip
        sent += 1
        svc.outbox.mark(task_subject(occ.id))
    return sent


def sweep(svc: Services, at: datetime | None = None) -> dict[str, int]:
    """Schedule, post what came due, nudge what is overdue. Safe on every replica at once."""
    t_now = at or now()
    made_due = 0
    for task in tasks(svc):
        if not task.enabled:
            continue
        _ensure_scheduled(svc, task, t_now)
        if _make_due(svc, task, t_now) is not None:
            made_due += 1
    nudged = _nudge(svc, t_now)
    _resend(svc)
    _redraw_scans(svc)
    return {"due": made_due, "nudged": nudged}


def _resend(svc: Services) -> None:
    """Messages never posted (a replica died holding the claim, Slack refused) and replies left in the
    outbox: send them now."""
    prefixes = (f"{TASK_PREFIX}:", f"{REVIEW_PREFIX}:")
    with svc.read_sessions() as s:
        unposted = set(
            s.scalars(select(SecurityMessage.subject).where(SecurityMessage.ts == "").distinct().limit(200))
        )
    pending = {k for k in svc.outbox.pending_subjects() if k.startswith(prefixes)}
    if unposted | pending:
        svc.outbox.mark(*sorted(unposted | pending))


# --------------------------------------------------------------------------- done, snooze


def current(svc: Services, task_id: str) -> SecurityOccurrence | None:
    """The task's open (due) occurrence, if any."""
    with svc.read_sessions() as s:
        return s.scalars(
            select(SecurityOccurrence)
            .where(SecurityOccurrence.task == task_id, SecurityOccurrence.state == OccurrenceState.DUE)
            .order_by(SecurityOccurrence.due_at.desc())
        ).first()


def occurrence(svc: Services, occurrence_id: int) -> SecurityOccurrence:
    with svc.read_sessions() as s:
        occ = s.get(SecurityOccurrence, occurrence_id)
    if occ is None:
        raise SecurityError(key="security.err.gone")
    return occ


def mark_done(
    svc: Services, occurrence_id: int, user_id: str, user_name: str, note: str = "", *, channel: str = "",
    at: datetime | None = None, check_owner: bool = True,
) -> SecurityOccurrence:  # fmt: skip
    """Done, by this person, with a note or a link (plain text as typed); once."""
    occ = occurrence(svc, occurrence_id)
    task = find_task(svc, occ.task)
    if check_owner:
        require_owner(svc, task, user_id, user_name, "done", channel)
    note = " ".join(note.split())[:500]
    t_now = at or now()
    with svc.sessions.begin() as s:
        res = s.execute(
            update(SecurityOccurrence)
            .where(SecurityOccurrence.id == occ.id, SecurityOccurrence.state == OccurrenceState.DUE)
            .values(state=OccurrenceState.DONE, done_at=t_now, done_by=user_id, done_by_name=user_name[:255], note=note,
                    updated_at=t_now)
        )  # fmt: skip
        if res.rowcount != 1:
            raise _not_open(svc, occ.id)
        audit.append(
            s, actor_id=user_id, actor_name=user_name, action="security.task_done", channel=channel or occ.channel,
            params={"task": task.id, "occurrence": occ.id, "due_at": occ.due_at.isoformat(), "note": note},
            outcome="ok",
        )  # fmt: skip
    svc.outbox.mark(task_subject(occ.id))
    svc.home.changed()
    return occurrence(svc, occ.id)


def _not_open(svc: Services, occurrence_id: int) -> SecurityError:
    occ = occurrence(svc, occurrence_id)
    if occ.state == OccurrenceState.DONE:
        return SecurityError(
            key="security.err.already_done", user=mention(occ.done_by), when=messages.when(occ.done_at)
        )
    return SecurityError(key="security.err.not_due")


def snooze(
    svc: Services, occurrence_id: int, user_id: str, user_name: str, *, hours: float | None = None,
    channel: str = "", at: datetime | None = None,
) -> SecurityOccurrence:  # fmt: skip
    """Quiet the task's reminders for a while (security.snooze_hours); it stays due."""
    occ = occurrence(svc, occurrence_id)
    task = find_task(svc, occ.task)
    require_owner(svc, task, user_id, user_name, "snooze", channel)
    hours = hours or svc.config.security.snooze_hours
    t_now = at or now()
    until = t_now + timedelta(hours=hours)
    with svc.sessions.begin() as s:
        res = s.execute(
            update(SecurityOccurrence)
            .where(SecurityOccurrence.id == occ.id, SecurityOccurrence.state == OccurrenceState.DUE)
            .values(snoozed_until=until, snoozed_by=user_id, updated_at=t_now)
        )
        if res.rowcount != 1:
            raise _not_open(svc, occ.id)
        audit.append(
            s, actor_id=user_id, actor_name=user_name, action="security.task_snoozed", channel=channel or occ.channel,
            params={"task": task.id, "occurrence": occ.id, "hours": hours, "until": until.isoformat()}, outcome="ok",
        )  # fmt: skip
    svc.outbox.mark(task_subject(occ.id))
    svc.home.changed()
    return occurrence(svc, occ.id)


def open_for(svc: Services, task_id: str) -> SecurityOccurrence:
    """The task's due occurrence, or a refusal saying when it is next due."""
    task = find_task(svc, task_id)
    occ = current(svc, task.id)
    if occ is None:
        nxt = next_due(svc, task)
        raise SecurityError(key="security.err.nothing_due", task=task.id, next=messages.when(nxt))
    return occ


def next_due(svc: Services, task: SecurityTask, at: datetime | None = None) -> datetime:
    """When the task is due next: its scheduled row, else (no sweep yet) computed from the schedule."""
    key = schedule.schedule_key(task, svc.config.tz)
    with svc.read_sessions() as s:
        row = s.scalars(
            select(SecurityOccurrence.due_at)
            .where(
                SecurityOccurrence.task == task.id,
                SecurityOccurrence.state == OccurrenceState.SCHEDULED,
                SecurityOccurrence.schedule == key,
            )
            .order_by(SecurityOccurrence.due_at)
        ).first()
    return row or schedule.next_after(task, at or now(), svc.config.tz)


def scan_finished(
    svc: Services, occurrence_id: int | None, job: Job, note: str, summary: dict[str, Any]
) -> None:
    """The dependency scan posted its report: the scan's occurrence (or the one due now) is done, by the bot."""
    with svc.read_sessions() as s:
        occ = s.get(SecurityOccurrence, occurrence_id) if occurrence_id else None
        if occ is None or occ.state != OccurrenceState.DUE:
            scan_ids = [t.id for t in tasks(svc) if t.kind == "dependency_scan"]
            occ = s.scalars(
                select(SecurityOccurrence)
                .where(SecurityOccurrence.task.in_(scan_ids), SecurityOccurrence.state == OccurrenceState.DUE)
                .order_by(SecurityOccurrence.due_at.desc())
            ).first()
    if occ is None:
        return
    t_now = now()
    with svc.sessions.begin() as s:
        res = s.execute(
            update(SecurityOccurrence)
            .where(SecurityOccurrence.id == occ.id, SecurityOccurrence.state == OccurrenceState.DUE)
            .values(state=OccurrenceState.DONE, done_at=t_now, done_by=SYSTEM, done_by_name=SYSTEM_NAME, note=note[:500],
                    details={**occ.details, "job_id": job.id, "summary": summary}, updated_at=t_now)
        )  # fmt: skip
        if res.rowcount != 1:
            return
        audit.append(
            s, actor_id=SYSTEM, actor_name=SYSTEM_NAME, action="security.task_done", channel=occ.channel,
            params={"task": occ.task, "occurrence": occ.id, "due_at": occ.due_at.isoformat(), "note": note[:500],
                    "job_id": job.id},
            outcome="ok", job_id=job.id,
        )  # fmt: skip
    svc.outbox.mark(task_subject(occ.id))


def scan_changed(svc: Services, job: Job) -> None:
    """A scan job's outcome is known: redraw the message of the occurrence it runs for."""
    occurrence_id = job.params.get("occurrence_id")
    if occurrence_id:
        svc.outbox.mark(task_subject(int(occurrence_id)))


def _redraw_scans(svc: Services) -> None:
    """Due occurrences whose scan job may have moved on (a crash the job could not report itself)."""
    with svc.read_sessions() as s:
        due = list(
            s.scalars(select(SecurityOccurrence).where(SecurityOccurrence.state == OccurrenceState.DUE))
        )
    keys = [task_subject(o.id) for o in due if o.details.get("job_id")]
    if keys:
        svc.outbox.mark(*keys)


def request_scan(svc: Services, user_id: str, user_name: str, channel: str) -> Job:
    """`/taisun security scan`: the dependency scan now (the task's owners or admins); it counts for the
    weekly one when that is due."""
    task = next((t for t in tasks(svc) if t.kind == "dependency_scan"), None)
    if task is None:
        raise SecurityError(key="security.err.no_scan_task")
    require_owner(svc, task, user_id, user_name, "scan", channel)
    if not svc.settings.github_token:
        raise SecurityError(key="security.scan.no_token")
    with svc.read_sessions() as s:
        running = s.scalars(
            select(Job.id).where(
                Job.operation == SCAN_OPERATION, Job.state.in_(("validating", "queued", "running"))
            )
        ).first()
    if running:
        raise SecurityError(key="security.err.scan_running", job=running[:8])
    occ = current(svc, task.id)
    with svc.sessions.begin() as s:
        job_id = _scan_job(
            s, svc, occ, channel or channel_for(svc, task), "command", user_id, user_name, now()
        )
    svc.runner.wake()
    with svc.read_sessions() as s:
        job = s.get(Job, job_id)
    assert job is not None
    return job


# --------------------------------------------------------------------------- status


@dataclass
class TaskStatus:
    task: SecurityTask
    last_done: SecurityOccurrence | None
    open: SecurityOccurrence | None
    next_due: datetime
    overdue: bool


def statuses(svc: Services, at: datetime | None = None) -> list[TaskStatus]:
    """Every task: last done, the open occurrence (overdue?), next due."""
    t_now = at or now()
    out = []
    with svc.read_sessions() as s:
        rows = list(
            s.scalars(
                select(SecurityOccurrence)
                .where(
                    SecurityOccurrence.state.in_(
                        (OccurrenceState.DUE, OccurrenceState.DONE, OccurrenceState.SCHEDULED)
                    )
                )
                .order_by(SecurityOccurrence.due_at)
            )
        )
    for task in tasks(svc):
        mine = [r for r in rows if r.task == task.id]
        done = [r for r in mine if r.state == OccurrenceState.DONE]
        last = max(done, key=lambda r: r.done_at or r.due_at) if done else None
        open_ = next((r for r in reversed(mine) if r.state == OccurrenceState.DUE), None)
        overdue = bool(open_ and t_now >= open_.due_at + timedelta(days=task.overdue_days))
        out.append(TaskStatus(task, last, open_, next_due(svc, task, t_now), overdue))
    return out


# --------------------------------------------------------------------------- messages


def _occurrence_view(svc: Services, occ: SecurityOccurrence, lang: str) -> messages.OccurrenceView:
    task = svc.config.security.task(occ.task) or SecurityTask(id=occ.task)
    job_state, job_result = "", ""
    if occ.details.get("job_id"):
        with svc.read_sessions() as s:
            job = s.get(Job, occ.details["job_id"])
        if job is not None:
            job_state, job_result = job.state, job.result
            if job.progress.get("scan_error") and job_state not in ("succeeded", "simulated"):
                job_state, job_result = "failed", str(job.progress["scan_error"])
    review_id = None
    if task.kind == "access_review":
        with svc.read_sessions() as s:
            review_id = s.scalars(select(AccessReview.id).where(AccessReview.occurrence_id == occ.id)).first()
    t_now = now()
    return messages.OccurrenceView(
        id=occ.id, task_id=task.id, title=title(task, lang), kind=task.kind, mode=task.mode,
        cadence=schedule.describe(task, lang), due_at=occ.due_at, state=occ.state, owners=owner_mentions(svc, task),
        overdue=occ.state == OccurrenceState.DUE and t_now >= occ.due_at + timedelta(days=task.overdue_days),
        done_at=occ.done_at, done_by=occ.done_by, note=occ.note, snoozed_until=occ.snoozed_until,
        snoozed_by=occ.snoozed_by, snooze_hours=svc.config.security.snooze_hours, details=occ.details,
        job_state=job_state, job_result=job_result, review_id=review_id,
    )  # fmt: skip


def task_messages(svc: Services, key: str) -> list[Managed] | None:
    occ_id = int(key.split(":", 1)[1])
    with svc.read_sessions() as s:
        occ = s.get(SecurityOccurrence, occ_id)
        row = s.scalars(
            select(SecurityMessage).where(SecurityMessage.subject == key, SecurityMessage.slot == "due")
        ).first()
    if occ is None or row is None:
        return None
    lang = svc.config.language
    view = _occurrence_view(svc, occ, lang)
    text = messages.due_text(view, lang)
    return [
        Managed(
            slot="due", channel=row.channel or occ.channel, ts=row.ts, text=text,
            blocks=messages.due_blocks(view, lang), fallback_channel=svc.config.slack.ops_channel,
        )
    ]  # fmt: skip


# Who is posting a security message now (bot.core.claims): the data column `ts` stays empty until posted.
MESSAGE_CLAIM = Claim(SecurityMessage.message_claimed_at, SecurityMessage.message_claimed_by)


def message_claim(svc: Services, key: str, slot: str) -> bool:
    return claim_message(
        svc.sessions, SecurityMessage.ts, MESSAGE_CLAIM,
        and_(SecurityMessage.subject == key, SecurityMessage.slot == slot),
    )  # fmt: skip


def message_store(svc: Services, key: str, slot: str, channel: str, ts: str) -> None:
    values: dict[str, Any] = {"ts": ts, **MESSAGE_CLAIM.cleared()}
    if ts:
        values["channel"] = channel
    with svc.sessions.begin() as s:
        s.execute(
            update(SecurityMessage)
            .where(SecurityMessage.subject == key, SecurityMessage.slot == slot)
            .values(**values)
        )


def message_thread(svc: Services, key: str, slot: str) -> tuple[str, str] | None:
    with svc.read_sessions() as s:
        row = s.scalars(
            select(SecurityMessage).where(SecurityMessage.subject == key, SecurityMessage.slot == slot)
        ).first()
    if row is None or not row.ts:
        return None
    return row.channel, row.ts


def task_lines(
    svc: Services, lang: str, at: datetime | None = None, *, owners: bool = True
) -> list[messages.TaskLine]:
    """Every task as the list and the Home tab show it (the Home tab without owners: no Slack lookups)."""
    out = []
    for st in statuses(svc, at):
        task, last, open_ = st.task, st.last_done, st.open
        out.append(
            messages.TaskLine(
                title=title(task, lang), mode=task.mode, cadence=schedule.describe(task, lang),
                owners=owner_mentions(svc, task) if owners else Mrkdwn(""), enabled=task.enabled,
                last_done_at=last.done_at if last else None, last_done_by=last.done_by if last else "",
                last_note=last.note if last else "", due_at=open_.due_at if open_ else None, overdue=st.overdue,
                snoozed_until=open_.snoozed_until if open_ else None, next_due=st.next_due,
            )
        )  # fmt: skip
    return out


def home_lines(svc: Services, lang: str) -> list[Mrkdwn]:
    """The Home tab's lines: each due task (overdue first), or when the next one is due."""
    return messages.home_lines(task_lines(svc, lang, owners=False), lang)
