"""The guide's RPO 1 h / RTO 4 h made true and visible: real pgBackRest on a PostgreSQL cluster of the
tests' own (posix repository and S3 behind TLS), driven through signed Slack requests into the bot."""

# Fixtures are imported from the fixture modules and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.store.models import Job
from bot.operations import pitr
from tests.audit_helpers import exported_audit, facts
from tests.harness import ALICE, CHANNEL, text_of, the_job
from tests.pgbackrest_fixtures import STANZA, Cluster, pg_cluster  # noqa: F401

SOURCE_ENV = "TAISUN_TEST_PITR_SOURCE_URL"
pytestmark = pytest.mark.parametrize(
    "db_url", ["sqlite"], indirect=True
)  # the bot's own store is not the subject


def verify_command(out: Path) -> list[str]:
    """The guide's `npm run db:verify` stand-in: reads the restored rows and writes their ids to `out`."""
    script = (
        "import os, sys, psycopg\n"
        "rows = psycopg.connect(os.environ['DATABASE_URL']).execute('SELECT id FROM drill_rows ORDER BY id')\n"
        "ids = [r[0] for r in rows]\n"
        "open(sys.argv[1], 'w').write(','.join(map(str, ids)))\n"
        "print(f'db:verify ok: {len(ids)} rows')\n"
    )
    return [sys.executable, "-c", script, str(out)]


def rpo_config(cluster: Cluster, scratch: Path, out: Path, *, repos=(1, 2), port: int | None = None, **extra):
    from tests.backend_fixtures import free_port

    def mutate(cfg):
        cfg["backup"].update(
            dsn_env=SOURCE_ENV, verify_command=verify_command(out),
            pgbackrest={"stanza": STANZA, "command": ["pgbackrest"], "run_as": cluster.run_as,
                        "config_path": str(cluster.conf), "repos": list(repos)},
            drill={"pg_bin": "/usr/lib/postgresql/15/bin", "scratch_dir": str(scratch),
                   "port": port or free_port(), "timeout_seconds": 120},
            schedule={"enabled": False}, **extra,
        )  # fmt: skip

    return mutate


@pytest.fixture
def source(pg_cluster, monkeypatch):
    monkeypatch.setenv(SOURCE_ENV, pg_cluster.dsn)
    return pg_cluster


def insert(cluster: Cluster, first: int, last: int) -> None:
    cluster.sql("INSERT INTO drill_rows SELECT g FROM generate_series(%s::int, %s::int) g", first, last)


def scratch_left(scratch: Path) -> list[str]:
    return sorted(p.name for p in scratch.iterdir())


