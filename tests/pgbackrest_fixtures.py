"""A PostgreSQL cluster of the tests' own with WAL archiving through real pgBackRest, for the session.

    initdb in a temp dir, archive_mode=on, its own port; pgbackrest.conf with repo1 posix (a temp
    dir) and repo2 S3 (moto behind TLS: pgBackRest speaks only HTTPS to S3, so moto's server runs in
    a process of its own with a self-signed certificate, and repo2-storage-verify-tls=n).

PostgreSQL refuses to run as root and pgBackRest must run as the cluster's OS user: as root
everything runs as `postgres` through `runuser -u postgres --` (argument lists); otherwise as the
current user. Import the fixture you use (``from tests.pgbackrest_fixtures import pg_cluster``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.backend_fixtures import free_port

PG_BIN = Path(os.environ.get("TAISUN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
STANZA = "taisun"
S3_BUCKET = "pgbackrest-repo"


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; scripts/services installs it")
    pytest.skip(why)


@dataclass
class Cluster:
    root: Path
    data: Path
    port: int
    conf: Path
    run_as: list[str]
    s3_port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def sql(self, query: str, *args: object) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, args or None)
            return cur.fetchall() if cur.description else []

    def pgbackrest(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [*self.run_as, "pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def archive_now(self, timeout: float = 60) -> None:
        """Switch to a new WAL segment and wait until the old one is archived (in both repositories)."""
        (seg,) = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (last,) = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0]
            if last >= seg:
                return
            time.sleep(0.1)
        raise TimeoutError(f"WAL segment {seg} was not archived")

    def new_scratch_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o777)
        path.chmod(0o777)  # the bot writes its markers, the cluster's user its restored files
        return path


def _as_owner(run_as: list[str], argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*run_as, *argv], capture_output=True, text=True, check=True, **kw)  # type: ignore[call-overload]


@contextlib.contextmanager
def tls_moto() -> Iterator[int]:
    """moto's S3 over HTTPS in a process of its own (its state is not the other tests' moto)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tls_moto", str(port), S3_BUCKET],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the TLS moto server did not start: {line!r}")
        yield port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    if not shutil.which("pgbackrest"):
        _skip_or_fail("pgbackrest is not installed (apt-get install pgbackrest)")
    if not (PG_BIN / "initdb").exists():
        _skip_or_fail(f"PostgreSQL server programs not found in {PG_BIN}")
    with archiving_cluster() as cluster:
        yield cluster


@contextlib.contextmanager
def archiving_cluster(extra_conf: str = "") -> Iterator[Cluster]:
    """The cluster, its repositories and the TLS moto server; all removed afterwards (benchmarks too)."""
    root_user = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if root_user else []
    root = Path(tempfile.mkdtemp(prefix="taisun-pgbr-"))
    root.chmod(0o777)
    if root_user:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", free_port()
    for sub in ("repo", "log", "lock", "spool"):
        (root / sub).mkdir(mode=0o777)
        (root / sub).chmod(0o777)
    with tls_moto() as s3_port:
        conf = root / "pgbackrest.conf"
        conf.write_text(
            "\n".join(
                [
                    "[global]",
                    f"repo1-path={root / 'repo'}",
                    "repo2-type=s3",
                    "repo2-path=/pgbackrest",
                    f"repo2-s3-bucket={S3_BUCKET}",
                    "repo2-s3-endpoint=127.0.0.1",
                    f"repo2-storage-port={s3_port}",
                    "repo2-s3-region=ap-northeast-1",
                    "repo2-s3-key=testing",
                    "repo2-s3-key-secret=testing",
                    "repo2-s3-uri-style=path",
                    "repo2-storage-verify-tls=n",
                    "repo2-bundle=y",
                    f"log-path={root / 'log'}",
                    f"lock-path={root / 'lock'}",
                    f"spool-path={root / 'spool'}",
                    "log-level-console=warn",
                    "log-level-file=off",
                    "start-fast=y",
                    "io-timeout=20",
                    f"[{STANZA}]",
                    f"pg1-path={data}",
                    f"pg1-port={port}",
                    f"pg1-socket-path={root}",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        conf.chmod(0o644)
        _as_owner(run_as, [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        with (data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                "wal_level = replica\narchive_mode = on\n"
                f"archive_command = 'pgbackrest --config={conf} --stanza={STANZA} archive-push %p'\n"
                "max_wal_size = 64MB\nfsync = off\n" + extra_conf
            )
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data)]
        _as_owner(run_as, [*pg_ctl, "-l", str(root / "pg.log"), "-w", "start"])
        cluster = Cluster(root=root, data=data, port=port, conf=conf, run_as=run_as, s3_port=s3_port)
        try:
            res = cluster.pgbackrest("stanza-create")
            assert res.returncode == 0, res.stderr + res.stdout
            yield cluster
        finally:
            subprocess.run([*run_as, *pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
            shutil.rmtree(root, ignore_errors=True)
