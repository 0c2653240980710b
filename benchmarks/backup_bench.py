"""4. Backup streaming: run_backup (pg_dump → gzip in-process → S3 multipart) vs `pg_dump | gzip > file`,
and vs the same job done without the bot, `pg_dump | gzip | upload to S3` (to the same moto).

For each size a fresh PostgreSQL database is filled with generate_series rows of random
hex text (an UNLOGGED table, so filling is quick; pg_dump dumps its data all the same),
then, in the same run: the shell pipeline into a file, and the bot's run_backup in a
child process (benchmarks/backup_child.py) uploading to moto's S3 server on loopback.
The child's peak RSS shows whether memory grows with the database. Databases and
files are removed afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from typing import Any

import httpx
import psycopg

from benchmarks.common import PY, ROOT, WORK, CpuWatch, base_env, log, pg_create, pg_drop

ROWS_PER_MB = 3636  # ~275 bytes a row on disk
PAYLOAD = " || ".join(["md5(random()::text)"] * 6)  # 192 random hex characters
INSERT = (
    "INSERT INTO events SELECT g, now() - make_interval(secs => g), "  # noqa: S608 (constants only)
    f"(ARRAY['deploy','alert','audit','job'])[1 + g %% 4], {PAYLOAD} "
    "FROM generate_series(%s::bigint, %s::bigint) g"
)


def make_db(target_mb: int) -> tuple[str, float, float]:
    """A database of about target_mb; returns (dsn, size in MB, seconds to fill)."""
    url = pg_create("taisun_bench_bk")
    rows = target_mb * ROWS_PER_MB
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE UNLOGGED TABLE events (id bigint, created_at timestamptz, kind text, payload text)")

    def fill(k: int, parts: int) -> None:
        lo, hi = k * rows // parts + 1, (k + 1) * rows // parts
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(INSERT, (lo, hi))

    threads = [threading.Thread(target=fill, args=(k, 2)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(url, autocommit=True) as c:
        # As autovacuum leaves a production table: hint bits set and tuples frozen. Freshly inserted
        # pages made the first pg_dump write back every page it read (setting their hint bits), a
        # gigabyte of writes beside the acks' WAL flushes that a long-lived database never sees.
        c.execute("VACUUM (FREEZE, ANALYZE) events")
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    return url, size / 1e6, time.perf_counter() - started


def shell_pipeline(dsn: str) -> dict[str, Any]:
    out = WORK / "backup-reference.sql.gz"
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", 'pg_dump --no-password --dbname="$DSN" | gzip -6 > "$OUT"'],
        env={**os.environ, "DSN": dsn, "OUT": str(out)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    wall = time.perf_counter() - started
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pg_dump | gzip failed: {proc.stderr[-1000:]}")
    return {"seconds": round(wall, 2), "gzip_bytes": size}


UPLOAD_STDIN = """
import sys, boto3
from boto3.s3.transfer import TransferConfig
boto3.client("s3").upload_fileobj(sys.stdin.buffer, sys.argv[1], sys.argv[2],
                                  Config=TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=1))
"""


def shell_pipeline_to_s3(dsn: str, bucket: str, aws_env: dict[str, str]) -> dict[str, Any]:
    """The same job without the bot: `pg_dump | gzip -6 | <upload stdin to S3>`, as a cron script with
    `aws s3 cp - s3://…` does it (boto3's managed upload, 8 MiB parts, to the same moto)."""
    key = f"reference/{time.time_ns()}.sql.gz"
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", 'pg_dump --no-password --dbname="$DSN" | gzip -6 | "$PY" -c "$UP" "$BUCKET" "$KEY"'],
        env={**os.environ, **aws_env, "DSN": dsn, "PY": PY, "UP": UPLOAD_STDIN, "BUCKET": bucket, "KEY": key},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"pg_dump | gzip | upload failed: {proc.stderr[-1000:]}")
    return {"seconds": round(wall, 2), "key": key}


def bot_backup(dsn: str, bucket: str, aws_env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [PY, str(ROOT / "benchmarks" / "backup_child.py"), dsn, bucket],
        cwd=ROOT, env=base_env(**aws_env), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"run_backup failed: {proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    data["process_seconds"] = round(wall, 2)
    return data


def run(sizes_mb: list[int]) -> list[dict[str, Any]]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    aws_env = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    try:
        for mb in sizes_mb:
            httpx.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
            import boto3

            s3 = boto3.client(
                "s3", endpoint_url=endpoint, region_name="ap-northeast-1",
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )  # fmt: skip
            bucket = f"taisun-bench-{mb}"
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
            )
            log(f"backup: filling a ~{mb} MB database")
            dsn, size_mb, fill_s = make_db(mb)
            try:
                log(f"backup: pg_dump | gzip > file ({size_mb:.0f} MB)")
                with CpuWatch() as cpu_ref:
                    ref = shell_pipeline(dsn)
                log("backup: run_backup → S3 (moto) in a child process")
                with CpuWatch() as cpu_bot:
                    bot = bot_backup(dsn, bucket, aws_env)
                head = s3.head_object(Bucket=bucket, Key=bot["key"])
                log("backup: pg_dump | gzip | upload to S3 (moto), no bot")
                ref_s3 = shell_pipeline_to_s3(dsn, bucket, aws_env)
            finally:
                pg_drop(dsn)
            rows.append({
                "target_mb": mb,
                "db_size_mb": round(size_mb, 1),
                "fill_s": round(fill_s, 1),
                "dump_raw_mb": round(bot["raw_bytes"] / 1e6, 1),
                "reference_s": ref["seconds"],
                "reference_gzip_mb": round(ref["gzip_bytes"] / 1e6, 1),
                "bot_s": bot["seconds"],
                "bot_process_s": bot["process_seconds"],
                "bot_gzip_mb": round(bot["gzip_bytes"] / 1e6, 1),
                "bot_s3_wait_s": bot["s3_seconds"],
                "bot_vs_reference": round(bot["seconds"] / ref["seconds"], 2) if ref["seconds"] else None,
                "reference_to_s3_s": ref_s3["seconds"],
                "bot_vs_reference_to_s3": round(bot["seconds"] / ref_s3["seconds"], 2) if ref_s3["seconds"] else None,
                "bot_baseline_rss_mb": bot["baseline_rss_mb"],
                "bot_peak_rss_mb": bot["peak_rss_mb"],
                "bot_rss_growth_mb": round(bot["peak_rss_mb"] - bot["baseline_rss_mb"], 1),
                "bot_rss_max_during_mb": bot["rss_sample_max_mb"],
                "stored_sha256_ok": head.get("Metadata", {}).get("sha256") == bot["sha256"],
                "stored_size_ok": int(head["ContentLength"]) == bot["gzip_bytes"],
                "cpu_reference": cpu_ref.result,
                "cpu_bot": cpu_bot.result,
            })  # fmt: skip
            httpx.post(f"{endpoint}/moto-api/reset", timeout=60)
    finally:
        server.stop()
    return rows
