"""bot.backends.backup against a real PostgreSQL and S3 served by moto."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import moto.s3.models
import psycopg
import pytest

from bot.backends import aws as aws_factory
from bot.backends import backup
from bot.backends.backup import (
    BackupFailed,
    BackupNotFound,
    ChecksumMismatch,
    RestoreFailed,
    apply_retention,
    backup_memory,
    list_backups,
    restore_backup,
    run_backup,
    run_verify_command,
)
from bot.backends.pgbackrest import PgBackRest, ScratchError, ScratchInstance
from tests.backend_fixtures import Bucket, aws, moto_endpoint, pg_db, s3_bucket  # noqa: F401

NOW = datetime(2026, 11, 28, 2, 0, 0, tzinfo=UTC)
SMALL_PART = 64 * 1024


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Let S3 (moto, in this process) and the module accept 64 KiB parts so a small
    dump exercises several multipart parts."""
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", SMALL_PART)
    monkeypatch.setattr(backup, "MIN_PART_SIZE", SMALL_PART)
    return SMALL_PART


def _fill(dsn: str, rows: int = 3000) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, blob text)")
        # md5 text compresses poorly, so the dump spans several 64 KiB parts
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, md5(g::text) || md5((g * 7)::text) "
            "FROM generate_series(1, %s) g",
            [rows],
        )


def _fingerprint(dsn: str) -> tuple[int, str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(id || name || blob, ',' ORDER BY id)) FROM items"
        ).fetchone()
        assert row is not None
        return row[0], row[1]


def _tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]


def _wait_for_exit(pid: int, timeout_s: float = 10.0) -> None:
    """Until the process is gone or a zombie (exited, not yet reaped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still running")


def _no_leftovers(b: Bucket, prefix: str = "db/") -> None:
    assert b.s3.list_objects_v2(Bucket=b.name, Prefix=prefix).get("KeyCount", 0) == 0
    assert b.s3.list_multipart_uploads(Bucket=b.name).get("Uploads", []) == []


def _fake_tool(tmp_path: Path, name: str, body: str) -> str:
    """An executable Python script standing in for pg_dump/psql."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_aws_factory_uses_endpoint_and_region(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = aws_factory.client("s3")
    assert s3.meta.endpoint_url == aws  # AWS_ENDPOINT_URL honoured by boto3 itself
    assert s3.meta.region_name == "ap-northeast-1"
    # botocore stores max_attempts=3 (retries) as total_max_attempts=4 (calls)
    assert s3.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert aws_factory.client("ssm").meta.region_name == "us-west-2"
    monkeypatch.delenv("AWS_REGION")
    assert aws_factory.client("ec2").meta.region_name == "ap-northeast-1"
    assert aws_factory.client("ec2", region="eu-west-1").meta.region_name == "eu-west-1"


def test_backup_round_trip_list_and_restore(
    s3_bucket: Bucket, pg_db: Callable[[], str], small_parts: int
) -> None:
    src, dst = pg_db(), pg_db()
    _fill(src)
    lines: list[str] = []
    result = run_backup(
        dsn=src, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, progress=lines.append, part_size=small_parts
    )
    assert result.key == "db/backup_20261128_020000.sql.gz"
    assert sum("part " in ln and "uploaded" in ln for ln in lines) >= 2, lines  # several parts

    # Stored bytes: valid gzip of a SQL dump, matching size and checksum metadata.
    obj = s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=result.key)
    data = obj["Body"].read()
    assert len(data) == result.size_bytes
    assert hashlib.sha256(data).hexdigest() == result.sha256
    assert obj["Metadata"]["sha256"] == result.sha256
    assert obj["Metadata"]["size-bytes"] == str(result.size_bytes)
    assert b"CREATE TABLE public.items" in gzip.decompress(data)
    assert result.raw_bytes > result.size_bytes > 0 and result.throughput_bytes_per_s > 0

    [info] = list_backups(s3_bucket.s3, s3_bucket.name, "db/")
    assert (info.key, info.id, info.size_bytes, info.sha256) == (
        result.key,
        "20261128_020000",
        result.size_bytes,
        result.sha256,
    )

    steps: list[str] = []
    restored = restore_backup(
        backup_id_or_key="20261128_020000",
        s3=s3_bucket.s3,
        bucket=s3_bucket.name,
        prefix="db/",
        dsn=dst,
        progress=steps.append,
    )
    assert restored.key == result.key and restored.sha256 == result.sha256
    assert _fingerprint(dst) == _fingerprint(src)
    assert _fingerprint(dst)[0] == 3000
    assert any("checksum verified" in s for s in steps)


