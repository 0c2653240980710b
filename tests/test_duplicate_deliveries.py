"""Slack delivers some requests twice (retries, Socket Mode redelivery, two replicas): each runs once."""

from __future__ import annotations

import json
import re
import threading

import pytest
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Job
from bot.slack import signing
from tests.harness import ALICE, BOB, CHANNEL, NAMES, Bot, buttons, last_card

RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


def _duplicates(bot: Bot, kind: str) -> float:
    """taisun_duplicate_deliveries_total{kind} as /metrics shows it."""
    status: list[str] = []
    body = b"".join(
        bot.wsgi(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda s, h, exc_info=None: status.append(s)
        )
    ).decode()
    m = re.search(rf'^taisun_duplicate_deliveries_total\{{kind="{kind}"\}} (\S+)$', body, re.M)
    return float(m[1]) if m else 0.0


def _replicas(db_url: str, make_bot) -> tuple[Bot, Bot]:  # type: ignore[no-untyped-def]
    """Two bots on one database with one signing secret, as behind a load balancer."""
    first = make_bot(db_url)
    return first, make_bot(db_url, settings=first.settings)


def test_a_slash_command_delivered_to_two_replicas_makes_one_job_and_one_card(db_url, make_bot, slack):
    a, b = _replicas(db_url, make_bot)
    before = _duplicates(a, "command")
    body, ctype = signing.slash_command(
        "deploy prod v1.2.3", user_id=ALICE, user_name="alice", channel_id=CHANNEL,
        response_url=slack.response_url("alice-1"), trigger_id="13345224609.738474920.8088930838d88f008e0",
    )  # fmt: skip
    answers: list[tuple[int, bytes]] = []
    go = threading.Barrier(2)

    def deliver(bot: Bot, extra: dict[str, str]) -> None:
        go.wait()
        answers.append(bot.post(body, ctype, extra=extra))

    threads = [
        threading.Thread(target=deliver, args=(a, {})),
        threading.Thread(target=deliver, args=(b, RETRY)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    a.settle()
    b.settle()
    with a.svc.sessions() as s:
        jobs = list(s.scalars(select(Job)))
        requested = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "deploy.requested")))
    assert len(jobs) == 1 and len(requested) == 1
    assert [j.state for j in jobs] == ["pending_approval"]
    assert len([m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)]) == 1
    statuses = sorted(answers)
    assert [s for s, _ in statuses] == [200, 200]
    assert (
        sorted(json.loads(d).get("text", "") if d else "" for _, d in answers)[0] == ""
    )  # the repeat: quiet
    assert any("Checking" in (json.loads(d).get("text", "") if d else "") for _, d in answers)
    assert _duplicates(a, "command") - before == 1  # both replicas live in this process: one registry


def test_the_same_delivery_retried_to_one_replica_is_answered_quietly(db_url, make_bot, slack):
    bot = make_bot(db_url)
    body, ctype = signing.slash_command(
        "lock staging maintenance", user_id=ALICE, user_name="alice", channel_id=CHANNEL,
        response_url=slack.response_url("alice-2"), trigger_id="trigger-lock-once",
    )  # fmt: skip
    first = bot.post(body, ctype)
    again = bot.post(body, ctype, extra=RETRY)
    bot.settle()
    assert first[0] == 200 and "locked" in json.loads(first[1])["text"].lower()
    assert again == (200, b"")
    with bot.svc.sessions() as s:
        assert len(list(s.scalars(select(AuditEvent).where(AuditEvent.action == "lock.acquired")))) == 1
    # A new command (a new trigger_id) is a new request, not a repeat.
    assert f"is locked by <@{ALICE}>" in bot.command("lock staging again", user=ALICE)["text"]


def test_a_retried_approve_click_approves_once_and_says_nothing_the_second_time(db_url, make_bot, slack):
    a, b = _replicas(db_url, make_bot)
    a.command("deploy prod v1.2.3", user=ALICE)
    a.settle()
    card = last_card(slack)
    before = _duplicates(a, "click")
    body, ctype = signing.block_action(
        Action.APPROVE, buttons(card)[Action.APPROVE], user_id=BOB, user_name=NAMES[BOB],
        channel_id=CHANNEL, message_ts=card.ts, response_url=slack.response_url("bob-approve"),
    )  # fmt: skip
    assert a.post(body, ctype)[0] == 200
    assert b.post(body, ctype, extra=RETRY) == (200, b"")
    a.settle()
    b.settle()
    with a.svc.sessions() as s:
        approved = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "deploy.approved")))
        job = s.scalars(select(Job)).one()
    assert len(approved) == 1 and job.approved_by == BOB
    assert slack.ephemeral(BOB) == []  # no "Already approved" for a click Bob made once
    assert _duplicates(a, "click") - before == 1


def test_delivery_keys_are_forgotten_after_their_ttl(db_url, make_bot):
    from datetime import UTC, datetime

    from sqlalchemy import update

    from bot.core import dedupe
    from bot.core.store.models import DedupeKey

    bot = make_bot(db_url, start=False)
    assert dedupe.first_time(bot.svc.sessions, "command:old-trigger")
    assert dedupe.first_time(bot.svc.sessions, "command:new-trigger")
    with bot.svc.sessions.begin() as s:
        s.execute(
            update(DedupeKey)
            .where(DedupeKey.key == "command:old-trigger")
            .values(created_at=datetime.now(UTC) - dedupe.TTL - dedupe.TTL / 10)
        )
    bot.svc.runner.sweep()
    with bot.svc.sessions() as s:
        assert list(s.scalars(select(DedupeKey.key))) == ["command:new-trigger"]


def test_a_delivery_keys_unflushed_commit_leaves_the_connection_flushing_every_later_commit(db_url):
    """PostgreSQL: the key's own commit does not wait for the disk, which is safe only because the
    request's later writes do (their flush carries the key's record). So the setting must end with the
    key's statement: the connection it goes back to the pool as commits a job synchronously again."""
    if not db_url.startswith("postgresql"):
        pytest.skip("synchronous_commit is PostgreSQL's")
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import sessionmaker

    from bot.core import dedupe

    engine = create_engine(db_url, pool_size=1, max_overflow=0)  # the one connection, every time
    try:
        sessions = sessionmaker(bind=engine)
        assert dedupe.first_time(sessions, "command:unflushed-1")
        assert not dedupe.first_time(sessions, "command:unflushed-1")
        with engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
            assert (
                conn.execute(
                    text("SELECT count(*) FROM dedupe_keys WHERE key = 'command:unflushed-1'")
                ).scalar_one()
                == 1
            )
    finally:
        engine.dispose()
