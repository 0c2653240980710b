"""The guide's timers run by the bot: daily full at 02:00 JST, hourly incremental, weekly drill —
each slot exactly once across two replicas on one database, and across restarts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot.core.store.models import Job
from bot.operations import pitr
from tests.audit_helpers import exported_audit

JST = "+09:00"


def scheduled(cfg):
    cfg["backup"]["pgbackrest"] = {"stanza": "taisun", "repos": [1]}
    cfg["backup"]["schedule"] = {
        "enabled": True, "full_at": "02:00", "incremental_minutes": 60, "drill_at": "sun 04:00",
        "timezone": "Asia/Tokyo",
    }  # fmt: skip


def at(text: str) -> datetime:
    return datetime.fromisoformat(text + JST).astimezone(UTC)


def jobs(bot) -> list[Job]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(Job).order_by(Job.created_at)))


def finish(bot, job_id: str) -> None:
    with bot.svc.sessions.begin() as s:
        s.get(Job, job_id).state = "succeeded"


def test_the_slots_follow_the_guide_in_japan_time(db_url, make_bot):
    bot = make_bot(db_url, start=False, config_mutate=scheduled)
    config = bot.svc.config
    # Sunday 2026-12-06 02:30 JST: today's full; the 02:00 incremental is the full's slot; the
    # drill's newest slot is last Sunday 04:00.
    slots = dict(pitr.due_slots(config, at("2026-12-06T02:30:00")))
    assert slots == {"full": at("2026-12-06T02:00:00"), "drill": at("2026-11-29T04:00:00")}
    slots = dict(pitr.due_slots(config, at("2026-12-06T13:59:59")))
    assert slots["incr"] == at("2026-12-06T13:00:00") and slots["full"] == at("2026-12-06T02:00:00")
    assert dict(pitr.due_slots(config, at("2026-12-06T04:00:00")))["drill"] == at("2026-12-06T04:00:00")
    # Before 02:00 the newest full is yesterday's.
    assert dict(pitr.due_slots(config, at("2026-12-07T01:59:00")))["full"] == at("2026-12-06T02:00:00")


def test_two_replicas_create_each_slot_once_and_a_restart_does_not_repeat_it(db_url, make_bot):
    one = make_bot(db_url, start=False, config_mutate=scheduled)
    two = make_bot(db_url, start=False, settings=one.settings)
    now = at("2026-12-06T13:20:00")
    created = pitr.schedule_tick(one.svc, now) + pitr.schedule_tick(two.svc, now)
    assert len(created) == 1  # the full first; the incremental waits for it
    (full,) = jobs(one)
    assert full.operation == "pitr_backup" and full.params["kind"] == "full"
    assert full.params["slot"] == at("2026-12-06T02:00:00").isoformat()
    assert full.requested_by == "taisun-schedule" and full.state == "validating"
    # While it runs nothing else starts; when it has finished, the hour's incremental, then the drill.
    assert pitr.schedule_tick(two.svc, now) == []
    finish(one, full.id)
    assert len(pitr.schedule_tick(two.svc, now) + pitr.schedule_tick(one.svc, now)) == 1
    incr = jobs(one)[-1]
    assert incr.params["kind"] == "incr" and incr.params["slot"] == at("2026-12-06T13:00:00").isoformat()
    finish(one, incr.id)
    assert len(pitr.schedule_tick(one.svc, now) + pitr.schedule_tick(two.svc, now)) == 1
    assert jobs(one)[-1].operation == "drill"
    finish(one, jobs(one)[-1].id)
    # A restarted replica (a new process, the same database) finds every slot taken.
    three = make_bot(db_url, start=False, settings=one.settings)
    assert pitr.schedule_tick(three.svc, now) == []
    assert len(jobs(one)) == 3
    # The next hour brings the next incremental, once.
    later = at("2026-12-06T14:05:00")
    assert len(pitr.schedule_tick(three.svc, later) + pitr.schedule_tick(one.svc, later)) == 1
    assert [r["action"] for r in exported_audit(one.settings) if r["action"].endswith(".requested")] == [
        "pitr_backup.requested", "pitr_backup.requested", "drill.requested", "pitr_backup.requested",
    ]  # fmt: skip


def test_nothing_is_scheduled_without_a_stanza(db_url, make_bot):
    bot = make_bot(db_url, start=False)
    assert pitr.schedule_tick(bot.svc, at("2026-12-06T13:20:00")) == []
    assert jobs(bot) == []