def test_list_backups_newest_first_and_ignores_foreign_keys(s3_bucket: Bucket) -> None:
    s3, name = s3_bucket.s3, s3_bucket.name
    for key in (
        "db/backup_20261101_020000.sql.gz",
        "db/backup_20261128_020000.sql.gz",
        "db/backup_20261115_020000.sql.gz",
        "db/backup_20240101.sql",  # the guide's old manual naming: not ours
        "db/notes.txt",
        "db/nested/backup_20261129_020000.sql.gz",
    ):
        s3.put_object(Bucket=name, Key=key, Body=b"x")
    ids = [b.id for b in list_backups(s3, name, "db")]  # "db" and "db/" are the same
    assert ids == ["20261128_020000", "20261115_020000", "20261101_020000"]
    assert all(b.sha256 is None for b in list_backups(s3, name, "db/"))  # not made by run_backup


def test_tampered_object_is_refused_and_target_untouched(
    s3_bucket: Bucket, pg_db: Callable[[], str], small_parts: int
) -> None:
    src, dst = pg_db(), pg_db()
    _fill(src, rows=200)
    result = run_backup(dsn=src, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, part_size=small_parts)
    # Overwrite with a different (still valid gzip) dump carrying the old metadata.
    evil = gzip.compress(b"DROP TABLE IF EXISTS marker;\nCREATE TABLE pwned (x int);\n")
    s3_bucket.s3.put_object(
        Bucket=s3_bucket.name,
        Key=result.key,
        Body=evil,
        Metadata={"sha256": result.sha256, "size-bytes": str(result.size_bytes)},
    )
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int)")
    with pytest.raises(ChecksumMismatch, match="not touched"):
        restore_backup(
            backup_id_or_key=result.key, s3=s3_bucket.s3, bucket=s3_bucket.name, prefix="db/", dsn=dst
        )
    assert _tables(dst) == ["marker"]


def test_object_without_checksum_is_refused(s3_bucket: Bucket, pg_db: Callable[[], str]) -> None:
    s3_bucket.s3.put_object(
        Bucket=s3_bucket.name,
        Key="db/backup_20261127_020000.sql.gz",
        Body=gzip.compress(b"CREATE TABLE t (x int);"),
    )
    dst = pg_db()
    with pytest.raises(ChecksumMismatch, match="no sha256"):
        restore_backup(backup_id_or_key="20261127_020000", s3=s3_bucket.s3, bucket=s3_bucket.name, dsn=dst)
    assert _tables(dst) == []


def test_restore_unknown_id_and_garbage(s3_bucket: Bucket, pg_db: Callable[[], str]) -> None:
    dst = pg_db()
    with pytest.raises(BackupNotFound, match="backup list"):
        restore_backup(backup_id_or_key="20990101_000000", s3=s3_bucket.s3, bucket=s3_bucket.name, dsn=dst)
    with pytest.raises(BackupNotFound, match="not a backup id"):
        restore_backup(backup_id_or_key="../etc/passwd", s3=s3_bucket.s3, bucket=s3_bucket.name, dsn=dst)


def test_restore_error_rolls_back_everything(
    s3_bucket: Bucket, pg_db: Callable[[], str], small_parts: int
) -> None:
    src, dst = pg_db(), pg_db()
    _fill(src, rows=50)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute("CREATE TABLE zzz_later (x int)")  # restored after items
    result = run_backup(dsn=src, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, part_size=small_parts)
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("CREATE TABLE zzz_later (y int)")  # clash → psql error mid-restore
    with pytest.raises(RestoreFailed, match='relation "zzz_later" already exists') as err:
        restore_backup(backup_id_or_key=result.key, s3=s3_bucket.s3, bucket=s3_bucket.name, dsn=dst)
    assert "rolled back" in str(err.value)
    assert _tables(dst) == ["zzz_later"]  # items was not left behind: single transaction


