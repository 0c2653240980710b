"""Incidents: lifecycle, roles, phases and milestones, timeline, nudges and the postmortem draft.

An incident is INC-<n> (numbers come from the database, so replicas never collide). Its
header message is the parent of a thread holding the incident-response runbook as a
checklist; severe ones (config `incidents.dedicated_channel_severities`) or promoted ones
get their own channel `inc-<n>-<slug>`. Phases follow the checklist: when every step of
the current phase is finished the incident moves on, stamping a timeline entry (and the
`mitigated` milestone on reaching Recovery). Every change is audited in the same
transaction; the Slack side is rendered by the sender thread (bot.slack.outbox).
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core import audit, i18n, metrics
from bot.core.claims import Claim
from bot.core.i18n import duration
from bot.core.mrkdwn import Mrkdwn, channel_link, mention, to_plain, trusted
from bot.core.ops import OpError
from bot.core.outbox import Managed, Syncer, claim_message, outbox
from bot.core.states import IncidentState, RunState, StepState
from bot.core.store.models import (
    AlertGroup,
    Incident,
    IncidentCounter,
    IncidentEvent,
    IncidentFollowup,
    Job,
    Nudge,
    RunbookRun,
    RunbookStep,
)
from bot.deploys.service import github_backend
from bot.incidents import messages as blocks_incident
from bot.incidents import runs as runbook_runs
from bot.incidents.messages import IncidentView
from bot.incidents.runbooks import INCIDENT_PHASES, Runbook
from bot.incidents.timeline import (
    add_event,
    audit_incident,
    event_text,
    milestone,
    now,
    subject,
)

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

FLOW_RUNBOOK = "incident-response"
ROLES = ("commander", "scribe", "comms")
SNOOZE_MINUTES = 15
# Creating a channel or a GitHub issue is claimed in the row's own columns (bot.core.claims); a claim
# older than CLAIM_SECONDS belongs to a replica that died and is taken over by the next try.
CLAIM_SECONDS = 120
CHANNEL_CLAIM = Claim(Incident.channel_claimed_at, Incident.channel_claimed_by, CLAIM_SECONDS)
ISSUE_CLAIM = Claim(IncidentFollowup.issue_claimed_at, IncidentFollowup.issue_claimed_by, CLAIM_SECONDS)
# Posting the header message (the outbox's claim, like every message's).
HEADER_CLAIM = Claim(Incident.header_claimed_at, Incident.header_claimed_by)
# Steps of this phase become the postmortem's improvement items.
IMPROVEMENT = "Improvement"


class IncidentError(OpError):
    """An incident request that cannot be done; the message says why."""


class NoGitHub(IncidentError):
    pass


class _AlreadyLinked(Exception):
    """The alert group got an incident from another replica first."""


def plain(user_id: str) -> str:
    """@U0123 for timeline texts (they end up in a Markdown code block, where mentions do not render)."""
    return f"@{user_id}" if user_id else "someone"


def _locked(s: Session, incident_id: int) -> Incident:
    inc = s.scalars(select(Incident).where(Incident.id == incident_id).with_for_update()).one_or_none()
    if inc is None:
        raise IncidentError(key="inc.err.gone")
    return inc


def get(svc: Services, incident_id: int) -> Incident:
    with svc.sessions() as s:
        inc = s.get(Incident, incident_id)
    if inc is None:
        raise IncidentError(key="inc.err.gone")
    return inc


def flow_runbook(svc: Services) -> Runbook:
    """The incident-response checklist (or any incident-flow runbook if that one is missing)."""
    catalog = runbook_runs.load_catalog()
    book = catalog.runbooks.get(FLOW_RUNBOOK) or next(
        (b for b in catalog.runbooks.values() if b.kind == "incident-flow"), None
    )
    if book is None:
        bad = catalog.error_for(FLOW_RUNBOOK)
        why = ("\n" + "\n".join(bad.problems[:5])) if bad else ""
        raise IncidentError(key="inc.err.no_flow", file=f"{FLOW_RUNBOOK}.yml", why=why)
    return book


# --------------------------------------------------------------------------- declaring


def declare(
    svc: Services,
    *,
    severity: str,
    title: str,
    user_id: str,
    user_name: str = "",
    channel: str,
    detected_at: datetime | None = None,
    source: str = "",
    alert_group_id: int | None = None,
    first_events: Iterable[tuple[str, str | i18n.Msg, str, datetime]] = (),
    environment: str = "",
) -> Incident | None:
    """Create INC-<n> with its checklist; None if the alert group was linked meanwhile by another replica."""
    cfg = svc.config.incidents
    if severity not in cfg.severities:
        raise IncidentError(key="inc.err.severity", severity=severity, choices=", ".join(cfg.severities))
    title = " ".join(title.split())[:200]
    if not title:
        raise IncidentError(key="inc.err.no_title")
    book = flow_runbook(svc)
    # Where it happens: as named (--env, the form, the alert's environment label), else production.
    env = svc.config.resolve_env(environment) if environment else None
    env = env or runbook_runs.default_environment(svc.config)
    dedicated = severity in cfg.dedicated_channel_severities
    for _attempt in range(5):
        t = now()
        try:
            with svc.sessions.begin() as s:
                number = _next_number(s)
                inc = Incident(
                    number=number, title=title, severity=severity, state=IncidentState.OPEN,
                    phase=(book.phases or list(INCIDENT_PHASES))[0],
                    environment=env.name if env else "", declared_by=user_id, declared_by_name=user_name,
                    origin_channel=channel, channel="" if dedicated else channel, source=source,
                    detected_at=detected_at or t, declared_at=t, updated_at=t,
                )  # fmt: skip
                inc.phase_times = {inc.phase: t.isoformat()}
                s.add(inc)
                s.flush()
                if alert_group_id is not None:
                    res = s.execute(
                        update(AlertGroup)
                        .where(AlertGroup.id == alert_group_id, AlertGroup.incident_id.is_(None))
                        .values(incident_id=inc.id)
                    )
                    if res.rowcount != 1:
                        raise _AlreadyLinked
                runbook_runs.create_run(
                    s, book, environment=inc.environment, user_id=user_id, user_name=user_name,
                    channel="", incident_id=inc.id,
                )  # fmt: skip
                add_event(
                    s, inc.id, "declared",
                    i18n.msg("inc.ev.declared", ref=inc.ref, severity=severity, title=title, user=user_name or user_id),
                    user_id, at=t,
                )  # fmt: skip
                for kind, text, actor, at in first_events:
                    add_event(s, inc.id, kind, text, actor, at=at)
                audit_incident(
                    s, inc, "declared", user_id, user_name, severity=severity, title=title, source=source
                )
            break
        except IntegrityError:
            continue  # a number taken outside the counter (an old row): the counter moved on, try again
        except _AlreadyLinked:
            return None
    else:
        raise IncidentError(key="inc.err.number")
    if dedicated:
        svc.later(lambda: create_channel(svc, inc.id, user_id, announce=True))
    svc.outbox.mark(subject(inc.id))
    with svc.sessions() as s:
        run_ids = list(s.scalars(select(RunbookRun.id).where(RunbookRun.incident_id == inc.id)))
    for run_id in run_ids:
        runbook_runs.schedule_due_checks(svc, run_id)  # the Detection health check runs at once
    return inc


def _next_number(s: Session) -> int:
    """The next INC number: the counter row is locked until commit, so replicas take turns."""
    s.execute(update(IncidentCounter).where(IncidentCounter.id == 1).values(value=IncidentCounter.value + 1))
    value = int(s.scalar(select(IncidentCounter.value).where(IncidentCounter.id == 1)) or 0)
    highest = int(s.scalar(select(func.max(Incident.number))) or 0)
    if value <= highest:  # rows from before the counter existed, or a restored database
        value = highest + 1
        s.execute(update(IncidentCounter).where(IncidentCounter.id == 1).values(value=value))
    return value


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:40].rstrip("-")


def channel_name(inc: Incident) -> str:
    slug = _slug(inc.title)
    return f"inc-{inc.number}-{slug}" if slug else f"inc-{inc.number}"


def _invitees(svc: Services, inc: Incident, requester: str) -> list[str]:
    users: set[str] = set()
    for member in svc.config.incidents.responders:
        if member.startswith("@"):
            users |= svc.policy.directory.members(member)
        elif member != "*":
            users.add(member)
    for uid in (requester, inc.declared_by, inc.commander):
        if re.fullmatch(r"[UW][A-Z0-9]{2,}", uid or ""):
            users.add(uid)
    return sorted(users)


def create_channel(svc: Services, incident_id: int, requester: str, *, announce: bool = False) -> None:
    """conversations.create + invite, linked both ways. Runs after the ack; one replica wins the claim
    (a claim left by a replica that died is taken over once it is CLAIM_SECONDS old)."""
    with svc.sessions.begin() as s:
        if not CHANNEL_CLAIM.take(s, and_(Incident.id == incident_id, Incident.dedicated_channel == "")):
            return
    inc = get(svc, incident_id)
    name = channel_name(inc)
    cid = ""
    error = ""
    for candidate in (name, f"{name[:74]}-{secrets.token_hex(2)}"):
        try:
            resp = svc.slack.conversations_create(name=candidate)
            cid, name = str(resp["channel"]["id"]), candidate
            break
        except svc.slack_error as e:
            error = str(e.response.get("error", "error")) if e.response is not None else "error"
            if error != "name_taken":
                break
        except Exception as e:
            error = type(e).__name__
            break
    if not cid:
        log.warning("could not create an incident channel", extra={"incident": inc.ref, "error": error})
        with svc.sessions.begin() as s:
            row = _locked(s, incident_id)
            row.channel_claimed_at, row.channel_claimed_by = None, ""
            if not row.channel:
                row.channel = row.origin_channel  # fall back to a thread where it was declared
            outbox(
                s, subject(incident_id),
                i18n.t("inc.msg.no_channel", svc.config.language, ref=row.ref, error=error),
            )  # fmt: skip
        svc.outbox.mark(subject(incident_id))
        return
    users = _invitees(svc, inc, requester)
    if users:
        try:
            svc.slack.conversations_invite(channel=cid, users=",".join(users))
        except svc.slack_error as e:
            log.warning(
                "could not invite responders",
                extra={"incident": inc.ref, "error": str(e.response.get("error"))},
            )
    with svc.sessions.begin() as s:
        row = _locked(s, incident_id)
        home_is_new = not row.channel
        row.dedicated_channel, row.dedicated_name, row.updated_at = cid, name, now()
        row.channel_claimed_at, row.channel_claimed_by = None, ""
        if home_is_new:
            row.channel = cid
        add_event(s, row.id, "channel", i18n.msg("inc.ev.channel", name=name, n=len(users)), requester)
        audit_incident(s, row, "channel_created", requester, channel_id=cid, name=name, invited=users)
        link, lang = channel_link(cid), svc.config.language
        if home_is_new or announce:
            if row.origin_channel and row.origin_channel != cid:
                outbox(
                    s, subject(row.id),
                    i18n.t("inc.msg.declared_elsewhere", lang, ref=row.ref, severity=row.severity,
                           user=mention(row.declared_by), title=row.title, link=link),
                    target=row.origin_channel,
                )  # fmt: skip
        else:
            outbox(s, subject(row.id), i18n.t("inc.msg.own_channel", lang, ref=row.ref, link=link))
            outbox(
                s, subject(row.id),
                i18n.t("inc.msg.channel_intro", lang, ref=row.ref, severity=row.severity, title=row.title,
                       home=channel_link(row.channel)),
                target=cid,
            )  # fmt: skip
    svc.outbox.mark(subject(incident_id))


# --------------------------------------------------------------------------- finding one


def open_incidents(svc: Services) -> list[Incident]:
    with svc.sessions() as s:
        return list(
            s.scalars(select(Incident).where(Incident.state == IncidentState.OPEN).order_by(Incident.number))
        )


def for_channel(svc: Services, channel_id: str) -> Incident | list[Incident]:
    """The incident a command here means: this channel's own, else the single open one; else the open ones."""
    with svc.sessions() as s:
        own = s.scalars(
            select(Incident).where(Incident.dedicated_channel == channel_id).order_by(Incident.number.desc())
        ).first()
        if own is not None:
            return own
    candidates = open_incidents(svc)
    return candidates[0] if len(candidates) == 1 else candidates


