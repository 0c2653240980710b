"""A replica that dies in the middle of a one-off side effect leaves a claim in the row's own claim
columns; while it is fresh nobody repeats the side effect, once it is stale the next try takes it over,
and nothing is ever done twice (one header, one channel, one runbook run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update

from bot.core.blocks import Action
from bot.core.store.models import AlertGroup, Incident, RunbookRun
from bot.incidents import runs as runbook_runs
from bot.incidents import service as incidents
from tests.chatops_helpers import click, fast, header_of, incident, post_alerts, runs_of, settle, top_level
from tests.harness import ALICE, BOB, text_of
from tests.test_alerts import TOKEN, alert, webhook

DEAD = "dead-host:4242:abcdef"  # the replica that died holding the claim


def _set(bot: Any, model: Any, row_id: Any, **values: Any) -> None:
    with bot.svc.sessions.begin() as s:
        s.execute(update(model).where(model.id == row_id).values(**values))


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def test_a_header_claim_left_by_a_dead_replica_expires_and_the_header_is_posted_once(db_url, make_bot, slack):
    dead = make_bot(db_url, start=False)  # it never gets to post anything: it died
    dead.command('incident declare sev3 "Search is slow"', user=ALICE)
    inc = incident(dead, 1)
    _set(dead, Incident, inc.id, header_claimed_at=_ago(10), header_claimed_by=DEAD)

    live = fast(make_bot(db_url))
    live.svc.runner.sweep()  # renders the open incident: the claim still holds, so nothing is posted
    settle(live)
    assert not [m for m in top_level(slack) if m.text.startswith("INC-1 ")]

    _set(live, Incident, inc.id, header_claimed_at=_ago(incidents.HEADER_CLAIM.seconds + 5))
    live.svc.runner.sweep()
    settle(live)
    live.svc.runner.sweep()  # and again: posted once, only edited from now on
    settle(live)
    header = header_of(slack, "INC-1")
    assert [m.ts for m in top_level(slack) if m.text.startswith("INC-1 ")] == [header.ts]
    row = incident(live, 1)
    assert (row.header_ts, row.header_claimed_at, row.header_claimed_by) == (header.ts, None, "")


def test_a_channel_claim_left_by_a_dead_replica_is_taken_over_and_one_channel_is_made(
    db_url, make_bot, slack
):
    bot = fast(make_bot(db_url))
    bot.command('incident declare sev3 "Slow admin page"', user=ALICE)
    settle(bot)
    inc = incident(bot, 1)

    # A replica was creating its channel a moment ago: promoting again waits for it.
    _set(bot, Incident, inc.id, channel_claimed_at=_ago(10), channel_claimed_by=DEAD)
    assert "is being created" in text_of(bot.command("incident promote", user=BOB))
    settle(bot)
    assert slack.count("conversations.create") == 0

    # It died: once its claim is stale, the next promote takes it over and makes the one channel.
    _set(bot, Incident, inc.id, channel_claimed_at=_ago(incidents.CHANNEL_CLAIM.seconds + 5))
    assert "Creating a channel for INC-1" in text_of(bot.command("incident promote", user=BOB))
    settle(bot)
    assert slack.count("conversations.create") == 1
    row = incident(bot, 1)
    assert row.dedicated_channel.startswith("C") and row.dedicated_name == "inc-1-slow-admin-page"
    assert (row.channel_claimed_at, row.channel_claimed_by) == (None, "")
    assert "already has its channel" in text_of(bot.command("incident promote", user=BOB))
    assert slack.count("conversations.create") == 1


def _group_and_button(bot: Any, slack: Any, name: str) -> tuple[Any, AlertGroup, str]:
    payload = webhook([alert(name, "api-1:9100", runbook_url="taisun://runbook/performance-degradation")])
    assert post_alerts(bot, payload, TOKEN)[0] == 200
    settle(bot)
    message = next(m for m in top_level(slack) if name in m.text)
    with bot.svc.sessions() as s:
        group = s.scalars(select(AlertGroup).where(AlertGroup.alertname == name)).one()
    button = next(
        el for b in message.blocks if b["type"] == "actions" for el in b["elements"]
        if el["action_id"] == Action.ALERT_START_RUNBOOK
    )  # fmt: skip
    return message, group, button["value"]


def _runs_of_group(bot: Any, group_id: int) -> list[RunbookRun]:
    return [r for r in runs_of(bot) if r.alert_group_id == group_id]


def test_a_runbook_claim_left_by_a_dead_replica_is_taken_over_and_never_starts_a_second_run(
    db_url, make_bot, slack
):
    bot = fast(make_bot(db_url, taisun_alert_token=TOKEN))
    stale = _ago(incidents.CLAIM_SECONDS * 2)

    # 1. The click's replica died before it started the run: none exists, so the next click starts it.
    message, group, value = _group_and_button(bot, slack, "LatencyOnSearch")
    _set(bot, AlertGroup, group.id, run_claimed_at=_ago(10), run_claimed_by=DEAD)
    click(bot, Action.ALERT_START_RUNBOOK, value, BOB, message)
    settle(bot)
    assert _runs_of_group(bot, group.id) == []  # the claim still holds
    assert any("already running" in m.text for m in slack.ephemeral(BOB))
    _set(bot, AlertGroup, group.id, run_claimed_at=stale)
    click(bot, Action.ALERT_START_RUNBOOK, value, ALICE, message)
    settle(bot)
    (run,) = _runs_of_group(bot, group.id)
    with bot.svc.sessions() as s:
        row = s.get(AlertGroup, group.id)
        assert row is not None and (row.run_id, row.run_claimed_at, row.run_claimed_by) == (run.id, None, "")

    # 2. It died after starting the run but before the group learned of it: that run is adopted.
    message, group, value = _group_and_button(bot, slack, "LatencyOnCheckout")
    book = runbook_runs.find_runbook("performance-degradation")
    _set(bot, AlertGroup, group.id, run_claimed_at=stale, run_claimed_by=DEAD)
    orphan = runbook_runs.start_run(
        bot.svc, book, runbook_runs.default_environment(bot.svc.config), user_id=BOB, user_name="bob",
        channel=message.channel, thread_ts=message.ts, alert_group_id=group.id,
    )  # fmt: skip
    before = len(slack.ephemeral(ALICE))
    click(bot, Action.ALERT_START_RUNBOOK, value, ALICE, message)
    settle(bot)
    assert [r.id for r in _runs_of_group(bot, group.id)] == [orphan.id]
    assert any("already running" in m.text for m in slack.ephemeral(ALICE)[before:])
    with bot.svc.sessions() as s:
        row = s.get(AlertGroup, group.id)
        assert row is not None and (row.run_id, row.run_claimed_at) == (orphan.id, None)


def test_claims_open_at_the_upgrade_keep_their_time_and_survive_a_downgrade(db_url, make_bot):
    """Migration 0010 moves claims out of the data columns (and 0010's downgrade puts them back)."""
    from alembic import command

    from bot.core.store.db import _alembic_config, make_engine

    bot = fast(make_bot(db_url))
    bot.command('incident declare sev3 "Slow admin page"', user=ALICE)
    settle(bot)
    inc = incident(bot, 1)
    claimed = datetime(2026, 11, 28, 2, 0, 5, tzinfo=UTC)
    _set(bot, Incident, inc.id, channel_claimed_at=claimed, channel_claimed_by=DEAD)
    bot.stop()

    engine = make_engine(db_url)
    try:
        command.downgrade(_alembic_config(engine), "0009")
        with engine.connect() as conn:
            marker = conn.execute(
                text("SELECT dedicated_channel FROM incidents WHERE id = :i"), {"i": inc.id}
            )
            assert marker.scalar() == "creating:2026-11-28T02:00:05"
        command.upgrade(_alembic_config(engine), "head")
    finally:
        engine.dispose()

    again = make_bot(db_url, start=False)
    row = incident(again, 1)
    assert row.dedicated_channel == "" and row.channel_claimed_at == claimed
    assert row.channel_claimed_by == "(claimed before 0010)"