def test_truncated_stream_is_rolled_back_not_committed(
    s3_bucket: Bucket, pg_db: Callable[[], str], tmp_path: Path
) -> None:
    # Complete statements, sync-flushed, then the stream just stops (no gzip trailer).
    # Closing psql's stdin here would COMMIT "early"; the restore must kill psql instead.
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    # ~1 MiB of comments after the statements: pushing that through the pipe proves psql
    # was running (pid written) and had already executed the statements.
    sql = (
        b"CREATE TABLE early (x int);\nINSERT INTO early VALUES (1);\n"
        + (b"-- " + b"x" * 100 + b"\n") * 10_000
    )
    data = comp.compress(sql) + comp.flush(zlib.Z_SYNC_FLUSH)
    key = "db/backup_20261126_020000.sql.gz"
    s3_bucket.s3.put_object(
        Bucket=s3_bucket.name, Key=key, Body=data, Metadata={"sha256": hashlib.sha256(data).hexdigest()}
    )
    dst = pg_db()
    # The real psql, exec'ed by a wrapper that records its pid (exec keeps it).
    pidfile = tmp_path / "psql.pid"
    psql = _fake_tool(
        tmp_path,
        "psql",
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\nos.execvp('psql', ['psql', *sys.argv[1:]])",
    )
    with pytest.raises(RestoreFailed, match="truncated"):
        restore_backup(backup_id_or_key=key, s3=s3_bucket.s3, bucket=s3_bucket.name, dsn=dst, psql=psql)
    _wait_for_exit(int(pidfile.read_text()))  # psql is gone: whatever it did is final
    assert _tables(dst) == []


def test_pg_dump_failure_leaves_nothing(s3_bucket: Bucket, pg_db: Callable[[], str]) -> None:
    dsn = pg_db().replace("taisun_bk_", "taisun_missing_") + " password=hunter2secret"
    with pytest.raises(BackupFailed) as err:
        run_backup(dsn=dsn, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW)
    msg = str(err.value)
    assert "pg_dump exited with code 1" in msg and "does not exist" in msg
    assert "hunter2secret" not in msg
    _no_leftovers(s3_bucket)


def test_failure_after_parts_uploaded_aborts_upload(
    s3_bucket: Bucket, tmp_path: Path, small_parts: int
) -> None:
    # A pg_dump that streams 1 MiB (several parts get uploaded) and then fails.
    fake = _fake_tool(
        tmp_path,
        "pg_dump",
        "sys.stdout.buffer.write(os.urandom(1024 * 1024)); sys.stdout.flush()\n"
        "sys.stderr.write('pg_dump: error: query failed: server closed the connection\\n'); sys.exit(1)",
    )
    lines: list[str] = []
    with pytest.raises(BackupFailed, match="server closed the connection") as err:
        run_backup(
            dsn="host=127.0.0.1 dbname=x",
            s3=s3_bucket.s3,
            bucket=s3_bucket.name,
            now=NOW,
            pg_dump=fake,
            part_size=small_parts,
            progress=lines.append,
        )
    assert any("part 2 uploaded" in ln for ln in lines)
    assert "nothing was stored" in str(err.value).lower()
    _no_leftovers(s3_bucket)


def test_password_goes_to_env_not_argv(s3_bucket: Bucket, tmp_path: Path) -> None:
    record = tmp_path / "argv.json"
    fake = _fake_tool(
        tmp_path,
        "pg_dump",
        f"json.dump({{'argv': sys.argv, 'pw': os.environ.get('PGPASSWORD')}}, open({str(record)!r}, 'w'))\n"
        "sys.stdout.write('-- dump\\n')",
    )
    dsn = "postgresql://app:p%40ss-W0rd@db.internal:6543/taisun?sslmode=require"
    run_backup(dsn=dsn, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, pg_dump=fake)
    seen = json.loads(record.read_text())
    assert seen["pw"] == "p@ss-W0rd"
    assert not any("W0rd" in a for a in seen["argv"])
    assert "--dbname=user=app dbname=taisun host=db.internal port=6543 sslmode=require" in seen["argv"]


def test_interrupt_cleans_up_and_propagates(
    s3_bucket: Bucket, pg_db: Callable[[], str], small_parts: int
) -> None:
    src = pg_db()
    _fill(src)

    def progress(line: str) -> None:
        if "part 1 uploaded" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_backup(
            dsn=src, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, part_size=small_parts, progress=progress
        )
    _no_leftovers(s3_bucket)

    def cancel(line: str) -> None:
        if "part 1 uploaded" in line:
            raise RuntimeError("cancelled by operator")

    with pytest.raises(BackupFailed, match="cancelled by operator"):
        run_backup(
            dsn=src, s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, part_size=small_parts, progress=cancel
        )
    _no_leftovers(s3_bucket)


