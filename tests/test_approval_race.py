"""Two approvers click Approve on the same card at once: one approves, the other is told who did."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Job
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, BOB, CAROL, buttons, last_card


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite writers never overlap
def test_the_approver_who_lost_the_race_is_told_who_approved_not_that_production_is_locked(
    db_url, make_bot, slack
):
    bot = make_bot(db_url)
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card = last_card(slack)
    job_id = buttons(card)[Action.APPROVE]

    # Both approvals find production unlocked, then wait to insert the lock row: the race the
    # loser used to lose on the lock's primary key, naming the very job it clicked.
    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE locks IN SHARE MODE")  # reads pass, inserts wait
        clicks = [
            threading.Thread(target=bot.click, args=(Action.APPROVE, job_id, who, card))
            for who in (BOB, CAROL)
        ]
        for c in clicks:
            c.start()
        with psycopg.connect(db_url) as watcher:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                row = watcher.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'locks'::regclass"
                ).fetchone()
                if row and row[0] >= 2:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the two approvals never met at the lock")
        holder.rollback()
    for c in clicks:
        c.join(15)
    bot.settle()

    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
        approvals = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "deploy.approved")))
    assert job is not None and job.approved_by in (BOB, CAROL) and len(approvals) == 1
    loser = CAROL if job.approved_by == BOB else BOB
    told = [m.text for m in slack.ephemeral(loser)]
    assert len(told) == 1, told
    assert f"Already approved by <@{job.approved_by}>" in told[0], told
    assert "locked" not in told[0]


@pytest.mark.parametrize(("outcome", "said"), [("success", "it is done"), ("failure", "it failed")])
def test_an_approver_who_clicks_after_the_deploy_finished_is_told_who_approved_and_how_it_ended(
    db_url, make_bot, slack, github, outcome, said
):
    """The loser of an approval race on a fast deploy reads the job after it has finished: it still
    learns who approved it, not a bare "Already done" (CI caught the race saying exactly that)."""
    github.run_script = [("completed", outcome)]
    bot = make_bot(db_url, github_token=GITHUB_TOKEN, github_api_url=github.url)
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card = last_card(slack)
    job_id = buttons(card)[Action.APPROVE]
    bot.click(Action.APPROVE, job_id, BOB, card)
    bot.settle()
    with bot.svc.sessions() as s:
        assert s.get(Job, job_id).state in ("succeeded", "failed")

    bot.click(Action.APPROVE, job_id, CAROL, card)
    bot.settle()
    told = [m.text for m in slack.ephemeral(CAROL)]
    assert told == [f":warning: Already approved by <@{BOB}>; {said}."], told