def by_ref(svc: Services, ref: str) -> Incident | None:
    m = re.fullmatch(r"(?i)(?:inc-)?(\d+)", ref.strip())
    if not m:
        return None
    with svc.sessions() as s:
        return s.scalars(select(Incident).where(Incident.number == int(m[1]))).first()


# --------------------------------------------------------------------------- changes


@contextmanager
def _change(svc: Services, incident_id: int) -> Iterator[tuple[Session, Incident]]:
    """A locked incident in a transaction; its messages are re-rendered after the commit."""
    with svc.sessions.begin() as s:
        yield s, _locked(s, incident_id)
    svc.outbox.mark(subject(incident_id))


def set_status(svc: Services, incident_id: int, text: str, user_id: str, user_name: str = "") -> Incident:
    text = text.strip()
    if not text:
        raise IncidentError(key="inc.err.status_text")
    with _change(svc, incident_id) as (s, inc):
        t = now()
        inc.status_text, inc.status_by, inc.status_at, inc.updated_at = text[:2000], user_id, t, t
        add_event(
            s,
            inc.id,
            "status",
            i18n.msg("inc.ev.status", user=user_name or user_id, text=text),
            user_id,
            at=t,
        )
        outbox(
            s,
            subject(inc.id),
            i18n.t("inc.msg.status", svc.config.language, user=mention(user_id), text=text[:2000]),
        )
        audit_incident(s, inc, "status", user_id, user_name, text=text[:500])
    return inc