def test_missing_bucket_and_small_parts_rejected(aws: str, pg_db: Callable[[], str]) -> None:
    s3 = aws_factory.client("s3")
    with pytest.raises(BackupFailed, match="NoSuchBucket"):
        run_backup(dsn=pg_db(), s3=s3, bucket="no-such-bucket-here", now=NOW)
    with pytest.raises(ValueError, match="part_size"):
        run_backup(dsn="dbname=x", s3=s3, bucket="b", now=NOW, part_size=1024)


def test_retention_uses_key_timestamp_and_keeps_latest(s3_bucket: Bucket) -> None:
    s3, name = s3_bucket.s3, s3_bucket.name
    now = datetime(2026, 12, 31, 3, 0, tzinfo=UTC)
    days_old = [45, 31, 30, 29, 1]
    keys = {
        d: f"db/backup_{(now - timedelta(days=d, minutes=-1 if d == 30 else 0)):%Y%m%d_%H%M%S}.sql.gz"
        for d in days_old
    }
    for key in keys.values():
        s3.put_object(Bucket=name, Key=key, Body=b"x")
    s3.put_object(Bucket=name, Key="db/backup_20200101.sql", Body=b"guide-era manual dump")
    s3.put_object(Bucket=name, Key="memory/memory_20200101_000000.tar.gz", Body=b"other prefix")

    deleted = apply_retention(s3, name, "db/", 30, now)
    assert sorted(deleted) == sorted([keys[45], keys[31]])
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert left == {
        keys[30],
        keys[29],
        keys[1],
        "db/backup_20200101.sql",
        "memory/memory_20200101_000000.tar.gz",
    }

    # Everything old: the newest backup still survives.
    much_later = now + timedelta(days=400)
    assert sorted(apply_retention(s3, name, "db/", 30, much_later)) == sorted([keys[30], keys[29]])
    assert [b.key for b in list_backups(s3, name, "db/")] == [keys[1]]


