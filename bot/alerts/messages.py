"""What the alerts capability shows: one message per alert group, updated in place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from bot.core.blocks import Action, Block, button, context, section
from bot.core.i18n import t
from bot.core.mrkdwn import Mrkdwn, escape, link, slack_time


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


def alert_group_blocks(group: AlertGroupView, lang: str = "en") -> list[Block]:
    """One message per alertname: counts, severity, a few instances, and what to do about it."""
    if group.firing:
        icon = "🔥" if group.severity == "critical" else "⚠️"
        key = "alert.head_firing"
    else:
        icon, key = "✅", "alert.head_resolved"
    sev = f" · `{group.severity}`" if group.severity else ""
    head = t(
        key,
        lang,
        icon=icon,
        name=escape(group.alertname),
        firing=group.firing,
        resolved=group.resolved,
        severity=sev,
    )
    blocks: list[Block] = [section(head)]
    if group.summary:
        blocks.append(section(escape(group.summary[:1500])))
    if group.instances:
        more = group.firing - len(group.instances)
        lines = Mrkdwn("\n").join(Mrkdwn("• ") + escape(i[:200]) for i in group.instances)
        blocks.append(
            context(lines + (Mrkdwn("\n") + t("alert.more_firing", lang, more=more) if more > 0 else ""))
        )
    facts = []
    if group.since:
        facts.append(t("alert.since", lang, time=slack_time(group.since, "{date_short_pretty} {time}")))
    if group.incident_ref:
        facts.append(t("alert.attached", lang, ref=group.incident_ref))
    if group.generator_url:
        # The URL comes with the alert (outside text): the link names the host it leads to.
        host = urlsplit(group.generator_url).hostname or "?"
        facts.append(link(group.generator_url, t("alert.source", lang, host=host)))
    if facts:
        blocks.append(context(" · ".join(facts)))
    if group.runbook_id and not group.run_started:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"alert:{group.id}",
                "elements": [
                    button(
                        t("alert.start_runbook", lang, title=group.runbook_title or group.runbook_id)[:75],
                        Action.ALERT_START_RUNBOOK,
                        str(group.id),
                        style="primary",
                    )
                ],
            }
        )
    elif group.runbook_id:
        blocks.append(
            context(t("alert.runbook_running", lang, title=escape(group.runbook_title or group.runbook_id)))
        )
    return blocks


def alert_group_text(group: AlertGroupView, lang: str = "en") -> str:
    return t("alert.text", lang, name=group.alertname, firing=group.firing, resolved=group.resolved)