def assign(
    svc: Services, incident_id: int, role: str, assignee: str, user_id: str, user_name: str = ""
) -> Incident:
    if role not in ROLES:
        raise IncidentError(key="inc.err.roles", roles=", ".join(ROLES))
    with _change(svc, incident_id) as (s, inc):
        t = now()
        previous = getattr(inc, role)
        setattr(inc, role, assignee)
        inc.updated_at = t
        lang = svc.config.language
        fields = {"role": i18n.t(f"inc.role.{role}", lang), "user": mention(assignee), "by": mention(user_id)}
        if previous:
            text = i18n.t("inc.msg.reassigned", lang, previous=mention(previous), **fields)
        else:
            text = i18n.t("inc.msg.assigned", lang, **fields)
        entry = i18n.msg(
            "inc.ev.reassigned" if previous else "inc.ev.assigned", role=i18n.msg(f"inc.role.{role}"),
            user=plain(assignee), previous=plain(previous), by=user_name or user_id,
        )  # fmt: skip
        add_event(s, inc.id, "role", entry, user_id, at=t, data={"role": role, "user": assignee})
        if role == "commander" and inc.acknowledged_at is None:
            why = i18n.msg("inc.why.first_commander", user=plain(assignee))
            milestone(s, inc, "acknowledged", t, user_id, why)
        outbox(s, subject(inc.id), text)
        audit_incident(s, inc, "assigned", user_id, user_name, role=role, user=assignee, previous=previous)
    if inc.dedicated_channel.startswith("C"):
        svc.later(lambda: _invite(svc, inc.dedicated_channel, [assignee]))
    svc.user_name(assignee)  # read their name now, for the postmortem draft
    return inc


def _invite(svc: Services, channel: str, users: list[str]) -> None:
    try:
        svc.slack.conversations_invite(channel=channel, users=",".join(users))
    except svc.slack_error as e:
        log.info("invite skipped", extra={"error": str(e.response.get("error"))})


