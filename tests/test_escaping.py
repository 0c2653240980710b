"""Nothing a person types reaches other people unescaped (issue #12, item 5).

Slack parses `&`, `<` and `>` in a message's top-level `text` (what notifications and screen
readers use), in mrkdwn sections, context and confirm dialogs, in modals and the Home tab:
`<!channel>` pings the channel, `<https://evil.example|the runbook>` shows a label that hides
its target. Each test drives the bot over signed HTTP, then reads everything the local Slack
received (posts, edits, ephemeral and response_url replies, views, Home tabs) and the acks,
and checks that hostile text shows up as the text it is: escaped (`&lt;!channel&gt;`), never
as markup, and still readable as the person's own words.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from bot.alerts.messages import AlertGroupView, alert_group_blocks, alert_group_text
from bot.audit.messages import audit_blocks
from bot.core import blocks
from bot.core.blocks import Action
from bot.core.i18n import t
from bot.core.locks import EnvironmentLocked, LockInfo
from bot.core.mrkdwn import LOOKALIKES, escape, escape_text
from bot.core.store.models import Job, Lock
from bot.deploys.messages import status_blocks
from bot.incidents.messages import (
    IncidentView,
    RunView,
    StepView,
    checklist_blocks,
    checklist_text,
    followup_blocks,
    incident_header_blocks,
    incident_list_blocks,
    incident_text,
    markdown_blocks,
    skip_modal,
    version_modal,
)
from bot.incidents.runbooks import load_runbook
from bot.slack import signing
from bot.slack.localslack import LocalSlack
from bot.slack.messages import job_blocks, job_text, jobs_list_blocks
from tests.chatops_helpers import (
    checklist_in,
    click,
    fast,
    header_of,
    incident,
    post_alerts,
    replies,
    settle,
    skip,
    submit_view,
)
from tests.harness import ALICE, CAROL, CHANNEL, Bot
from tests.procs import run_cli
from tests.test_incidents import github_issues  # noqa: F401  (a fixture, requested by name)

ALERT_TOKEN = "alert-token-" + "e" * 20
# The control sequences a person might type to ping people or disguise a link.
CONTROL = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S123>",
    "<@U0BOB>",
    "<https://evil.example/login|the runbook>",
]
# And what must show as typed: an ampersand, an entity typed out, emphasis marks, code.
TRICKY = ["&", "&lt;!here&gt;", "*bold*", "_it_", "~gone~", "`x`", "a*b_c~d`e", "R&D"]
# A control sequence, unescaped, anywhere Slack parses (the bot never builds these itself here).
RAW = re.compile(r"<(?:!channel|!here|!everyone|!subteam|@U0BOB|https?://evil)")
WATCHED = {"chat.postMessage", "chat.update", "chat.postEphemeral", "respond", "views.open", "views.update",
           "views.publish"}  # fmt: skip
_BACK = {v: k for k, v in LOOKALIKES.items()}


def parsed_texts(payload: Any) -> list[str]:
    """Every string in a Slack payload that Slack parses as mrkdwn (plain_text objects parse nothing)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "plain_text":
                return
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload)
    return found


def received(slack: LocalSlack, since: int = 0) -> list[str]:
    """What Slack parses in every message, edit, reply, view and Home tab it received since call `since`."""
    with slack._lock:  # noqa: SLF001  (reading the record of calls)
        calls = list(slack.calls[since:])
    texts: list[str] = []
    for method, params in calls:
        if method in WATCHED:
            texts += parsed_texts(
                {k: v for k, v in params.items() if k in ("text", "blocks", "view", "attachments")}
            )
    return texts


