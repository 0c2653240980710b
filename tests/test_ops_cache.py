"""Cache clear scenarios against a real redis-server (private port, private databases and key prefix)."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import secrets
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Job
from tests.audit_helpers import exported_audit, facts
from tests.backend_fixtures import free_port, redis_base, redis_port  # noqa: F401
from tests.harness import BOB, CHANNEL, actions, buttons, last_card, locked, text_of, the_job

URL_ENV = "TAISUN_TEST_CACHE_REDIS_URL"
TOKEN_ENV = "TAISUN_TEST_CACHE_TOKEN"


@pytest.fixture
def prefix() -> str:
    return f"taisun-test-{secrets.token_hex(4)}:"


def cache_config(env: str, **cache):
    def mutate(cfg):
        cfg["environments"][env]["cache"] = {"redis_url_env": URL_ENV, **cache}

    return mutate


def fill(url: str, keys: list[str]) -> None:
    with redis.Redis.from_url(url) as r:
        for k in keys:
            r.set(k, "x" * 200)


def keys_in(url: str) -> set[str]:
    with redis.Redis.from_url(url) as r:
        return {k.decode() for k in r.keys("*")}


class AppCacheEndpoint:
    """The application's cache-clear endpoint: records the Authorization header of each POST."""

    def __init__(self) -> None:
        self.auth: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                owner.auth.append(self.headers.get("Authorization", ""))
                body = b'{"cleared": 42}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/admin/cache/clear"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_endpoint() -> Iterator[AppCacheEndpoint]:
    ep = AppCacheEndpoint()
    yield ep
    ep.stop()


def test_prefix_clear_deletes_exactly_the_matching_keys(
    db_url, make_bot, slack, redis_base, prefix, monkeypatch
):
    url = f"{redis_base}/5"
    matching = [f"{prefix}a", f"{prefix}b", f"{prefix}user:1"]
    others = ["other:x", prefix.rstrip(":"), f"x{prefix}a"]  # near misses stay
    fill(url, matching + others)
    fill(f"{redis_base}/6", [f"{prefix}a"])  # same prefix, another database: untouched
    monkeypatch.setenv(URL_ENV, url)
    bot = make_bot(db_url, config_mutate=cache_config("staging", mode="prefix", prefix=prefix))
    bot.command("cache-clear stg redis")
    bot.settle()
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert keys_in(url) == set(others)
    assert keys_in(f"{redis_base}/6") == {f"{prefix}a"}
    card = text_of(last_card(slack))
    assert "*Deleted*: 3 key(s)" in card
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]} (prefix): 3 key(s) deleted · memory" in card
    assert "Health check: ok (200)" in card  # the job ends with the guide's check
    assert job.progress["redis_deleted"] == 3 and job.progress["memory_before"] > 0
    # What was deleted and the memory before/after, then the health check, each its own audit row.
    rows = exported_audit(bot.settings, job.id)
    assert [r["action"] for r in rows] == [
        "cache-clear.requested", "cache-clear.queued", "cache-clear.started", "cache-clear.redis_cleared",
        "cache-clear.health_checked", "cache-clear.succeeded",
    ]  # fmt: skip
    (cleared,) = facts(rows, "cache-clear.redis_cleared")
    assert cleared["keys_deleted"] == 3 and cleared["mode"] == "prefix" and cleared["prefix"] == prefix
    assert cleared["memory_before_bytes"] == job.progress["memory_before"] > 0
    assert cleared["memory_after_bytes"] == job.progress["memory_after"]
    assert cleared["where"] == f"127.0.0.1:{url.rsplit(':', 1)[1]}"
    (health,) = facts(rows, "cache-clear.health_checked")
    assert health["health"] == "ok (200)" and health["attempts"] == 1


