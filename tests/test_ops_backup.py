"""Backup, list and restore through the bot: a real PostgreSQL database, S3 served by moto, psql/pg_dump for real."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import create_engine, select

from bot.cli import run_from_cli
from bot.core import locks
from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Job
from bot.operations.backup import BACKUP_LOCK, CLI_ACTOR
from tests.audit_helpers import exported_audit, facts
from tests.backend_fixtures import PG_ADMIN_DSN, Bucket, aws, dsn_for, moto_endpoint, pg_db, s3_bucket  # noqa: F401
from tests.harness import ALICE, BOB, CHANNEL, actions, buttons, text_of, the_job

SOURCE_ENV = "TAISUN_TEST_BACKUP_SOURCE_URL"
TARGET_ENV = "TAISUN_TEST_RESTORE_TARGET_URL"
VERIFY = [
    sys.executable, "-c",
    "import os, psycopg; n = psycopg.connect(os.environ['DATABASE_URL']).execute('SELECT count(*) FROM items')"
    ".fetchone()[0]; print(f'db:verify ok: {n} items')",
]  # fmt: skip


def backup_config(bucket: str, **extra):
    def mutate(cfg):
        cfg["backup"] = {
            "bucket": bucket, "prefix": "db/", "dsn_env": SOURCE_ENV, "restore_dsn_env": TARGET_ENV,
            "retention_days": 30, "memory_paths": [], "verify_command": VERIFY, **extra,
        }  # fmt: skip

    return mutate


def fill(dsn: str, rows: int = 3000) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, blob text)")
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, %s) g",
            [rows],
        )


def fingerprint(dsn: str) -> tuple[int, str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(id || name || blob, ',' ORDER BY id)) FROM items"
        ).fetchone()
        return row[0], row[1]


def tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def keys(bucket: Bucket) -> list[str]:
    return sorted(o["Key"] for o in bucket.s3.list_objects_v2(Bucket=bucket.name).get("Contents", []))


def backup_locked(bot) -> bool:
    with bot.svc.sessions() as s:
        return locks.current(s, BACKUP_LOCK) is not None


@pytest.fixture
def databases(pg_db, monkeypatch):
    source, target = pg_db(), pg_db()
    fill(source)
    monkeypatch.setenv(SOURCE_ENV, source)
    monkeypatch.setenv(TARGET_ENV, target)
    return source, target


def test_backup_round_trips_through_s3_and_restore_brings_the_data_back(
    db_url, make_bot, slack, s3_bucket, databases
):
    source, target = databases
    old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y%m%d_%H%M%S")
    for key in (f"db/backup_{old}.sql.gz", "db/backup_20200101_000000.sql.gz", "db/notes.txt"):
        s3_bucket.s3.put_object(Bucket=s3_bucket.name, Key=key, Body=b"old")
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name))

    # 1. /taisun backup run
    bot.command("backup run")
    bot.settle()
    job = the_job(bot, "backup")
    assert job.state == "succeeded", job.result
    backup_id, sha = job.progress["backup_id"], job.progress["sha256"]
    assert keys(s3_bucket) == [
        f"db/backup_{backup_id}.sql.gz",
        "db/notes.txt",
    ]  # retention kept the foreign file
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    assert f"*SHA-256*: `{sha}`" in card and "*Size*:" in card and "of SQL" in card and "/s" in card
    assert "Retention: deleted 2 backup(s) older than 30 days" in card
    assert f"Checked: `{backup_id}` is listed" in card
    assert "Retention deleted 2 backup(s)" in job.result
    rows = exported_audit(bot.settings, job.id)
    assert [r["action"] for r in rows] == [
        "backup.requested", "backup.queued", "backup.started", "backup.stored", "backup.retention_applied",
        "backup.checked", "backup.succeeded",
    ]  # fmt: skip
    (stored,) = facts(rows, "backup.stored")
    assert stored["key"] == f"db/backup_{backup_id}.sql.gz" and stored["bucket"] == s3_bucket.name
    assert stored["sha256"] == sha and stored["size_bytes"] == job.progress["size_bytes"] > 0
    (retention,) = facts(rows, "backup.retention_applied")
    assert sorted(retention["deleted"]) == ["db/backup_20200101_000000.sql.gz", f"db/backup_{old}.sql.gz"]
    assert facts(rows, "backup.checked") == [
        {"id": backup_id, "sha256": sha, "listed": True, "listed_sha256": sha}
    ]
    assert not backup_locked(bot)

    # 2. /taisun backup list
    bot.command("backup list")
    bot.settle()
    listing = text_of(slack.ephemeral(ALICE)[-1])
    assert f"`{backup_id}`" in listing and f"sha256 `{sha[:12]}…`" in listing and "ago" in listing

    # 3. /taisun backup restore <id>, approved by someone else
    bot.command(f"backup restore {backup_id}")
    approval = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    assert f"`{sha}` (verified before anything is restored)" in text_of(approval)
    assert tables(target) == []  # nothing before approval
    restore = the_job(bot, "restore")
    assert restore.state == "pending_approval"
    bot.click(Action.APPROVE, restore.id, BOB, approval)
    bot.settle()
    restore = the_job(bot, "restore")
    assert restore.state == "succeeded", restore.result
    assert fingerprint(target) == fingerprint(source) == (3000, fingerprint(source)[1])
    assert restore.progress["restored_sha256"] == sha
    final = text_of(slack.channel_messages(CHANNEL)[-1])
    assert f"Checksum verified: sha256 `{sha[:12]}…` matches" in final
    assert "passed: db:verify ok: 3000 items" in final
    rows = exported_audit(bot.settings, restore.id)
    assert [r["action"] for r in rows] == [
        "restore.requested", "restore.awaiting_approval", "restore.approved", "restore.started", "restore.restored",
        "restore.verify_command", "restore.succeeded",
    ]  # fmt: skip
    (restored,) = facts(rows, "restore.restored")
    assert restored["key"] == f"db/backup_{backup_id}.sql.gz" and restored["sha256"] == sha
    assert restored["expected_sha256"] == sha and restored["into"].startswith("postgresql://")
    (verified,) = facts(rows, "restore.verify_command")
    assert verified["last_line"] == "db:verify ok: 3000 items"
    assert not backup_locked(bot)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_tampered_backup_is_refused_before_the_database_is_touched(
    db_url, make_bot, slack, s3_bucket, databases
):
    source, target = databases
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name))
    bot.command("backup run")
    bot.settle()
    job = the_job(bot, "backup")
    key = job.progress["key"]
    meta = s3_bucket.s3.head_object(Bucket=s3_bucket.name, Key=key)["Metadata"]
    s3_bucket.s3.put_object(Bucket=s3_bucket.name, Key=key, Body=b"DROP TABLE everything;", Metadata=meta)
    bot.command(f"backup restore {job.progress['backup_id']}")
    approval = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    restore = the_job(bot, "restore")
    bot.click(Action.APPROVE, restore.id, BOB, approval)
    bot.settle()
    restore = the_job(bot, "restore")
    assert restore.state == "failed"
    assert "is corrupt or was modified" in restore.result and "the database was not touched" in restore.result
    assert tables(target) == []
    assert actions(bot, restore.id)[-1] == "restore.failed"
    assert not backup_locked(bot)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failing_pg_dump_stores_nothing_and_releases_the_backup_lock(
    db_url, make_bot, slack, s3_bucket, monkeypatch
):
    monkeypatch.setenv(SOURCE_ENV, dsn_for("taisun_no_such_database"))
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name))
    bot.command("backup run")
    bot.settle()
    job = the_job(bot)
    assert job.state == "failed"
    assert "The backup failed: pg_dump exited with code 1" in job.result
    assert 'database "taisun_no_such_database" does not exist' in job.result
    assert "Nothing was stored" in job.result
    assert keys(s3_bucket) == []
    assert s3_bucket.s3.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert "Backup failed: pg_dump exited" in text_of(slack.channel_messages(CHANNEL)[-1])
    assert actions(bot, job.id) == [
        "backup.requested", "backup.queued", "backup.started", "backup.stored", "backup.failed",
    ]  # fmt: skip
    with bot.svc.sessions() as s:
        attempt = s.scalars(select(AuditEvent).where(AuditEvent.action == "backup.stored")).one()
    assert attempt.outcome == "error" and "pg_dump exited with code 1" in attempt.detail
    assert not backup_locked(bot)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_backup_while_one_runs_is_refused_with_who_runs_it(db_url, make_bot, s3_bucket, monkeypatch):
    monkeypatch.setenv(SOURCE_ENV, dsn_for("taisun_not_used"))
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name))
    now = datetime.now(UTC)
    with bot.svc.sessions.begin() as s:
        s.add(Job(id="11111111-2222-3333-4444-555555555555", operation="backup", environment="", params={"action": "run"},
                  state="running", requested_by=BOB, created_at=now, updated_at=now, started_at=now,
                  lease_owner="another-replica", lease_expires_at=now + timedelta(seconds=30)))  # fmt: skip
    reply = bot.command("backup run")
    assert "A backup is already running (job `11111111`, started by <@U0BOB>)" in reply["text"]
    reply = bot.command("backup restore 20261128_020000")
    assert "A backup is already running" in reply["text"]
    with bot.svc.sessions() as s:
        assert s.scalars(select(Job.id)).all() == ["11111111-2222-3333-4444-555555555555"]
    assert keys(s3_bucket) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backup_list_gives_long_ages_in_days(db_url, make_bot, slack, s3_bucket):
    for age in (timedelta(days=29, hours=1), timedelta(days=2, hours=3, minutes=5), timedelta(hours=5)):
        key = f"db/backup_{datetime.now(UTC) - age:%Y%m%d_%H%M%S}.sql.gz"
        s3_bucket.s3.put_object(Bucket=s3_bucket.name, Key=key, Body=b"x", Metadata={"sha256": "ab" * 32})
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name))
    bot.command("backup list")
    bot.settle()
    listing = text_of(slack.ephemeral(ALICE)[-1])
    assert "· 29 days ago ·" in listing and "· 2d 3h ago ·" in listing and "· 5h 00m ago ·" in listing
    assert "696h" not in listing


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_restoring_a_backup_that_does_not_exist_lists_the_latest(
    db_url, make_bot, slack, s3_bucket, databases
):
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name))
    s3_bucket.s3.put_object(Bucket=s3_bucket.name, Key="db/backup_20261127_020000.sql.gz", Body=b"x")
    assert "is not a backup id or key" in bot.command("backup restore yesterday")["text"]
    bot.command("backup restore 20200101_000000")
    bot.settle()
    job = the_job(bot)
    assert job.state == "invalid"
    reply = text_of(slack.ephemeral(ALICE)[-1])
    assert "There is no backup `20200101_000000`" in reply and "Latest: `20261127_020000`" in reply


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_backup_posts_to_the_report_channel_and_exits_by_outcome(
    db_url, settings_for, slack, s3_bucket, databases, capsys, monkeypatch
):
    source, _ = databases
    settings = settings_for(db_url, config_mutate=backup_config(s3_bucket.name))
    monkeypatch.setenv(SOURCE_ENV, dsn_for("taisun_no_such_database"))
    assert run_from_cli(settings, json_output=True) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and out["state"] == "failed" and "pg_dump exited with code 1" in out["result"]
    assert "Nightly backup FAILED" in text_of(slack.channel_messages(CHANNEL)[-1])

    monkeypatch.setenv(SOURCE_ENV, source)
    assert run_from_cli(settings, json_output=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["state"] == "succeeded" and out["size_bytes"] > 0 and len(out["sha256"]) == 64
    assert keys(s3_bucket) == [out["key"]]
    report = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "Nightly backup succeeded" in report and out["id"] in report

    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.actor_id, AuditEvent.action).order_by(AuditEvent.id)).all()
    engine.dispose()
    assert [a for _, a in rows] == [
        "backup.requested", "backup.queued", "backup.started", "backup.stored", "backup.failed",
        "backup.requested", "backup.queued", "backup.started", "backup.stored", "backup.retention_applied",
        "backup.checked", "backup.succeeded",
    ]  # fmt: skip
    assert rows[0][0] == CLI_ACTOR


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_credentials_a_backup_is_a_labelled_simulation(
    db_url, make_bot, settings_for, slack, capsys, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "BACKUP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    bot = make_bot(db_url)  # the example config
    bot.command("backup run")
    bot.settle()
    job = the_job(bot)
    assert job.state == "simulated" and job.result.startswith(
        "SIMULATED: nothing was backed up (no AWS credentials"
    )
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "would run pg_dump on $BACKUP_DATABASE_URL" in card and "s3://taisun-backups/db/backup_" in card
    bot.command("backup list")
    bot.settle()
    assert "Cannot list `s3://taisun-backups/db/`: no AWS credentials" in text_of(slack.ephemeral(ALICE)[-1])
    # From cron, a simulation backed nothing up: that must not look like success.
    assert run_from_cli(settings_for(db_url)) == 1
    assert "SIMULATED: nothing was backed up" in capsys.readouterr().err
    assert run_from_cli(settings_for(db_url), json_output=True) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["state"] == "simulated" and out["job_state"] == "simulated"
    assert out["simulated"].startswith("no AWS credentials")
    assert "Nightly backup did NOT run" in text_of(slack.channel_messages(CHANNEL)[-1])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_restore_accepts_a_backup_by_the_name_its_card_and_the_list_show(
    db_url, make_bot, slack, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    bot = make_bot(db_url)  # the example config: a labelled simulation, which checks the name the same way
    bot.command("backup run")
    bot.settle()
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    name = re.search(r"/(backup_\d{8}_\d{6})\.sql\.gz", card)[1]  # the name the card shows
    for typed in (name, f"{name}.sql.gz", f"db/{name}.sql.gz", name.removeprefix("backup_")):
        reply = bot.command(f"backup restore {typed}")
        assert "Checking" in reply["text"], (typed, reply["text"])
        bot.settle()
        job = the_job(bot, "restore")
        assert job.params["key"] == f"db/{name}.sql.gz" and job.params["id"] == name.removeprefix("backup_")
        bot.click(Action.REJECT, job.id, ALICE)  # withdrawn: the next one is a new request
        bot.settle()
    refused = bot.command("backup restore backup_2026")
    assert (
        refused["text"].startswith(":warning:") and "a name like `backup_20261128_020000`" in refused["text"]
    )


def test_the_systemd_timer_runs_the_cli_backup_at_two_in_the_morning_tokyo_time():
    import configparser
    import shlex
    from pathlib import Path

    from bot.cli import build_parser, cmd_backup

    def unit(name: str) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(Path(__file__).parent.parent / "deploy" / "systemd" / name)
        return parser

    timer, service = unit("taisun-backup.timer"), unit("taisun-backup.service")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:00:00 Asia/Tokyo"
    assert timer["Timer"]["Persistent"] == "true" and timer["Install"]["WantedBy"] == "timers.target"
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["EnvironmentFile"] == "/etc/taisun/env"
    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[0].endswith("/taisun")
    assert build_parser().parse_args(argv[1:]).fn is cmd_backup


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_backup_shows_a_live_progress_line_on_a_terminal_only(db_url, settings_for, monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "BACKUP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run_from_cli(settings_for(db_url))
    shown = terminal.getvalue()
    assert "\r\033[K" in shown and "would run pg_dump" in shown  # the step line rewrites itself
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    run_from_cli(settings_for(db_url))
    assert "\r" not in piped.getvalue()  # scripts and cron get plain output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_capped_backup_says_its_cap_on_the_card_and_stores_the_same_backup(
    db_url, make_bot, slack, s3_bucket, databases
):
    """`backup.max_rate_mib_per_s`: the card says the dump is read at most that fast (why it may take
    longer than an uncapped one), and the copy restores the same."""
    source, target = databases
    bot = make_bot(db_url, config_mutate=backup_config(s3_bucket.name, max_rate_mib_per_s=32))
    bot.command("backup run")
    bot.settle()
    job = the_job(bot, "backup")
    assert job.state == "succeeded", job.result
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "*Read rate*: at most 32.0 MiB/s (`backup.max_rate_mib_per_s`)" in card
    key = job.progress["key"]
    body = s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", target], input=gzip.decompress(body), check=True
    )
    assert fingerprint(target) == fingerprint(source)
