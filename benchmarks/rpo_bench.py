"""RPO/RTO (#17): pgBackRest backups and restore drills on a realistic data size, and the ack path while
they run.

    PYTHONPATH=. .venv/bin/python benchmarks/rpo_bench.py [--mb 512] [--ack-seconds 15]

On a cluster of its own (as tests/pgbackrest_fixtures.py builds it: WAL archived by pgBackRest to
repo1 posix and repo2 S3 on moto behind TLS) filled with --mb of rows:
  full backup to repo1 and to repo2, an incremental after 2 % of the rows changed, a drill of the
  newest backup (restore → recovery to promotion → a count(*) check), a point-in-time drill;
  each phase timed with the bot's own adapter (bot.backends.pgbackrest).
Through the bot vs pgBackRest alone, alternating (bot, alone, bot, alone): a full backup to repo1 as
the bot's backup job runs it (the adapter's `backup`, then the `info` the job reads to report the new
set) and as an operator types it (the same `pgbackrest … backup` argument list, nothing else); a
restore of the newest backup likewise (the adapter's `restore` vs the same command alone).
The bench process's own peak memory (VmHWM) is recorded: the backup data never passes through it.
Then `taisun serve` (gunicorn) answers signed `/taisun help` at 16 connections: idle, and while a
full backup and a drill run on the same host, with `backup.nice` 0 and at its default: flat out
(16 connections) and at a steady 20 requests/s (latency counted from when each was due). Results go to benchmarks/results/rpo.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.ack import requests_for  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BOT_TOKEN,
    WORK,
    CpuWatch,
    drop_db,
    fresh_db,
    log,
    paced,
    start_bot,
    write_config,
)
from bot.backends.pgbackrest import PgBackRest, ScratchInstance  # noqa: E402
from bot.core.config import BackupConfig  # noqa: E402
from bot.slack.localslack import LocalSlack  # noqa: E402
from tests.backend_fixtures import free_port  # noqa: E402
from tests.pgbackrest_fixtures import PG_BIN, STANZA, archiving_cluster  # noqa: E402

PAYLOAD = " || ".join(["md5(random()::text)"] * 6)


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return round(time.perf_counter() - started, 2)


PACED_RATE = 20.0  # requests/s: far above a team's real command rate, far below saturation


def drill(pgb: PgBackRest, cluster: Any, target: datetime | None, repo: int) -> dict[str, float]:
    scratch = cluster.new_scratch_dir(f"bench-{time.monotonic_ns()}")
    data = str(scratch / "data")
    inst = ScratchInstance(data, free_port(), str(PG_BIN), tuple(cluster.run_as), pgb.nice)
    (scratch / "data.TAISUN_DRILL").write_text("bench\n")
    dsn = f"postgresql://postgres@127.0.0.1:{inst.port}/postgres"
    phases: dict[str, float] = {}
    try:
        phases["restore"] = timed(lambda: pgb.restore(data, target_time=target, repo=repo))

        def recover() -> None:
            inst.start(timeout=600)
            while True:
                try:
                    with psycopg.connect(dsn, autocommit=True) as c:
                        if not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                            return
                except psycopg.OperationalError:
                    pass
                time.sleep(0.2)

        phases["recovery"] = timed(recover)
        rows: list[int] = []

        def verify() -> None:
            with psycopg.connect(dsn, autocommit=True) as c:
                rows.append(c.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]

        phases["verify"] = timed(verify)
        phases["rows"] = rows[0]
    finally:
        phases["cleanup"] = timed(inst.remove)
    phases["total"] = round(phases["restore"] + phases["recovery"] + phases["verify"], 2)
    return phases


def save(out: dict[str, Any]) -> None:
    """Results so far to benchmarks/results/rpo.json (git-ignored): a late failure keeps the early phases."""
    dest = WORK.parent / "rpo.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2, default=str))


def alone(argv: list[str]) -> float:
    """pgBackRest alone: the command as an operator would type it."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=21600)  # noqa: S603
    return round(time.perf_counter() - started, 2)


def restore_pair(pgb: PgBackRest, cluster: Any, first: str = "bot") -> dict[str, float]:
    """The newest backup restored into a fresh directory: through the adapter, and the same command alone
    (`first` goes first: the first restore reads the repository from disk, the second from the page cache,
    so pairs alternate)."""
    out: dict[str, float] = {}
    for how in (first, "alone" if first == "bot" else "bot"):
        scratch = cluster.new_scratch_dir(f"bench-restore-{how}-{time.monotonic_ns()}")
        data = str(scratch / "data")
        argv = pgb.argv("restore", f"--pg1-path={data}", "--archive-mode=off", "--link-all=n", "--repo=1",
                        "--type=default")  # fmt: skip
        out[how] = timed(lambda data=data: pgb.restore(data, repo=1)) if how == "bot" else alone(argv)
        subprocess.run([*cluster.run_as, "rm", "-rf", "--", data], check=False, timeout=600)  # noqa: S603
    return out


def hwm_mb() -> float:
    with open("/proc/self/status") as f:
        return next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), 0.0)


