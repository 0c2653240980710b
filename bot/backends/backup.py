"""The guide's backups: a daily pg_dump and a tar of the memory system, kept 30 days in S3.

How the pieces fit:

* ``run_backup`` streams ``pg_dump`` -> gzip (zlib, blocks compressed in parallel as pigz
  does, one ordinary gzip member) -> S3 multipart upload: dump, compression and upload
  overlap, and pg_dump and the compression can run niced. Memory stays at a few parts; no temporary file of the
  dump is written. ``max_rate`` caps how fast the dump is read (pg_basebackup's ``--max-rate``): pg_dump's
  server backend, which no niceness of the bot's reaches, then streams no faster, and the database server
  keeps its CPU for its own queries.
* The SHA-256 and size of the gzip bytes are only known at the end, so after
  CompleteMultipartUpload the object is copied onto itself with
  ``MetadataDirective=REPLACE`` (a multipart copy above the 5 GiB CopyObject limit),
  guarded by ``CopySourceIfMatch`` so only the object just written is stamped. Object
  metadata cannot be edited in place, unlike tags, which makes it the better anchor
  for an integrity check. An object without the ``sha256`` metadata is therefore a
  backup that never finished: ``list_backups`` shows it with ``sha256=None`` and
  ``restore_backup`` refuses it.
* Any failure aborts the multipart upload (or deletes the completed-but-unstamped
  object), so nothing that looks like a finished backup is left behind. A process
  killed with SIGKILL cannot clean up: ``abort_stale_uploads`` (or an S3 lifecycle
  rule AbortIncompleteMultipartUpload) removes such leftovers.
* Retention is based on the timestamp in the key (``backup_YYYYMMDD_HHMMSS``), not
  on S3's LastModified: the key is what users see and type, it survives copies and
  re-uploads (which reset LastModified), and it is testable.
* Keys are UTC timestamps of the ``now`` passed in (a naive ``now`` is taken as UTC).

Passwords never reach argv (visible in ``ps``) or messages: the DSN is split and the
password handed to pg_dump/psql in ``PGPASSWORD``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import queue
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.backends.pgconn import InvalidDsn, safe_dsn, split_dsn
from bot.core.logs import redact

Progress = Callable[[str], None] | None

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
COPY_OBJECT_LIMIT = 5 * 1024 * MiB  # CopyObject refuses sources larger than 5 GiB
COPY_PART_SIZE = 1024 * MiB
READ_CHUNK = 1 * MiB
TS_FORMAT = "%Y%m%d_%H%M%S"
META_SHA256 = "sha256"
META_SIZE = "size-bytes"

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|KEY|DSN|DATABASE_URL|_URL)$", re.I)
_ID_RE = re.compile(r"^\d{8}_\d{6}$")
_NAME_RE = re.compile(r"^(?P<kind>backup|memory)_(?P<id>\d{8}_\d{6})\.(?:sql|tar)\.gz$")
_DUMP_NAME_RE = re.compile(r"^backup_(?P<id>\d{8}_\d{6})(?:\.sql\.gz)?$")  # as a card or a list names it


# --- errors and results ---------------------------------------------------------------


class BackupError(Exception):
    """Base class; messages are safe to show (no secrets) and say what to do next."""


class BackupFailed(BackupError):
    """A backup did not complete; nothing was stored under its key."""


class BackupNotFound(BackupError):
    """No backup with that id/key."""


class ChecksumMismatch(BackupError):
    """The stored object does not match (or lacks) its recorded SHA-256; nothing was restored."""


class RestoreFailed(BackupError):
    """psql failed; the single transaction was rolled back."""


class BackupStorageError(BackupError):
    """Listing or deleting backups in S3 failed."""


@dataclass(frozen=True)
class BackupResult:
    key: str
    size_bytes: int  # gzip bytes stored
    sha256: str  # of the gzip bytes stored
    seconds: float
    throughput_bytes_per_s: float  # uncompressed input (dump/tar bytes) per second
    raw_bytes: int = 0  # uncompressed dump / tar size


@dataclass(frozen=True)
class BackupInfo:
    key: str
    id: str  # e.g. 20261128_020000, what users type
    size_bytes: int
    sha256: str | None  # None: an unfinished/foreign object, restore refuses it
    last_modified: datetime

    @property
    def taken_at(self) -> datetime:
        return parse_id(self.id)


@dataclass(frozen=True)
class RestoreResult:
    key: str
    sha256: str
    seconds: float


# --- small helpers -------------------------------------------------------------------


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _norm_prefix(prefix: str) -> str:
    """'db' and 'db/' mean the same folder; '' is the bucket root."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def parse_id(backup_id: str) -> datetime:
    """20261128_020000 -> 2026-11-28 02:00:00+00:00."""
    return datetime.strptime(backup_id, TS_FORMAT).replace(tzinfo=UTC)


