"""Incidents through the real signed-request path: declare, drive the checklist, pin, nudge, resolve."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.core import audit
from bot.core.blocks import Action
from bot.incidents import service as incidents
from bot.incidents.runbooks import load_runbook
from tests.chatops_helpers import (
    checklist_in,
    click,
    fast,
    header_of,
    incident,
    react,
    replies,
    runs_of,
    settle,
    skip,
    step_value,
    submit_view,
    timeline,
    top_level,
    user_message,
    wait_step,
)
from tests.harness import ALICE, BOB, CAROL, CHANNEL, MALLORY, text_of
from tests.test_runbooks import RUNBOOKS

FLOW = load_runbook(RUNBOOKS / "incident-response.yml")


class FakeIssues:
    """POST /repos/<owner>/<repo>/issues on loopback, answering as GitHub does."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.created.append({"path": self.path, **body})
                n = len(owner.created)
                data = json.dumps(
                    {"number": n, "title": body["title"], "html_url": f"https://github.local/o/r/issues/{n}"}
                ).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=lambda: self.server.serve_forever(poll_interval=0.05), daemon=True).start()


@pytest.fixture
def github_issues() -> Iterator[FakeIssues]:
    fake = FakeIssues()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_incident_driven_to_resolution_by_two_users_has_milestones_and_a_complete_postmortem(
    db_url, make_bot, slack, github_issues
):
    bot = fast(make_bot(db_url, github_token="ghp_" + "x" * 36, github_api_url=github_issues.url))
    ack = bot.command('incident declare sev3 "API p99 over 1s"', user=ALICE)
    assert "INC-1 declared" in ack["text"] and ack["response_type"] == "ephemeral"
    settle(bot)
    header = header_of(slack, "INC-1")
    assert header.channel == CHANNEL and "SEV3" in header.text
    assert "*Commander:* _unassigned_" in text_of(header)
    checklist = checklist_in(slack, header)
    (run,) = runs_of(bot)
    # Detection's health check ran by itself against the environment and said so in the thread.
    wait_step(bot, run.id, "check-health", "passed")
    settle(bot)
    assert any("/health" in m.text and "✅" in m.text for m in replies(slack, header))

    reply = bot.command(f"incident assign commander <@{BOB}>", user=ALICE)
    assert "commander of INC-1" in reply["text"]
    bot.command('incident status "p99 at 1.4s on production; looking at the last deploy"', user=BOB)

    # A person's message in the thread, marked with :pushpin:, joins the timeline at its own time.
    pinned = user_message(
        slack, CHANNEL, "Grafana: p99 jumped at 02:01 after v1.4.0", BOB, thread_ts=header.ts
    )
    react(bot, ALICE, CHANNEL, pinned.ts)
    react(bot, CAROL, CHANNEL, pinned.ts)  # a second pin of the same message is not a second entry
    inc = incident(bot, 1)
    slack.wait_for(lambda: any(e.kind == "pin" for e in timeline(bot, inc.id)))

    # ALICE and BOB take turns through Detection … Recovery; the actions are skipped with a reason.
    for n, step in enumerate(FLOW.steps):
        if step.phase == "Post-Mortem":
            break
        user = (ALICE, BOB)[n % 2]
        if step.check is not None:
            wait_step(bot, run.id, step.id, "passed")  # runs by itself when its phase comes
        elif step.action is not None:
            skip(bot, slack, checklist, step.id, user, f"no deploy preceded the incident ({step.id})")
            wait_step(bot, run.id, step.id, "skipped")
        else:
            click(bot, Action.STEP_DONE, step_value(checklist, step.id, Action.STEP_DONE), user, checklist)
            wait_step(bot, run.id, step.id, "done")
    settle(bot)

    inc = incident(bot, 1)
    assert inc.phase == "Post-Mortem"
    assert set(inc.phase_times) == {
        "Detection",
        "Triage",
        "Containment",
        "Eradication",
        "Recovery",
        "Post-Mortem",
    }
    assert inc.acknowledged_at is not None  # the first commander assignment
    assert inc.mitigated_at is not None  # Recovery reached
    assert inc.detected_at <= inc.acknowledged_at <= inc.mitigated_at

    assert "responder" in bot.command("incident resolve", user=MALLORY)["text"]
    assert "INC-1 resolved" in bot.command("incident resolve", user=BOB)["text"]
    settle(bot)

    inc = incident(bot, 1)
    assert inc.state == "resolved" and inc.resolved_at is not None and inc.resolved_at >= inc.mitigated_at
    events = timeline(bot, inc.id)
    assert {"declared", "role", "status", "pin", "step", "phase", "milestone"} <= {e.kind for e in events}
    assert [e.text.split()[1] for e in events if e.kind == "milestone"] == [
        "acknowledged",
        "mitigated",
        "resolved",
    ]
    (pin,) = [e for e in events if e.kind == "pin"]
    assert pin.at == datetime.fromtimestamp(float(pinned.ts), UTC) and pin.actor_id == BOB
    assert "RESOLVED" in text_of(header)

    # The draft holds every timeline entry, the skipped steps with reasons and the improvement items.
    for e in events:
        assert e.text in inc.postmortem, e.text
    assert "Grafana: p99 jumped" in inc.postmortem
    assert "Skipped: 7. " in inc.postmortem and "no deploy preceded the incident (rollback)" in inc.postmortem
    assert "| Acknowledged |" in inc.postmortem and "| Resolved |" in inc.postmortem
    assert " JST" in inc.postmortem and " UTC" not in inc.postmortem  # the team's time (config timezone)
    assert "- [ ] INC-1: " in inc.postmortem  # Improvement steps not done yet
    thread_text = "\n".join(text_of(m) for m in replies(slack, header))
    assert "Postmortem draft" in thread_text and "Grafana: p99 jumped" in thread_text

    # Each improvement item has a button that opens one GitHub issue, however often it is clicked.
    followups = next(m for m in replies(slack, header) if m.text.startswith("Follow-ups"))
    button = next(b["accessory"] for b in followups.blocks if b.get("accessory"))
    click(bot, Action.INCIDENT_FOLLOWUP_ISSUE, button["value"], ALICE, followups)
    click(bot, Action.INCIDENT_FOLLOWUP_ISSUE, button["value"], BOB, followups)
    (issue,) = github_issues.created
    assert issue["path"] == "/repos/taisun/taisun-v2/issues" and issue["title"].startswith("INC-1: ")
    assert "API p99 over 1s" in issue["body"]
    slack.wait_for(lambda: any("Already opened" in m.text for m in slack.ephemeral(BOB)))
    assert any(e.kind == "followup" for e in timeline(bot, inc.id))

    report = audit.verify(bot.svc.engine)
    assert report.ok, report.problems


