"""pgBackRest and the pieces of PostgreSQL a restore drill needs, as argument lists (never a shell).

The bot configures nothing on the database server: pgBackRest's stanza, `archive_command` and
pgbackrest.conf are set up by an operator (docs/backups.md). This adapter runs what is there:

* ``PgBackRest.backup(kind, repo)`` — ``pgbackrest backup --type=full|diff|incr --repo=N``;
  retention (``--repoN-retention-full-type=time``) is passed from the bot's config so that the
  guide's 30 days has one source of truth.
* ``PgBackRest.info()`` — ``pgbackrest info --output=json``, parsed into backup sets and the
  WAL archive's range per repository.
* ``PgBackRest.restore(into, target_time)`` — a restore into a scratch data directory; with a
  target time, recovery stops there and the instance is promoted.
* ``ScratchInstance`` — ``pg_ctl`` start / stop of that directory on a port of its own, with
  archiving off, so a drill never writes into the live repository or touches the live server.
* ``archiver_status(dsn)`` — ``pg_stat_archiver``: the newest archived WAL segment and failures.

pgBackRest must run as the cluster's OS user: ``run_as`` (e.g. ``sudo -n -u postgres``) is put
before the program.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.backends.backup import niced
from bot.core.logs import redact

Progress = Callable[[str], None] | None
KINDS = ("full", "diff", "incr")
DRILL_MARKER = "TAISUN_DRILL"  # written into each scratch directory: only such directories are removed


class PgBackRestError(Exception):
    """pgBackRest failed; the message is its own last error line (secrets masked)."""


class PgBackRestMissing(PgBackRestError):
    """The pgbackrest program is not installed (or not where backup.pgbackrest.command says)."""


class ScratchError(Exception):
    """The scratch instance could not be created, started or removed."""


@dataclass(frozen=True)
class BackupSet:
    label: str  # 20261204-090941F_20261204-090947I
    kind: str  # full, diff, incr
    repo: int
    started_at: datetime
    stopped_at: datetime
    size_bytes: int  # database size
    repo_bytes: int  # what this backup added to the repository
    wal_start: str = ""
    wal_stop: str = ""
    error: bool = False


@dataclass(frozen=True)
class Info:
    """What `pgbackrest info` says about one stanza."""

    status_code: int  # 0 ok
    status: str
    backups: list[BackupSet] = field(default_factory=list)
    wal_max: dict[int, str] = field(default_factory=dict)  # repo -> newest archived segment

    @property
    def broken(self) -> bool:
        """The stanza is missing or unusable (no valid backups yet, or repositories at different points, is not)."""
        return self.status_code not in (0, 2, 4, 6)  # ok, no valid backups, different across repos, running

    def newest(self, kind: str | None = None, repo: int | None = None) -> BackupSet | None:
        sets = [
            b
            for b in self.backups
            if not b.error and (kind is None or b.kind == kind) and (repo is None or b.repo == repo)
        ]
        return max(sets, key=lambda b: b.stopped_at) if sets else None


@dataclass(frozen=True)
class Archiver:
    """pg_stat_archiver of the live server."""

    archived_count: int
    last_archived_wal: str
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str
    last_failed_at: datetime | None

    @property
    def failing(self) -> bool:
        """The newest attempt failed: WAL is piling up on the server instead of reaching the repository."""
        return self.last_failed_at is not None and (
            self.last_archived_at is None or self.last_failed_at > self.last_archived_at
        )


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    errors = (
        errors or [ln for ln in lines if any(w in ln for w in ("FATAL:", "PANIC:", "ERROR:"))] or lines[-1:]
    )
    return redact(errors[-1] if errors else "no output")[:400]


@dataclass
class PgBackRest:
    stanza: str
    command: Sequence[str] = ("pgbackrest",)
    run_as: Sequence[str] = ()
    config_path: str = ""
    nice: int = 0  # niceness added to pgBackRest and its workers (they inherit it through sudo too)

    def argv(self, *args: str) -> list[str]:
        config = [f"--config={self.config_path}"] if self.config_path else []
        return [*niced(self.nice), *self.run_as, *self.command, *config, f"--stanza={self.stanza}", *args]

    def installed(self) -> bool:
        program = self.command[0] if self.command else "pgbackrest"
        return shutil.which(program) is not None

    def run(self, *args: str, timeout: float = 600.0, progress: Progress = None) -> str:
        """Run one pgbackrest command; its stdout, or PgBackRestError with pgBackRest's own words."""
        if not self.installed():
            raise PgBackRestMissing(
                f"{self.command[0] if self.command else 'pgbackrest'} is not installed "
                "(Debian: apt-get install pgbackrest; or set backup.pgbackrest.command)"
            )
        argv = self.argv(*args)
        try:
            proc = subprocess.Popen(  # noqa: S603 (an argument list from the config, no shell)
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a kill of the bot's job reaches pgbackrest's own workers too
            )  # fmt: skip
        except OSError as e:
            raise PgBackRestMissing(f"cannot run {argv[0]}: {e.strerror}") from None
        ticker = _Ticker(progress, args[0] if args else "pgbackrest")
        ticker.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise PgBackRestError(
                f"pgbackrest {args[0]} did not finish within {timeout:.0f} s; stopped"
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            ticker.stop()
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace") + "\n" + out.decode("utf-8", "replace")
            raise PgBackRestError(f"pgbackrest {args[0]} exited {proc.returncode}: {_last_error(text)}")
        return out.decode("utf-8", "replace")

    # -- commands ----------------------------------------------------------------------
    def check(self, timeout: float = 120.0) -> None:
        """`pgbackrest check`: the stanza exists and a WAL segment reaches every repository."""
        self.run("check", timeout=timeout)

    def info(self, timeout: float = 60.0) -> Info:
        return parse_info(self.run("info", "--output=json", timeout=timeout), self.stanza)

    def backup(
        self, kind: str, repo: int, *, retention_days: int | None = None, timeout: float = 21600.0,
        progress: Progress = None,
    ) -> None:  # fmt: skip
        if kind not in KINDS:
            raise ValueError(f"unknown backup type {kind!r}")
        args = ["backup", f"--type={kind}", f"--repo={repo}"]
        if retention_days:
            args += [
                f"--repo{repo}-retention-full-type=time",
                f"--repo{repo}-retention-full={retention_days}",
            ]
        self.run(*args, timeout=timeout, progress=progress)

    def restore(
        self, into: str, *, target_time: datetime | None = None, repo: int | None = None,
        timeout: float = 21600.0, progress: Progress = None,
    ) -> None:  # fmt: skip
        """Restore into a scratch data directory; the restored instance will not archive WAL."""
        args = ["restore", f"--pg1-path={into}", "--archive-mode=off", "--link-all=n"]
        if repo:
            args.append(f"--repo={repo}")
        if target_time is not None:
            stamp = target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
            args += ["--type=time", f"--target={stamp}", "--target-action=promote"]
        else:
            args += ["--type=default"]  # the newest backup and every archived WAL segment after it
        self.run(*args, timeout=timeout, progress=progress)


class _Ticker(threading.Thread):
    """Says "still running" every few seconds while pgbackrest works (it prints nothing meanwhile)."""

    def __init__(self, progress: Progress, what: str, every: float = 5.0):
        super().__init__(daemon=True, name="taisun-pgbackrest-tick")
        self.progress, self.what, self.every = progress, what, every
        self._stop = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while self.progress and not self._stop.wait(self.every):
            with contextlib.suppress(Exception):
                self.progress(f"{self.what}: {time.monotonic() - self.started:.0f} s")

    def stop(self) -> None:
        self._stop.set()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value or 0), UTC)