def backup_key(prefix: str, now: datetime, kind: str = "backup") -> str:
    """db/backup_20261128_020000.sql.gz (kind 'memory' -> memory_....tar.gz)."""
    ext = "tar.gz" if kind == "memory" else "sql.gz"
    return f"{_norm_prefix(prefix)}{kind}_{_utc(now).strftime(TS_FORMAT)}.{ext}"


def resolve_key(backup_id_or_key: str, prefix: str = "db/") -> str:
    """A backup as people copy it from a list or a card -> its key; BackupNotFound for anything else.

    Accepted: an id (20261128_020000), a name (backup_20261128_020000, with or without .sql.gz)
    or a key (db/backup_20261128_020000.sql.gz).
    """
    value = backup_id_or_key.strip().strip("`")
    if _ID_RE.match(value):
        return f"{_norm_prefix(prefix)}backup_{value}.sql.gz"
    name = _DUMP_NAME_RE.match(value)
    if name:  # a name without its folder: the configured prefix's
        return f"{_norm_prefix(prefix)}backup_{name['id']}.sql.gz"
    if _NAME_RE.match(value.rsplit("/", 1)[-1]) and value.endswith(".sql.gz"):
        return value
    raise BackupNotFound(
        f"{value!r} is not a backup id or key: use an id like 20261128_020000, a name like "
        f"backup_20261128_020000 or a key like {_norm_prefix(prefix)}backup_20261128_020000.sql.gz "
        "(`backup list` shows them)"
    )


def _s3_error(exc: BaseException) -> str:
    """'S3 UploadPart answered AccessDenied: ...' from a botocore error, no secrets."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "request")
        return redact(f"S3 {op} answered {err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": "))
    return redact(f"{type(exc).__name__}: {exc}")


def _is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def _last_line(text: str, password: str | None = None) -> str:
    """The last error line of a tool's stderr (the one that says why), secrets masked."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR:" in ln or "FATAL:" in ln or "error:" in ln]
    line = (errors or lines or ["(no error output)"])[-1]
    if password:
        line = line.replace(password, "***")
    return redact(line)[:500]


def _split(dsn: str, exc_type: type[BackupError]) -> tuple[str, str | None]:
    try:
        return split_dsn(dsn)
    except InvalidDsn as exc:
        raise exc_type(str(exc)) from None


