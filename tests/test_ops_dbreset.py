"""DB connection reset scenarios against a real PostgreSQL database with real idle, active and fresh sessions.

The operation is reached through the job engine (as a runbook's `db-connection-reset` action
does); approvals are clicked through the Slack path.
"""

# Fixtures are imported from tests.backend_fixtures / tests.test_ops_restart and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import threading
import time

import psycopg
import pytest
from sqlalchemy import select

from bot.backends.pgconn import safe_dsn
from bot.core import locks
from bot.core.blocks import Action
from bot.core.ops import OpError, Request
from bot.core.store.models import AuditEvent, Job
from tests.audit_helpers import exported_audit, facts
from tests.backend_fixtures import free_port, pg_db  # noqa: F401
from tests.harness import ALICE, BOB, CHANNEL, actions, buttons, text_of, the_job
from tests.test_ops_restart import calls, systemctl  # noqa: F401

DSN_ENV = "TAISUN_TEST_APP_DATABASE_URL"
LIMIT_MINUTES = 0.05  # 3 s: the fresh sessions must stay younger than this while the job starts


def request(bot, env: str, params: dict | None = None, user: str = ALICE) -> Job:
    """What a runbook's action step does: a request through the job engine (roles, approval, locks)."""
    environment = bot.svc.config.environments[env]
    return bot.svc.jobs.request(
        Request("db-connection-reset", environment, params or {}, user, "alice", CHANNEL)
    )


def with_database(env: str, systemctl=None):
    def mutate(cfg):
        e = cfg["environments"][env]
        e["database"] = {"dsn_env": DSN_ENV, "idle_age_minutes": LIMIT_MINUTES}
        if systemctl is not None:
            e["restart"] = {"backend": "local", "systemctl": [str(systemctl)], "health_attempts": 2,
                            "health_interval_seconds": 0.05}  # fmt: skip

    return mutate


def _wait_until_active(dsn: str, pid: int) -> None:
    """Until the backend `pid` is running its query (the watching connection is closed after)."""
    with psycopg.connect(dsn, autocommit=True) as watcher:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = watcher.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "active":
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never started its query")


def alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def test_reset_terminates_only_idle_connections_older_than_the_limit_then_restarts(
    db_url, make_bot, slack, pg_db, systemctl, monkeypatch
):
    dsn = pg_db()
    monkeypatch.setenv(DSN_ENV, dsn)
    bot = make_bot(db_url, config_mutate=with_database("staging", systemctl))
    old = [psycopg.connect(dsn, autocommit=True) for _ in range(2)]
    for c in old:
        c.execute("SELECT 1")
    time.sleep(LIMIT_MINUTES * 60 + 0.5)  # they have now been idle for longer than the limit
    fresh = psycopg.connect(dsn, autocommit=True)
    fresh.execute("SELECT 1")
    in_txn = psycopg.connect(dsn)
    in_txn.execute("SELECT 1")  # idle in transaction, however old, is never ended
    busy = psycopg.connect(dsn, autocommit=True)

    # Active until the test ends it: a fixed pg_sleep(3) ran out before the bot counted on a loaded
    # machine, and the card then showed it idle (6 connections, 4 idle).
    def run_long() -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            busy.execute("SELECT pg_sleep(120)")

    worker = threading.Thread(target=run_long)
    worker.start()
    try:
        _wait_until_active(dsn, busy.info.backend_pid)  # a loaded machine may not have sent it yet
        job = request(bot, "staging")
        bot.settle()
        busy.cancel()
        worker.join(30)
        job = the_job(bot)
        assert job.state == "succeeded", job.result
        assert [alive(c) for c in old] == [False, False]
        assert alive(fresh) and alive(in_txn) and alive(busy)
        assert len(job.progress["terminated"]) == 2
        card = text_of(slack.channel_messages(CHANNEL)[-1])
        before = "*Before*: 5 connection(s): 3 idle, 2 idle &gt; 3 s, 1 idle in transaction (left alone)"
        assert before in card, card[card.find("*Before*") :][:160]  # mrkdwn: a ">" is sent escaped
        assert "*Terminated*: 2" in card
        assert "*After*: 3 connection(s): 1 idle, 0 idle &gt; 3 s" in card
        # then the runbook's "restart the application", with its health check
        assert calls(systemctl) == [["status", "--no-pager", "taisun"], ["restart", "taisun"]]
        assert "restarted · /health ok (200)" in card
        rows = exported_audit(bot.settings, job.id)
        assert [r["action"] for r in rows] == [
            "db-connection-reset.requested", "db-connection-reset.queued", "db-connection-reset.started",
            "db-connection-reset.connections_terminated", "db-connection-reset.instance_restarted",
            "db-connection-reset.succeeded",
        ]  # fmt: skip
        (ended,) = facts(rows, "db-connection-reset.connections_terminated")
        assert ended["terminated"] == 2 and sorted(ended["pids"]) == sorted(job.progress["terminated"])
        assert ended["idle_age_minutes"] == LIMIT_MINUTES and ended["not_ended"] == []
        assert ended["before"]["idle_older"] == 2 and ended["after"]["idle_older"] == 0
        assert ended["database"] == safe_dsn(dsn)  # where, never the password
        (restarted,) = facts(rows, "db-connection-reset.instance_restarted")
        assert restarted["service"] == "taisun" and restarted["backend"] == "local"
    finally:
        for c in [*old, fresh, in_txn, busy]:
            c.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_production_reset_needs_approval_and_without_the_dsn_is_a_labelled_simulation(
    db_url, make_bot, slack, monkeypatch
):
    monkeypatch.delenv("PROD_DATABASE_URL", raising=False)
    bot = make_bot(db_url)  # the example config: production reads PROD_DATABASE_URL
    job = request(bot, "production", {"idle_age_minutes": 30})
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    assert "SIMULATED — PROD_DATABASE_URL is not set: no connection is terminated" in text_of(card)
    assert the_job(bot).state == "pending_approval"
    bot.click(Action.APPROVE, job.id, BOB, card)
    bot.settle()
    job = the_job(bot)
    assert job.state == "simulated" and job.result.startswith("SIMULATED: nothing was changed")
    final = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "would terminate connections idle for more than 30 min" in final
    assert "would restart `taisun`" in final
    assert "db-connection-reset.approved" in actions(bot, job.id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unreachable_database_fails_with_where_and_nothing_is_restarted(
    db_url, make_bot, systemctl, monkeypatch
):
    port = free_port()
    monkeypatch.setenv(DSN_ENV, f"postgresql://app:pw-not-shown@127.0.0.1:{port}/app")
    bot = make_bot(db_url, config_mutate=with_database("staging", systemctl))
    job = request(bot, "staging")
    bot.settle()
    job = the_job(bot)
    assert job.state == "failed"
    assert f"cannot connect to postgresql://app@127.0.0.1:{port}/app" in job.result
    assert "pw-not-shown" not in job.result
    assert calls(systemctl) == []
    assert actions(bot, job.id) == ["db-connection-reset.requested", "db-connection-reset.failed"]
    with bot.svc.sessions() as s:
        assert locks.current(s, "staging") is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_environments_without_a_database_or_pointing_at_the_bots_own_are_refused(
    db_url, make_bot, monkeypatch
):
    bot = make_bot(db_url)
    with pytest.raises(
        OpError,
        match=r"No database is configured for development \(environments.development.database.dsn_env\)",
    ):
        request(bot, "development")
    monkeypatch.setenv("STAGING_DATABASE_URL", bot.settings.database_url)
    with pytest.raises(OpError, match="same DSN as the bot's own DATABASE_URL"):
        request(bot, "staging")
    with bot.svc.sessions() as s:
        assert s.scalar(select(Job.id)) is None
        refusals = s.scalars(select(AuditEvent.action).where(AuditEvent.outcome == "refused")).all()
    assert refusals == ["db-connection-reset.refused", "db-connection-reset.refused"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_runbook_step_terminates_by_the_environments_configured_idle_age(
    db_url, make_bot, slack, monkeypatch
):
    """`database.idle_age_minutes` decides; the shipped runbook used to pin 60 over it."""
    from tests.chatops_helpers import click, runs_of, settle, step_value, top_level

    monkeypatch.delenv(DSN_ENV, raising=False)  # a labelled simulation: the card still names the limit

    def half_a_minute(cfg):
        cfg["environments"]["staging"]["database"] = {"dsn_env": DSN_ENV, "idle_age_minutes": 0.5}

    bot = make_bot(db_url, config_mutate=half_a_minute)
    bot.command("runbook run db-connection-reset staging", user=ALICE)
    (run,) = slack.wait_for(lambda: runs_of(bot))
    checklist = slack.wait_for(
        lambda: next((m for m in top_level(slack, CHANNEL) if run.id in text_of(m)), None)
    )
    click(bot, Action.STEP_RUN, step_value(checklist, "terminate-idle", Action.STEP_RUN), ALICE, checklist)
    job = slack.wait_for(lambda: the_job(bot, "db-connection-reset"))
    settle(bot)
    assert job.params["idle_age_minutes"] == 0.5
    card = next(m for m in top_level(slack, CHANNEL) if job.id[:8] in text_of(m))
    assert "*Terminates*: connections idle for more than 30 s" in text_of(card)
    assert "60 min" not in text_of(card)
