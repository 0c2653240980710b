"""Run bot.backends.backup.run_backup once in this process and print JSON with its peak memory.

    python benchmarks/backup_child.py DSN BUCKET      (AWS_* in the environment point at moto)

Peak memory is this process's VmHWM from /proc/self/status (pg_dump is a separate
process and not counted). Not ru_maxrss: on Linux it carries over the high-water mark of
the (v)forked parent image from before exec, so a child of a big parent reports the
parent's size. `baseline_rss_mb` is the high-water mark just before the backup starts,
after the imports and the S3 client, so `peak - baseline` is what the backup itself added.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from datetime import UTC, datetime


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    return 0.0


def _hwm_mb() -> float:
    return _status_mb("VmHWM")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def main() -> int:
    dsn, bucket = sys.argv[1], sys.argv[2]
    from bot.backends import aws
    from bot.backends.backup import run_backup

    s3 = aws.client("s3")
    s3.head_bucket(Bucket=bucket)
    # Time spent in S3 calls (the parts go from an uploader thread, alongside the dump and gzip).
    in_s3 = {"seconds": 0.0, "calls": 0}

    def timed(fn):  # type: ignore[no-untyped-def]
        def call(**kwargs):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(**kwargs)
            finally:
                in_s3["seconds"] += time.perf_counter() - t
                in_s3["calls"] += 1

        return call

    for name in ("upload_part", "complete_multipart_upload", "copy_object", "create_multipart_upload"):
        setattr(s3, name, timed(getattr(s3, name)))
    baseline = _hwm_mb()
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            samples.append(_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = run_backup(dsn=dsn, s3=s3, bucket=bucket, prefix="db/", now=datetime.now(UTC))
    wall = time.perf_counter() - started
    done.set()
    sampler.join(1)
    print(
        json.dumps(
            {
                "key": result.key,
                "seconds": round(wall, 2),
                "raw_bytes": result.raw_bytes,
                "gzip_bytes": result.size_bytes,
                "sha256": result.sha256,
                "baseline_rss_mb": round(baseline, 1),
                "peak_rss_mb": round(_hwm_mb(), 1),
                "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "s3_seconds": round(in_s3["seconds"], 2),
                "s3_calls": in_s3["calls"],
                "rss_samples": len(samples),
                "rss_sample_max_mb": round(max(samples, default=0.0), 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