def _child_env(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return env


class _StderrTail(threading.Thread):
    """Drains a child's stderr concurrently (a full pipe would block it) keeping the tail."""

    def __init__(self, stream: IO[bytes], limit: int = 64 * 1024) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit, self.buf = stream, limit, bytearray()

    def run(self) -> None:
        try:
            while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
                self.buf += chunk
                if len(self.buf) > self.limit:
                    del self.buf[: len(self.buf) - self.limit]
        finally:
            self.stream.close()

    def text(self) -> str:
        self.join(timeout=5)
        return self.buf.decode("utf-8", "replace")


class RateCap:
    """At most `rate` bytes a second through a loop that reads in chunks (pg_basebackup's --max-rate).

    After each chunk the reader waits until the chunk's share of time has passed. Time spent idle earns
    a burst of at most `burst` bytes, so a stall upstream is not made up for by a flood afterwards; a
    producer slower than the cap is never held back. `rate` <= 0: no cap.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] = time.sleep,
    ) -> None:
        self.rate, self.burst = rate, burst
        self.clock, self.wait = clock, wait
        self.free_at = clock()

    def took(self, n: int) -> None:
        """`n` bytes were read: wait until reading them fits the rate."""
        if self.rate <= 0:
            return
        now = self.clock()
        self.free_at = max(self.free_at, now - self.burst / self.rate) + n / self.rate
        if self.free_at > now:
            self.wait(self.free_at - now)


class _DumpCompressor(threading.Thread):
    """Reads pg_dump's pipe and gzips it on threads of their own, at the backup's niceness.

    The output is one ordinary gzip member (restored with psql, `gunzip`, anything), compressed
    as pigz does it: the dump is cut into 1 MiB blocks deflated in parallel, each primed with the
    32 KiB before it (the whole window deflate can use, so the ratio is gzip's) and ended on a
    byte boundary (a sync flush), so the blocks join into one stream; one CRC-32 and the size close
    it. zlib releases the GIL while it compresses, so on N cores the compression is no longer the
    single-core ceiling `pg_dump | gzip` has.

    The job's thread takes the compressed chunks and feeds the upload, so reading, compressing
    and uploading overlap. The pipe is widened to a block, so pg_dump goes on producing while a
    block is read. With ``nice`` > 0 these threads (Linux schedules threads on their own) and
    pg_dump yield the CPU to the bot's acks; the threads end with the backup, and their niceness
    with them. With ``max_rate`` > 0 (bytes a second) the pipe is read no faster than that: pg_dump
    blocks on its full pipe, stops reading its connection, and its server backend waits on the socket
    instead of taking a core. At most a few blocks wait anywhere (memory stays flat). Leaving the
    ``with`` block early (an error downstream) stops the reader without waiting for the child.
    """

    def __init__(
        self,
        stream: IO[bytes],
        level: int,
        nice: int,
        threads: int = 0,
        ahead: int = 4,
        max_rate: float = 0.0,
    ) -> None:
        super().__init__(name="dump-compressor", daemon=True)
        self.stream, self.level, self.nice = stream, level, nice
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.raw = 0
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=ahead)
        self.stopping = threading.Event()
        self.cap = RateCap(max_rate, READ_CHUNK, wait=self.stopping.wait)
        _widen_pipe(stream)

    def run(self) -> None:
        _lower_thread_priority(self.nice)
        try:
            if self._compress():
                self._put(None)
        except BaseException as exc:  # handed to the consumer
            self._put(exc)

    def _compress(self) -> bool:
        """Put the gzip member's pieces in order; False when the consumer went away."""
        crc, window = 0, b""
        in_flight: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(
            self.threads, thread_name_prefix="gzip", initializer=_lower_thread_priority, initargs=(self.nice,)
        ) as pool:
            if not self._put(GZIP_HEADER):
                return False
            while chunk := self.stream.read(READ_CHUNK):
                self.cap.took(len(chunk))
                self.raw += len(chunk)
                crc = zlib.crc32(chunk, crc)
                in_flight.append(pool.submit(_deflate_block, chunk, window, self.level, False))
                window = (
                    chunk[-DEFLATE_WINDOW:]
                    if len(chunk) >= DEFLATE_WINDOW
                    else (window + chunk)[-DEFLATE_WINDOW:]
                )
                while len(in_flight) > self.threads:
                    if not self._put(in_flight.popleft().result()):
                        return False
            in_flight.append(pool.submit(_deflate_block, b"", window, self.level, True))
            while in_flight:
                if not self._put(in_flight.popleft().result()):
                    return False
        return self._put(struct.pack("<II", crc, self.raw & 0xFFFFFFFF))

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self.stopping.is_set():
            try:
                self.chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __enter__(self) -> _DumpCompressor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, OS unknown
DEFLATE_WINDOW = 32 * 1024


def _deflate_block(data: bytes, window: bytes, level: int, last: bool) -> bytes:
    """Raw deflate of one block, primed with the bytes before it; ends byte-aligned, or final."""
    comp = (
        zlib.compressobj(level, zlib.DEFLATED, -15, zdict=window)
        if window
        else zlib.compressobj(level, zlib.DEFLATED, -15)
    )
    return comp.compress(data) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _widen_pipe(stream: IO[bytes]) -> None:
    with contextlib.suppress(OSError, AttributeError, ValueError):  # Linux only; best effort
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, READ_CHUNK)


def niced(nice: int) -> list[str]:
    """The `nice` prefix of an argument list: the program and every child it starts (through sudo
    too) run with that much more niceness, from their first instruction. coreutils' nice."""
    return ["nice", "-n", str(nice)] if nice > 0 else []


def _lower_thread_priority(nice: int) -> None:
    """Give the calling thread `nice` more niceness (Linux schedules threads on their own)."""
    if nice > 0:
        with contextlib.suppress(OSError):  # best effort: it runs at the bot's priority instead
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # kill -9 does not hang
            proc.wait(timeout=10)


def _exit_text(tool: str, rc: int) -> str:
    return f"{tool} was killed by signal {-rc}" if rc < 0 else f"{tool} exited with code {rc}"


# --- streaming upload ------------------------------------------------------------------


class _MultipartUpload:
    """A write()-able S3 multipart upload that hashes what it stores.

    Finished parts go to S3 from one uploader thread while the producer (pg_dump's pipe, gzip)
    goes on, so the dump does not stall during each upload. At most one finished part waits for
    the uploader: memory stays at about three parts whatever the size of the database. An error,
    from S3 or from the progress callback, comes back to the producer at its next write.
    """

    def __init__(self, s3: Any, bucket: str, key: str, part_size: int, progress: Progress) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.part_size, self.progress = part_size, progress
        self.buf = bytearray()
        self.parts: list[dict[str, Any]] = []  # uploaded, in order (one uploader)
        self.queued = 0  # parts handed to the uploader
        self.size = 0  # bytes written (hashed)
        self.uploaded = 0  # bytes acknowledged by S3
        self.raw_bytes = 0  # set by the producer, for progress lines
        self.sha = hashlib.sha256()
        self.completed = False
        resp = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/gzip")
        self.upload_id: str = resp["UploadId"]
        self._pending: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._uploader = threading.Thread(target=self._upload_parts, name="s3-part-uploader", daemon=True)
        self._uploader.start()

    def _current_part_size(self) -> int:
        # Double the part size every 2,000 parts so a huge dump never hits S3's
        # 10,000-part ceiling (8 MiB parts alone would stop at 78 GiB).
        return self.part_size * (2 ** (self.queued // 2000))

    def write(self, data: bytes) -> int:
        self._raise_uploader_error()
        self.sha.update(data)
        self.size += len(data)
        self.buf += data
        while len(self.buf) >= self._current_part_size():
            n = self._current_part_size()
            self._hand_off(bytes(self.buf[:n]))
            del self.buf[:n]
        return len(data)

    def _hand_off(self, chunk: bytes) -> None:
        number = self.queued + 1
        if number > MAX_PARTS:
            raise BackupFailed(f"the upload exceeded {MAX_PARTS} parts: raise part_size")
        self._put((number, chunk))
        self.queued = number

    def _put(self, item: tuple[int, bytes] | None) -> None:
        """Wait for room in the queue (back-pressure on pg_dump), but not on a dead uploader."""
        while True:
            self._raise_uploader_error()
            try:
                self._pending.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_uploader_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _upload_parts(self) -> None:
        while (item := self._pending.get()) is not None and not self._stopping.is_set():
            number, chunk = item
            try:
                resp = self.s3.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=chunk
                )
                self.parts.append({"ETag": resp["ETag"], "PartNumber": number})
                self.uploaded += len(chunk)
                if self.progress:
                    raw = f" ({_human(self.raw_bytes)} before compression)" if self.raw_bytes else ""
                    self.progress(f"part {number} uploaded: {_human(self.uploaded)} so far{raw}")
            except BaseException as exc:  # handed to the producer, which cleans up
                self._error = exc
                return

    def _stop_uploader(self) -> None:
        """Let the uploader finish the part it is sending (an abort must come after it), then end."""
        self._stopping.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._pending.get_nowait()
        with contextlib.suppress(queue.Full):
            self._pending.put_nowait(None)
        self._uploader.join(timeout=120)

    def complete(self, metadata: dict[str, str]) -> None:
        if self.buf or not self.queued:  # the last part may be small (or the only one)
            chunk = bytes(self.buf)
            self.buf.clear()
            self._hand_off(chunk)
        self._put(None)  # no more parts: the uploader ends after sending what it has
        self._uploader.join()
        self._raise_uploader_error()
        resp = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        self.completed = True
        _stamp_metadata(self.s3, self.bucket, self.key, resp["ETag"], self.size, metadata)

    def abort(self) -> str:
        """Remove whatever this upload left; '' or a note on what could not be removed."""
        self._stop_uploader()
        try:
            if self.completed:  # completed but not stamped: not a valid backup, delete it
                self.s3.delete_object(Bucket=self.bucket, Key=self.key)
            else:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except (ClientError, BotoCoreError) as exc:
            what = "object" if self.completed else f"multipart upload {self.upload_id}"
            return (
                f" Cleanup of the unfinished {what} failed ({_s3_error(exc)}): "
                f"remove it by hand or run retention, which also aborts stale uploads."
            )
        return ""


def _stamp_metadata(s3: Any, bucket: str, key: str, etag: str, size: int, metadata: dict[str, str]) -> None:
    """Copy the object onto itself with new metadata, only if it is still the one we wrote."""
    source = {"Bucket": bucket, "Key": key}
    if size <= COPY_OBJECT_LIMIT:
        s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource=source,
            CopySourceIfMatch=etag,
            MetadataDirective="REPLACE",
            Metadata=metadata,
            ContentType="application/gzip",
        )
        return
    # Above 5 GiB CopyObject is refused: a multipart copy with the new metadata.
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata=metadata, ContentType="application/gzip"
    )["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
            end = min(start + COPY_PART_SIZE, size) - 1
            resp = s3.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=source,
                CopySourceIfMatch=etag,
                CopySourceRange=f"bytes={start}-{end}",
            )
            parts.append({"ETag": resp["CopyPartResult"]["ETag"], "PartNumber": number})
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


