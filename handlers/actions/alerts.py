"""Alert listeners: the "Start runbook" button on an alert group's message.

(The Alertmanager webhook itself is an HTTP route, bot/alerts/service.py.)
"""

from __future__ import annotations

from bot.alerts import service as alerts
from bot.core.i18n import t
from bot.core.replies import Reply
from bot.core.services import Services


def start_runbook(svc: Services, value: str, user_id: str, user_name: str, body: dict) -> Reply | None:
    run = alerts.start_runbook(svc, int(value), user_id, user_name)
    key = "alert.reply.started_drill" if run.drill else "alert.reply.started"
    return Reply(t(key, svc.lang_for(user_id), id=run.runbook_id))
