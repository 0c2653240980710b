"""Security operations (#18): the guide's periodic tasks, posted once when due, marked done or snoozed by
their owners, nudged when overdue, listed by /taisun security and shown on the Home tab.

Time is moved by the tests (the sweep's `at`), never slept; every step is checked in the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, SecurityOccurrence
from bot.security import service as security
from bot.security.tasks import TASK_PREFIX
from tests.chatops_helpers import click, replies, settle, submit_view, sync_of
from tests.harness import ALICE, BOB, CAROL, CHANNEL, MALLORY, buttons, text_of

SEC = "C0SECURITY"


def one_weekly_task(cfg: dict[str, Any]) -> None:
    """Only a manual weekly task (Wednesdays 10:00, overdue after 2 days), owned by bob, in #security."""
    cfg["security"] = {
        "channel": SEC,
        "tasks": [
            {"id": "dependency_scan", "enabled": False},
            {"id": "secret_rotation", "enabled": False},
            {"id": "access_review", "enabled": False},
            {"id": "penetration_test", "cadence": "weekly", "weekday": "wed", "time": "10:00", "owners": [BOB],
             "overdue_after_days": 2},
        ],
    }  # fmt: skip


def fast(bot: Any) -> Any:
    """Messages without the 1 s spacing, and sent even by a bot made with start=False (whose sweeps and
    job workers stay off, so only the test moves time)."""
    for prefix in (TASK_PREFIX, "secreview"):
        sync_of(bot).syncers[prefix].min_interval = 0.0
    bot.svc.outbox.start()
    return bot


def posts(slack: Any) -> list[Any]:
    return [m for m in slack.channel_messages(SEC) if not m.thread_ts and "Penetration test" in m.text]


def actions(bot: Any, prefix: str = "security.") -> list[str]:
    with bot.svc.sessions() as s:
        return [
            a for a in s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)) if a.startswith(prefix)
        ]


def occurrences(bot: Any) -> list[SecurityOccurrence]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(SecurityOccurrence).order_by(SecurityOccurrence.due_at)))


def make_due(bot: Any, weeks_ago: int = 0) -> SecurityOccurrence:
    """Schedule the task from a moment long enough ago, then sweep now: it is due (overdue when weeks_ago).
    The bot is made with start=False, so no sweep of its own (at the real time) schedules it first."""
    now = datetime.now(UTC)
    security.sweep(bot.svc, at=now - timedelta(days=7 * weeks_ago + 7))
    security.sweep(bot.svc, at=now)
    (due,) = [o for o in occurrences(bot) if o.state == "due"]
    return due


def test_a_due_task_is_posted_once_by_two_replicas_and_never_again_after_a_restart(db_url, make_bot, slack):
    # Two replicas that sweep only when the test says (start=False), weeks ahead of the real time.
    one, two = fast(make_bot(db_url, config_mutate=one_weekly_task, start=False)), None
    start = datetime.now(UTC) + timedelta(days=60)
    security.sweep(one.svc, at=start)
    (scheduled,) = occurrences(one)
    local = scheduled.due_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert scheduled.state == "scheduled" and (local.strftime("%a %H:%M"), local.second) == ("Wed 10:00", 0)
    assert timedelta(0) < scheduled.due_at - start <= timedelta(days=7)
    assert security.sweep(one.svc, at=scheduled.due_at - timedelta(seconds=1))["due"] == 0
    two = fast(make_bot(db_url, settings=one.settings, start=False))  # a second replica, same database
    assert security.sweep(one.svc, at=scheduled.due_at)["due"] == 1
    assert security.sweep(two.svc, at=scheduled.due_at + timedelta(seconds=5))["due"] == 0
    settle(one, two)
    (post,) = posts(slack)
    assert "is due" in post.text or "Penetration test" in text_of(post)
    assert "<@U0BOB>" in text_of(post)  # the owner is mentioned
    assert set(buttons(post)) == {Action.SECURITY_DONE, Action.SECURITY_SNOOZE}
    one.stop()
    # A restart (running: its own sweeps at the real time change nothing here): nothing is posted twice.
    restarted = fast(make_bot(db_url, settings=two.settings))
    security.sweep(restarted.svc, at=scheduled.due_at + timedelta(minutes=2))
    settle(restarted, two)
    assert len(posts(slack)) == 1 and actions(two).count("security.task_due") == 1
    # The next one is scheduled a week later; when it comes with this one still open, this one is missed.
    nxt = scheduled.due_at + timedelta(days=7)
    assert [o.due_at for o in occurrences(two) if o.state == "scheduled"] == [nxt]
    security.sweep(two.svc, at=nxt + timedelta(minutes=1))
    settle(restarted, two)
    first, second = posts(slack)
    assert "was not done before the next one" in text_of(first) and not buttons(first)
    assert "is due" in text_of(second)
    assert actions(two).count("security.task_missed") == 1 and actions(two).count("security.task_due") == 2