def test_severe_incident_gets_its_own_channel_and_commands_there_apply_to_it(db_url, make_bot, slack):
    def responders(cfg: dict[str, Any]) -> None:
        cfg["incidents"]["responders"] = [CAROL]

    bot = fast(make_bot(db_url, config_mutate=responders))
    assert "responder" in bot.command('incident declare sev2 "x"', user=MALLORY)["text"]
    assert "No incident is open" in bot.command("incident resolve", user=ALICE)["text"]
    assert bot.command('incident declare sev9 "x"', user=ALICE)["text"].startswith(":warning:")
    bot.command('incident declare sev3 "Slow admin page"', user=ALICE)
    bot.command('incident declare sev1 "Checkout is down"', user=BOB)
    settle(bot)
    (channel,) = slack.channels.values()
    assert channel["name"] == "inc-2-checkout-is-down"
    assert channel["members"] == {CAROL, BOB}  # the configured responders and the declarer
    cid = channel["id"]
    header = header_of(slack, "INC-2")
    assert header.channel == cid
    checklist_in(slack, header)
    announce = next(m for m in top_level(slack, CHANNEL) if "INC-2" in m.text and "declared" in m.text)
    assert f"<#{cid}>" in announce.text

    # Two incidents are open: in #ops the bot asks which; in the incident's channel it knows.
    ask = bot.command('incident status "still down"', user=ALICE)
    assert "Which one?" in ask["text"]
    buttons = [el for b in ask["blocks"] if b["type"] == "actions" for el in b["elements"]]
    pick = next(el for el in buttons if el["text"]["text"].startswith("INC-2"))
    click(bot, Action.INCIDENT_PICK, pick["value"], ALICE)
    assert incident(bot, 2).status_text == "still down"
    assert "INC-2" in bot.command('incident status "payments failing"', user=BOB, channel=cid)["text"]
    assert incident(bot, 2).status_text == "payments failing"
    assert incident(bot, 1).status_text == ""

    # Promoting the sev3 links both ways: a note in its thread and a pointer in the new channel.
    assert "Which one?" in bot.command("incident promote", user=ALICE)["text"]  # ambiguous in #ops
    bot.command("incident severity sev2", user=ALICE, channel=cid)  # INC-2, from its channel
    inc1 = incident(bot, 1)
    click(bot, Action.INCIDENT_PROMOTE, str(inc1.id), ALICE, header_of(slack, "INC-1"))
    settle(bot)
    inc1 = incident(bot, 1)
    assert inc1.dedicated_channel.startswith("C") and inc1.dedicated_name == "inc-1-slow-admin-page"
    assert inc1.channel == CHANNEL  # its checklist thread stays where it started
    header1 = header_of(slack, "INC-1")
    assert any(f"<#{inc1.dedicated_channel}>" in m.text for m in replies(slack, header1))
    assert any("INC-1" in m.text for m in top_level(slack, inc1.dedicated_channel))
    assert f"<#{inc1.dedicated_channel}>" in text_of(header1)
    listing = text_of(bot.command("incident list", user=CAROL))
    assert "INC-1" in listing and "INC-2" in listing and "sev2" in listing


