"""What Slack says failed does not happen: a request that cannot be answered within Slack's 3 s runs nothing.

The wait may come before the listener (a busy pool, tests/test_faults.py) or from the request's own
database work: here another session holds a lock the request needs, as a migration's CREATE INDEX
does on PostgreSQL (SQLite: another process's write transaction).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url, select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Incident, Job
from bot.slack import signing
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, BOB, CHANNEL, NAMES, buttons, last_card

HOLD_SECONDS = 4.0  # past the bot's 2.5 s deadline and Slack's 3 s


def slacks_deadline(cfg: dict) -> None:  # type: ignore[type-arg]
    cfg["slack"]["ack_deadline_seconds"] = 2.5  # the default, said out loud: the harness relaxes an unset one


@contextlib.contextmanager
def held_lock(db_url: str, table: str, seconds: float = HOLD_SECONDS) -> Iterator[threading.Event]:
    """Another session holds `table` (PostgreSQL) or the write lock (SQLite) for `seconds`.

    Yields an Event; setting it lets go early. Leaving the block waits until the lock is gone.
    """
    taken, release, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            if db_url.startswith("sqlite"):
                conn = sqlite3.connect(str(make_url(db_url).database), timeout=30, isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")
                taken.set()
                release.wait(seconds)
                conn.execute("ROLLBACK")
                conn.close()
            else:
                with psycopg.connect(db_url) as conn:
                    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                    taken.set()
                    release.wait(seconds)
                    conn.rollback()
        except BaseException as e:  # surfaced below
            errors.append(e)
            taken.set()
        finally:
            done.set()

    threading.Thread(target=hold, name="lock-holder", daemon=True).start()
    assert taken.wait(10)
    try:
        yield release
    finally:
        assert done.wait(seconds + 10)
    assert not errors, errors


def _told(slack, user: str) -> list[str]:
    return [m.text for m in slack.ephemeral(user)]


# On PostgreSQL the job and its audit row are one statement outside a transaction, holding itself to
# the deadline by the database's clock: whichever of its tables another session holds, nothing lands.
@pytest.mark.parametrize("table", ["audit_events", "jobs"])
def test_a_command_whose_own_database_work_outlasts_slacks_deadline_runs_nothing_and_says_so(
    db_url, make_bot, slack, github, table
):
    bot = make_bot(
        db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, config_mutate=slacks_deadline
    )
    body, ctype = signing.slash_command(
        "deploy stg v1.2.3", user_id=ALICE, user_name=NAMES[ALICE], channel_id=CHANNEL,
        response_url=slack.response_url(f"{ALICE}-late"),
    )  # fmt: skip
    with held_lock(db_url, table):
        status, data = bot.post(body, ctype)
    bot.settle()
    time.sleep(1.5)  # a worker would have picked up a job by now
    assert b"Checking" not in data  # Slack never got a "Checking…" in time (it shows its own failure)
    with bot.svc.sessions() as s:
        assert list(s.scalars(select(Job))) == []
        rows = list(s.scalars(select(AuditEvent)))
    assert github.dispatches == []
    assert "deploy.requested" not in [r.action for r in rows]
    told = _told(slack, ALICE)
    assert len(told) == 1 and "did nothing" in told[0] and "send it again" in told[0], told
    if not db_url.startswith("sqlite"):  # the job was written and rolled back: the audit log says so
        late = [r for r in rows if r.action == "request.late"]
        assert len(late) == 1 and late[0].actor_id == ALICE and late[0].outcome == "not_run"
        assert late[0].params["command"] == "/taisun deploy stg v1.2.3"


def test_a_click_whose_own_database_work_outlasts_slacks_deadline_changes_nothing_and_says_so(
    db_url, make_bot, slack
):
    bot = make_bot(db_url, config_mutate=slacks_deadline)
    bot.command('incident declare sev3 "checkout slow"', user=ALICE)
    bot.settle()
    with bot.svc.sessions() as s:
        inc = s.scalars(select(Incident)).one()
    with held_lock(db_url, "audit_events"):
        status, _ = bot.click(Action.INCIDENT_ACK, str(inc.id), BOB)
    bot.settle()
    with bot.svc.sessions() as s:
        assert s.get(Incident, inc.id).acknowledged_at is None
        actions = [r.action for r in s.scalars(select(AuditEvent))]
    assert "incident.acknowledged" not in actions
    told = _told(slack, BOB)
    assert len(told) == 1 and "did nothing" in told[0] and "send it again" in told[0], told
    if not db_url.startswith("sqlite"):
        assert actions.count("request.late") == 1


# SQLite's lock is the whole database: there the click's first write (its delivery key) waits
# before the listener starts, and the click is refused as late (as in the test above).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_approve_click_is_answered_before_its_database_work_so_slack_never_shows_a_failure(
    db_url, make_bot, slack
):
    """Approve acks first and then records the approval: a slow database delays the card, never the ack."""
    bot = make_bot(db_url, config_mutate=slacks_deadline)
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card = last_card(slack)
    body, ctype = signing.block_action(
        Action.APPROVE, buttons(card)[Action.APPROVE], user_id=BOB, user_name=NAMES[BOB],
        channel_id=CHANNEL, message_ts=card.ts, response_url=slack.response_url(f"{BOB}-approve"),
    )  # fmt: skip
    with held_lock(db_url, "audit_events", seconds=30) as release:
        status, _ = bot.post(body, ctype)
        answered_while_locked = not release.is_set()
        release.set()
    assert status == 200 and answered_while_locked
    bot.settle()
    with bot.svc.sessions() as s:
        job = s.scalars(select(Job)).one()
        approvals = [r for r in s.scalars(select(AuditEvent)) if r.action == "deploy.approved"]
    assert job.approved_by == BOB and len(approvals) == 1
    assert _told(slack, BOB) == []