class _GzipSink:
    """write() raw bytes, gzip them in-process, pass the result to the upload."""

    def __init__(self, upload: _MultipartUpload, level: int) -> None:
        self.upload = upload
        self.comp = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip container
        self.raw = 0

    def write(self, data: bytes) -> int:
        self.raw += len(data)
        self.upload.raw_bytes = self.raw
        out = self.comp.compress(data)
        if out:
            self.upload.write(out)
        return len(data)

    def finish(self) -> None:
        self.upload.write(self.comp.flush())


def _check_part_size(part_size: int) -> None:
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part size)")


def _refuse_existing(s3: Any, bucket: str, key: str) -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _is_not_found(exc):
            return
        raise BackupFailed(f"cannot check s3://{bucket}/{key}: {_s3_error(exc)}") from None
    raise BackupFailed(f"s3://{bucket}/{key} already exists: another backup ran in the same second; retry")


def _start_upload(s3: Any, bucket: str, key: str, part_size: int, progress: Progress) -> _MultipartUpload:
    _check_part_size(part_size)
    _refuse_existing(s3, bucket, key)
    try:
        return _MultipartUpload(s3, bucket, key, part_size, progress)
    except (ClientError, BotoCoreError) as exc:
        raise BackupFailed(
            f"cannot start the upload to s3://{bucket}/{key}: {_s3_error(exc)}. "
            "Check the bucket name, region and the bot's s3:PutObject permission."
        ) from None