def parse_info(text: str, stanza: str) -> Info:
    """`pgbackrest info --output=json` for one stanza."""
    try:
        doc = json.loads(text or "[]")
    except ValueError as e:
        raise PgBackRestError(f"pgbackrest info printed no JSON: {e}") from None
    entry = next((s for s in doc if s.get("name") == stanza), None)
    if entry is None:
        return Info(status_code=-1, status=f"stanza {stanza!r} not found in pgbackrest info")
    status = entry.get("status") or {}
    backups = []
    for b in entry.get("backup") or []:
        info = b.get("info") or {}
        backups.append(
            BackupSet(
                label=str(b.get("label", "")),
                kind=str(b.get("type", "")),
                repo=int((b.get("database") or {}).get("repo-key", 1)),
                started_at=_ts((b.get("timestamp") or {}).get("start")),
                stopped_at=_ts((b.get("timestamp") or {}).get("stop")),
                size_bytes=int(info.get("size") or 0),
                repo_bytes=int((info.get("repository") or {}).get("delta") or 0),
                wal_start=str((b.get("archive") or {}).get("start") or ""),
                wal_stop=str((b.get("archive") or {}).get("stop") or ""),
                error=bool(b.get("error")),
            )
        )
    wal_max: dict[int, str] = {}
    for a in entry.get("archive") or []:
        repo = int((a.get("database") or {}).get("repo-key", 1))
        if a.get("max"):
            wal_max[repo] = max(wal_max.get(repo, ""), str(a["max"]))
    return Info(
        status_code=int(status.get("code", -1)), status=str(status.get("message", "")), backups=backups,
        wal_max=wal_max,
    )  # fmt: skip


