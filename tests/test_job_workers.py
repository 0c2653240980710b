"""Job workers outlive database blips; /health says so when none is left."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, make_url, select

from bot.core.store.db import make_engine
from bot.core.store.models import AuditEvent, Job
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, Bot
from tests.tcpproxy import TcpProxy


def _get(bot: Bot, path: str) -> tuple[int, dict[str, Any]]:
    status: list[str] = []
    body = b"".join(
        bot.wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda s, h, exc_info=None: status.append(s))
    )
    return int(status[0].split()[0]), json.loads(body)


def _wait(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def direct(db_url: str) -> Iterator[Engine]:
    """The test's own way into the database, around the proxy the bot goes through."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _job(engine: Engine, job_id: str) -> Job:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _audit_actions(engine: Engine, job_id: str) -> list[str]:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        return list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id))
        )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # a SQLite file has no connection to cut
@pytest.mark.parametrize("phase", ["following its run", "looking for its run"])
def test_a_database_blip_mid_deploy_leaves_the_worker_alive_and_the_deploy_finishes_once(
    db_url, direct, make_bot, github, phase
):
    """One worker, a short lease, PostgreSQL cut for 10 s mid-deploy: the deploy still ends well."""
    url = make_url(db_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        bot = make_bot(
            proxied, taisun_workers=1, taisun_lease_seconds=3.0,
            github_token=GITHUB_TOKEN, github_api_url=github.url,
        )  # fmt: skip
        if phase == "following its run":
            github.run_script = ["queued", "in_progress"]  # the workflow runs until the test ends it
        else:
            github.run_list_lag = 10**6  # GitHub's run list lags: the bot keeps looking
        assert "Checking" in bot.command("deploy stg v1.2.3", user=ALICE)["text"]
        job_id = _wait(
            "the job", lambda: direct.connect().exec_driver_sql("SELECT id FROM jobs").scalar(), 10
        )
        if phase == "following its run":
            run_id = _wait(
                "the deploy to follow its run", lambda: _job(direct, job_id).progress.get("run_id"), 30
            )
            _wait("the run to be in progress", lambda: github.run(int(run_id))["status"] == "in_progress", 10)
        else:
            _wait("the dispatch", lambda: github.dispatches, 30)
            run_id = github.runs[0]["id"]
            listed = len(github.requests_to("/runs", "GET"))
            _wait("the bot to look for its run", lambda: len(github.requests_to("/runs", "GET")) > listed, 10)

        proxy.cut()
        if phase == "following its run":
            github.complete_run(int(run_id))  # the run ends while the bot cannot write that down
        else:
            github.show_run(int(run_id))
        time.sleep(2)
        status, health = _get(bot, "/health")
        assert status == 503 and health["database"].startswith("unreachable")
        time.sleep(8)
        proxy.restore()

        job = _wait(
            "the deploy to finish",
            lambda: (j := _job(direct, job_id)).state in ("succeeded", "failed", "invalid") and j,
            60,
        )
        assert job.state == "succeeded", job.result
        assert len(github.dispatches) == 1
        actions = _audit_actions(direct, job_id)
        assert "deploy.failed" not in actions
        if phase == "looking for its run":  # the job was handed back and resumed, not dispatched again
            assert "deploy.resumed" in actions

        status, health = _get(bot, "/health")
        assert status == 200 and health["job_workers"] == {"alive": 1, "configured": 1}
        github.run_script = ["queued", "in_progress", ("completed", "success")]
        github.run_list_lag = 0
        assert "Checking" in bot.command("deploy stg v1.2.2", user=ALICE)["text"]
        bot.settle(60)  # the one worker is still there to run it
        with bot.svc.sessions() as s:
            states = sorted(j.state for j in s.scalars(select(Job)))
        assert states == ["succeeded", "succeeded"]
        assert len(github.dispatches) == 2


def test_health_is_503_when_no_job_worker_is_left(db_url, make_bot):
    bot = make_bot(db_url, taisun_workers=2)
    status, health = _get(bot, "/health")
    assert status == 200 and health["job_workers"] == {"alive": 2, "configured": 2}
    bot.svc.runner.stop()  # as if every worker thread had died: requests are taken, nothing runs them
    status, health = _get(bot, "/health")
    assert status == 503 and health["status"] == "unhealthy"
    assert health["job_workers"] == {"alive": 0, "configured": 2}