def _fail(exc: BaseException, upload: _MultipartUpload, what: str) -> BackupError:
    note = upload.abort()
    if isinstance(exc, BackupError):
        return type(exc)(f"{exc}{note}")
    if isinstance(exc, ClientError | BotoCoreError):
        detail = _s3_error(exc)
    else:
        detail = redact(f"{type(exc).__name__}: {exc}")
    return BackupFailed(f"{what} failed: {detail}. The partial upload was aborted; nothing was stored.{note}")


# --- public API ------------------------------------------------------------------------


def run_backup(
    *,
    dsn: str,
    s3: Any,
    bucket: str,
    prefix: str = "db/",
    now: datetime,
    progress: Progress = None,
    pg_dump: str = "pg_dump",
    part_size: int = DEFAULT_PART_SIZE,
    pg_dump_args: Sequence[str] = (),
    compresslevel: int = 6,
    nice: int = 0,
    max_rate: float = 0.0,
) -> BackupResult:
    """pg_dump the DSN's database, gzip and stream it to s3://bucket/<prefix>backup_<ts>.sql.gz.

    Plain SQL format (restorable with psql, as in the guide). `progress` gets a line per
    part; if it raises, the backup is cancelled and cleaned up. KeyboardInterrupt and
    SystemExit are re-raised after the cleanup. `nice` > 0 runs pg_dump and the compression
    at that much lower CPU priority (the upload and the bot's other threads keep theirs).
    `max_rate` > 0: read the dump at most that many bytes a second (before compression).
    """
    key = backup_key(prefix, now, "backup")
    conninfo, password = _split(dsn, BackupFailed)
    upload = _start_upload(s3, bucket, key, part_size, progress)
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        program = shutil.which(pg_dump)
        if program is None:
            raise BackupFailed(f"cannot run {pg_dump!r}: not found. Is the PostgreSQL client installed?")
        argv = [*niced(nice), program, "--no-password", *pg_dump_args, f"--dbname={conninfo}"]
        try:
            proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_child_env(password)
            )
        except OSError as exc:
            raise BackupFailed(
                f"cannot run {pg_dump!r}: {exc.strerror}. Is the PostgreSQL client installed?"
            ) from None
        assert proc.stdout is not None and proc.stderr is not None
        stderr = _StderrTail(proc.stderr)
        stderr.start()
        if progress:
            progress(f"dumping {safe_dsn(dsn)} to s3://{bucket}/{key}")
        with _DumpCompressor(proc.stdout, compresslevel, nice, max_rate=max_rate) as dump:
            for gz in dump:
                upload.raw_bytes = dump.raw
                upload.write(gz)
        raw = dump.raw
        rc = proc.wait()
        if rc != 0:
            raise BackupFailed(
                f"{_exit_text('pg_dump', rc)}: {_last_line(stderr.text(), password)}. "
                "Nothing was stored; fix the cause and run the backup again."
            )
        sha = upload.sha.hexdigest()
        upload.complete({META_SHA256: sha, META_SIZE: str(upload.size), "raw-bytes": str(raw)})
    except BaseException as exc:
        _kill(proc)
        err = _fail(exc, upload, f"backup to s3://{bucket}/{key}")
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt / SystemExit: cleaned up, now let it through
        raise err from (exc if isinstance(exc, ClientError | BotoCoreError) else None)
    finally:
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
    seconds = time.monotonic() - started
    if progress:
        progress(f"backup stored: s3://{bucket}/{key}, {_human(upload.size)} in {seconds:.1f}s")
    return BackupResult(
        key=key,
        size_bytes=upload.size,
        sha256=sha,
        seconds=seconds,
        throughput_bytes_per_s=raw / seconds if seconds > 0 else 0.0,
        raw_bytes=raw,
    )


