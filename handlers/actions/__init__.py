"""Button clicks (block actions): every action id the bot puts on a message, and its listener."""

from __future__ import annotations

from slack_bolt import App

from bot.core.blocks import Action
from bot.core.services import Services
from handlers.actions import alerts, incidents, jobs, runbooks, security
from handlers.common import on_click, on_job_click


def register(app: App, svc: Services) -> None:
    # A job's card.
    on_job_click(app, Action.APPROVE, jobs.approve)
    app.action(Action.REJECT)(jobs.reject)
    on_job_click(app, Action.CANCEL, jobs.cancel)
    on_job_click(app, Action.ROLLBACK, jobs.rollback)
    on_job_click(app, Action.LOCK_TAKEOVER, jobs.take_over)
    # Incident headers, pickers and nudges (responders).
    on_click(app, Action.INCIDENT_ACK, incidents.ack_incident)
    on_click(app, Action.INCIDENT_MITIGATED, incidents.mitigated)
    on_click(app, Action.INCIDENT_PROMOTE, incidents.promote)
    on_click(app, Action.INCIDENT_RESOLVE, incidents.resolve)
    on_click(app, Action.INCIDENT_PICK, incidents.pick)
    on_click(app, Action.INCIDENT_FOLLOWUP_ISSUE, incidents.followup)
    on_click(app, Action.NUDGE_SNOOZE, incidents.snooze)
    # A runbook run's checklist.
    on_click(app, Action.STEP_DONE, runbooks.done, thing="runbook")
    on_click(app, Action.STEP_RECHECK, runbooks.recheck, thing="runbook")
    app.action(Action.STEP_SKIP)(runbooks.skip)
    app.action(Action.STEP_RUN)(runbooks.run_step)
    # An alert group's message.
    on_click(app, Action.ALERT_START_RUNBOOK, alerts.start_runbook)
    # A due security task and an access review (owners and reviewers are checked by bot/security).
    app.action(Action.SECURITY_DONE)(security.done)
    on_job_click(app, Action.SECURITY_SNOOZE, security.snooze)
    on_job_click(app, Action.SECURITY_REVIEW_KEEP, security.keep)
    on_job_click(app, Action.SECURITY_REVIEW_REMOVE, security.remove)
