"""POST /alerts/alertmanager: authentication, validation, dedup, storms, incidents from alerts."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.core.blocks import Action
from bot.core.store.models import Alert, AlertGroup
from bot.incidents.runs import find_runbook
from tests.chatops_helpers import (
    click,
    fast,
    incident,
    post_alerts,
    replies,
    runs_of,
    settle,
    timeline,
    top_level,
)
from tests.harness import ALICE, BOB, text_of

TOKEN = "alert-token-" + "z" * 20
ALERTS = "CALERTS"  # "#alerts" in the local Slack
NAMES = [
    "HighLatencyWarning",
    "HighErrorRateWarning",
    "HighCPUWarning",
    "HighMemoryWarning",
    "DiskUsageWarning",
]
T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def alert(
    name: str,
    instance: str,
    *,
    status: str = "firing",
    severity: str = "warning",
    starts: datetime = T0,
    ends: datetime | None = None,
    **annotations: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "instance": instance, "job": "taisun", "severity": severity},
        "annotations": {"summary": f"{name} on {instance}", **annotations},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": (ends.isoformat().replace("+00:00", "Z") if ends else "0001-01-01T00:00:00Z"),
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": f"{abs(hash((name, instance))):016x}"[:16],
    }


def webhook(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "taisun", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.local", "alerts": alerts,
    }  # fmt: skip


def count_alerts(bot) -> int:  # type: ignore[no-untyped-def]
    with bot.svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Alert)) or 0)


def posts_to(slack, channel: str) -> int:  # type: ignore[no-untyped-def]
    with slack._lock:  # noqa: SLF001
        return sum(
            1 for m, p in slack.calls if m == "chat.postMessage" and p.get("channel") in (channel, "#alerts")
        )


def updates_to(slack, channel: str) -> int:  # type: ignore[no-untyped-def]
    with slack._lock:  # noqa: SLF001
        return sum(1 for m, p in slack.calls if m == "chat.update" and p.get("channel") == channel)


def test_a_storm_of_thousands_is_stored_without_loss_and_slack_messages_stay_bounded(db_url, make_bot, slack):
    # Two replicas behind a load balancer, posting concurrently: 3,000 alerts, 5 alertnames, 100 per post.
    replicas = [make_bot(db_url, taisun_alert_token=TOKEN), make_bot(db_url, taisun_alert_token=TOKEN)]
    posts = []
    for i in range(30):
        name = NAMES[i % 5]
        posts.append(webhook([alert(name, f"10.0.{i}.{k}:9100") for k in range(100)]))
    start = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda p: post_alerts(replicas[p[0] % 2], p[1], TOKEN), enumerate(posts)))
    took_posting = time.monotonic() - start
    assert all(status == 200 for status, _ in answers), answers[:3]
    assert sum(body["alerts"] for _, body in answers) == 3000
    settle(*replicas)
    elapsed = time.monotonic() - start

    assert count_alerts(replicas[0]) == 3000
    groups = top_level(slack, ALERTS)
    assert len(groups) == 5 and posts_to(slack, ALERTS) == 5  # one message per alertname, never two
    for msg in groups:
        assert "*600 firing*" in text_of(msg)
        assert "and 595 more firing" in text_of(msg)
    # Edits are coalesced: at most about one per second per message on each replica.
    assert updates_to(slack, ALERTS) <= 2 * 5 * (elapsed + 2), (updates_to(slack, ALERTS), elapsed)
    assert took_posting < 30
    # Everything that happened reached Slack: no group is behind.
    with replicas[0].svc.sessions() as s:
        assert all(g.sent_version == g.version for g in s.scalars(select(AlertGroup)))


def test_the_webhook_refuses_bad_requests_and_replays_never_duplicate(db_url, make_bot, slack, caplog):
    caplog.set_level(logging.WARNING)
    bot = fast(make_bot(db_url, taisun_alert_token=TOKEN))
    firing = webhook([alert("HighLatencyWarning", f"api-{k}:9100") for k in range(3)])
    assert post_alerts(bot, firing, None)[0] == 401
    status, body = post_alerts(bot, firing, "not-the-token")
    assert status == 401 and body == {"error": "invalid or missing bearer token"}
    assert any("alertmanager webhook refused" in r.message for r in caplog.records)
    assert post_alerts(bot, "{not json", TOKEN) == (400, {"error": "the body is not JSON"})
    status, body = post_alerts(bot, webhook([{"status": "firing", "labels": {}}]), TOKEN)
    assert status == 400 and body["error"].startswith("alerts.0.")
    status, body = post_alerts(bot, {**firing, "version": "3"}, TOKEN)
    assert status == 400 and "version 4" in body["error"]
    status, body = post_alerts(bot, [1, 2], TOKEN)
    assert status == 400 and "JSON object" in body["error"]
    bad_status = dict(firing, alerts=[dict(firing["alerts"][0], status="exploding")])
    assert post_alerts(bot, bad_status, TOKEN)[0] == 400
    assert count_alerts(bot) == 0
    # A valid webhook with no alerts in it is accepted and stores nothing (not a 503 Alertmanager retries).
    assert post_alerts(bot, webhook([]), TOKEN) == (
        200,
        {"status": "ok", "alerts": 0, "firing": 0, "resolved": 0, "groups": 0},
    )
    assert count_alerts(bot) == 0 and top_level(slack, ALERTS) == []

    # Alertmanager re-sends a group's whole state: replays never duplicate.
    for _ in range(3):
        assert post_alerts(bot, firing, TOKEN)[0] == 200
    settle(bot)
    assert count_alerts(bot) == 3
    (msg,) = top_level(slack, ALERTS)
    assert "*3 firing*" in text_of(msg)
    one_resolved = webhook(
        [alert("HighLatencyWarning", "api-0:9100", status="resolved", ends=T0 + timedelta(minutes=3))]
    )
    assert post_alerts(bot, one_resolved, TOKEN)[0] == 200
    assert post_alerts(bot, firing, TOKEN)[0] == 200  # a late replay of the old state does not undo it
    settle(bot)
    with bot.svc.sessions() as s:
        assert sorted(s.scalars(select(Alert.status))) == ["firing", "firing", "resolved"]
    assert "*2 firing*" in text_of(msg) and "1 resolved" in text_of(msg)
    # It fires again later (a new startsAt): firing again, still one row, still one message.
    again = webhook([alert("HighLatencyWarning", "api-0:9100", starts=T0 + timedelta(hours=1))])
    assert post_alerts(bot, again, TOKEN)[0] == 200
    settle(bot)
    assert count_alerts(bot) == 3 and "*3 firing*" in text_of(msg)
    assert len(top_level(slack, ALERTS)) == 1

    # An operator who forgot TAISUN_ALERT_TOKEN gets a 503 and a log line saying what to set.
    caplog.clear()
    bot.svc.settings.taisun_alert_token = ""
    status, body = post_alerts(bot, firing, TOKEN)
    assert status == 503 and "not configured" in body["error"]
    assert any("TAISUN_ALERT_TOKEN is not set" in r.message for r in caplog.records)


def test_a_critical_alert_declares_an_incident_when_configured(db_url, make_bot, slack):
    def auto_declare(cfg: dict[str, Any]) -> None:
        cfg["alerts"]["auto_declare_severity"] = "sev2"
        cfg["language"] = "ja"  # the alert's summary_ja is used

    replicas = [
        fast(make_bot(db_url, taisun_alert_token=TOKEN, config_mutate=auto_declare)),
        fast(make_bot(db_url, taisun_alert_token=TOKEN, config_mutate=auto_declare)),
    ]
    critical = webhook(
        [
            alert(
                "HighLatencyCritical",
                f"api-{k}:9100",
                severity="critical",
                starts=T0 + timedelta(seconds=k),
                summary_ja="Response Time (p99) が 1000ms 超",
                runbook_url="taisun://runbook/performance-degradation",
            )  # fmt: skip
            for k in range(2)
        ]
    )
    for a in critical["alerts"]:
        a["labels"]["environment"] = "staging"  # where it fires: the incident's environment
    # Both replicas get it (Alertmanager HA sends to every receiver): one incident only.
    with ThreadPoolExecutor(2) as pool:
        assert [s for s, _ in pool.map(lambda b: post_alerts(b, critical, TOKEN), replicas)] == [200, 200]
    settle(*replicas)
    inc = incident(replicas[0], 1)
    assert inc.severity == "sev2" and inc.declared_by == "alertmanager" and inc.environment == "staging"
    assert inc.title.startswith("HighLatencyCritical: Response Time (p99) が 1000ms 超")
    assert inc.detected_at == T0  # the alert's start, not the time it reached the bot
    assert inc.dedicated_channel.startswith("C")  # sev2 gets a channel
    with replicas[0].svc.sessions() as s:
        assert (
            s.scalar(select(func.count()).select_from(AlertGroup).where(AlertGroup.incident_id == inc.id))
            == 1
        )
        assert s.scalar(select(func.max(AlertGroup.incident_id))) == inc.id
    events = timeline(replicas[0], inc.id)
    assert [e.kind for e in events][:2] in (["declared", "alert"], ["alert", "declared"])
    assert any(e.kind == "alert" and e.at == T0 for e in events)
    group = next(m for m in top_level(slack, ALERTS) if m.text.startswith("HighLatencyCritical"))
    assert "*INC-1* に紐付け済み" in text_of(group)  # a Japanese workspace reads Japanese cards
    # The alert channel hears where the incident went.
    announce = next(m for m in top_level(slack, ALERTS) if "INC-1" in m.text and "宣言されました" in m.text)
    assert f"<#{inc.dedicated_channel}>" in announce.text


def test_a_critical_alert_joins_the_open_incident_and_its_runbook_starts_in_the_alert_thread(
    db_url, make_bot, slack
):
    bot = fast(make_bot(db_url, taisun_alert_token=TOKEN))
    bot.command('incident declare sev3 "Latency on the API"', user=ALICE)
    settle(bot)
    inc = incident(bot, 1)
    payload = webhook(
        [alert("HighLatencyCritical", "api-1:9100", severity="critical")]
    )  # runbook from config
    assert post_alerts(bot, payload, TOKEN)[0] == 200
    settle(bot)
    (group,) = top_level(slack, ALERTS)
    assert "attached to *INC-1*" in text_of(group)
    assert any(e.kind == "alert" and "HighLatencyCritical" in e.text for e in timeline(bot, inc.id))

    # "Start runbook": alerts.runbooks maps HighLatencyCritical → performance-degradation.
    button = next(el for b in group.blocks if b["type"] == "actions" for el in b["elements"])
    assert button["action_id"] == Action.ALERT_START_RUNBOOK
    assert (
        find_runbook("performance-degradation").title_for(bot.svc.config.language) in button["text"]["text"]
    )
    click(bot, Action.ALERT_START_RUNBOOK, button["value"], BOB, group)
    click(bot, Action.ALERT_START_RUNBOOK, button["value"], ALICE, group)  # a second click starts nothing
    settle(bot)
    runs = [r for r in runs_of(bot) if r.runbook_id == "performance-degradation"]
    assert len(runs) == 1 and runs[0].thread_ts == group.ts and runs[0].incident_id == inc.id
    assert any("steps done" in m.text for m in replies(slack, group))
    assert any("already running" in m.text for m in slack.ephemeral(ALICE))
    assert "is running in the thread" in text_of(group)
    assert any(e.kind == "runbook" for e in timeline(bot, inc.id))

    # Resolution of the alert lands on the timeline once.
    resolved = webhook(
        [
            alert(
                "HighLatencyCritical",
                "api-1:9100",
                severity="critical",
                status="resolved",
                ends=T0 + timedelta(minutes=20),
            )
        ]
    )
    for _ in range(2):
        assert post_alerts(bot, resolved, TOKEN)[0] == 200
        settle(bot)
    assert sum(1 for e in timeline(bot, inc.id) if e.kind == "alert" and "resolved" in e.text) == 1
    assert json.loads(json.dumps(text_of(group)))
