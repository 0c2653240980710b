"""The watch after a verified deploy (#16), against the real Prometheus with 30 days of history
(tests/prom_fixture.py), the loopback GitHub and the loopback service.

The watch asks Prometheus about the instant each measurement is due, so the tests move the bot's
clock (Services.clock) instead of sleeping: started inside the history, a ten-minute watch runs in a
moment and Prometheus answers from the model's past. Staging's model turns bad 90 minutes before the
history's end (6 % errors, p99 ≈ 944 ms, from 0.03 % and ≈ 248 ms); production stays healthy.
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from bot.core.blocks import Action
from bot.core.config import EXAMPLE_CONFIG, ConfigError, WatchLimit, load_config
from bot.core.services import Clock
from bot.core.store.models import AuditEvent, Job
from bot.deploys.watch import baseline_limit, judge, measurement_count
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, BOB, CHANNEL, actions, buttons, text_of, the_job


class MovedClock(Clock):
    """The watch's time, moved on by each sleep at once; `hold_at`: the first sleep at or after that
    time waits until the test lets it go (the job is then mid-watch, as long as the test likes)."""

    def __init__(self, at: datetime, hold_at: datetime | None = None):
        self.at, self.hold_at = at, hold_at
        self.held, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self.at

    def sleep(self, seconds: float) -> None:
        if self.hold_at is not None and self.now() >= self.hold_at:
            self.held.set()
            self.release.wait(60)
            return
        with self._lock:
            self.at += timedelta(seconds=seconds)


def history_end(prometheus: Any) -> datetime:
    """The model's now: where the 30 days of backfilled history end."""
    return datetime.fromtimestamp(prometheus.exporter.now0, UTC)


def watched(prom_url: str, minutes: float = 10, **env_extra: Any):  # type: ignore[no-untyped-def]
    """Every environment watched by the one Prometheus (its `env` label) for `minutes` after a deploy."""

    def mutate(cfg: dict[str, Any]) -> None:
        for name, env in cfg["environments"].items():
            env["observability"] = {"prometheus": {"url": prom_url, "selector": f'env="{name}"'}}
            env["watch_minutes"] = minutes
            env.update(env_extra.get(name, {}))

    return mutate


@pytest.fixture
def watch_bot(db_url, make_bot, github):  # type: ignore[no-untyped-def]
    def make(clock: Clock, *mutates: Any, start: bool = True):  # type: ignore[no-untyped-def]
        def mutate(cfg: dict[str, Any]) -> None:
            for m in mutates:
                m(cfg)

        bot = make_bot(
            db_url, start=False, github_token=GITHUB_TOKEN, github_api_url=github.url, config_mutate=mutate
        )
        bot.svc.clock = clock
        if start:
            bot.svc.start()
        return bot

    return make