def set_severity(
    svc: Services, incident_id: int, severity: str, user_id: str, user_name: str = ""
) -> Incident:
    cfg = svc.config.incidents
    if severity not in cfg.severities:
        raise IncidentError(key="inc.err.severity", severity=severity, choices=", ".join(cfg.severities))
    with _change(svc, incident_id) as (s, inc):
        previous = inc.severity
        if previous == severity:
            raise IncidentError(key="inc.err.same_severity", ref=inc.ref, severity=severity)
        inc.severity, inc.updated_at = severity, now()
        add_event(
            s, inc.id, "severity",
            i18n.msg("inc.ev.severity", previous=previous, severity=severity, user=user_name or user_id), user_id,
        )  # fmt: skip
        outbox(
            s, subject(inc.id),
            i18n.t("inc.msg.severity", svc.config.language, previous=previous, severity=severity, user=mention(user_id)),
        )  # fmt: skip
        audit_incident(s, inc, "severity", user_id, user_name, previous=previous, severity=severity)
    if severity in cfg.dedicated_channel_severities and not inc.dedicated_channel:
        svc.later(lambda: create_channel(svc, incident_id, user_id))
    return inc


def promote(svc: Services, incident_id: int, user_id: str, user_name: str = "") -> Incident:
    inc = get(svc, incident_id)
    if inc.dedicated_channel.startswith("C"):
        raise IncidentError(
            key="inc.err.has_channel", ref=inc.ref, channel=channel_link(inc.dedicated_channel)
        )
    if inc.dedicated_channel or CHANNEL_CLAIM.held(inc.channel_claimed_at):
        raise IncidentError(key="inc.err.channel_creating", ref=inc.ref)
    with _change(svc, incident_id) as (s, row):
        add_event(s, row.id, "promoted", i18n.msg("inc.ev.promoted", user=user_name or user_id), user_id)
        audit_incident(s, row, "promoted", user_id, user_name)
    svc.later(lambda: create_channel(svc, incident_id, user_id))
    return inc


def acknowledge(svc: Services, incident_id: int, user_id: str, user_name: str = "") -> Incident:
    with _change(svc, incident_id) as (s, inc):
        if inc.acknowledged_at is not None:
            raise IncidentError(key="inc.err.already_acknowledged", ref=inc.ref)
        milestone(
            s,
            inc,
            "acknowledged",
            now(),
            user_id,
            i18n.msg("inc.why.acknowledged_by", user=user_name or user_id),
        )
    return inc


def mark_mitigated(svc: Services, incident_id: int, user_id: str, user_name: str = "") -> Incident:
    with _change(svc, incident_id) as (s, inc):
        if inc.mitigated_at is not None:
            raise IncidentError(key="inc.err.already_mitigated", ref=inc.ref)
        milestone(
            s, inc, "mitigated", now(), user_id, i18n.msg("inc.why.marked_by", user=user_name or user_id)
        )
        outbox(s, subject(inc.id), i18n.t("inc.msg.mitigated", svc.config.language, user=mention(user_id)))
    return inc


# --------------------------------------------------------------------------- pins


def fetch_message(svc: Services, channel: str, ts: str) -> dict[str, Any] | None:
    """A message by channel and ts, top level or in a thread."""
    for method, kwargs in (
        (
            "conversations_replies",
            {"channel": channel, "ts": ts, "oldest": ts, "latest": ts, "inclusive": True},
        ),
        (
            "conversations_history",
            {"channel": channel, "oldest": ts, "latest": ts, "inclusive": True, "limit": 1},
        ),
    ):
        try:
            resp = getattr(svc.slack, method)(**kwargs)
        except svc.slack_error as e:
            log.info("message lookup failed", extra={"method": method, "error": str(e.response.get("error"))})
            continue
        for msg in resp.get("messages") or []:
            if msg.get("ts") == ts:
                return dict(msg)
    return None


def incident_for_message(svc: Services, channel: str, msg: dict[str, Any]) -> Incident | None:
    """The incident whose channel or thread holds this message (open, or resolved within a week)."""
    thread = str(msg.get("thread_ts") or msg.get("ts") or "")
    week = now() - timedelta(days=7)
    with svc.sessions() as s:
        return s.scalars(
            select(Incident)
            .where(
                or_(Incident.state == IncidentState.OPEN, Incident.resolved_at > week),
                or_(
                    Incident.dedicated_channel == channel,
                    and_(Incident.channel == channel, Incident.header_ts == thread),
                ),
            )
            .order_by(Incident.number.desc())
        ).first()


def record_pin(svc: Services, channel: str, ts: str, pinned_by: str) -> bool:
    """A :pushpin: reaction: the message joins the timeline at its original post time (once)."""
    msg = fetch_message(svc, channel, ts)
    if msg is None:
        return False
    inc = incident_for_message(svc, channel, msg)
    if inc is None:
        return False
    try:
        at = datetime.fromtimestamp(float(ts), UTC)
    except ValueError:
        at = now()
    author = str(msg.get("user") or msg.get("bot_id") or "")
    # Slack's markup in the message, read as plain text (it is escaped again wherever it is shown).
    text = to_plain(str(msg.get("text") or "")).strip()
    entry = (
        i18n.msg("inc.ev.pin", user=plain(author), text=text)
        if text
        else i18n.msg("inc.ev.pin_empty", user=plain(author))
    )
    try:
        with svc.sessions.begin() as s:
            add_event(
                s, inc.id, "pin", entry, author, at=at,
                data={"channel": channel, "ts": ts, "pinned_by": pinned_by}, key=f"pin:{channel}:{ts}",
            )  # fmt: skip
            s.flush()
            audit_incident(s, inc, "pinned", pinned_by, channel_id=channel, ts=ts)
    except IntegrityError:
        return False  # pinned before (by someone else, or a retried event)
    svc.outbox.mark(subject(inc.id))
    return True


