"""Faults in what the bot talks to: its database, Slack's rate limits, a revoked token."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url, select

from bot.core.store.models import AuditEvent, Incident, Job
from tests.conftest import PG_ADMIN_URL, PG_OK
from tests.harness import ALICE, CHANNEL, text_of


def _get(bot, path: str) -> tuple[int, dict]:
    status: list[str] = []
    body = b"".join(
        bot.wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda s, h, exc_info=None: status.append(s))
    )
    return int(status[0].split()[0]), json.loads(body)


def _allow_connections(db: str, allow: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))


@pytest.fixture
def own_pg_database() -> Iterator[tuple[str, str]]:
    """A migrated PostgreSQL database of this test's own (its connections get cut): (url, name)."""
    if not PG_OK:
        pytest.skip("needs PostgreSQL")
    from bot.core.store.db import make_engine, migrate
    from tests.conftest import create_pg_database, drop_pg_database

    url = create_pg_database()
    e = make_engine(url)
    migrate(e)
    e.dispose()
    try:
        yield url, str(make_url(url).database)
    finally:
        drop_pg_database(url)


def test_database_down_means_nothing_runs_unaudited_and_recovery_is_automatic(make_bot, own_pg_database):
    url, db = own_pg_database
    try:
        bot = make_bot(url)
        _allow_connections(db, False)
        reply = bot.command("deploy stg v1.2.3", user=ALICE)
        assert "cannot reach my database" in reply["text"] and "nothing was run" in reply["text"]
        assert "cannot reach my database" in bot.command("lock prod test")["text"]
        status, health = _get(bot, "/health")
        assert status == 503 and health["database"].startswith("unreachable")
        _allow_connections(db, True)
        assert _get(bot, "/health")[0] == 200
        assert "Checking" in bot.command("deploy stg v1.2.3", user=ALICE)["text"]
        bot.settle()
        with bot.svc.sessions() as s:
            assert len(s.scalars(select(Job)).all()) == 1  # only the request made after recovery exists
    finally:
        _allow_connections(db, True)
        bot.stop()


def test_slack_rate_limits_delay_the_card_but_not_the_ack_and_it_still_arrives(db_url, make_bot, slack):
    from bot.core import metrics

    bot = make_bot(db_url)
    before = metrics.SLACK_RETRIES.labels("rate_limited")._value.get()
    slack.fail("chat.postMessage", 429, times=2, retry_after=1)
    ack = bot.command("deploy stg v1.2.3", user=ALICE)  # answered before any Slack call
    assert "Checking" in ack["text"]
    bot.settle(30)
    # the card in its final state (no GITHUB_TOKEN here: the deploy is a simulation)
    assert any("Simulated — nothing was changed" in text_of(m) for m in slack.channel_messages(CHANNEL))
    assert metrics.SLACK_RETRIES.labels("rate_limited")._value.get() >= before + 2


def test_slack_5xx_and_dropped_connections_are_retried(db_url, make_bot, slack):
    bot = make_bot(db_url)
    slack.fail("chat.postMessage", 503, times=1)
    slack.fail("chat.update", 0, times=1)  # connection dropped
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    # the card in its final state (no GITHUB_TOKEN here: the deploy is a simulation)
    assert any("Simulated — nothing was changed" in text_of(m) for m in slack.channel_messages(CHANNEL))


def test_a_revoked_slack_token_turns_health_red_and_is_logged_loudly(db_url, make_bot, slack, caplog):
    bot = make_bot(db_url)
    assert bot.wsgi.auth.check() == "ok"
    slack.revoked = True
    with caplog.at_level("ERROR"):
        assert bot.wsgi.auth.check() == "token_revoked"
    status, health = _get(bot, "/health")
    assert status == 503 and health["slack"] == "token_revoked"
    assert any("SLACK TOKEN REJECTED" in r.getMessage() for r in caplog.records)


def test_a_slow_ok_from_before_a_revocation_does_not_turn_health_green_again(db_url, make_bot, slack):
    """The watch's loop and /health's callers check concurrently: the newest check's answer stands."""
    import threading

    bot = make_bot(db_url)
    watch = bot.wsgi.auth
    assert watch.check() == "ok"
    slow = slack.hold_answer("auth.test")  # Slack says "ok" to this one; the answer is late on the wire
    first = threading.Thread(target=watch.check)
    first.start()
    assert slow.decided.wait(10)
    slack.revoked = True
    assert watch.check() == "token_revoked"
    slow.release.set()
    first.join(10)
    status, health = _get(bot, "/health")
    assert status == 503 and health["slack"] == "token_revoked"


def test_a_request_that_waited_past_slacks_deadline_runs_nothing_and_says_so(db_url, make_bot, slack):
    """Slack tells the user a command failed after 3 s; the bot must not then run it anyway."""
    from bot.core.blocks import Action
    from tests.harness import BOB, buttons, last_card

    normal = make_bot(db_url)
    normal.command("deploy prod v1.2.3", user=ALICE)
    normal.settle()
    card = last_card(slack)
    assert Action.APPROVE in buttons(card)

    def instant_deadline(cfg):  # type: ignore[no-untyped-def]
        cfg["slack"]["ack_deadline_seconds"] = 1e-9  # every request arrives "too late"

    late = make_bot(db_url, config_mutate=instant_deadline)
    with late.svc.sessions() as s:
        jobs_before = len(list(s.scalars(select(Job))))
        audit_before = len(list(s.scalars(select(AuditEvent))))
    answer = late.command("deploy prod v1.2.2", user=ALICE)
    assert answer == {}  # acked empty: Slack already shows its own timeout
    late.click(Action.APPROVE, buttons(card)[Action.APPROVE], BOB, card)
    late.settle()
    with late.svc.sessions() as s:
        jobs = list(s.scalars(select(Job)))
        assert len(list(s.scalars(select(AuditEvent)))) == audit_before  # nothing happened to audit
    assert len(jobs) == jobs_before  # the late deploy made no job
    assert [j.state for j in jobs] == ["pending_approval"]  # the late click approved nothing

    normal.command('incident declare sev3 "checkout slow"', user=ALICE)
    normal.settle()
    with normal.svc.sessions() as s:
        inc = s.scalars(select(Incident)).one()
    late.click(Action.INCIDENT_ACK, str(inc.id), BOB)  # an incident button, too
    late.settle()
    with late.svc.sessions() as s:
        assert s.get(Incident, inc.id).acknowledged_at is None  # the late click acknowledged nothing
    told = [m.text for m in slack.ephemeral()]
    assert sum("did nothing" in text for text in told) == 3, told


def test_after_the_database_restarts_the_next_command_works(make_bot, own_pg_database):
    """Every server connection dies (a restart, a failover); the pool must not hand a dead one to a user."""
    import time

    url, db = own_pg_database
    bot = make_bot(url)
    try:
        assert "Checking" in bot.command("deploy stg v1.2.3", user=ALICE)["text"]
        bot.settle()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (db,)
            ).fetchone()
        assert killed and killed[0] >= 1
        time.sleep(3)  # the server is back at once; the bot's pool still holds the dead connections
        assert "Checking" in bot.command("deploy stg v1.2.2", user=ALICE)["text"]
        assert _get(bot, "/health")[0] == 200
        bot.settle()
        with bot.svc.sessions() as s:
            assert len(s.scalars(select(Job)).all()) == 2
    finally:
        bot.stop()
