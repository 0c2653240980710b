"""bot.backends.cache against private redis-server processes and a local HTTP endpoint."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator

import pytest
import redis

from bot.backends.cache import (
    AppCacheClearFailed,
    CacheAuthFailed,
    CacheClearRefused,
    CacheUnreachable,
    clear_app_cache,
    clear_redis,
    escape_glob,
)
from tests.backend_fixtures import free_port, redis_base, redis_port, redis_server  # noqa: F401


def test_prefix_clear_deletes_exactly_matching_keys_in_batches(redis_base: str) -> None:
    r = redis.Redis.from_url(redis_base + "/0")
    pipe = r.pipeline()
    for i in range(1234):
        pipe.set(f"taisun:k{i}", "v")
    pipe.hset("taisun:hash", mapping={"a": 1})
    for key in ("taisun", "taisunx:1", "other:taisun:1", "TAISUN:1"):
        pipe.set(key, "keep")
    pipe.execute()
    lines: list[str] = []
    result = clear_redis(redis_base + "/0", mode="prefix", prefix="taisun:", batch=100, progress=lines.append)
    assert result.mode == "prefix" and result.deleted == 1235
    assert sorted(k.decode() for k in r.keys("*")) == sorted(
        ["taisun", "taisunx:1", "other:taisun:1", "TAISUN:1"]
    )
    assert sum(ln.startswith("deleted ") for ln in lines) >= 12  # one line per batch
    assert result.memory_before > 0 and result.memory_after > 0


def test_prefix_with_glob_characters_matches_literally(redis_base: str) -> None:
    r = redis.Redis.from_url(redis_base + "/0")
    doomed = ["a*b[1", "a*b[", "a*b[[x]"]
    look_alikes = ["aXXb[1", "a*bc", "ab[1", "a*b", "a?b[1", "a\\*b[1"]
    for key in doomed + look_alikes:
        r.set(key, "v")
    result = clear_redis(redis_base + "/0", mode="prefix", prefix="a*b[", batch=2)
    assert result.deleted == len(doomed)
    assert sorted(k.decode() for k in r.keys("*")) == sorted(look_alikes)
    assert escape_glob("a*b[?]\\") == "a\\*b\\[\\?\\]\\\\"


def test_flushdb_only_touches_its_database(redis_base: str) -> None:
    db1, db2 = redis.Redis.from_url(redis_base + "/1"), redis.Redis.from_url(redis_base + "/2")
    for i in range(10):
        db1.set(f"k{i}", i)
        db2.set(f"k{i}", i)
    result = clear_redis(redis_base + "/1", mode="flushdb")
    assert (result.mode, result.deleted) == ("flushdb", 10)
    assert db1.dbsize() == 0 and db2.dbsize() == 10


def test_flushall_refused_without_allow(redis_base: str) -> None:
    r = redis.Redis.from_url(redis_base + "/3")
    r.set("k", "v")
    with pytest.raises(CacheClearRefused, match="allow_flushall"):
        clear_redis(redis_base + "/3", mode="flushall")
    assert r.get("k") == b"v"
    result = clear_redis(redis_base + "/0", mode="flushall", allow_flushall=True)
    assert result.deleted is None and r.dbsize() == 0
    with pytest.raises(CacheClearRefused, match="non-empty prefix"):
        clear_redis(redis_base + "/0", mode="prefix", prefix="")


def test_unreachable_redis_names_host_without_password() -> None:
    port = free_port()
    with pytest.raises(CacheUnreachable) as err:
        clear_redis(f"redis://:topsecretpw@127.0.0.1:{port}/4", mode="flushdb")
    msg = str(err.value)
    assert f"127.0.0.1:{port}/4" in msg and "topsecretpw" not in msg


def test_wrong_password_is_an_auth_error() -> None:
    with redis_server("--requirepass", "rightpassword1") as port:
        with pytest.raises(CacheAuthFailed) as err:
            clear_redis(f"redis://:wrongpassword9@127.0.0.1:{port}/0", mode="flushdb")
        assert "wrongpassword9" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
        with pytest.raises(CacheAuthFailed):
            clear_redis(f"redis://127.0.0.1:{port}/0", mode="flushdb")  # no password at all
        ok = clear_redis(f"redis://:rightpassword1@127.0.0.1:{port}/0", mode="flushdb")
        assert ok.deleted == 0


# --- application cache -------------------------------------------------------------------

TOKEN = "cache-token-0123456789"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            status, body = 200, b'{"cleared": 42}'
        else:  # a careless app that echoes the credential back
            status, body = 401, f"bad token {self.headers.get('Authorization')}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/admin/cache/clear"
    server.shutdown()
    server.server_close()


def test_app_cache_endpoint(app_endpoint: str) -> None:
    assert (
        clear_app_cache(endpoint=app_endpoint, token=TOKEN)
        == f'POST {app_endpoint} -> 200: {{"cleared": 42}}'
    )
    wrong = "wrong-token-abcdefgh"
    with pytest.raises(AppCacheClearFailed, match="answered 401 \\(check the token\\)") as err:
        clear_app_cache(endpoint=app_endpoint, token=wrong)
    assert wrong not in str(err.value)
    with pytest.raises(AppCacheClearFailed, match="ConnectError"):
        clear_app_cache(endpoint=f"http://127.0.0.1:{free_port()}/x", token=TOKEN, timeout=2)


def test_app_cache_command() -> None:
    out = clear_app_cache(command=[sys.executable, "-c", "print('cache cleared')"])
    assert out.endswith("exited 0: cache cleared")
    with pytest.raises(AppCacheClearFailed, match="exited with code 3: boom"):
        clear_app_cache(command=[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])
    with pytest.raises(AppCacheClearFailed, match="command not found"):
        clear_app_cache(command=["/nonexistent/npm", "run", "cache:clear"])
    with pytest.raises(ValueError):
        clear_app_cache()