# --------------------------------------------------------------------------- nudges


@dataclass
class Due:
    kind: str
    target: str
    text: str


def _due_nudges(svc: Services, s: Session, inc: Incident, t: datetime) -> list[Due]:
    cfg = svc.config.incidents.nudges
    lang = svc.config.language
    due: list[Due] = []
    if not inc.commander and t - inc.declared_at >= timedelta(minutes=cfg.no_commander_minutes):
        due.append(
            Due("no_commander", "", i18n.t("inc.nudge.no_commander", lang, minutes=cfg.no_commander_minutes))
        )
    last = inc.status_at or inc.declared_at
    if t - last >= timedelta(minutes=cfg.no_status_minutes):
        due.append(
            Due(
                "no_status",
                last.isoformat(),
                i18n.t("inc.nudge.no_status", lang, minutes=cfg.no_status_minutes),
            )
        )
    for run in s.scalars(
        select(RunbookRun).where(RunbookRun.incident_id == inc.id, RunbookRun.state == RunState.OPEN)
    ):
        book = Runbook.model_validate(run.definition)
        open_steps = {
            st.step_id
            for st in s.scalars(
                select(RunbookStep).where(
                    RunbookStep.run_id == run.id,
                    RunbookStep.state.in_((StepState.PENDING, StepState.FAILED, StepState.RUNNING)),
                )
            )
        }
        start = inc.declared_at if runbook_runs.is_flow(run) else run.created_at
        for step in book.steps:
            if (
                step.id in open_steps
                and step.overdue_minutes
                and t - start >= timedelta(minutes=step.overdue_minutes)
            ):
                due.append(Due("overdue", f"{run.id[:8]}:{step.id}",
                               i18n.t("inc.nudge.overdue", lang, step=step.title_for(lang), minutes=step.overdue_minutes)))  # fmt: skip
    return due


def sweep(svc: Services, at: datetime | None = None) -> int:
    """Post the nudges that are due, once each (replicas agree through the nudges table)."""
    t = at or now()
    posted_count = 0
    with svc.sessions() as s:
        incidents = list(s.scalars(select(Incident).where(Incident.state == IncidentState.OPEN)))
        due_by_incident = {inc.id: _due_nudges(svc, s, inc, t) for inc in incidents}
    sync = svc.outbox
    for inc in incidents:
        claimed: list[tuple[int, Due]] = []
        key = subject(inc.id)
        for d in due_by_incident[inc.id]:
            nudge_id = _claim_nudge(svc, key, d, t)
            if nudge_id is not None:
                claimed.append((nudge_id, d))
        if not claimed:
            continue
        lines = Mrkdwn("\n").join(Mrkdwn("• ") + d.text for _, d in claimed)
        who = mention(inc.commander) + Mrkdwn(" ") if inc.commander else ""
        lang = svc.config.language
        text = i18n.t("inc.nudge.head", lang, who=who, ref=inc.ref, lines=lines)
        with svc.sessions.begin() as s:
            row = s.get(Incident, inc.id)
            assert row is not None
            outbox(
                s,
                key,
                text,
                blocks_incident.nudge_blocks(text, [i for i, _ in claimed], SNOOZE_MINUTES, lang),
            )
            audit_incident(
                s, row, "nudged", "taisun", "TAISUN", nudges=[f"{d.kind}:{d.target}" for _, d in claimed]
            )
        posted_count += len(claimed)
        sync.mark(key)
    return posted_count


def _claim_nudge(svc: Services, key: str, d: Due, t: datetime) -> int | None:
    with svc.sessions() as s:
        existing = s.scalars(
            select(Nudge).where(Nudge.subject == key, Nudge.kind == d.kind, Nudge.target == d.target)
        ).first()
    if existing is None:
        try:
            with svc.sessions.begin() as s:
                row = Nudge(subject=key, kind=d.kind, target=d.target, posted_at=t)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None  # another replica posted it
    if existing.snoozed_until is None or existing.snoozed_until > t:
        return None
    with svc.sessions.begin() as s:
        res = s.execute(
            update(Nudge)
            .where(Nudge.id == existing.id, Nudge.snoozed_until == existing.snoozed_until)
            .values(snoozed_until=None, posted_at=t)
        )
        return existing.id if res.rowcount == 1 else None


def snooze(svc: Services, nudge_ids: list[int], user_id: str, minutes: int = SNOOZE_MINUTES) -> int:
    until = now() + timedelta(minutes=minutes)
    with svc.sessions.begin() as s:
        res = s.execute(
            update(Nudge).where(Nudge.id.in_(nudge_ids)).values(snoozed_until=until, snoozed_by=user_id)
        )
        audit.append(
            s, actor_id=user_id, action="incident.nudge_snoozed", params={"nudges": nudge_ids, "minutes": minutes},
            outcome="ok",
        )  # fmt: skip
        return int(res.rowcount or 0)


# --------------------------------------------------------------------------- resolve + postmortem


