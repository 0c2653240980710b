"""Form submissions (view_submission): the deploy form, Reject's reason, the incident declaration,
and the runbook step forms."""

from __future__ import annotations

from slack_bolt import App

from bot.core.blocks import Action
from bot.core.services import Services
from handlers.views import deploy, incidents, jobs, runbooks, security


def register(app: App, svc: Services) -> None:
    app.view(Action.REJECT_MODAL)(jobs.submit_reject)
    app.view(Action.DEPLOY_MODAL)(deploy.submit_deploy)
    app.view(Action.INCIDENT_DECLARE_MODAL)(incidents.submit_declare)
    app.view(Action.STEP_SKIP_MODAL)(runbooks.submit_skip)
    app.view(Action.STEP_PARAMS_MODAL)(runbooks.submit_version)
    app.view(Action.SECURITY_DONE_MODAL)(security.submit_done)
