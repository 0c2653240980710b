"""An incident's timeline, audit rows and phases: what the runbook runs and the incident service both
write (a checklist change moves the incident's phase), so neither imports the other for it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core import audit, i18n
from bot.core.outbox import outbox
from bot.core.states import StepState
from bot.core.store.models import Incident, IncidentEvent, RunbookRun, RunbookStep
from bot.incidents.runbooks import Runbook

if TYPE_CHECKING:
    from bot.core.services import Services


def now() -> datetime:
    return datetime.now(UTC)


def subject(incident_id: int) -> str:
    return f"inc:{incident_id}"


def add_event(
    s: Session,
    incident_id: int,
    kind: str,
    text: str | i18n.Msg,
    actor_id: str = "",
    *,
    at: datetime | None = None,
    data: dict[str, Any] | None = None,
    key: str | None = None,
) -> IncidentEvent:
    """A timeline entry in the caller's transaction. A `key` makes it unique (IntegrityError on a repeat).

    Given as `i18n.msg(...)`, the entry keeps its message so the postmortem shows it in the
    workspace's language; `text` holds the English rendering for exports and searches.
    """
    t = now()
    data = dict(data or {})
    if not isinstance(text, str):
        data["msg"] = text
    ev = IncidentEvent(
        incident_id=incident_id,
        at=at or t,
        recorded_at=t,
        kind=kind,
        actor_id=actor_id,
        text=i18n.render_plain(text, "en")[:4000],
        data=data,
        key=key,
    )
    s.add(ev)
    return ev


def event_text(ev: IncidentEvent, lang: str) -> str:
    """A timeline entry in `lang`, as plain text (entries stored as plain text are shown as they are)."""
    stored = (ev.data or {}).get("msg")
    return i18n.render_plain(stored, lang)[:4000] if stored else ev.text


def audit_incident(
    s: Session, inc: Incident, action: str, actor_id: str, actor_name: str = "", **params: Any
) -> None:
    audit.append(
        s,
        actor_id=actor_id,
        actor_name=actor_name,
        action=f"incident.{action}",
        environment=inc.environment,
        channel=inc.channel or inc.origin_channel,
        params={"incident": inc.ref, **params},
        outcome="ok",
    )


def milestone(s: Session, inc: Incident, name: str, t: datetime, actor: str, why: i18n.Msg) -> None:
    setattr(inc, f"{name}_at", t)
    since = i18n.msg("unit.duration", seconds=int((t - inc.detected_at).total_seconds()))
    add_event(
        s, inc.id, "milestone",
        i18n.msg("inc.ev.milestone", name=i18n.msg(f"inc.ms.{name}"), why=why, since=since), actor, at=t,
    )  # fmt: skip
    audit_incident(s, inc, name, actor, why=i18n.render_plain(why, "en"))


def on_checklist_change(svc: Services, s: Session, incident_id: int, run: RunbookRun, t: datetime) -> None:
    """Move the phase forward past every phase whose steps are all finished (caller holds the locks)."""
    inc = s.get(Incident, incident_id)
    if inc is None:
        return
    phases: list[str] = list(run.definition.get("phases") or [])
    if inc.phase not in phases:
        return
    states: dict[str, list[str]] = {}
    for phase, state in s.execute(
        select(RunbookStep.phase, RunbookStep.state).where(RunbookStep.run_id == run.id)
    ):
        states.setdefault(phase, []).append(state)
    index = phases.index(inc.phase)
    while index < len(phases) - 1 and all(st in StepState.TERMINAL for st in states.get(phases[index], [])):
        old, index = phases[index], index + 1
        new = phases[index]
        inc.phase = new
        inc.phase_times = {**inc.phase_times, new: t.isoformat()}
        inc.updated_at = t
        add_event(s, inc.id, "phase", i18n.msg("inc.ev.phase", old=old, new=new), "taisun", at=t)
        audit_incident(s, inc, "phase", "taisun", "TAISUN", previous=old, phase=new)
        lang = svc.config.language
        outbox(s, subject(inc.id), i18n.t("inc.msg.phase", lang, phase=Runbook.phase_title(new, lang)))
        if new == "Recovery" and inc.mitigated_at is None:
            milestone(s, inc, "mitigated", t, "taisun", i18n.msg("inc.why.recovery_reached"))