def plain_texts(payload: Any) -> list[str]:
    """Every plain_text string in a payload (buttons, titles, options): Slack parses nothing there."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "plain_text" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload)
    return found


def assert_never_markup(texts: list[str]) -> None:
    for text in texts:
        assert not RAW.search(text), f"a person's text reached Slack as markup: {text!r}"


def shows(texts: list[str], words: str) -> bool:
    """True when some text shows `words` as typed: Slack-escaped, emphasis marks maybe as look-alikes."""
    wanted = escape_text(words)
    return any(wanted in "".join(_BACK.get(c, c) for c in text) for text in texts)


def hostile_texts() -> st.SearchStrategy[str]:
    """A control sequence, then a few more pieces of hostile or ordinary text, one space apart."""
    word = st.text(alphabet="abcxyz0189-.", min_size=1, max_size=6)
    piece = st.sampled_from(CONTROL + TRICKY) | word
    return st.tuples(st.sampled_from(CONTROL), st.lists(piece, max_size=4)).map(
        lambda p: " ".join([p[0], *p[1]])
    )


def frozen_development(cfg: dict[str, Any]) -> None:
    """development is in a freeze window all day (so --force needs a reason), alice has break-glass."""
    local = datetime.now(ZoneInfo(cfg.get("timezone") or "Asia/Tokyo"))
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    cfg["environments"]["development"]["freeze_windows"] = [
        {"name": "release freeze", "start": {"day": days[(local.weekday() - 1) % 7], "time": "00:00"},
         "end": {"day": days[(local.weekday() + 1) % 7], "time": "23:59"}}
    ]  # fmt: skip
    cfg["roles"]["break_glass"] = [ALICE]
    cfg["defaults"]["commands_per_minute"] = 100000


def _bot(db_url: str, make_bot: Any) -> Bot:
    return fast(make_bot(db_url, taisun_alert_token=ALERT_TOKEN, config_mutate=frozen_development))


def _mark(slack: LocalSlack) -> int:
    with slack._lock:  # noqa: SLF001
        return len(slack.calls)


# -------------------------------------------------------------------- the reported cases


def test_a_lock_reason_reaches_the_channel_as_text_never_a_ping_or_a_disguised_link(db_url, make_bot, slack):
    bot = _bot(db_url, make_bot)
    reason = "<!channel> see <https://evil.example/login|the runbook>"
    start = _mark(slack)
    reply = bot.command(f"lock staging {shlex.quote(reason)}", user=ALICE)
    assert reply["response_type"] == "in_channel"
    shown = "&lt;!channel&gt; see &lt;https://evil.example/login|the runbook&gt;"
    assert shown in reply["text"]  # the notification and screen-reader text, not only the blocks
    assert_never_markup(parsed_texts(reply))
    assert shows(parsed_texts(reply["blocks"]), reason)
    # Everywhere the reason is repeated: a refusal to someone else, status, the Home tab.
    refused = bot.command("deploy staging v1.2.3", user=CAROL)
    assert shown in refused["text"]
    bot.command("status staging", user=CAROL)
    bot.svc.home.publish(CAROL)
    bot.settle()
    texts = received(slack, start)
    assert_never_markup(texts + parsed_texts(refused))
    assert shows(parsed_texts(slack.home[CAROL]), reason)
    assert any(shown in m.text or shown in json.dumps(m.blocks) for m in slack.ephemeral(CAROL))


def test_an_incident_title_reaches_everyone_as_text_never_a_ping_or_a_disguised_link(db_url, make_bot, slack):
    bot = _bot(db_url, make_bot)
    title = "<!everyone> db down <https://evil.example|status page>"
    start = _mark(slack)
    reply = bot.command(f"incident declare sev4 {shlex.quote(title)}", user=ALICE)
    settle(bot)
    header = header_of(slack, "INC-1")
    shown = "&lt;!everyone&gt; db down &lt;https://evil.example|status page&gt;"
    assert shown in header.text  # chat.postMessage's text: what the channel is notified with
    assert shows(parsed_texts(header.blocks), title)
    assert shown in reply["text"]
    assert_never_markup(received(slack, start) + parsed_texts(reply))


def test_status_updates_skip_reasons_and_the_postmortem_draft_are_escaped(db_url, make_bot, slack):
    bot = _bot(db_url, make_bot)
    slack.add_user(ALICE, "<!here> alice & co", locale="en-US")  # a display name is outside text too
    start = _mark(slack)
    bot.command("incident declare sev4 API slow", user=ALICE)
    settle(bot)
    header = header_of(slack, "INC-1")
    status = "<!channel> rolled back, see <https://evil.example|the dashboard> & wait"
    bot.command(f"incident status INC-1 {shlex.quote(status)}", user=ALICE)
    checklist = checklist_in(slack, header)
    reason = "<@U0BOB> said so <!subteam^S123>"
    skip(bot, slack, checklist, "confirm-alert", ALICE, reason)
    settle(bot)
    bot.command("incident resolve", user=ALICE)
    settle(bot)
    texts = received(slack, start)
    assert_never_markup(texts)
    thread = [t for m in replies(slack, header) for t in [m.text, *parsed_texts(m.blocks)]]
    assert shows(thread, status)  # the status update in the thread
    assert shows(parsed_texts(checklist_in(slack, header).blocks), reason)  # the checklist's skip line
    draft = next(m for m in replies(slack, header) if "Postmortem" in m.text or "ポストモーテム" in m.text)
    body = json.dumps(draft.blocks, ensure_ascii=False)
    assert escape_text(status) in body and escape_text(reason) in body  # the draft, in its code block


def test_the_declare_form_and_an_alertmanager_payload_are_outside_text_too(db_url, make_bot, slack):
    bot = _bot(db_url, make_bot)
    start = _mark(slack)
    before = set(slack.views)
    bot.command("incident declare", user=ALICE)
    view_id = slack.wait_for(lambda: next(iter(set(slack.views) - before), None))
    title = "<!here> checkout <https://evil.example|down>"
    values = {
        "severity": {
            Action.INCIDENT_SEVERITY: {"type": "static_select", "selected_option": {"value": "sev4"}}
        },
        "title": {Action.INCIDENT_TITLE: {"type": "plain_text_input", "value": title}},
    }
    status, _ = submit_view(bot, slack.views[view_id], values, ALICE)
    assert status == 200
    settle(bot)
    assert shows([header_of(slack, "INC-1").text], title)
    hostile = "<!channel> <https://evil.example|Grafana>"
    payload = {
        "version": "4", "status": "firing", "receiver": "taisun", "groupKey": "k",
        "alerts": [{
            "status": "firing", "startsAt": "2026-11-28T02:00:00Z", "fingerprint": "f00d",
            "generatorURL": "http://prometheus.local/graph?g0.expr=up&x=|<!channel>",
            "labels": {"alertname": "Disk <!everyone>", "instance": hostile, "severity": "critical",
                       "job": "<@U0BOB>"},
            "annotations": {"summary": hostile, "description": "<!subteam^S123> & more"},
        }],
    }  # fmt: skip
    assert post_alerts(bot, payload, ALERT_TOKEN)[0] == 200
    settle(bot)
    texts = received(slack, start)
    assert_never_markup(texts)
    assert shows(texts, hostile) and shows(texts, "Disk <!everyone>")
    # Its source link cannot end early or hide where it leads: it names the host.
    assert any("<http://prometheus.local/graph?g0.expr=up&amp;x=%7C&lt;!channel&gt;|source (prometheus.local)>" in t
               for t in texts)  # fmt: skip


def test_plain_text_fields_carry_the_words_unescaped(db_url, make_bot, slack):
    """Buttons, titles and options parse nothing: they show the text as it is, never &lt; entities."""
    bot = _bot(db_url, make_bot)
    start = _mark(slack)
    bot.command("incident declare sev4 'A & B <fast>'", user=ALICE)
    bot.command("incident declare sev4 'C & D'", user=ALICE)
    settle(bot)
    picker = bot.command("incident status something", user=ALICE)  # two open: its buttons name them
    settle(bot)
    with slack._lock:  # noqa: SLF001
        sent = [params for method, params in slack.calls[start:] if method in WATCHED]
    buttons = plain_texts(picker) + plain_texts(sent)
    assert "INC-1 A & B <fast>" in buttons
    assert not any("&amp;" in b or "&lt;" in b for b in buttons)


# -------------------------------------------------------------------- every message builder


def _builders_output(text: str, lang: str) -> dict[str, Any]:
    """Every Block Kit builder, fed the person's `text` wherever it takes plain text, in `lang`."""
    now = datetime.now(UTC)
    flow = load_runbook(Path(__file__).parent.parent / "runbooks" / "incident-response.yml")
    job = SimpleNamespace(
        id="0123456789abcdef", state="failed", dry_run=False, requested_by=ALICE, approved_by=CAROL,
        created_at=now, expires_at=now, started_at=now, finished_at=now, environment="staging",
        # Stored as the bot stores them: rendered by t() (or escaped) when written.
        progress={"fields": [(t("op.field.version", lang), escape(text))], "steps": [{"text": escape(text), "status": "failed"}]},
        result=str(t("job.result.unexpected", lang, error=text)), lease_expires_at=None,
        # A person's lock reason, shown on the card of a job that goes through their own lock.
        params={"through_own_lock": {"reason": text}},
    )  # fmt: skip
    description = f"Deploy {text}"
    lock = LockInfo("staging", ALICE, text, text, "", now, now + timedelta(minutes=5))
    inc = IncidentView(
        id=1, ref="INC-1", title=text, severity="sev4", state="open", phase="Triage", phases=flow.phases or [],
        commander=ALICE, scribe="", comms="", status_text=text, status_by=ALICE, status_at=now, detected_at=now,
        declared_at=now, acknowledged_at=None, mitigated_at=None, resolved_at=None, environment="staging",
    )  # fmt: skip
    step = next(iter(flow.steps))
    run = RunView(
        id="run-1", runbook=flow, environment="staging", drill=True, state="open", started_by=ALICE,
        created_at=now, incident_ref="INC-1", current_phase="Detection",
        steps={step.id: StepView(state="skipped", actor_id=ALICE, reason=text, updated_at=now)},
    )  # fmt: skip
    group = AlertGroupView(
        id=7, alertname=text, firing=9, resolved=1, severity=text[:32], summary=text, instances=[text] * 5,
        runbook_id="performance-degradation", runbook_title=text, generator_url=f"http://prometheus.local/{text}",
        since=now,
    )  # fmt: skip
    audit_row = SimpleNamespace(ts=now, actor_id=ALICE, action="lock.acquired", environment="staging",
                                outcome="ok", detail=text)  # fmt: skip
    status_row = {"name": "staging", "branch": "main", "url": "http://x", "health": text, "healthy": False,
                  "version": text, "lock": lock.describe(lang)}  # fmt: skip
    # Each is what a message or view payload carries: `text` (the fallback) and blocks.
    return {
        "job card": {
            "text": job_text(job, description, lang),
            "blocks": job_blocks(job, description, lang=lang),
        },
        "jobs list": jobs_list_blocks([job], lambda j, _lang: description, lang),
        "audit": audit_blocks([audit_row], "staging", lang),
        "status": status_blocks([status_row], lang),
        "lock refusal": [
            {"text": EnvironmentLocked(lock).message(lang)},
            blocks.error(text),
            blocks.message(text),
        ],
        "incident header": {"text": incident_text(inc, lang), "blocks": incident_header_blocks(inc, lang)},
        "incident list": incident_list_blocks([inc], lang=lang),
        "checklist": {"text": checklist_text(run, lang), "blocks": checklist_blocks(run, lang)},
        "alert group": {"text": alert_group_text(group, lang), "blocks": alert_group_blocks(group, lang)},
        "follow-ups": followup_blocks(
            "INC-1", [(1, text, ""), (2, text, "https://github.local/o/r/issues/2")], lang
        ),
        "postmortem": markdown_blocks("Postmortem", f"# INC-1: {text}\n- {text}"),
        "modals": [skip_modal(text, "m", lang), version_modal(text, "m", lang)],
    }


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(text=hostile_texts(), lang=st.sampled_from(["en", "ja"]))
def test_every_message_builder_shows_a_persons_text_as_text_never_as_markup(text, lang):
    for name, output in _builders_output(text, lang).items():
        texts = parsed_texts(output)
        assert_never_markup(texts)
        assert shows(texts, text[:32] if name == "alert group" else text), name