def test_nudges_fire_once_and_a_snooze_brings_them_back_once(db_url, make_bot, slack):
    bot = fast(make_bot(db_url))
    bot.command('incident declare sev4 "Disk at 85% on a worker"', user=ALICE)
    settle(bot)
    header = header_of(slack, "INC-1")
    inc = incident(bot, 1)

    def nudges() -> list[Any]:
        return [m for m in replies(slack, header) if "reminders" in m.text]

    assert incidents.sweep(bot.svc, at=inc.declared_at + timedelta(minutes=1)) == 0
    later = inc.declared_at + timedelta(minutes=31)
    # no commander, no status update, and the Detection/Triage steps due within 5–15 minutes
    assert incidents.sweep(bot.svc, at=later) >= 3
    assert incidents.sweep(bot.svc, at=later + timedelta(seconds=20)) == 0  # a second sweep: nothing
    other = fast(make_bot(db_url))  # another replica sweeping at the same moment: nothing either
    assert incidents.sweep(other.svc, at=later + timedelta(seconds=30)) == 0
    settle(bot, other)
    (first,) = nudges()
    assert "No incident commander" in first.text and "No status update" in first.text
    assert "overdue" in first.text

    snooze = next(el for b in first.blocks if b["type"] == "actions" for el in b["elements"])
    click(bot, Action.NUDGE_SNOOZE, snooze["value"], BOB, first)
    slack.wait_for(lambda: any("Snoozed" in m.text for m in slack.ephemeral(BOB)))
    bot.command(f"incident assign commander <@{BOB}>", user=ALICE)
    # During the snooze: quiet. After it: what still applies comes back once (the commander is set now).
    assert incidents.sweep(bot.svc, at=datetime.now(UTC) + timedelta(minutes=5)) == 0
    assert incidents.sweep(bot.svc, at=datetime.now(UTC) + timedelta(minutes=40)) >= 1
    assert incidents.sweep(bot.svc, at=datetime.now(UTC) + timedelta(minutes=41)) == 0
    settle(bot)
    assert len(nudges()) == 2 and "No incident commander" not in nudges()[1].text

    # Resolved: no more nudges; without GITHUB_TOKEN a follow-up button says it cannot open issues.
    bot.command("incident resolve", user=BOB)
    assert incidents.sweep(bot.svc, at=datetime.now(UTC) + timedelta(hours=3)) == 0
    settle(bot)
    followups = next(m for m in replies(slack, header) if m.text.startswith("Follow-ups"))
    button = next(b["accessory"] for b in followups.blocks if b.get("accessory"))
    click(bot, Action.INCIDENT_FOLLOWUP_ISSUE, button["value"], ALICE, followups)
    slack.wait_for(lambda: any("GITHUB_TOKEN is not set" in m.text for m in slack.ephemeral(ALICE)))