def test_unreachable_redis_fails_with_where_and_why_and_releases_the_lock(
    db_url, make_bot, slack, monkeypatch
):
    port = free_port()  # nothing listens there
    monkeypatch.setenv(URL_ENV, f"redis://:s3cret-pass@127.0.0.1:{port}/5")
    bot = make_bot(db_url, config_mutate=cache_config("staging", mode="prefix", prefix="taisun:"))
    bot.command("cache-clear stg")
    bot.settle()
    job = the_job(bot)
    assert job.state == "failed"
    assert f"The Redis cache was not cleared: cannot reach Redis at 127.0.0.1:{port}/5" in job.result
    card = text_of(last_card(slack))
    assert "cannot reach Redis" in card and "s3cret-pass" not in card
    assert actions(bot, job.id) == [
        "cache-clear.requested", "cache-clear.queued", "cache-clear.started", "cache-clear.redis_cleared",
        "cache-clear.failed",
    ]  # fmt: skip
    rows = exported_audit(bot.settings, job.id)
    (tried,) = [r for r in rows if r["action"] == "cache-clear.redis_cleared"]
    assert tried["outcome"] == "error" and "cannot reach Redis" in tried["detail"]
    assert "s3cret-pass" not in json.dumps(rows)  # the URL's password never reaches the audit log
    assert not locked(bot, "staging")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_production_clear_of_redis_and_app_needs_approval_then_calls_both(
    db_url, make_bot, slack, redis_base, prefix, app_endpoint, monkeypatch
):
    url = f"{redis_base}/7"
    fill(url, [f"{prefix}1", f"{prefix}2", "session:keep"])
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.setenv(TOKEN_ENV, "app-cache-token-123")
    bot = make_bot(
        db_url,
        config_mutate=cache_config(
            "production", mode="prefix", prefix=prefix, app_endpoint=app_endpoint.url, app_token_env=TOKEN_ENV
        ),
    )
    bot.command("cache-clear prod all")
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    assert f"keys matching `{prefix}*`" in text_of(card) and app_endpoint.url in text_of(card)
    assert keys_in(url) == {f"{prefix}1", f"{prefix}2", "session:keep"}  # nothing before approval
    job = the_job(bot)
    bot.click(Action.APPROVE, job.id, BOB, card)
    bot.settle()
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert keys_in(url) == {"session:keep"}
    assert app_endpoint.auth == ["Bearer app-cache-token-123"]
    final = text_of(last_card(slack))
    # The app's answer is outside text: sent to Slack escaped ("->" as "-&gt;").
    assert "2 key(s) deleted" in final and "App cache: POST" in final and "-&gt; 200" in final
    assert "app-cache-token-123" not in final
    assert "cache-clear.approved" in actions(bot, job.id)
    rows = exported_audit(bot.settings, job.id)
    assert [r["action"] for r in rows][-4:] == [
        "cache-clear.redis_cleared", "cache-clear.app_cleared", "cache-clear.health_checked", "cache-clear.succeeded",
    ]  # fmt: skip
    (app,) = facts(rows, "cache-clear.app_cleared")
    assert app["via"] == f"POST {app_endpoint.url}" and "200" in app["answer"]
    assert "app-cache-token-123" not in json.dumps(rows)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_flushdb_empties_only_its_own_database_and_an_app_command_runs_after(
    db_url, make_bot, slack, redis_base, monkeypatch
):
    url = f"{redis_base}/8"
    fill(url, ["a", "b", "c", "d"])
    fill(f"{redis_base}/9", ["elsewhere"])
    monkeypatch.setenv(URL_ENV, url)
    command = [sys.executable, "-c", "print('app cache cleared: 12 entries')"]
    bot = make_bot(db_url, config_mutate=cache_config("development", mode="flushdb", app_command=command))
    bot.command("cache-clear dev")
    bot.settle()
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert keys_in(url) == set() and keys_in(f"{redis_base}/9") == {"elsewhere"}
    card = text_of(last_card(slack))
    assert "(flushdb): 4 key(s) deleted" in card
    assert "app cache cleared: 12 entries" in card


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_the_redis_url_the_clear_is_a_labelled_simulation(db_url, make_bot, slack, monkeypatch):
    monkeypatch.delenv("DEV_REDIS_URL", raising=False)
    bot = make_bot(db_url)  # the example config: development reads DEV_REDIS_URL
    bot.command("cache-clear dev redis")
    bot.settle()
    job = the_job(bot)
    assert job.state == "simulated"
    assert job.result == "SIMULATED: nothing was cleared (DEV_REDIS_URL is not set: Redis is not touched)."
    card = text_of(last_card(slack))
    assert "SIMULATED — DEV_REDIS_URL is not set" in card and "would clear Redis" in card


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cache_the_environment_does_not_have_is_refused_at_once(db_url, make_bot):
    bot = make_bot(db_url)
    reply = bot.command("cache-clear dev app")
    assert "No application cache is configured for development" in reply["text"]
    with bot.svc.sessions() as s:
        assert s.scalar(select(Job.id)) is None
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.action == "cache-clear.refused"))