# -------------------------------------------------------------------- the property


HOSTILE_RUN = settings(
    max_examples=4, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@pytest.fixture
def hostile_bot(db_url: str, make_bot: Any) -> Bot:
    """One bot per database for all of the property's examples (each example leaves no lock behind)."""
    return _bot(db_url, make_bot)


@HOSTILE_RUN
@given(text=hostile_texts())
def test_whatever_a_person_types_every_command_that_echoes_it_shows_it_as_text(hostile_bot, slack, text):
    """lock, deploy --force, incident declare / status / skip reason, Home, usage errors, then resolve:
    every field Slack received is free of the person's markup, and the person's words are there to read."""
    bot = hostile_bot
    start = _mark(slack)
    quoted = shlex.quote(text)
    acks = [bot.command(f"lock staging {quoted}", user=ALICE)]
    acks.append(bot.command("deploy staging v1.2.3", user=CAROL))  # refused: names the lock and its reason
    acks.append(bot.command("unlock staging", user=ALICE))
    acks.append(bot.command(f"deploy development v1.2.3 --force {quoted}", user=ALICE))
    settle(bot)
    job = _newest_job(bot)
    assert job.operation == "deploy" and job.state == "pending_approval", job.result
    card = next(m for m in slack.channel_messages(CHANNEL) if m.ts == job.message_ts)
    assert shows([card.text, *parsed_texts(card.blocks)], text)  # the freeze override names the reason
    bot.click(Action.REJECT, job.id, ALICE, card)  # the requester withdraws it
    acks.append(bot.command(f"incident declare sev4 {quoted}", user=ALICE))
    settle(bot)
    number = _newest_incident(bot)
    header = header_of(slack, f"INC-{number}")
    acks.append(bot.command(f"incident status INC-{number} {quoted}", user=ALICE))
    skip(bot, slack, checklist_in(slack, header), "confirm-alert", ALICE, text)
    settle(bot)
    bot.svc.home.publish(CAROL)  # the Home tab lists the open incident
    home = parsed_texts(slack.home[CAROL])
    # Usage errors echo what was typed back to the person who typed it.
    acks += [bot.command(f"deploy staging {quoted}", user=ALICE), bot.command(quoted, user=ALICE)]
    bot.click(Action.INCIDENT_RESOLVE, str(incident(bot, number).id), ALICE, header)
    settle(bot)
    texts = received(slack, start) + [t for a in acks for t in parsed_texts(a)]
    assert_never_markup(texts)
    assert shows([header.text], text) and shows([a["text"] for a in acks[:1]], text) and shows(home, text)
    thread = [t for m in replies(slack, header) for t in [m.text, *parsed_texts(m.blocks)]]
    assert shows(thread, text)  # status update, skip line, postmortem draft


def _newest_job(bot: Bot) -> Job:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with bot.svc.sessions() as s:
            job = s.scalars(select(Job).order_by(Job.created_at.desc())).first()
        if job is not None and job.message_ts:
            return job
        time.sleep(0.05)
    raise AssertionError("no job card")


def _newest_incident(bot: Bot) -> int:
    from bot.core.store.models import Incident

    with bot.svc.sessions() as s:
        return int(s.scalar(select(Incident.number).order_by(Incident.number.desc())) or 0)


# -------------------------------------------------------------------- GitHub and the terminal


def test_a_follow_up_issue_never_mentions_anyone_on_github(db_url, make_bot, slack, github_issues):  # noqa: F811
    bot = fast(make_bot(db_url, github_token="ghp_" + "x" * 36, github_api_url=github_issues.url))
    bot.command("incident declare sev4 '@octocat and @taisun/sre-leads: checkout <!here> down'", user=ALICE)
    settle(bot)
    bot.command("incident resolve", user=ALICE)
    settle(bot)
    followups = next(m for m in replies(slack, header_of(slack, "INC-1")) if m.text.startswith("Follow-ups"))
    button = next(b["accessory"] for b in followups.blocks if b.get("accessory"))
    click(bot, Action.INCIDENT_FOLLOWUP_ISSUE, button["value"], ALICE, followups)
    (issue,) = github_issues.created
    # The words are all there, as typed; a zero-width joiner after each @ means GitHub mentions nobody.
    assert "@\u200doctocat and @\u200dtaisun/sre-leads: checkout <!here> down" in issue["body"]
    assert not re.search(r"(?<!\w)@[A-Za-z0-9]", issue["title"] + issue["body"])


def test_the_shell_draws_escaped_text_as_the_person_typed_it(tmp_path):
    """The terminal reads Slack's escaped text back as typed: no &lt; entities, no link made of a reason."""
    reason = "<!channel> see <https://evil.example/login|the runbook> & more"
    script = f"/taisun lock stg {shlex.quote(reason)}\n/taisun incident declare sev4 'R&D <b> down'\n"
    result = run_cli(
        ["shell", "--database", f"sqlite:///{tmp_path}/shell.db"],
        stdin=script,
        TAISUN_CONFIG="",
        GITHUB_TOKEN="",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert reason in out and "R&D <b> down" in out  # what Slack gets escaped, the terminal shows as typed
    assert "&lt;" not in out and "&amp;" not in out


# -------------------------------------------------------------------- small truths


def test_the_lock_reminder_and_expiry_speak_the_readers_language_and_escape_the_reason(
    db_url, make_bot, slack
):
    def japanese(cfg: dict[str, Any]) -> None:
        cfg["language"] = "ja"

    bot = make_bot(db_url, config_mutate=japanese)
    slack.add_user(ALICE, "alice", locale="ja-JP")
    reason = "<!channel> maintenance <https://evil.example|runbook>"
    bot.command(f"lock stg {shlex.quote(reason)}", user=ALICE)
    with bot.svc.sessions.begin() as s:  # the lock is about to expire
        s.execute(update(Lock).values(expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    start = _mark(slack)
    bot.svc.runner.sweep()
    bot.settle()
    [reminder] = [m for m in slack.channel_messages("DU0ALICE") if "⏰" in m.text]
    assert "*staging* のロック" in reminder.text and "期限が切れます" in reminder.text
    assert escape_text(reason) in reminder.text
    with bot.svc.sessions.begin() as s:
        s.execute(update(Lock).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    bot.svc.runner.sweep()
    bot.settle()
    [expired] = [m for m in slack.channel_messages(CHANNEL) if "🔓" in m.text]
    assert "期限が切れて解除されました" in expired.text and "<@U0ALICE>" in expired.text
    assert escape_text(reason) in expired.text
    assert_never_markup(received(slack, start))


def test_the_lock_reminder_dm_follows_the_holders_locale_in_an_english_workspace(db_url, make_bot, slack):
    bot = make_bot(db_url)
    slack.add_user(ALICE, "alice", locale="ja-JP")
    bot.svc.lang_for(ALICE)  # Slack is asked once; the next message knows her locale
    bot.settle()
    bot.command("lock stg load test", user=ALICE)
    with bot.svc.sessions.begin() as s:
        s.execute(update(Lock).values(expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    bot.svc.runner.sweep()
    bot.settle()
    [reminder] = [m for m in slack.channel_messages("DU0ALICE") if "⏰" in m.text]
    assert "期限が切れます" in reminder.text and "load test" in reminder.text


def test_an_app_mention_is_answered_in_the_workspace_language(db_url, make_bot, slack):
    def japanese(cfg: dict[str, Any]) -> None:
        cfg["language"] = "ja"

    bot = make_bot(db_url, config_mutate=japanese)
    event = {"type": "app_mention", "user": ALICE, "text": "<@UBOT> help", "channel": CHANNEL,
             "ts": "1700000000.000100", "event_ts": "1700000000.000100"}  # fmt: skip
    body, ctype = signing.event_callback(event, event_id="Ev0MENTION1")
    assert bot.post(body, ctype)[0] == 200
    reply = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if "/taisun help" in m.text), None)
    )
    assert "できること" in reply.text and reply.thread_ts == "1700000000.000100"