def resolve(svc: Services, incident_id: int, user_id: str, user_name: str = "") -> Incident:
    """Resolved: stamp the milestone, write the postmortem draft and its follow-up items."""
    with _change(svc, incident_id) as (s, inc):
        if inc.state == IncidentState.RESOLVED:
            raise IncidentError(key="inc.err.already_resolved", ref=inc.ref)
        t = now()
        if inc.mitigated_at is None:
            milestone(s, inc, "mitigated", t, user_id, i18n.msg("inc.why.resolved_unmitigated"))
        inc.state, inc.resolved_by, inc.updated_at = IncidentState.RESOLVED, user_id, t
        milestone(s, inc, "resolved", t, user_id, i18n.msg("inc.why.resolved_by", user=user_name or user_id))
        s.flush()
        data = _postmortem_data(svc, s, inc)
        for position, (title, body) in enumerate(data.followups, 1):
            s.add(IncidentFollowup(incident_id=inc.id, position=position, title=title[:255], body=body))
        s.flush()
        markdown = postmortem_markdown(data)
        inc.postmortem = markdown
        followups = [
            (f.id, f.title, f.issue_url)
            for f in s.scalars(
                select(IncidentFollowup)
                .where(IncidentFollowup.incident_id == inc.id)
                .order_by(IncidentFollowup.position)
            )
        ]
        lang = svc.config.language
        elapsed = duration((t - inc.detected_at).total_seconds(), lang)
        outbox(
            s, subject(inc.id), i18n.t("inc.msg.resolved", lang, ref=inc.ref, user=mention(user_id), elapsed=elapsed),
        )  # fmt: skip
        outbox(
            s, subject(inc.id), i18n.t("inc.msg.postmortem_text", lang, ref=inc.ref),
            blocks_incident.markdown_blocks(i18n.t("inc.msg.postmortem_title", lang, ref=inc.ref), markdown),
        )  # fmt: skip
        outbox(
            s,
            subject(inc.id),
            i18n.t("inc.msg.followups_text", lang, ref=inc.ref),
            blocks_incident.followup_blocks(inc.ref, followups, lang),
        )
        audit_incident(s, inc, "resolved", user_id, user_name)
    return inc


@dataclass
class PostmortemData:
    incident: Incident
    events: list[IncidentEvent]
    actions: list[str]
    problems: list[str]
    followups: list[tuple[str, str]]
    phases: list[tuple[str, datetime, datetime | None]]
    lang: str
    name_of: Callable[[str], str] = str  # user ID -> display name (the ID while unknown)
    tz: tzinfo = UTC  # the config's timezone: a draft is read as a document, not in Slack


_USER_REF = re.compile(r"@([UW][A-Z0-9]{2,})\b")


def _fmt(t: datetime | None, tz: tzinfo = UTC) -> str:
    """A time in the team's timezone (the config's), named: 2026-11-29 02:01:07 JST."""
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if t else "—"


def _postmortem_data(svc: Services, s: Session, inc: Incident) -> PostmortemData:
    lang = svc.config.language
    events = list(
        s.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == inc.id)
            .order_by(IncidentEvent.at, IncidentEvent.id)
        )
    )
    actions: list[str] = []
    problems: list[str] = []
    followups: list[tuple[str, str]] = []
    for run in s.scalars(
        select(RunbookRun).where(RunbookRun.incident_id == inc.id).order_by(RunbookRun.created_at)
    ):
        book = Runbook.model_validate(run.definition)
        rows = {st.step_id: st for st in s.scalars(select(RunbookStep).where(RunbookStep.run_id == run.id))}

        def tr(key: str, **fields: Any) -> str:
            return i18n.t_plain(key, lang, **fields)

        for n, step in enumerate(book.steps, 1):
            st = rows.get(step.id)
            if st is None:
                continue
            title = step.title_for(lang)
            if step.action is not None and st.job_id:
                job = s.get(Job, st.job_id)
                state = job.state if job else st.job_state
                flags = (tr("inc.pm.flag_dry_run") if job and job.dry_run else "") + (
                    tr("inc.pm.flag_drill") if run.drill else ""
                )
                actions.append(
                    tr(
                        "inc.pm.action_approved" if job and job.approved_by else "inc.pm.action",
                        what=svc.describe(job, lang) if job else step.action.describe(),
                        flags=flags, job=st.job_id[:8], user=st.actor_id, approver=job.approved_by if job else "",
                        state=tr(f"rb.job_final.{state}") if f"rb.job_final.{state}" in i18n.MESSAGES else state,
                        result=tr("inc.pm.result", result=trusted(job.result)) if job and job.result else "",
                    )
                )  # fmt: skip
            elif step.check is not None and st.state in (StepState.PASSED, StepState.FAILED):
                # A step's result is stored as mrkdwn the bot rendered.
                first = trusted(st.result.splitlines()[0]) if st.result else ""
                actions.append(
                    tr(
                        "inc.pm.check",
                        check=step.check.describe(),
                        state=tr(f"inc.pm.check_{st.state}"),
                        result=first,
                    )
                )
            if st.state == StepState.SKIPPED:
                problems.append(tr("inc.pm.skipped", n=n, title=title, user=st.actor_id, reason=st.reason))
            elif st.state == StepState.FAILED:
                problems.append(tr("inc.pm.failed", n=n, title=title, result=trusted(st.result[:300])))
                followups.append(
                    (tr("inc.pm.followup_failed_step", ref=inc.ref, title=title), to_plain(st.result[:1000]))
                )
            if step.phase == IMPROVEMENT and st.state not in (StepState.DONE, StepState.SKIPPED):
                followups.append((f"{inc.ref}: {title}", step.text_for(lang)))
    phases: list[tuple[str, datetime, datetime | None]] = []
    entered = sorted(
        ((name, datetime.fromisoformat(ts)) for name, ts in (inc.phase_times or {}).items()),
        key=lambda p: p[1],
    )
    for i, (name, at) in enumerate(entered):
        phases.append((name, at, entered[i + 1][1] if i + 1 < len(entered) else None))
    return PostmortemData(
        inc, events, actions, problems, followups, phases, lang, svc.user_name, svc.config.tz
    )