def test_backup_memory(s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mem = tmp_path / ".claude" / "memory"
    (mem / "agents").mkdir(parents=True)
    (mem / "agents" / "stats.json").write_text('{"runs": 3}')
    (mem / "tasks.jsonl").write_text("task 1\n")
    monkeypatch.chdir(tmp_path)
    assert backup_memory(["nope/"], s3_bucket.s3, s3_bucket.name, now=NOW) is None
    result = backup_memory([".claude/memory/", "missing/"], s3_bucket.s3, s3_bucket.name, now=NOW)
    assert result is not None and result.key == "memory/memory_20261128_020000.tar.gz"
    data = s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=result.key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == result.sha256
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = set(tar.getnames())
        assert {".claude/memory/agents/stats.json", ".claude/memory/tasks.jsonl"} <= names
        member = tar.extractfile(".claude/memory/agents/stats.json")
        assert member is not None and member.read() == b'{"runs": 3}'
    [info] = list_backups(s3_bucket.s3, s3_bucket.name, "memory/")
    assert info.sha256 == result.sha256


def test_run_verify_command() -> None:
    ok, out = run_verify_command(
        [sys.executable, "-c", "import os; print('rows ok', os.environ['X'])"], {"X": "1"}
    )
    assert ok and out == "rows ok 1"
    ok, out = run_verify_command(
        [sys.executable, "-c", "import os,sys; print('bad', os.environ['DB_PASSWORD']); sys.exit(2)"],
        {"DB_PASSWORD": "s3cr3tvalue"},
    )
    assert not ok and "exited with code 2" in out and "s3cr3tvalue" not in out
    assert run_verify_command(["/nonexistent/verify"], {}) == (
        False,
        "command not found: /nonexistent/verify",
    )


def test_large_object_metadata_via_multipart_copy(
    s3_bucket: Bucket, tmp_path: Path, small_parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend CopyObject's 5 GiB limit is 100 KiB: the stamp goes through UploadPartCopy.
    monkeypatch.setattr(backup, "COPY_OBJECT_LIMIT", 100 * 1024)
    monkeypatch.setattr(backup, "COPY_PART_SIZE", small_parts)
    fake = _fake_tool(tmp_path, "pg_dump", "sys.stdout.buffer.write(os.urandom(300 * 1024))")
    result = run_backup(
        dsn="dbname=x", s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, pg_dump=fake, part_size=small_parts
    )
    obj = s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=result.key)
    assert obj["Metadata"]["sha256"] == result.sha256
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == result.sha256
    assert s3_bucket.s3.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []


def test_abort_stale_uploads(s3_bucket: Bucket) -> None:
    key = "db/backup_20261101_020000.sql.gz"
    s3_bucket.s3.create_multipart_upload(Bucket=s3_bucket.name, Key=key)
    # moto reports a fixed 2010 "Initiated" date, so "now" is chosen around that.
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    assert backup.abort_stale_uploads(s3_bucket.s3, s3_bucket.name, "db/", long_ago) == []
    assert backup.abort_stale_uploads(s3_bucket.s3, s3_bucket.name, "db/", datetime.now(UTC)) == [key]
    assert s3_bucket.s3.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []


def test_pg_dump_and_its_compression_yield_the_cpu(s3_bucket: Bucket, tmp_path: Path) -> None:
    """`backup.nice`: pg_dump runs niced from its first instruction, and so does the thread that
    compresses its output; the rest of the bot (the job's thread, the acks) keeps its priority."""
    fake = _fake_tool(
        tmp_path,
        "pg_dump",
        "import time\n"
        "mine = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "sys.stdout.write('-- start\\n'); sys.stdout.flush(); time.sleep(0.5)\n"
        "tasks = f'/proc/{os.getppid()}/task'\n"
        "bot = sorted({int(open(f'{tasks}/{t}/stat').read().rsplit(')', 1)[1].split()[16]) for t in os.listdir(tasks)})\n"
        "sys.stdout.write(json.dumps({'pg_dump': mine, 'bot_threads': bot}))",
    )
    base = os.getpriority(os.PRIO_PROCESS, 0)
    res = run_backup(dsn="dbname=x", s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, pg_dump=fake, nice=7)
    body = gzip.decompress(s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=res.key)["Body"].read())
    seen = json.loads(body.decode().split("\n", 1)[1])
    assert seen["pg_dump"] == min(19, base + 7)
    assert min(19, base + 7) in seen["bot_threads"]  # the compressing thread
    assert base in seen["bot_threads"]  # everything else in the bot
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # nothing of it stayed behind


def test_a_missing_pg_dump_is_named(s3_bucket: Bucket) -> None:
    with pytest.raises(
        BackupFailed,
        match=r"cannot run '/nonexistent/pg_dump': not found\. Is the PostgreSQL client installed\?",
    ):
        run_backup(
            dsn="dbname=x",
            s3=s3_bucket.s3,
            bucket=s3_bucket.name,
            now=NOW,
            pg_dump="/nonexistent/pg_dump",
            nice=5,
        )
    _no_leftovers(s3_bucket)