def test_full_incremental_then_a_point_in_time_drill_finds_exactly_the_rows_before_that_point(
    db_url, make_bot, slack, source, tmp_path
):
    cluster = source
    cluster.sql("DROP TABLE IF EXISTS drill_rows")
    cluster.sql("CREATE TABLE drill_rows (id int PRIMARY KEY)")
    scratch, out = cluster.new_scratch_dir(f"drill-{uuid.uuid4().hex[:6]}"), tmp_path / "rows.txt"
    bot = make_bot(db_url, config_mutate=rpo_config(cluster, scratch, out))

    # Rows 1-10, then a full backup to both repositories (posix and S3).
    insert(cluster, 1, 10)
    bot.command("backup run full")
    bot.settle(180)
    full = the_job(bot, "pitr_backup")
    assert full.state == "succeeded", full.result
    assert "full backup stored in 2 repositories" in full.result
    stored = facts(exported_audit(bot.settings, full.id), "pitr_backup.stored")
    assert [(f["repo"], f["kind"]) for f in stored] == [(1, "full"), (2, "full")]

    # Rows 11-20, then an incremental.
    insert(cluster, 11, 20)
    bot.command("backup run incr")
    bot.settle(180)
    incr = the_job(bot, "pitr_backup")
    assert incr.id != full.id and incr.state == "succeeded", incr.result
    rows = exported_audit(bot.settings, incr.id)
    assert [f["kind"] for f in facts(rows, "pitr_backup.stored")] == ["incr", "incr"]
    assert [r["action"] for r in rows] == [
        "pitr_backup.requested", "pitr_backup.queued", "pitr_backup.started", "pitr_backup.stored",
        "pitr_backup.stored", "pitr_backup.succeeded",
    ]  # fmt: skip

    # Rows 21-30 after the incremental, then the point in time, then rows 31-40 after it.
    insert(cluster, 21, 30)
    time.sleep(1.1)
    ((point,),) = cluster.sql("SELECT clock_timestamp()")
    time.sleep(1.1)
    insert(cluster, 31, 40)
    cluster.archive_now()

    bot.command(f"backup drill {point.astimezone(UTC).isoformat()}")
    bot.settle(180)
    drill = the_job(bot, "drill")
    assert drill.state == "succeeded", drill.result
    assert out.read_text() == ",".join(str(i) for i in range(1, 31))  # exactly the rows before the point
    assert "inside the RTO of 4h 00m" in drill.result
    rows = exported_audit(bot.settings, drill.id)
    assert [r["action"] for r in rows] == [
        "drill.requested", "drill.queued", "drill.started", "drill.restored", "drill.opened",
        "drill.verify_command", "drill.cleaned", "drill.drilled", "drill.succeeded",
    ]  # fmt: skip
    (drilled,) = facts(rows, "drill.drilled")
    assert drilled["ok"] and drilled["within_rto"] and drilled["rto_seconds"] == 14400
    assert set(drilled["phases"]) == {"restore", "recovery", "verify", "cleanup"}
    assert drilled["margin_seconds"] == pytest.approx(14400 - drilled["total_seconds"], abs=0.01)
    assert drilled["target_time"] == point.astimezone(UTC).isoformat()
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "RTO margin" in card and "Restored and checked in" in card
    assert scratch_left(scratch) == []  # the scratch instance is gone

    # The S3 repository alone restores the newest state (every archived segment: all 40 rows).
    out.unlink()
    s3_bot = make_bot(db_url, config_mutate=rpo_config(cluster, scratch, out, repos=(2,)))
    s3_bot.command("backup drill")
    s3_bot.settle(180)
    assert the_job(s3_bot, "drill").state == "succeeded", the_job(s3_bot, "drill").result
    assert out.read_text() == ",".join(str(i) for i in range(1, 41))

    # /taisun backup status: the RPO now (✅ against 1 h), the newest full and incremental, WAL, the drill.
    bot.command("backup status")
    bot.settle()
    status = text_of(slack.ephemeral(ALICE)[-1])
    assert "✅ *RPO now*" in status and "(target 1h 00m)" in status
    # The newest of the two repositories' sets (repo1 posix, repo2 S3).
    assert any(f"Newest full backup: `{f['label']}` repo{f['repo']}" in status for f in stored)
    incr_sets = facts(exported_audit(bot.settings, incr.id), "pitr_backup.stored")
    assert any(f"Newest incremental / differential: `{f['label']}` incremental" in status for f in incr_sets)
    assert "WAL archive: `" in status and "lag" in status
    assert "✅ *Last restore drill*" in status and "(RTO 4h 00m, margin" in status

    # The same facts as metrics (what the BackupTooOld / RestoreDrill* rules read).
    body = _metrics(bot)
    assert 'taisun_backup_last_success_timestamp_seconds{kind="full"}' in body
    assert 'taisun_backup_last_success_timestamp_seconds{kind="incr"}' in body
    assert "taisun_restore_drill_success 1.0" in body
    rpo = float(
        next(ln.split()[1] for ln in body.splitlines() if ln.startswith("taisun_backup_rpo_seconds "))
    )
    assert 0 <= rpo < 3600


def _metrics(bot) -> str:
    """GET /metrics through the bot's WSGI app, as Prometheus scrapes it."""
    chunks = bot.wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda s, h, exc_info=None: None)
    return b"".join(chunks).decode()


def test_a_drill_refuses_a_target_that_is_the_source(db_url, make_bot, slack, source, tmp_path):
    cluster = source
    scratch = cluster.new_scratch_dir(f"same-{uuid.uuid4().hex[:6]}")
    bot = make_bot(db_url, config_mutate=rpo_config(cluster, scratch, tmp_path / "x", port=cluster.port))
    reply = bot.command("backup drill")
    assert "the drill's scratch port" in text_of(
        reply
    ) and "a drill never touches the live database" in text_of(reply)
    assert the_job(bot, "drill") is None
    assert scratch_left(scratch) == []

    # The live data directory as the scratch parent: refused too (pgbackrest.conf's pg1-path).
    inside = make_bot(db_url, config_mutate=rpo_config(cluster, cluster.data / "drills", tmp_path / "x"))
    assert "overlaps the live data directory" in text_of(inside.command("backup drill"))


def test_a_drill_whose_port_is_taken_touches_nothing_and_warns_the_ops_channel(
    db_url, make_bot, slack, source, tmp_path
):
    cluster = source
    scratch = cluster.new_scratch_dir(f"busy-{uuid.uuid4().hex[:6]}")
    # Something else (here: the S3 server) listens on the drill's port.
    bot = make_bot(db_url, config_mutate=rpo_config(cluster, scratch, tmp_path / "x", port=cluster.s3_port))
    bot.command("backup drill")
    bot.settle(60)
    job = the_job(bot, "drill")
    assert job.state == "failed" and "something already listens on 127.0.0.1" in job.result
    warning = [m for m in slack.channel_messages(CHANNEL) if "did not pass" in m.text]
    assert warning and job.id[:8] in warning[-1].text
    assert scratch_left(scratch) == []
    assert [f["channel"] for f in facts(exported_audit(bot.settings, job.id), "drill.warned")] == [CHANNEL]


