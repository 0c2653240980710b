"""Real servers for the backend tests: moto (S3/EC2/SSM), PostgreSQL databases, redis-server.

Import the fixtures you use explicitly (``from tests.backend_fixtures import aws, pg_db``).
Everything is isolated so several people can run the suite at once on one machine:
moto and redis-server are private processes/threads on free ports, each PostgreSQL
database gets a unique name and is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

# Same variable as tests/conftest.py uses for the admin connection.
PG_ADMIN_DSN = os.environ.get("TAISUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- AWS (moto server mode) -------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free loopback port for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """AWS_* pointing at moto with fake credentials, on a freshly reset moto."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # moto runs in this process: skip loading its catalogue of default AMIs (~1.5 s per
    # region); run_instances accepts any ImageId anyway.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    # Reset before (not after) each test: isolation without paying for it twice.
    httpx.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    yield moto_endpoint


@dataclass
class Bucket:
    s3: Any
    name: str


@pytest.fixture
def s3_bucket(aws: str) -> Bucket:
    """A fresh bucket in moto and an S3 client built by the bot's own factory."""
    from bot.backends import aws as aws_factory

    s3 = aws_factory.client("s3")
    name = f"taisun-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    return Bucket(s3, name)


# --- PostgreSQL ---------------------------------------------------------------------------


def dsn_for(dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture
def pg_db() -> Iterator[Callable[[], str]]:
    """Factory: each call creates a uniquely named empty database and returns its DSN.
    All of them are dropped (connections forced off) at teardown."""
    created: list[str] = []

    def make() -> str:
        name = f"taisun_bk_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.OperationalError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")
            pytest.skip(f"PostgreSQL not available at {PG_ADMIN_DSN}: {exc}")
        created.append(name)
        return dsn_for(name)

    yield make
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- Redis --------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(*extra: str) -> Iterator[int]:
    """A private, non-persistent redis-server on a free port; yields the port."""
    binary = shutil.which("redis-server")
    if not binary:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; scripts/services installs it")
        pytest.skip("redis-server not installed")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    with redis_server() as port:
        yield port


@pytest.fixture
def redis_base(redis_port: int) -> Iterator[str]:
    """redis://127.0.0.1:<port> of the private server, emptied before and after the test.
    Append /<db> to choose a database."""
    import redis

    r = redis.Redis(port=redis_port)
    r.flushall()
    yield f"redis://127.0.0.1:{redis_port}"
    r.flushall()
    r.close()