def test_pgbackrest_and_the_drills_server_yield_the_cpu(tmp_path):
    """`backup.nice` reaches pgBackRest (and the workers it forks) and the drill's scratch server
    through pg_ctl, from their first instruction: the argument lists start with coreutils' nice."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    tell = "import os, sys; print(os.getpriority(os.PRIO_PROCESS, 0), *sys.argv[1:])"
    pgb = PgBackRest(stanza="main", command=(sys.executable, "-c", tell), nice=6)
    assert pgb.run("info").split() == [str(min(19, base + 6)), "--stanza=main", "info"]

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    pg_ctl = bin_dir / "pg_ctl"
    pg_ctl.write_text(
        f"#!{sys.executable}\nimport os\nopen({str(seen)!r}, 'w').write(str(os.getpriority(os.PRIO_PROCESS, 0)))\n"
    )
    pg_ctl.chmod(0o755)
    ScratchInstance(str(tmp_path / "data"), 54329, str(bin_dir), nice=6).start(timeout=5)
    assert seen.read_text() == str(min(19, base + 6))

    with pytest.raises(ScratchError, match=r"nowhere/pg_ctl not found \(backup.drill.pg_bin\)"):
        ScratchInstance(str(tmp_path / "data"), 54329, str(tmp_path / "nowhere"), nice=6).start(timeout=5)


def test_a_large_dump_is_compressed_in_parallel_into_one_ordinary_gzip_member(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    """Blocks deflated on several threads join into one gzip member as good as gzip's own, which
    `gunzip` (here: zlib stopping at the first member's end) restores byte for byte."""
    fake = _fake_tool(
        tmp_path,
        "pg_dump",
        "import hashlib\n"
        "for i in range(60000):  # ~5.6 MB of SQL-like lines, several blocks\n"
        "    sys.stdout.write(f'{i}\\tuser{i % 97}\\t{hashlib.md5(str(i).encode()).hexdigest()}\\n')",
    )
    expected = "".join(
        f"{i}\tuser{i % 97}\t{hashlib.md5(str(i).encode()).hexdigest()}\n"  # noqa: S324 (test data)
        for i in range(60000)
    ).encode()
    res = run_backup(dsn="dbname=x", s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, pg_dump=fake)
    stored = s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=res.key)["Body"].read()
    one = zlib.decompressobj(31)
    assert one.decompress(stored) == expected
    assert one.eof and one.unused_data == b""  # a single member, nothing after it
    assert res.raw_bytes == len(expected)
    assert len(stored) <= len(gzip.compress(expected, 6)) * 1.001  # the ratio is gzip's


def test_a_rate_cap_waits_for_each_chunks_share_of_time_and_gives_no_flood_after_a_stall() -> None:
    """`backup.max_rate_mib_per_s` (pg_basebackup's --max-rate): what the reader waits after each
    chunk, on a clock of its own."""
    now = [100.0]
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds

    cap = backup.RateCap(2 * backup.MiB, backup.MiB, clock=lambda: now[0], wait=wait)
    for _ in range(4):  # chunks that arrive at once: half a second each at 2 MiB/s
        cap.took(backup.MiB)
    assert waits == [0.5, 0.5, 0.5, 0.5]

    waits.clear()
    now[0] += 60  # pg_dump was slow to start the next table: a minute earns one chunk, not 120 MiB
    for _ in range(3):
        cap.took(backup.MiB)
    assert waits == [0.5, 0.5]

    waits.clear()
    for _ in range(3):  # a producer slower than the cap is never held back
        now[0] += 1.0
        cap.took(backup.MiB)
    assert waits == []

    uncapped = backup.RateCap(0, backup.MiB, clock=lambda: now[0], wait=wait)
    uncapped.took(100 * backup.MiB)
    assert waits == []


def test_a_capped_dump_holds_pg_dump_back_and_stores_every_byte(s3_bucket: Bucket, tmp_path: Path) -> None:
    """With max_rate the pipe is read no faster than the cap, so pg_dump itself (and the server backend
    feeding it) waits on the full pipe instead of streaming ahead; the backup is whole all the same."""
    marks = tmp_path / "marks"
    fake = _fake_tool(
        tmp_path,
        "pg_dump",
        "import time\n"
        f"marks = open({str(marks)!r}, 'w')\n"
        "for i in range(6):  # 6 MiB, written as fast as the pipe takes it\n"
        "    sys.stdout.buffer.write(bytes([65 + i]) * (1 << 20)); sys.stdout.buffer.flush()\n"
        "    marks.write(f'{time.monotonic()}\\n'); marks.flush()",
    )
    res = run_backup(
        dsn="dbname=x", s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW, pg_dump=fake, max_rate=3 * backup.MiB
    )
    written = [float(x) for x in marks.read_text().split()]
    # 6 MiB at 3 MiB/s: pg_dump could be at most the pipe's 1 MiB and one chunk ahead of the reader
    assert written[-1] - written[0] >= 0.9, "pg_dump was not held back"
    assert res.throughput_bytes_per_s <= 3 * backup.MiB * 1.01
    stored = s3_bucket.s3.get_object(Bucket=s3_bucket.name, Key=res.key)["Body"].read()
    assert gzip.decompress(stored) == b"".join(bytes([65 + i]) * (1 << 20) for i in range(6))

    uncapped = run_backup(
        dsn="dbname=x", s3=s3_bucket.s3, bucket=s3_bucket.name, now=NOW + timedelta(seconds=1), pg_dump=fake
    )
    assert uncapped.raw_bytes == res.raw_bytes