def test_owners_mark_it_done_with_a_note_others_are_refused_and_every_step_is_audited(
    db_url, make_bot, slack
):
    bot = fast(make_bot(db_url, config_mutate=one_weekly_task, start=False))
    make_due(bot)
    bot.svc.start()
    settle(bot)
    (post,) = posts(slack)
    # Mallory is neither an owner nor an admin: refused, and the refusal is in the audit log.
    click(bot, Action.SECURITY_DONE, buttons(post)[Action.SECURITY_DONE], MALLORY, post)
    slack.wait_for(lambda: any("admin" in m.text for m in slack.ephemeral(MALLORY)))
    assert "security.refused" in actions(bot)
    # Bob (the owner) marks it done: a form asks for a note or a link.
    before = set(slack.views)
    click(bot, Action.SECURITY_DONE, buttons(post)[Action.SECURITY_DONE], BOB, post)
    view_id = slack.wait_for(lambda: next(iter(set(slack.views) - before), None))
    view = slack.views[view_id]
    assert view["callback_id"] == Action.SECURITY_DONE_MODAL
    note = "Report: https://pentest.example.com/r/2026 <!channel>"
    status, body = submit_view(
        bot, view, {"note": {Action.SECURITY_NOTE: {"type": "plain_text_input", "value": note}}}, BOB
    )
    assert status == 200 and not body.strip(b"{} \n"), body
    settle(bot)
    done = text_of(posts(slack)[0])
    assert "done" in done and "<@U0BOB>" in done and "https://pentest.example.com/r/2026" in done
    assert "&lt;!channel&gt;" in done and "<!channel>" not in done  # what people type is shown, never parsed
    assert not buttons(posts(slack)[0])
    # Done twice: the second is told who did it.
    reply = bot.command("security done penetration_test again", user=CAROL)  # carol is an admin
    assert "not due now" in reply["text"]
    assert actions(bot).count("security.task_done") == 1
    with bot.svc.sessions() as s:
        row = s.scalars(select(AuditEvent).where(AuditEvent.action == "security.task_done")).one()
    assert row.actor_id == BOB and row.params["note"] == note and row.params["task"] == "penetration_test"


def test_overdue_tasks_are_nudged_once_per_interval_snooze_quiets_them_and_home_shows_them(
    db_url, make_bot, slack
):
    bot = fast(make_bot(db_url, config_mutate=one_weekly_task, start=False))
    other = fast(make_bot(db_url, settings=bot.settings, start=False))
    due = make_due(bot, weeks_ago=2)  # due two to three weeks ago: overdue (after 2 days)
    now = datetime.now(UTC)
    assert (
        security.sweep(bot.svc, at=now + timedelta(minutes=1))["nudged"] == 0
    )  # reminded in the first sweep
    assert security.sweep(other.svc, at=now + timedelta(minutes=2))["nudged"] == 0  # nor by another replica
    settle(bot, other)
    (post,) = posts(slack)
    (nudge,) = replies(slack, post)
    assert "<@U0BOB>" in nudge.text and "overdue" in nudge.text
    assert "Overdue" in text_of(post)
    # The Home tab shows it (and nothing of security when nothing is due; see the next test).
    home = text_of({"blocks": bot.svc.home.view(ALICE, "en")["blocks"]})
    assert "Security tasks" in home and "Penetration test" in home and "overdue" in home
    # Bob snoozes it: a day later it is quiet; after the snooze it comes back once.
    click(bot, Action.SECURITY_SNOOZE, str(due.id), BOB, post)
    slack.wait_for(lambda: any("snoozed until" in m.text for m in slack.ephemeral(BOB)))
    assert security.sweep(bot.svc, at=now + timedelta(hours=23))["nudged"] == 0
    assert security.sweep(bot.svc, at=now + timedelta(hours=25))["nudged"] == 1
    assert security.sweep(other.svc, at=now + timedelta(hours=26))["nudged"] == 0
    settle(bot, other)
    assert len(replies(slack, post)) == 2
    assert [a for a in actions(bot) if a != "security.task_due"] == [
        "security.task_nudged", "security.task_snoozed", "security.task_nudged",
    ]  # fmt: skip


def test_the_task_list_shows_last_done_next_due_and_owners_in_each_readers_language(db_url, make_bot, slack):
    slack.add_user(CAROL, "carol", locale="ja-JP")
    bot = fast(make_bot(db_url))  # the guide's four
    listing = text_of(bot.command("security", user=ALICE))
    for title in ("Dependency scan", "Secret rotation", "Access review", "Penetration test"):
        assert title in listing
    assert "every Monday at 09:00" in listing and "automatic" in listing and "external" in listing
    assert "Never done yet" in listing and "Next due" in listing
    assert "Owners: <@U0CAROL>" in listing  # no owners named: roles.admin
    assert "Owners: <@U0BOB> <@U0CAROL>" in listing  # penetration_test: @sre-leads, resolved
    home = text_of({"blocks": bot.svc.home.view(ALICE, "en")["blocks"]})
    assert "Security tasks" not in home  # nothing due: the Home tab is as it was
    bot.command("help", user=CAROL)
    settle(bot)
    ja = text_of(bot.command("security", user=CAROL))
    assert "依存関係スキャン" in ja and "毎週月曜 09:00" in ja and "担当" in ja


def test_security_commands_explain_what_to_type(db_url, make_bot, slack):
    bot = make_bot(db_url)
    assert "Unknown task `pentest`" in bot.command("security done pentest")["text"]
    assert "penetration_test" in bot.command("security done pentest")["text"]
    assert "not a number of hours" in bot.command("security snooze secret_rotation soon")["text"]
    assert "Unknown security action `rotate`" in bot.command("security rotate")["text"]
    assert (
        "is not due now; it is next due" in bot.command("security done secret_rotation", user=CAROL)["text"]
    )
    assert "security [list]" in text_of(bot.command("help"))
    assert CHANNEL  # replies stay ephemeral: nothing in the channel
    assert not [m for m in slack.channel_messages(CHANNEL) if "security" in m.text.lower()]