def _arcname(path: str) -> str:
    """Archive name without a leading '/' or '..' parts (safe to extract anywhere)."""
    parts = [p for p in os.path.normpath(path).split(os.sep) if p not in ("", ".", "..")]
    return "/".join(parts) or "."


def backup_memory(
    paths: list[str],
    s3: Any,
    bucket: str,
    prefix: str = "memory/",
    now: datetime | None = None,
    *,
    progress: Progress = None,
    part_size: int = DEFAULT_PART_SIZE,
    compresslevel: int = 6,
) -> BackupResult | None:
    """tar.gz of the existing `paths` (the guide's .claude/memory/) streamed to
    s3://bucket/<prefix>memory_<ts>.tar.gz; None when none of the paths exists."""
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        return None
    key = backup_key(prefix, now or datetime.now(UTC), "memory")
    upload = _start_upload(s3, bucket, key, part_size, progress)
    started = time.monotonic()
    try:
        sink = _GzipSink(upload, compresslevel)
        # "w|" = stream mode: tarfile only ever calls write(), never seeks.
        with tarfile.open(fileobj=sink, mode="w|") as tar:  # type: ignore[call-overload]
            for path in existing:
                tar.add(path, arcname=_arcname(path))
        sink.finish()
        sha = upload.sha.hexdigest()
        upload.complete({META_SHA256: sha, META_SIZE: str(upload.size), "raw-bytes": str(sink.raw)})
    except BaseException as exc:
        err = _fail(exc, upload, f"memory backup to s3://{bucket}/{key}")
        if not isinstance(exc, Exception):
            raise
        raise err from None
    seconds = time.monotonic() - started
    return BackupResult(
        key=key,
        size_bytes=upload.size,
        sha256=sha,
        seconds=seconds,
        throughput_bytes_per_s=sink.raw / seconds if seconds > 0 else 0.0,
        raw_bytes=sink.raw,
    )


def list_backups(
    s3: Any, bucket: str, prefix: str = "db/", *, with_checksums: bool = True
) -> list[BackupInfo]:
    """Backups directly under `prefix`, newest first (by the timestamp in the key).

    Only keys named like backup_YYYYMMDD_HHMMSS.sql.gz / memory_....tar.gz count;
    anything else in the folder is ignored (and never deleted by retention).
    With `with_checksums` each object is HEADed for its sha256 metadata.
    """
    prefix = _norm_prefix(prefix)
    found: list[BackupInfo] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                m = _NAME_RE.match(obj["Key"][len(prefix) :])
                if not m:
                    continue
                sha = None
                if with_checksums:
                    try:
                        head = s3.head_object(Bucket=bucket, Key=obj["Key"])
                    except ClientError as exc:
                        if _is_not_found(exc):  # deleted since the listing (retention ran)
                            continue
                        raise
                    sha = head.get("Metadata", {}).get(META_SHA256)
                found.append(BackupInfo(obj["Key"], m["id"], obj["Size"], sha, obj["LastModified"]))
    except (ClientError, BotoCoreError) as exc:
        raise BackupStorageError(
            f"cannot list s3://{bucket}/{prefix}: {_s3_error(exc)}. Check the bucket name and s3:ListBucket permission."
        ) from None
    found.sort(key=lambda b: (b.id, b.last_modified), reverse=True)
    return found