def rows(bot, job_id: str, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with bot.svc.sessions() as s:
        q = select(AuditEvent).where(AuditEvent.job_id == job_id, AuditEvent.action == action)
        return list(s.scalars(q.order_by(AuditEvent.id)))


def card_of(slack, job: Job):  # type: ignore[no-untyped-def]
    return next(m for m in reversed(slack.channel_messages(CHANNEL)) if job.id[:8] in text_of(m))


def approve(bot, slack) -> Job:  # type: ignore[no-untyped-def]
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    job = the_job(bot)
    status, _ = bot.click(Action.APPROVE, job.id, BOB, card)
    assert status == 200
    return job


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- a healthy watch


def test_a_healthy_production_deploy_is_watched_ten_minutes_and_says_so(watch_bot, slack, github, prometheus):
    start = history_end(prometheus) - timedelta(minutes=40)
    bot = watch_bot(MovedClock(start), watched(prometheus.url))
    bot.command("deploy prod v1.2.3", user=ALICE)
    approve(bot, slack)
    bot.settle(60)
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert "v1.2.3 is live on production and healthy. Watched 10 min: ok." in job.result
    card = text_of(card_of(slack, job))
    assert "Baseline before the deploy (the last 30m): Error rate 0.02%, Response time (p99) 248 ms" in card
    assert (
        "Watched 10 min: ok — 10 measurements, the last: Error rate 0.02%, Response time (p99) 248 ms" in card
    )

    got = actions(bot, job.id)
    assert got.index("deploy.watch_baseline") < got.index(
        "deploy.dispatch"
    )  # measured before anything changed
    assert got.index("deploy.verified") < got.index("deploy.watch_started")
    assert got[-2:] == ["deploy.watch_completed", "deploy.succeeded"]
    measured = rows(bot, job.id, "deploy.watch_measurement")
    assert [(r.params["n"], r.outcome) for r in measured] == [(n, "ok") for n in range(1, 11)]
    # Measurement n asked Prometheus about the watch's start plus n minutes, whatever the wall clock said.
    assert [datetime.fromisoformat(r.params["at"]) for r in measured] == [
        start + timedelta(minutes=n) for n in range(1, 11)
    ]
    assert measured[0].params["values"]["error_rate"] == pytest.approx(0.02, abs=0.002)
    assert measured[0].params["values"]["p99_latency"] == pytest.approx(248, abs=3)
    assert len(github.dispatches) == 1


# --------------------------------------------------------------------------- breaches


def test_a_breach_of_the_critical_threshold_fails_the_deploy_with_the_numbers_and_a_roll_back_button(
    watch_bot, slack, github, prometheus
):
    bot = watch_bot(MovedClock(history_end(prometheus) - timedelta(minutes=92)), watched(prometheus.url))
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(60)
    job = the_job(bot)
    assert job.state == "failed", job.result
    assert "The watch after the deploy failed" in job.result
    assert "Error rate 6.00% (critical &gt; 5%; baseline 0.03%)" in job.result
    assert "Response time (p99) 944 ms (baseline 248 ms, limit 498 ms)" in job.result
    assert (
        "in 3 measurements in a row" in job.result and "Use *Roll back* to return to `v1.2.2`" in job.result
    )
    card = card_of(slack, job)
    assert Action.ROLLBACK in buttons(card)
    assert "Watch breached at measurement 5 of 10" in text_of(card)

    verdicts = [r.outcome for r in rows(bot, job.id, "deploy.watch_measurement")]
    assert verdicts == ["ok", "ok", "failed", "failed", "failed"]  # one bad sample is not a breach
    (breach,) = rows(bot, job.id, "deploy.watch_breached")
    assert {r["metric"]: r["kind"] for r in breach.params["reasons"]} == {
        "error_rate": "critical", "p99_latency": "baseline"
    }  # fmt: skip
    assert len(github.dispatches) == 1  # nothing rolled back: auto_rollback is off here


def test_a_breach_relative_to_the_baseline_fails_though_no_threshold_is_crossed(
    watch_bot, slack, github, prometheus
):
    def lenient(cfg: dict[str, Any]) -> None:  # thresholds far away: only the baseline can fail it
        cfg["observability"] = {
            "metrics": {"error_rate": {"critical": 50}, "p99_latency": {"critical": 5000}}
        }

    bot = watch_bot(
        MovedClock(history_end(prometheus) - timedelta(minutes=92)), watched(prometheus.url), lenient
    )
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(60)
    job = the_job(bot)
    assert job.state == "failed", job.result
    assert "Error rate 6.00% (baseline 0.03%, limit 1.03%)" in job.result
    assert "Response time (p99) 944 ms (baseline 248 ms, limit 498 ms)" in job.result
    (breach,) = rows(bot, job.id, "deploy.watch_breached")
    assert {r["kind"] for r in breach.params["reasons"]} == {"baseline"}


def test_auto_rollback_hands_the_lock_to_a_rollback_job_that_dispatches_once(
    watch_bot, slack, github, prometheus
):
    bot = watch_bot(
        MovedClock(history_end(prometheus) - timedelta(minutes=92)),
        watched(prometheus.url, staging={"auto_rollback": True}),
    )
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(90)
    deploy = the_job(bot, "deploy")
    rollback = the_job(bot, "rollback")
    assert deploy.state == "failed", deploy.result
    assert "Rolling back automatically to `v1.2.2`" in deploy.result and rollback.id[:8] in deploy.result
    assert Action.ROLLBACK not in buttons(card_of(slack, deploy))  # the bot already rolled it back

    # The rollback went the normal way: cd.yml dispatched with rollback=true, followed and verified.
    assert [d["inputs"] for d in github.dispatches] == [
        {"environment": "staging", "version": "v1.2.3", "rollback": "false"},
        {"environment": "staging", "version": "v1.2.2", "rollback": "true"},
    ]
    assert rollback.params["auto_rollback_of"] == deploy.id and rollback.requested_by == ALICE
    got = actions(bot, rollback.id)
    assert got[:2] == ["rollback.requested", "rollback.checked"] and "rollback.awaiting_approval" not in got
    assert "rollback.verified" in got and "rollback.dispatched" in got
    (requested,) = rows(bot, rollback.id, "rollback.requested")
    assert requested.actor_id == "taisun" and deploy.id[:8] in requested.detail
    (handed,) = rows(bot, deploy.id, "deploy.watch_rollback")
    assert handed.params == {"target": "v1.2.2", "rollback_job": rollback.id}
    assert "started by TAISUN: the watch after deploy" in text_of(card_of(slack, rollback))
    # Staging is still burning, so the rollback's own watch fails too — and never rolls back again.
    assert rollback.state == "failed" and "The watch after the rollback failed" in rollback.result
    assert len(github.dispatches) == 2


# --------------------------------------------------------------------------- Prometheus down


def test_prometheus_down_leaves_the_deploy_verified_but_not_watched_and_says_why(watch_bot, slack, github):
    url = f"http://127.0.0.1:{closed_port()}"
    bot = watch_bot(MovedClock(datetime.now(UTC)), watched(url))
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(60)
    job = the_job(bot)
    assert job.state == "succeeded", job.result  # the deploy is verified: the watch could not say more
    why = f"could not watch: Prometheus at {url} did not answer (connection refused or DNS failure)"
    assert f"⚠️ Verified but not watched — {why}." in job.result
    card = text_of(card_of(slack, job))
    assert (
        f"No baseline before the deploy: Prometheus at {url} did not answer (connection refused or DNS failure)"
        in card
    )
    assert f"⚠️ Verified but not watched — {why}" in card
    assert [r.outcome for r in rows(bot, job.id, "deploy.watch_measurement")] == ["error"] * 3
    (done,) = rows(bot, job.id, "deploy.watch_completed")
    assert done.outcome == "unwatched" and "did not answer" in done.detail
    assert len(github.dispatches) == 1


# --------------------------------------------------------------------------- restarts


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_watch_cut_by_a_dead_worker_resumes_from_the_database_and_never_dispatches_again(
    db_url, watch_bot, slack, github, prometheus
):
    start = history_end(prometheus) - timedelta(minutes=40)
    clock = MovedClock(start, hold_at=start + timedelta(minutes=3, seconds=1))
    first = watch_bot(clock, watched(prometheus.url))
    first.command("deploy dev v1.2.3", user=ALICE)
    assert clock.held.wait(60), "the watch never reached its fourth measurement"
    job = the_job(first)
    # The card shows the watch live: where it is and the latest numbers.
    slack.wait_for(lambda: "measurement 3 of 10" in text_of(card_of(slack, job)), timeout=15)
    live = text_of(card_of(slack, job))
    assert (
        "Watching for 10 min: measurement 3 of 10 (every 60 s) — Error rate 0.00%, Response time (p99)"
        in live
    )

    first.svc.runner.stop(0.5)  # the worker dies there: its lease runs out
    with first.svc.sessions.begin() as s:
        s.execute(
            update(Job).where(Job.id == job.id).values(
                lease_owner="dead-replica", lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )  # fmt: skip
    # Another replica on the wall clock: the measurements it missed are due in the past, so it takes
    # them at once, each at its own time.
    second = watch_bot(Clock(), watched(prometheus.url), start=False)
    second.svc.start()
    second.settle(60)
    clock.release.set()  # the dead worker's thread finds the job is no longer its own
    job = the_job(second)
    assert job.state == "succeeded", job.result
    assert "Watched 10 min: ok." in job.result
    assert len(github.dispatches) == 1  # followed again, never dispatched twice
    got = actions(second, job.id)
    assert "deploy.resumed" in got and got.count("deploy.watch_baseline") == 1
    assert got.count("deploy.watch_started") == 1
    measured = rows(second, job.id, "deploy.watch_measurement")
    assert [r.params["n"] for r in measured] == list(range(1, 11))  # each once, none twice
    assert [datetime.fromisoformat(r.params["at"]) for r in measured] == [
        start + timedelta(minutes=n) for n in range(1, 11)
    ]


# --------------------------------------------------------------------------- config and arithmetic


def _load(tmp_path: Path, observability: dict[str, Any] | None = None, **production: Any):  # type: ignore[no-untyped-def]
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    if observability is not None:
        data["observability"] = observability
    data["environments"]["production"].update(production)
    path = tmp_path / "taisun.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_config(path)


def test_the_watchs_defaults_are_argo_like_and_off_until_an_environment_asks(tmp_path: Path) -> None:
    cfg = _load(tmp_path)
    w = cfg.observability.watch
    assert (w.interval, w.window, w.baseline_window, w.failure_limit, w.error_limit) == (
        "1m",
        "2m",
        "30m",
        3,
        3,
    )
    assert {n: (lim.factor, lim.margin) for n, lim in w.metrics.items()} == {
        "error_rate": (2.0, 1.0), "p99_latency": (1.5, 250.0)
    }  # fmt: skip
    assert all(env.watch_minutes == 0 for env in cfg.environments.values())
    assert (
        measurement_count(10, 60) == 10
        and measurement_count(2.5, 60) == 3
        and measurement_count(0.1, 60) == 1
    )


@pytest.mark.parametrize(
    ("observability", "production", "problem"),
    [
        (None, {"watch_minutes": 10}, "watch_minutes needs this environment's Prometheus"),
        (None, {"watch_minutes": -1}, "environments.production.watch_minutes"),
        ({"watch": {"metrics": {"queue_depth": {"factor": 2}}}}, {}, "watch.metrics names 'queue_depth'"),
        ({"watch": {"interval": "soon"}}, {}, "not a duration like 30s"),
        ({"watch": {"failure_limit": 0}}, {}, "observability.watch.failure_limit"),
        (
            {"watch": {"metrics": {"error_rate": {"factor": 0.5}}}},
            {},
            "observability.watch.metrics.error_rate.factor",
        ),
    ],
)
def test_a_bad_watch_config_names_the_key(tmp_path: Path, observability, production, problem) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, observability, **production)
    assert problem in str(err.value)


def test_a_measurement_fails_past_the_critical_threshold_or_past_both_factor_and_margin_of_its_baseline(
    tmp_path: Path,
) -> None:
    metrics = _load(tmp_path).observability.metrics
    err, p99, rate = metrics["error_rate"], metrics["p99_latency"], metrics["request_rate"]
    lim = WatchLimit(factor=2, margin=1)
    assert judge("error_rate", 0.05, err, lim, 0.02) is None  # 2.5× a tiny baseline is noise, not a breach
    assert judge("error_rate", 1.01, err, lim, 0.02) is None  # within the margin
    r = judge("error_rate", 1.03, err, lim, 0.02)
    assert r is not None and (r.kind, r.threshold) == ("baseline", pytest.approx(1.02))
    assert (
        judge("error_rate", 5.5, err, lim, 3.0) is not None
        and judge("error_rate", 5.5, err, lim, 3.0).kind == "critical"
    )  # type: ignore[union-attr]
    assert judge("error_rate", 4.9, err, lim, 3.0) is None  # 1.6× a high baseline, under the threshold
    assert judge("error_rate", 6.0, err, lim, None).kind == "critical"  # type: ignore[union-attr]
    assert judge("error_rate", None, err, lim, 0.02) is None  # no requests: nothing to judge
    p99_limit = WatchLimit(factor=1.5, margin=250)
    assert judge("p99_latency", 540, p99, p99_limit, 300) is None  # 1.8× the baseline, but only 240 ms above
    assert judge("p99_latency", 560, p99, p99_limit, 300).kind == "baseline"  # type: ignore[union-attr]
    assert judge("p99_latency", 1001, p99, p99_limit, 900).kind == "critical"  # type: ignore[union-attr]
    # Lower is worse (request rate): under baseline ÷ factor and margin below it.
    assert baseline_limit(600, WatchLimit(factor=2, margin=100), below=True) == 300
    assert judge("request_rate", 250, rate, WatchLimit(factor=2, margin=100), 600).kind == "baseline"  # type: ignore[union-attr]
    assert judge("request_rate", 350, rate, WatchLimit(factor=2, margin=100), 600) is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_japanese_workspace_reads_the_watch_in_japanese(db_url, watch_bot, slack, github, prometheus):
    def ja(cfg: dict[str, Any]) -> None:
        cfg["language"] = "ja"

    start = history_end(prometheus) - timedelta(minutes=40)
    bot = watch_bot(MovedClock(start), watched(prometheus.url, minutes=5), ja)
    bot.command("deploy dev v1.2.3", user=ALICE)
    bot.settle(60)
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    card = text_of(card_of(slack, job))
    assert "デプロイ前のベースライン（直近 30m）: エラー率 0.00%" in card
    assert "5 分間監視: 正常 — 測定 5 回、最後: エラー率 0.00%" in card
    assert "5 分間監視: 正常。" in job.result
