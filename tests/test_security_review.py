"""The quarterly access review (#18): every role's members resolved through Slack (usergroups.users.list),
each person's last action from the audit log, Keep or Remove per person by reviewers who never decide on
their own access, the list of changes to make, the CSV export, and every step in the audit log."""

from __future__ import annotations

import csv
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AccessReview, AccessReviewItem, AuditEvent
from bot.security import service as security
from tests.chatops_helpers import click, replies, settle
from tests.harness import ALICE, BOB, CAROL, MALLORY, text_of
from tests.procs import run_cli
from tests.test_security_tasks import SEC, fast, occurrences

DAVE = "U0DAVE"


def review_only(cfg: dict[str, Any]) -> None:
    cfg["roles"]["operator"].append(DAVE)
    cfg["roles"]["responder"].append(DAVE)
    cfg["environments"]["staging"]["roles"] = {"operator": ["*"]}
    cfg["security"] = {
        "channel": SEC,
        "tasks": [
            {"id": tid, "enabled": False}
            for tid in ("dependency_scan", "secret_rotation", "penetration_test")
        ],
        "access_review": {"reviewers": [BOB, CAROL], "inactive_days": 90},
    }


def head_of(slack: Any) -> Any:
    return slack.wait_for(
        lambda: next((m for m in slack.channel_messages(SEC) if m.text.startswith("Access review #")), None)
    )


def items(bot: Any) -> list[AccessReviewItem]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(AccessReviewItem).order_by(AccessReviewItem.position)))


def item(bot: Any, role: str, who: str) -> AccessReviewItem:
    return next(i for i in items(bot) if i.role == role and (i.user_id == who or i.entry == who))


def audit_actions(bot: Any) -> list[str]:
    with bot.svc.sessions() as s:
        return [
            a
            for a in s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))
            if a.startswith("security.")
        ]