def apply_retention(
    s3: Any, bucket: str, prefix: str, days: int, now: datetime, *, keep_latest: int = 1
) -> list[str]:
    """Delete backups whose key timestamp is more than `days` before `now`; returns the keys.

    The newest `keep_latest` backups are kept whatever their age, so a backup job that
    has been failing for a month never lets retention delete the last good copy.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    cutoff = _utc(now) - timedelta(days=days)
    backups = list_backups(s3, bucket, prefix, with_checksums=False)
    doomed = [b.key for b in backups[max(keep_latest, 0) :] if b.taken_at < cutoff]
    deleted: list[str] = []
    for i in range(0, len(doomed), 1000):  # DeleteObjects takes at most 1000 keys
        batch = doomed[i : i + 1000]
        try:
            resp = s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        except (ClientError, BotoCoreError) as exc:
            raise BackupStorageError(
                f"retention: deleting from s3://{bucket}/{prefix} failed after {len(deleted)} deletions: "
                f"{_s3_error(exc)}"
            ) from None
        errors = resp.get("Errors", [])
        failed = {e["Key"] for e in errors}
        deleted += [k for k in batch if k not in failed]
        if errors:
            e = errors[0]
            raise BackupStorageError(
                f"retention: {len(errors)} object(s) could not be deleted, e.g. {e['Key']}: "
                f"{e.get('Code')} {e.get('Message', '')}; deleted {len(deleted)}. Check s3:DeleteObject permission."
            )
    return deleted


def abort_stale_uploads(
    s3: Any, bucket: str, prefix: str, now: datetime, *, older_than: timedelta = timedelta(hours=24)
) -> list[str]:
    """Abort multipart uploads under `prefix` started before now - older_than (left by a
    killed process); returns their keys."""
    cutoff = _utc(now) - older_than
    aborted = []
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=_norm_prefix(prefix)
        ):
            for up in page.get("Uploads", []):
                if _utc(up["Initiated"]) < cutoff:
                    s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                    aborted.append(up["Key"])
    except (ClientError, BotoCoreError) as exc:
        raise BackupStorageError(f"aborting stale uploads in s3://{bucket}: {_s3_error(exc)}") from None
    return aborted


def restore_backup(
    *,
    backup_id_or_key: str,
    s3: Any,
    bucket: str,
    prefix: str = "db/",
    dsn: str,
    progress: Progress = None,
    psql: str = "psql",
    workdir: str | None = None,
) -> RestoreResult:
    """Download, verify the SHA-256, then replay into the DSN's database in one transaction.

    The database is not contacted until the checksum matched. A psql error rolls the
    whole restore back (ON_ERROR_STOP + --single-transaction). The target should be an
    empty database: a plain dump re-creates tables and fails on existing ones.
    `workdir` is where the compressed download is kept meanwhile (default: TMPDIR).
    """
    key = resolve_key(backup_id_or_key, prefix)
    conninfo, password = _split(dsn, RestoreFailed)
    started = time.monotonic()
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _is_not_found(exc):
            raise BackupNotFound(
                f"no backup s3://{bucket}/{key}: `backup list` shows the ones that exist"
            ) from None
        raise RestoreFailed(f"cannot read s3://{bucket}/{key}: {_s3_error(exc)}") from None
    except BotoCoreError as exc:
        raise RestoreFailed(f"cannot read s3://{bucket}/{key}: {_s3_error(exc)}") from None
    expected = head.get("Metadata", {}).get(META_SHA256)
    if not expected:
        raise ChecksumMismatch(
            f"s3://{bucket}/{key} has no sha256 metadata: it is an unfinished or foreign upload and "
            "cannot be verified. Nothing was restored; pick another backup."
        )
    with tempfile.TemporaryDirectory(prefix="taisun-restore-", dir=workdir) as tmp:
        path = os.path.join(tmp, "backup.sql.gz")
        sha, size = _download(s3, bucket, key, head, path, progress)
        if sha != expected:
            raise ChecksumMismatch(
                f"s3://{bucket}/{key} is corrupt or was modified: sha256 {sha[:16]}… "
                f"does not match the recorded {expected[:16]}… ({_human(size)} downloaded). "
                "Nothing was restored; the database was not touched. Pick another backup."
            )
        if progress:
            progress(f"checksum verified ({sha[:12]}…); restoring into {safe_dsn(dsn)}")
        _replay(path, psql, conninfo, password, progress)
    seconds = time.monotonic() - started
    if progress:
        progress(f"restore of {key} committed in {seconds:.1f}s")
    return RestoreResult(key=key, sha256=sha, seconds=seconds)


def _download(
    s3: Any, bucket: str, key: str, head: dict[str, Any], path: str, progress: Progress
) -> tuple[str, int]:
    total = int(head.get("ContentLength", 0))
    digest, size, reported = hashlib.sha256(), 0, 0
    try:
        # IfMatch: the bytes hashed are those of the object whose metadata was read.
        body = s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])["Body"]
        with open(path, "wb") as out:
            for chunk in body.iter_chunks(READ_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if progress and size - reported >= DEFAULT_PART_SIZE:
                    reported = size
                    progress(f"downloaded {_human(size)} of {_human(total)}")
    except (ClientError, BotoCoreError) as exc:
        raise RestoreFailed(
            f"downloading s3://{bucket}/{key} failed: {_s3_error(exc)}. Nothing was restored."
        ) from None
    except OSError as exc:
        raise RestoreFailed(
            f"writing the download to {os.path.dirname(path)} failed: {exc.strerror}. "
            "Free disk space or pass another workdir. Nothing was restored."
        ) from None
    return digest.hexdigest(), size


def _replay(path: str, psql: str, conninfo: str, password: str | None, progress: Progress) -> None:
    argv = [
        psql,
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        f"--dbname={conninfo}",
    ]
    try:
        proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_child_env(password),
        )
    except OSError as exc:
        raise RestoreFailed(
            f"cannot run {psql!r}: {exc.strerror}. Is the PostgreSQL client installed?"
        ) from None
    assert proc.stdin is not None and proc.stderr is not None
    stderr = _StderrTail(proc.stderr)
    stderr.start()
    fed, reported, broken = 0, 0, False
    try:
        decomp = zlib.decompressobj(47)  # 47: gzip or zlib header, auto-detected
        with open(path, "rb") as src:
            while not broken and (chunk := src.read(READ_CHUNK)):
                # Bounded output per call: a highly compressible dump cannot balloon memory.
                data = decomp.decompress(chunk, 4 * MiB)
                while True:
                    try:
                        proc.stdin.write(data)
                    except BrokenPipeError:
                        broken = True  # psql stopped (ON_ERROR_STOP): its stderr says why
                        break
                    fed += len(data)
                    if not decomp.unconsumed_tail:
                        break
                    data = decomp.decompress(decomp.unconsumed_tail, 4 * MiB)
                if progress and fed - reported >= 64 * MiB:
                    reported = fed
                    progress(f"restoring: {_human(fed)} of SQL sent")
        if not broken and not decomp.eof:
            raise RestoreFailed("the backup's gzip stream ends early (truncated file); nothing was restored")
    except BaseException as exc:
        # Kill psql BEFORE closing its stdin: a clean EOF would make psql COMMIT the
        # partial restore; a dropped connection makes the server roll it back.
        _kill(proc)
        if isinstance(exc, RestoreFailed) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, zlib.error):
            raise RestoreFailed(f"the backup is not valid gzip ({exc}); nothing was restored") from None
        raise RestoreFailed(
            redact(f"restore interrupted: {type(exc).__name__}: {exc}; rolled back")
        ) from None
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    rc = proc.wait()
    if rc != 0:
        raise RestoreFailed(
            f"{_exit_text('psql', rc)}: {_last_line(stderr.text(), password)}. "
            "The restore ran in a single transaction and was rolled back; the database is as it was."
        )


def run_verify_command(argv: list[str], env: dict[str, str], *, timeout_s: float = 600) -> tuple[bool, str]:
    """Run the post-restore integrity check (the guide's `npm run db:verify`).

    `env` is added to the bot's environment. Returns (exit code 0, last ~20 lines of
    stdout+stderr, secrets masked).
    """
    if not argv:
        raise ValueError("no verify command configured (backup.verify_command is empty)")
    try:
        proc = subprocess.run(  # noqa: S603 - argument list, no shell
            argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return False, f"command not found: {argv[0]}"
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        return False, _tail(out, env) + f"\n(timed out after {timeout_s:.0f}s)"
    out = proc.stdout.decode("utf-8", "replace")
    tail = _tail(out, env)
    if proc.returncode != 0:
        tail = (tail + "\n" if tail else "") + f"({_exit_text(argv[0], proc.returncode)})"
    return proc.returncode == 0, tail


def _tail(text: str, env: dict[str, str], lines: int = 20, chars: int = 2000) -> str:
    tail = "\n".join(text.rstrip().splitlines()[-lines:])[-chars:]
    for name, value in env.items():  # the command may echo the secrets it was given
        if _SECRET_NAME.search(name) and value and len(value) >= 4:
            tail = tail.replace(value, "***")
    return redact(tail)