def postmortem_markdown(d: PostmortemData) -> str:
    """The draft: summary, impact, milestone durations, phases, timeline, actions, problems, follow-ups."""
    inc = d.incident
    end = inc.resolved_at or now()

    def since(t: datetime | None) -> str:
        return to_plain(duration((t - inc.detected_at).total_seconds(), lang)) if t else "—"

    lang = d.lang

    def tr(key: str, **fields: Any) -> str:
        # The draft is a plain document (pasted into a wiki, shown in Slack as a code block, escaped there).
        return i18n.t_plain(key, lang, **fields)

    def at(who: str) -> str:
        return "@" + who if who else "—"

    lines = [
        f"# {inc.ref}: {inc.title}",
        "",
        tr("inc.pm.summary"),
        tr("inc.pm.severity", severity=inc.severity),
        tr("inc.pm.environment", env=inc.environment or "—"),
        tr("inc.pm.declared", user=inc.declared_by_name or inc.declared_by, time=_fmt(inc.declared_at, d.tz)),
        tr("inc.pm.roles", commander=at(inc.commander), scribe=at(inc.scribe), comms=at(inc.comms)),
        tr("inc.pm.resolved", time=_fmt(inc.resolved_at, d.tz), user=inc.resolved_by or "—"),
        tr("inc.pm.duration", elapsed=duration((end - inc.detected_at).total_seconds(), lang)),
        tr("inc.pm.last_status", text=inc.status_text or "—"),
        "",
        tr("inc.pm.impact"),
        tr("inc.pm.impact_hint"),
    ]
    statuses = [e for e in d.events if e.kind == "status"]
    lines += [f"- {_fmt(e.at, d.tz)} {event_text(e, lang)}" for e in statuses]
    lines += [
        "",
        tr("inc.pm.milestones"),
        tr("inc.pm.milestones_head"),
        "|---|---|---|",
        f"| {tr('inc.pm.detected')} | {_fmt(inc.detected_at, d.tz)} | {since(inc.detected_at)} |",
        f"| {tr('inc.pm.declared_row')} | {_fmt(inc.declared_at, d.tz)} | {since(inc.declared_at)} |",
        f"| {tr('inc.pm.acknowledged')} | {_fmt(inc.acknowledged_at, d.tz)} | {since(inc.acknowledged_at)} |",
        f"| {tr('inc.pm.mitigated')} | {_fmt(inc.mitigated_at, d.tz)} | {since(inc.mitigated_at)} |",
        f"| {tr('inc.pm.resolved_row')} | {_fmt(inc.resolved_at, d.tz)} | {since(inc.resolved_at)} |",
        "",
        tr("inc.pm.phases"),
        tr("inc.pm.phases_head"),
        "|---|---|---|",
    ]
    for name, entered, left in d.phases:
        spent = to_plain(duration(((left or end) - entered).total_seconds(), lang))
        lines.append(
            f"| {name} | {_fmt(entered, d.tz)} | {spent if left else tr('inc.pm.current', spent=spent)} |"
        )
    lines += ["", tr("inc.pm.timeline")]
    lines += [f"- {_fmt(e.at, d.tz)} [{tr(f'inc.ev.kind.{e.kind}')}] {event_text(e, lang)}" for e in d.events]
    lines += ["", tr("inc.pm.actions")]
    lines += [f"- {a}" for a in d.actions] or [tr("inc.pm.none_recorded")]
    lines += ["", tr("inc.pm.problems")]
    lines += [f"- {p}" for p in d.problems] or [tr("inc.pm.none")]
    lines += ["", tr("inc.pm.improvements")]
    lines += [f"- [ ] {title}" for title, _ in d.followups] or [tr("inc.pm.none")]
    fill = tr("inc.pm.fill_in")
    lines += ["", tr("inc.pm.root_cause"), fill, "", tr("inc.pm.went_well"), fill]
    # Mentions do not render in a code block or a pasted document: @U0123 -> @name where known.
    return _USER_REF.sub(lambda m: "@" + d.name_of(m[1]), "\n".join(lines))