def ack(url: str, slack: LocalSlack, seconds: float, name: str) -> dict[str, Any]:
    reqs = requests_for("help", slack)
    with CpuWatch() as cpu:
        res = loadgen.run(url, reqs, duration=seconds, name=name)
    res["cpu"] = cpu.result
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--ack-seconds", type=float, default=15)
    ap.add_argument(
        "--pairs-only",
        action="store_true",
        help="only the bot-vs-alone backup and restore pairs (after the fill)",
    )
    args = ap.parse_args()
    out: dict[str, Any] = {"mb": args.mb, "cpus": os.cpu_count()}
    with archiving_cluster("archive_timeout = 60\n") as cluster:
        pgb = PgBackRest(STANZA, ("pgbackrest",), tuple(cluster.run_as), str(cluster.conf))
        log(f"filling {args.mb} MB")
        rows = args.mb * 3636
        cluster.sql("CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz, payload text)")
        out["fill_s"] = timed(
            lambda: cluster.sql(
                f"INSERT INTO events SELECT g, now(), {PAYLOAD} FROM generate_series(1, %s::bigint) g",  # noqa: S608
                rows,
            )
        )
        ((size,),) = cluster.sql("SELECT pg_database_size('postgres')")
        out["db_mb"] = round(size / 1e6)
        cluster.archive_now(timeout=1800)  # a GB's updates are many segments
        if not args.pairs_only:
            log("full backups")
            out["full_repo1_posix_s"] = timed(lambda: pgb.backup("full", 1, retention_days=30))
            out["full_repo2_s3_s"] = timed(lambda: pgb.backup("full", 2, retention_days=30))
            cluster.sql("UPDATE events SET payload = md5(payload) WHERE id % 50 = 0")
            cluster.archive_now(timeout=1800)  # a GB's updates are many segments
            log("incremental backups")
            out["incr_repo1_posix_s"] = timed(lambda: pgb.backup("incr", 1, retention_days=30))
            out["incr_repo2_s3_s"] = timed(lambda: pgb.backup("incr", 2, retention_days=30))
        log("through the bot vs pgBackRest alone (full backup to repo1, then a restore; twice, alternating)")
        retention = ["--repo1-retention-full-type=time", "--repo1-retention-full=30"]
        pairs: list[dict[str, Any]] = []
        for round_ in range(2):

            def via_bot() -> None:
                pgb.backup("full", 1, retention_days=30)
                pgb.info()

            pair: dict[str, Any] = {"backup_bot_s": timed(via_bot)}
            pair["backup_alone_s"] = alone(pgb.argv("backup", "--type=full", "--repo=1", *retention))
            restored = restore_pair(pgb, cluster, first="bot" if round_ % 2 == 0 else "alone")
            pair["restore_bot_s"], pair["restore_alone_s"] = restored["bot"], restored["alone"]
            pairs.append(pair)
        save(out)
        out["bot_vs_alone"] = {
            "pairs": pairs,
            "backup_ratio": round(
                sum(p["backup_bot_s"] for p in pairs) / sum(p["backup_alone_s"] for p in pairs), 3
            ),
            "restore_ratio": round(
                sum(p["restore_bot_s"] for p in pairs) / sum(p["restore_alone_s"] for p in pairs), 3
            ),
            "bench_process_peak_rss_mb": round(hwm_mb(), 1),
        }
        if args.pairs_only:
            out["at"] = datetime.now(UTC).isoformat()
            save(out)
            print(json.dumps(out, indent=2, default=str))
            return
        ((point,),) = cluster.sql("SELECT clock_timestamp()")
        time.sleep(1.1)
        cluster.sql("UPDATE events SET payload = md5(payload) WHERE id % 20 = 0")
        cluster.archive_now(timeout=1800)  # a GB's updates are many segments
        save(out)
        log("drills")
        out["drill_latest_repo1"] = drill(pgb, cluster, None, 1)
        out["drill_pitr_repo1"] = drill(pgb, cluster, point, 1)
        out["drill_latest_repo2_s3"] = drill(pgb, cluster, None, 2)

        log("the ack path, idle and while a full backup and a drill run")
        slack = LocalSlack(token=BOT_TOKEN).start()  # the bot's token: else every request fails authorize
        slack.add_usergroup("sre-leads", {"U0BOB", "U0CAROL"})
        tmp = Path(tempfile.mkdtemp(prefix="rpo-bench-"))
        config = write_config(tmp / "taisun.yml", service_url="http://127.0.0.1:9")
        ack_db = fresh_db("postgresql", "rpo-ack")  # as in production (two gunicorn workers on SQLite queue)
        bot, url = start_bot(name="rpo-ack", db_url=ack_db, config=config,
                             slack_url=slack.url)  # fmt: skip
        try:
            loadgen.run(url, requests_for("help", slack), duration=3, name="rpo-warmup")
            out["ack_idle"] = ack(url, slack, args.ack_seconds, "rpo-idle")
            out["paced_idle"] = paced(
                url, requests_for("help", slack), rate=PACED_RATE, duration=args.ack_seconds
            )
            # backup.nice off (as before it existed), then at the config's default
            for nice in (0, BackupConfig().nice):
                niced = dataclasses.replace(pgb, nice=nice)
                busy: dict[str, Any] = {"nice": nice}

                def work(niced: PgBackRest = niced, busy: dict[str, Any] = busy) -> None:
                    busy["full_s"] = timed(lambda: niced.backup("full", 1, retention_days=30))
                    busy["drill"] = drill(niced, cluster, None, 1)

                worker = threading.Thread(target=work)
                worker.start()
                time.sleep(0.5)
                busy["ack"] = ack(url, slack, args.ack_seconds, f"rpo-busy-nice{nice}")
                worker.join()
                # an ordinary day's traffic while it all runs again: is an ack any slower?
                worker = threading.Thread(target=work, kwargs={"busy": {}})
                worker.start()
                time.sleep(0.5)
                busy["paced"] = paced(
                    url, requests_for("help", slack), rate=PACED_RATE, duration=args.ack_seconds
                )
                worker.join()
                out[f"ack_during_backup_and_drill_nice{nice}"] = busy
        finally:
            bot.stop(fast=True)
            slack.stop()
            drop_db(ack_db)
    out["at"] = datetime.now(UTC).isoformat()
    save(out)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