def archiver_status(dsn: str, timeout_s: float = 5.0) -> Archiver:
    """pg_stat_archiver of the server the DSN names (any role may read it)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
        row = conn.execute(
            "SELECT archived_count, coalesce(last_archived_wal, ''), last_archived_time, failed_count, "
            "coalesce(last_failed_wal, ''), last_failed_time FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    return Archiver(int(row[0]), str(row[1]), row[2], int(row[3]), str(row[4]), row[5])


# --- the scratch instance --------------------------------------------------------------------


@dataclass
class ScratchInstance:
    """A restored data directory started on its own port, for a drill's integrity check."""

    data_dir: str
    port: int
    pg_bin: str
    run_as: Sequence[str] = ()
    nice: int = 0  # the scratch server inherits it from pg_ctl: replay yields the CPU to the bot

    def _pg_ctl(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        pg_ctl = Path(self.pg_bin) / "pg_ctl"
        if not pg_ctl.exists():  # said here: behind `nice` it would only be an exit code
            raise ScratchError(f"{pg_ctl} not found (backup.drill.pg_bin)")
        argv = [*niced(self.nice), *self.run_as, str(pg_ctl), "-D", self.data_dir, *args]
        try:
            return subprocess.run(  # noqa: S603 (an argument list, no shell)
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise ScratchError(f"{argv[0]} not found (backup.drill.pg_bin)") from None
        except subprocess.TimeoutExpired:
            raise ScratchError(f"pg_ctl {args[0]} did not finish within {timeout:.0f} s") from None

    def start(self, timeout: float = 3600.0) -> None:
        """Start with archiving off, on 127.0.0.1 only; returns when it accepts connections (WAL replayed)."""
        log = str(Path(self.data_dir) / "drill.log")
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data_dir} "
            "-c archive_mode=off -c archive_command= "
            "-c shared_preload_libraries="
        )
        res = self._pg_ctl(
            "start", "-w", "-t", str(int(timeout)), "-l", log, "-o", opts, timeout=timeout + 30
        )
        if res.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = _last_error(Path(log).read_text(encoding="utf-8", errors="replace")[-4000:])
            raise ScratchError(
                f"the scratch instance did not start: {tail or _last_error(res.stderr + res.stdout)}"
            )

    def running(self) -> bool:
        return (Path(self.data_dir) / "postmaster.pid").exists()

    def stop(self) -> None:
        if self.running():
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "60", timeout=90)

    def remove(self) -> None:
        """Stop it and delete the directory (only a directory the bot marked as a drill's)."""
        self.stop()
        path = Path(self.data_dir)
        if not path.exists():
            marker_of(str(path)).unlink(missing_ok=True)
            return
        if not marker_of(str(path)).exists():
            raise ScratchError(f"{path} is not a drill's scratch directory; left alone")
        if self.run_as:  # its files belong to the cluster's OS user
            res = subprocess.run(  # noqa: S603 (an argument list, no shell)
                [*self.run_as, "rm", "-rf", "--", str(path)], capture_output=True, text=True, timeout=600
            )
            if res.returncode != 0:
                raise ScratchError(f"could not remove {path}: {_last_error(res.stderr)}")
        else:
            shutil.rmtree(path)
        marker_of(str(path)).unlink(missing_ok=True)


def marker_of(data_dir: str) -> Path:
    """The file beside a scratch directory that says the bot made it (and may remove it)."""
    path = Path(data_dir)
    return path.parent / f"{path.name}.{DRILL_MARKER}"


def leftover_scratch(parent: str) -> list[str]:
    """Scratch directories a drill that was killed left behind (their markers remain)."""
    root = Path(parent)
    if not root.is_dir():
        return []
    return sorted(str(m.with_name(m.name[: -len(DRILL_MARKER) - 1])) for m in root.glob(f"*.{DRILL_MARKER}"))


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
