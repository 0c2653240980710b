"""TAISUN_JOBS: jobs embedded in `taisun serve` (the default) or run by `taisun worker`, woken across
processes by PostgreSQL's NOTIFY or Redis pub/sub. In-process here (the WSGI apps driven directly);
tests/test_worker_process.py runs them as real processes."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from bot.backends.wake import PostgresSignal, RedisSignal
from bot.core.store.models import Job
from tests.backend_fixtures import redis_base, redis_port  # noqa: F401 (fixtures)
from tests.conftest import PG_OK, create_pg_database, drop_pg_database
from tests.harness import ALICE


def _get(app: Any, path: str, method: str = "GET") -> tuple[int, dict[str, str], dict[str, Any]]:
    seen: list[Any] = []
    body = b"".join(
        app({"REQUEST_METHOD": method, "PATH_INFO": path}, lambda s, h, exc_info=None: seen.append((s, h)))
    )
    status, headers = seen[0]
    return int(status.split()[0]), dict(headers), json.loads(body)


def _wait(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def _states(bot: Any) -> list[str]:
    with bot.svc.sessions() as s:
        return [j.state for j in s.scalars(select(Job).order_by(Job.created_at))]


def test_serve_with_jobs_in_a_worker_runs_none_and_stays_healthy(db_url, make_bot):
    bot = make_bot(db_url, taisun_jobs="worker")
    status, _, health = _get(bot.wsgi, "/health")
    assert status == 200 and health["status"] == "ok"
    assert health["job_workers"]["in"] == "taisun worker" and health["job_workers"]["waiting"] == 0
    assert "Checking" in bot.command("deploy stg v1.2.3", user=ALICE)["text"]
    time.sleep(1.5)  # longer than a worker's poll: nothing in this process picks the job up
    assert _states(bot) == ["validating"]
    status, _, health = _get(bot.wsgi, "/health")
    assert status == 200 and health["job_workers"]["waiting"] == 1  # a job waits for a worker
    assert health["job_workers"]["oldest_waiting_seconds"] >= 0


def test_a_worker_in_another_process_runs_what_serve_took_woken_through_redis(
    db_url,
    make_bot,
    settings_for,
    redis_base,  # noqa: F811
):
    from bot.wiring import build_worker

    settings = settings_for(db_url, taisun_jobs="worker", redis_url=redis_base + "/0")
    bot = make_bot(db_url, settings=settings)
    worker = build_worker(settings)
    try:
        expected = "postgresql" if db_url.startswith("postgresql") else "redis"
        status, _, health = _get(worker, "/health")
        assert status == 200 and health["role"] == "worker" and health["job_workers"]["wake"] == expected
        assert _get(bot.wsgi, "/health")[2]["job_workers"]["wake"] == expected
        bot.command("deploy stg v1.2.3", user=ALICE)
        _wait(lambda: _states(bot) == ["simulated"])  # no GitHub token: the worker simulates it
        assert worker.svc.outbox.flush(10)
        assert any("Simulated" in m.text or "simulat" in json.dumps(m.blocks).lower()
                   for m in bot.slack.channel_messages())  # fmt: skip
    finally:
        worker.stop()


def test_a_worker_stopped_with_nothing_running_hands_nothing_back(db_url, settings_for):
    from bot.wiring import build_worker

    worker = build_worker(settings_for(db_url))
    assert worker.svc.runner.alive == 2
    assert worker.stop() == []
    status, _, health = _get(worker, "/health")
    assert status == 503 and health["job_workers"]["alive"] == 0  # nothing would run a job now


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_a_wake_signal_reaches_a_listener_on_another_connection(kind, request):
    if kind == "postgresql":
        if not PG_OK:
            pytest.skip("PostgreSQL not reachable")
        url = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(url))
        make = lambda: PostgresSignal(url.replace("postgresql+psycopg://", "postgresql://"))  # noqa: E731
    else:
        url = request.getfixturevalue("redis_base") + "/0"
        make = lambda: RedisSignal(url)  # noqa: E731
    heard = threading.Event()
    listening = threading.Event()
    sender, listener = make(), make()

    def on_wake() -> None:
        if listening.is_set():
            heard.set()
        listening.set()  # the listener wakes once when it starts listening (missed nothing)

    try:
        listener.listen(on_wake)
        assert listening.wait(10)
        for _ in range(50):  # a burst of sends is coalesced, and at least one arrives
            sender.send()
        assert heard.wait(10)
    finally:
        sender.stop()
        listener.stop()


def test_routes_answer_404_for_unknown_paths_and_405_with_allow_for_other_methods(db_url, make_bot):
    bot = make_bot(db_url)
    assert _get(bot.wsgi, "/nothing-here")[0] == 404
    status, headers, body = _get(bot.wsgi, "/slack/events", method="GET")
    assert status == 405 and headers["Allow"] == "POST" and body == {"error": "not found"}
    status, headers, _ = _get(bot.wsgi, "/alerts/alertmanager", method="GET")
    assert status == 405 and "POST" in headers["Allow"]


def test_a_home_tab_opened_in_serve_refreshes_when_the_worker_changes_a_job(
    db_url,
    make_bot,
    settings_for,
    slack,
    redis_base,  # noqa: F811
):
    from bot.slack import signing
    from bot.wiring import build_worker
    from tests.harness import BOB, text_of

    settings = settings_for(db_url, taisun_jobs="worker", redis_url=redis_base + "/0")
    bot = make_bot(db_url, settings=settings)
    worker = build_worker(settings)
    try:
        body, ctype = signing.event_callback(
            {"type": "app_home_opened", "user": BOB, "tab": "home", "channel": "D1"}, event_id="Ev-home-bob"
        )
        assert bot.post(body, ctype)[0] == 200
        slack.wait_for(lambda: BOB in slack.home, timeout=15)
        before = slack.count("views.publish")
        bot.svc.home._published.clear()  # the debounce window has passed
        bot.command("deploy prod v1.2.3", user=ALICE)  # the worker prepares it: waiting for approval
        slack.wait_for(
            lambda: "Waiting for your approval* (1)" in text_of({"blocks": slack.home[BOB]["blocks"]}),
            timeout=20,
        )
        assert slack.count("views.publish") > before
    finally:
        worker.stop()