def test_a_killed_drill_leaves_nothing_behind_and_says_so_next_time(
    db_url, make_bot, slack, source, tmp_path
):
    """A replica died mid-drill with the scratch instance running: the drill is resumed by another
    worker, which stops and removes that instance, says so, and drills again."""
    cluster = source
    cluster.sql("CREATE TABLE IF NOT EXISTS drill_rows (id int PRIMARY KEY)")
    if not cluster.sql("SELECT 1 FROM drill_rows LIMIT 1"):
        insert(cluster, 1, 5)
    if cluster.pgbackrest("info", "--output=json").stdout.count('"label"') == 0:
        assert cluster.pgbackrest("backup", "--type=full", "--repo=1").returncode == 0
    scratch, out = cluster.new_scratch_dir(f"kill-{uuid.uuid4().hex[:6]}"), tmp_path / "rows.txt"
    cfg = rpo_config(cluster, scratch, out)
    bot = make_bot(db_url, start=False, config_mutate=cfg)
    port = bot.svc.config.backup.drill.port
    # What the dead replica had done: marked a directory, restored into it, started the instance.
    job_id, left = str(uuid.uuid4()), scratch / "drill-dead0000-1"
    (scratch / "drill-dead0000-1.TAISUN_DRILL").write_text(f"job {job_id}\n")
    assert (
        cluster.pgbackrest("restore", f"--pg1-path={left}", "--archive-mode=off", "--repo=1").returncode == 0
    )
    inst = pitr.ScratchInstance(str(left), port, "/usr/lib/postgresql/15/bin", tuple(cluster.run_as))
    inst.start(timeout=60)
    assert inst.running()
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    with bot.svc.sessions.begin() as s:
        s.add(
            Job(
                id=job_id, operation="drill", environment="", params={"action": "drill"}, state="running",
                requested_by=ALICE, requested_by_name="alice", channel=CHANNEL, created_at=t0, updated_at=t0,
                started_at=t0, lease_owner="dead-replica", lease_expires_at=t0 + timedelta(seconds=30), attempts=1,
                progress={"attempt": 1, "scratch": str(left), "phase": "recovery", "cleaned": False},
            )
        )  # fmt: skip
    bot.svc.start()
    bot.settle(180)
    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
    assert job.state == "succeeded", job.result
    steps = [st["text"] for st in job.progress["steps"]]
    assert any("This drill was interrupted (phase: recovery)" in st for st in steps)
    assert any(f"Removed `{left}`, left by an interrupted drill" in st for st in steps)
    assert not left.exists() and scratch_left(scratch) == []
    rows = exported_audit(bot.settings, job_id)
    (removed,) = facts(rows, "drill.leftover_removed")
    assert removed["path"] == str(left) and removed["interrupted_phase"] == "recovery"
    assert [r["action"] for r in rows][:2] == ["drill.resumed", "drill.leftover_removed"]


def test_a_killed_backup_is_finished_by_the_next_run(db_url, make_bot, slack, source, tmp_path):
    """pgbackrest killed mid-backup (SIGKILL, as a dying host would): the next scheduled or asked-for
    backup says the last one was interrupted and pgBackRest finishes or removes the partial one."""
    cluster = source
    argv = [*cluster.run_as, "pgbackrest", f"--config={cluster.conf}", f"--stanza={STANZA}", "backup",
            "--type=full", "--repo=1"]  # fmt: skip
    proc = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.7)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    scratch = cluster.new_scratch_dir(f"kb-{uuid.uuid4().hex[:6]}")
    bot = make_bot(
        db_url, start=False, config_mutate=rpo_config(cluster, scratch, tmp_path / "x", repos=(1,))
    )
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    job_id = str(uuid.uuid4())
    with bot.svc.sessions.begin() as s:
        s.add(
            Job(
                id=job_id, operation="pitr_backup", environment="", params={"action": "run", "kind": "full"},
                state="running", requested_by=ALICE, requested_by_name="alice", channel=CHANNEL, created_at=t0,
                updated_at=t0, started_at=t0, lease_owner="dead-replica", lease_expires_at=t0, attempts=1,
                progress={"repo_running": 1},
            )
        )  # fmt: skip
    bot.svc.start()
    bot.settle(180)
    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
    assert job.state == "succeeded", job.result
    assert any("The previous attempt was interrupted" in st["text"] for st in job.progress["steps"])
    info = json.loads(cluster.pgbackrest("info", "--output=json").stdout)[0]
    assert not any(b["error"] for b in info["backup"])
    rows = exported_audit(bot.settings, job_id)
    assert facts(rows, "pitr_backup.interrupted") == [{"repo": 1, "kind": "full"}]