def test_the_quarterly_review_is_generated_decided_by_others_completed_exported_and_audited(
    db_url, make_bot, slack, tmp_path
):
    bot = fast(make_bot(db_url, config_mutate=review_only))
    bot.command("lock stg load test", user=ALICE)  # alice and bob acted recently; carol and dave did not
    bot.command("unlock stg", user=ALICE)
    bot.command("lock dev", user=BOB)
    groups_before = slack.count("usergroups.users.list")
    security.sweep(bot.svc)  # scheduled: the next quarter, ahead of the real time
    (scheduled,) = [o for o in occurrences(bot) if o.state == "scheduled"]
    assert scheduled.due_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%m-%d %H:%M") in (
        "01-01 10:00", "04-01 10:00", "07-01 10:00", "10-01 10:00",
    )  # fmt: skip
    security.sweep(bot.svc, at=scheduled.due_at)
    settle(bot)
    assert slack.count("usergroups.users.list") > groups_before  # @sre-leads read from Slack, not the cache
    head = head_of(slack)
    pages = replies(slack, head)
    assert len(pages) == 2  # 14 people-and-roles (roles.viewer's `*` among them), 12 to a message
    shown = text_of(head) + "".join(text_of(p) for p in pages)
    assert "started" in shown and "*2* inactive" in shown  # carol and dave: nothing in the audit log
    assert "<@U0BOB> (via @sre-leads)" in shown and "roles.approver" in shown
    assert "`*` — everyone in the workspace" in shown and "environments.staging.roles.operator" in shown
    assert "last action `lock." in shown and "no action in the audit log" in shown and "*inactive*" in shown
    # The task's own message points to the review.
    task_post = next(m for m in slack.channel_messages(SEC) if m.text.startswith("Security task"))
    assert "access review (#1)" in text_of(task_post)

    # Mallory is no reviewer; carol may not decide on her own access; both refusals are audited.
    mine = item(bot, "roles.admin", CAROL)
    click(bot, Action.SECURITY_REVIEW_KEEP, str(mine.id), MALLORY, pages[0])
    click(bot, Action.SECURITY_REVIEW_KEEP, str(mine.id), CAROL, pages[0])
    slack.wait_for(lambda: any("your own access" in m.text for m in slack.ephemeral(CAROL)))
    slack.wait_for(lambda: any("admin" in m.text for m in slack.ephemeral(MALLORY)))
    assert "security.review_refused" in audit_actions(bot) and "security.refused" in audit_actions(bot)
    assert item(bot, "roles.admin", CAROL).decision == ""

    # Bob decides carol's; carol decides the rest: three removals.
    removals = {
        item(bot, "roles.approver", BOB).id,
        item(bot, "environments.staging.roles.operator", "*").id,
        item(bot, "roles.operator", DAVE).id,
    }
    for i in items(bot):
        decider = BOB if i.user_id == CAROL else CAROL
        click(bot, Action.SECURITY_REVIEW_REMOVE if i.id in removals else Action.SECURITY_REVIEW_KEEP, str(i.id),
              decider, pages[0])  # fmt: skip
    settle(bot)
    with bot.svc.sessions() as s:
        review = s.scalars(select(AccessReview)).one()
    assert review.state == "complete" and review.completed_by in (BOB, CAROL)
    head = head_of(slack)
    done = text_of(head)
    assert "Complete" in done
    assert "Remove <@U0BOB> from the Slack user group @sre-leads (it grants *roles.approver*)" in done
    assert "Replace `*` in *environments.staging.roles.operator*" in done
    assert "Remove <@U0DAVE> from *roles.operator* in the config" in done
    assert not any(
        el for p in replies(slack, head) for b in p.blocks if b["type"] == "actions" for el in b["elements"]
    )
    # The quarterly task is done by the review's last decision.
    (occ,) = [o for o in occurrences(bot) if o.id == scheduled.id]
    assert occ.state == "done" and "3 to remove" in occ.note
    # A click after completion changes nothing.
    click(bot, Action.SECURITY_REVIEW_KEEP, str(min(removals)), CAROL, pages[0])
    slack.wait_for(lambda: any("is complete" in m.text for m in slack.ephemeral(CAROL)))

    # The CSV, as an auditor gets it from the command line; the export is audited too.
    out = tmp_path / "review.csv"
    result = run_cli(["security", "review", "export", "-o", str(out)], bot.settings)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 14 and {r["decision"] for r in rows} == {"keep", "remove"}
    assert [(r["role"], r["decision"]) for r in rows if r["role"] == "roles.viewer"] == [
        ("roles.viewer", "keep")
    ]
    bob_approver = next(r for r in rows if r["role"] == "roles.approver" and r["user_id"] == BOB)
    assert bob_approver["entry"] == "'@sre-leads"  # never a spreadsheet formula
    assert bob_approver["change"].startswith("• Remove @")
    assert next(r for r in rows if r["user_id"] == CAROL)["inactive"] == "yes"
    assert next(r for r in rows if r["user_id"] == ALICE)["inactive"] == "no"
    assert audit_actions(bot)[-1] == "security.review_exported"
    expected = {"security.task_due", "security.review_started", "security.review_decided",
                "security.review_completed", "security.task_done"}  # fmt: skip
    assert expected <= set(audit_actions(bot))
    assert audit_actions(bot).count("security.review_decided") == 14


def test_a_review_started_by_hand_says_which_slack_scope_is_missing(db_url, make_bot, slack):
    bot = fast(make_bot(db_url, config_mutate=review_only))
    assert "admin" in bot.command("security review", user=ALICE)["text"]  # alice is no reviewer
    bot.svc.policy.directory.invalidate()
    slack.fail("usergroups.users.list", 200, times=5, error="missing_scope")
    assert "Preparing the access review" in bot.command("security review", user=BOB)["text"]
    settle(bot)
    said = slack.wait_for(lambda: [m for m in slack.ephemeral(BOB) if "usergroups:read" in m.text])
    assert "Could not list the members" in said[0].text
    slack.faults.clear()
    bot.command("security review", user=BOB)
    settle(bot)
    assert "Access review #1 is posted in <#C0SECURITY>" in text_of(slack.ephemeral(BOB)[-1])
    assert head_of(slack)