def test_declare_from_a_message_shortcut_opens_a_form_and_keeps_the_message(db_url, make_bot, slack):
    bot = fast(make_bot(db_url))
    # `/taisun incident declare` without arguments opens the same form, empty.
    bot.command("incident declare", user=ALICE)
    (empty,) = slack.wait_for(lambda: list(slack.views.values()))
    assert empty["callback_id"] == Action.INCIDENT_DECLARE_MODAL
    assert "initial_value" not in empty["blocks"][1]["element"]
    assert empty["blocks"][2]["element"]["initial_option"]["value"] == "production"  # where, by default
    slack.views.clear()
    source = user_message(slack, CHANNEL, "Users report 502s on /checkout since 10:02", CAROL)
    payload = {
        "type": "message_action", "callback_id": Action.INCIDENT_FROM_MESSAGE, "trigger_id": "t-1",
        "team": {"id": "T0LOCAL"}, "user": {"id": ALICE, "username": "alice", "name": "alice"},
        "channel": {"id": CHANNEL, "name": "ops"}, "message_ts": source.ts,
        "message": {"type": "message", "ts": source.ts, "user": CAROL, "text": source.text},
        "response_url": slack.response_url("shortcut"),
    }  # fmt: skip
    status, _ = bot.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
    assert status == 200
    view = slack.wait_for(lambda: next(iter(slack.views.values()), None))
    assert view["callback_id"] == Action.INCIDENT_DECLARE_MODAL
    assert view["blocks"][1]["element"]["initial_value"].startswith("Users report 502s")
    values = {
        "severity": {
            Action.INCIDENT_SEVERITY: {"type": "static_select", "selected_option": {"value": "sev3"}}
        },
        "title": {Action.INCIDENT_TITLE: {"type": "plain_text_input", "value": "Checkout 502s"}},
        "environment": {
            Action.INCIDENT_ENV: {"type": "static_select", "selected_option": {"value": "staging"}}
        },
    }
    status, body = submit_view(bot, view, values, ALICE)
    assert status == 200 and b"errors" not in body
    settle(bot)
    inc = incident(bot, 1)
    assert inc.title == "Checkout 502s" and inc.source == f"message:{CHANNEL}/{source.ts}"
    assert inc.environment == "staging"
    (first,) = [e for e in timeline(bot, inc.id) if e.kind == "message"]
    assert "Users report 502s" in first.text and first.at == datetime.fromtimestamp(float(source.ts), UTC)
    # The form refuses an unknown severity with a message on the field.
    values["severity"][Action.INCIDENT_SEVERITY]["selected_option"]["value"] = "sev9"
    status, body = submit_view(bot, view, values, ALICE)
    assert b"Unknown severity" in body


def test_an_incident_happens_where_it_is_declared_and_its_checks_look_there(db_url, make_bot, slack):
    bot = fast(make_bot(db_url))
    ack = bot.command('incident declare sev3 "staging login fails" --env stg', user=ALICE)
    assert "INC-1" in ack["text"]
    settle(bot)
    inc = incident(bot, 1)
    assert inc.environment == "staging"
    (run,) = runs_of(bot)
    assert run.environment == "staging"  # the checklist's checks and actions target staging
    assert "`staging`" in text_of(header_of(slack, "INC-1"))
    refused = bot.command('incident declare sev3 "x" --env nowhere', user=ALICE)
    assert "Unknown environment" in refused["text"] and incident_count(bot) == 1
    bot.command('incident declare sev3 "no env named"', user=ALICE)
    settle(bot)
    assert incident(bot, 2).environment == "production"  # the default, as before


def incident_count(bot) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from bot.core.store.models import Incident

    with bot.svc.sessions() as s:
        return int(s.scalar(select(func.count(Incident.id))) or 0)


def test_incident_numbers_stay_unique_when_replicas_declare_at_once(db_url, make_bot):
    bots = [fast(make_bot(db_url)), fast(make_bot(db_url))]
    errors: list[BaseException] = []

    def declare(i: int) -> None:
        try:
            incidents.declare(
                bots[i % 2].svc, severity="sev4", title=f"race {i}", user_id=ALICE, channel=CHANNEL
            )
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=declare, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(incident(bots[0], n).number for n in range(1, 7)) == list(range(1, 7))
    settle(*bots)