def test_taisun_check_says_exactly_what_is_wrong_with_pgbackrest(
    db_url, source, settings_for, tmp_path, capsys
):
    from bot.checks import run_checks

    cluster = source
    scratch = cluster.new_scratch_dir(f"chk-{uuid.uuid4().hex[:6]}")

    def check(**pgbackrest) -> str:
        def mutate(cfg):
            rpo_config(cluster, scratch, tmp_path / "x")(cfg)
            cfg["backup"]["pgbackrest"].update(pgbackrest)

        run_checks(settings_for(db_url, config_mutate=mutate))
        return next(ln for ln in capsys.readouterr().out.splitlines() if "pgbackrest" in ln.split()[1:2])

    assert check().startswith("✓ pgbackrest stanza taisun: archiving works;")
    assert check(command=["pgbackrest-not-here"]) == (
        "✗ pgbackrest pgbackrest-not-here is not installed (apt-get install pgbackrest)"
    )
    wrong = check(stanza="nope")
    assert wrong.startswith("✗ pgbackrest") and "nope" in wrong and "missing stanza path" in wrong


def run_due_slots(bot, at: datetime) -> list[Job]:  # type: ignore[no-untyped-def]
    """Every slot due at `at` has its job, and nothing runs. The bot's own sweep creates the slots due now
    one at a time as well, so a single tick can find its job running and create nothing (CI saw it once):
    tick and settle until every due slot has its job."""
    stanza = bot.svc.config.backup.pgbackrest.stanza
    ids = [pitr.slot_job_id(stanza, kind, slot) for kind, slot in pitr.due_slots(bot.svc.config, at)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pitr.schedule_tick(bot.svc, at)
        bot.settle(180)
        with bot.svc.sessions() as s:
            jobs = [s.get(Job, i) for i in ids]
        if all(jobs):
            return jobs  # type: ignore[return-value]
    raise TimeoutError(f"the slots due at {at} were not all created")


def test_quiet_scheduled_backups_post_a_card_only_when_they_fail(db_url, make_bot, slack, source, tmp_path):
    """The hourly incremental (backup.schedule.quiet) would post 24 cards a day: a scheduled run of a
    quiet kind shows in backup status and the audit log when it succeeds, and in the channel when it fails."""
    cluster = source
    scratch = cluster.new_scratch_dir(f"q-{uuid.uuid4().hex[:6]}")
    base = rpo_config(cluster, scratch, tmp_path / "x", repos=(1,))

    def mutate(cfg):  # type: ignore[no-untyped-def]
        base(cfg)
        cfg["backup"]["schedule"] = {"enabled": True, "drill_at": "", "quiet": ["full", "incr"]}

    bot = make_bot(db_url, config_mutate=mutate)
    slots = run_due_slots(bot, datetime.now(UTC))  # the bot's own sweep does the same; a slot is created once
    assert all(j.params["trigger"] == "schedule" for j in slots)
    with bot.svc.sessions() as s:
        ran = list(s.scalars(select(Job).where(Job.operation == "pitr_backup")))
    assert ran and all(j.state == "succeeded" and j.params["trigger"] == "schedule" for j in ran), [
        (j.state, j.result) for j in ran
    ]
    assert all(not j.message_ts for j in ran)
    assert not [m for m in slack.channel_messages(CHANNEL) if "pgBackRest" in text_of(m)]
    assert [r["action"] for r in exported_audit(bot.settings, ran[0].id)][-1] == "pitr_backup.succeeded"

    # pgBackRest misconfigured: the next scheduled run fails, and that one is posted.
    bot.svc.config.backup.pgbackrest.config_path = str(tmp_path / "missing.conf")
    later = datetime.now(UTC) + timedelta(hours=1, minutes=5)
    assert [j for j in run_due_slots(bot, later) if j.state == "failed"]
    with bot.svc.sessions() as s:
        failed = list(s.scalars(select(Job).where(Job.operation == "pitr_backup", Job.state == "failed")))
    assert failed and all(j.message_ts for j in failed)
    posted = {m.ts: text_of(m) for m in slack.channel_messages(CHANNEL)}
    for job in failed:  # its card (the report channel), and the warning (the ops channel; one channel here)
        assert "failed" in posted[job.message_ts].lower() and "missing.conf" in posted[job.message_ts]
        assert any(t.startswith(f"⚠️ The scheduled {job.params['kind']} backup failed (job `{job.id[:8]}`)")
                   for t in posted.values())  # fmt: skip
    assert len(posted) == 2 * len(failed)  # nothing for the runs that succeeded