def open_followup_issue(svc: Services, followup_id: int, user_id: str, user_name: str = "") -> str:
    """Open a GitHub issue for a follow-up item, once (a claim in its row); returns its URL."""
    if not svc.settings.github_token:
        raise NoGitHub(key="inc.err.no_github")
    with svc.sessions.begin() as s:
        claimed = ISSUE_CLAIM.take(
            s, and_(IncidentFollowup.id == followup_id, IncidentFollowup.issue_url == "")
        )
        row = s.get(IncidentFollowup, followup_id)
        if row is None:
            raise IncidentError(key="inc.err.followup_gone")
        if not claimed:
            if not row.issue_url:
                raise IncidentError(key="inc.err.issue_opening")
            raise IncidentError(key="inc.err.issue_opened", url=row.issue_url)
        row.opened_by = user_id
        inc = s.get(Incident, row.incident_id)
        assert inc is not None
        title, body = row.title, row.body
    body = (
        f"{body}\n\nFrom the postmortem of {inc.ref} ({inc.severity}): {inc.title}.\n"
        f"Opened from Slack by {user_name or user_id} via TAISUN ChatOps."
    ).strip()
    try:
        url = _create_issue(svc, title, body)
    except Exception as e:
        with svc.sessions.begin() as s:
            s.execute(
                update(IncidentFollowup)
                .where(IncidentFollowup.id == followup_id)
                .values(ISSUE_CLAIM.cleared())
            )
        raise IncidentError(key="inc.err.github", error=str(e)) from None
    with svc.sessions.begin() as s:
        s.execute(
            update(IncidentFollowup)
            .where(IncidentFollowup.id == followup_id)
            .values(issue_url=url, **ISSUE_CLAIM.cleared())
        )
        add_event(s, inc.id, "followup", i18n.msg("inc.ev.issue_opened", title=title, url=url), user_id)
        audit_incident(s, inc, "issue_opened", user_id, user_name, title=title, url=url)
    return url


def _create_issue(svc: Services, title: str, body: str) -> str:
    gh = github_backend(svc.settings, svc.config)
    try:
        url = gh.create_issue(title, body)
    finally:
        gh.close()
    if not url:
        raise IncidentError(key="inc.err.github_no_url")
    return url


# --------------------------------------------------------------------------- views + Slack


def view(inc: Incident, phases: list[str] | None = None) -> IncidentView:
    return IncidentView(
        id=inc.id, ref=inc.ref, title=inc.title, severity=inc.severity, state=inc.state, phase=inc.phase,
        phases=phases or list(INCIDENT_PHASES), commander=inc.commander, scribe=inc.scribe, comms=inc.comms,
        status_text=inc.status_text, status_by=inc.status_by, status_at=inc.status_at, detected_at=inc.detected_at,
        declared_at=inc.declared_at, acknowledged_at=inc.acknowledged_at, mitigated_at=inc.mitigated_at,
        resolved_at=inc.resolved_at, dedicated_channel=inc.dedicated_channel, environment=inc.environment,
        source=inc.source, channel_creating=CHANNEL_CLAIM.held(inc.channel_claimed_at),
    )  # fmt: skip


def _phases_of(s: Session, incident_id: int) -> list[str]:
    for definition in s.scalars(select(RunbookRun.definition).where(RunbookRun.incident_id == incident_id)):
        if definition.get("kind") == "incident-flow" and definition.get("phases"):
            return list(definition["phases"])
    return list(INCIDENT_PHASES)


def _messages(svc: Services, key: str) -> list[Managed] | None:
    with svc.sessions() as s:
        inc = s.get(Incident, int(key.split(":", 1)[1]))
        if inc is None:
            return None
        phases = _phases_of(s, inc.id)
    if not inc.channel:
        return []  # its channel is being created
    v = view(inc, phases)
    return [
        Managed(
            slot="header",
            channel=inc.channel,
            ts=inc.header_ts,
            text=blocks_incident.incident_text(v, svc.config.language),
            blocks=blocks_incident.incident_header_blocks(v, svc.config.language),
            fallback_channel=svc.config.slack.ops_channel,
        )
    ]


def _store(svc: Services, key: str, slot: str, channel: str, ts: str) -> None:
    incident_id = int(key.split(":", 1)[1])
    with svc.sessions.begin() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            return
        inc.header_ts = ts
        inc.header_claimed_at, inc.header_claimed_by = None, ""
        if ts:
            inc.channel = channel
        runs = list(s.scalars(select(RunbookRun.id).where(RunbookRun.incident_id == incident_id)))
    if ts:
        # The thread exists now: the checklist can be posted into it.
        svc.outbox.mark(*(runbook_runs.subject(r) for r in runs))


def _thread(svc: Services, key: str) -> tuple[str, str] | None:
    with svc.sessions() as s:
        inc = s.get(Incident, int(key.split(":", 1)[1]))
    if inc is None or not inc.channel or not inc.header_ts:
        return None
    return inc.channel, inc.header_ts


def _sweep(svc: Services) -> None:
    sweep(svc)
    sync = svc.outbox
    # Headers show the elapsed time: refresh open ones; and send replies a dead replica left.
    sync.mark(
        *(subject(i.id) for i in open_incidents(svc)),
        *(k for k in sync.pending_subjects() if k.startswith("inc:")),
    )


def install(svc: Services) -> None:
    """Installed by the composition root (bot.wiring): the sender for incident headers, runbook runs, nudges."""
    runbook_runs.install(svc)
    svc.sweep_hooks.append(lambda: metrics.OPEN_INCIDENTS.set(len(open_incidents(svc))))
    sync = svc.outbox
    if "inc" in sync.syncers:
        return
    sync.register(
        Syncer(
            prefix="inc",
            messages=lambda key: _messages(svc, key),
            claim=lambda key, slot: claim_message(
                svc.sessions, Incident.header_ts, HEADER_CLAIM, Incident.id == int(key.split(":", 1)[1])
            ),
            store=lambda key, slot, channel, ts: _store(svc, key, slot, channel, ts),
            thread=lambda key: _thread(svc, key),
        )
    )
    svc.sweep_hooks.append(lambda: _sweep(svc))
