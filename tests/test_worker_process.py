"""Jobs in their own process: `taisun serve` (TAISUN_JOBS=worker) acks, renders and reads; `taisun worker`
runs the jobs. Real processes on PostgreSQL, signed HTTP in, the loopback Slack and GitHub out."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.db import make_engine, session_factory
from bot.core.store.models import AuditEvent
from bot.slack import signing
from tests.conftest import GITHUB_TOKEN, PG_OK, create_pg_database, drop_pg_database
from tests.harness import ALICE, BOB, CHANNEL, buttons, text_of
from tests.procs import ROOT, ServedBot, stop_all
from tests.test_processes import _jobs, _slash

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url():
    """A migrated PostgreSQL database of its own: a separate worker needs one database it shares with serve."""
    if not PG_OK:
        pytest.skip("PostgreSQL not reachable")
    from bot.core.store.db import migrate

    url = create_pg_database()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


@pytest.fixture
def procs(tmp_path):
    started: list[ServedBot] = []

    def serve(settings, **env: str) -> ServedBot:  # type: ignore[no-untyped-def]
        bot = ServedBot(
            settings, tmp_path / f"serve-{len(started)}.log", workers=2, **({"TAISUN_JOBS": "worker"} | env)
        )
        started.append(bot)
        return bot

    def worker(settings, *args: str, **env: str) -> ServedBot:  # type: ignore[no-untyped-def]
        w = ServedBot(settings, tmp_path / f"worker-{len(started)}.log", command=("worker", *args), **env)
        started.append(w)
        return w

    yield serve, worker
    stop_all(started)


def _audit_actions(url: str, job_id: str) -> list[str]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return [
                e.action
                for e in s.scalars(
                    select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id)
                )
            ]
    finally:
        engine.dispose()


def _resumed_and_finished_once(pg_url: str, slack, github) -> None:  # type: ignore[no-untyped-def]
    """The handed-back deploy is resumed by the next process and succeeds: the same run, one dispatch."""
    slack.wait_for(lambda: _jobs(pg_url)[0].state in ("succeeded", "failed"), timeout=60)
    (job,) = _jobs(pg_url)
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1
    actions = _audit_actions(pg_url, job.id)
    assert actions.count("deploy.resumed") == 1 and actions.count("deploy.succeeded") == 1


def _finished(metrics_text: str, operation: str, outcome: str) -> float:
    m = re.search(
        rf'^taisun_jobs_finished_total{{operation="{operation}",outcome="{outcome}"}} (\S+)$',
        metrics_text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


def test_a_production_deploy_asked_of_serve_is_run_by_the_worker_process(
    pg_url, settings_for, procs, slack, github
):
    serve, worker = procs
    settings = settings_for(pg_url, github_token=GITHUB_TOKEN, github_api_url=github.url)
    web = serve(settings)
    # No worker yet: serve takes the request and runs nothing, and its /health stays 200, saying a job waits.
    _slash(web, "deploy prod v1.2.3", ALICE, slack)
    health = web.http.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and body["job_workers"]["in"] == "taisun worker"
    assert body["job_workers"]["waiting"] == 1 and body["job_workers"]["wake"] == "postgresql"
    assert _jobs(pg_url)[0].state == "validating"

    jobs = worker(settings)
    assert jobs.http.get("/health").json()["job_workers"]["alive"] == 2
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None),
        timeout=30,
    )
    job_id = buttons(card)[Action.APPROVE]
    body, ctype = signing.block_action(
        Action.APPROVE, job_id, user_id=BOB, user_name="bob", channel_id=CHANNEL, message_ts=card.ts,
        response_url=slack.response_url("U0BOB-approve"),
    )  # fmt: skip
    assert web.post(body, ctype).status_code == 200
    slack.wait_for(lambda: _jobs(pg_url)[0].state in ("succeeded", "failed"), timeout=60)
    (job,) = _jobs(pg_url)
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1
    slack.wait_for(
        lambda: any("Succeeded" in text_of(m) for m in slack.channel_messages(CHANNEL)), timeout=15
    )
    # The worker ran it: the jobs' metrics are counted there, and serve's /health has nothing waiting.
    assert _finished(jobs.http.get("/metrics").text, "deploy", "succeeded") == 1
    assert _finished(web.http.get("/metrics").text, "deploy", "succeeded") == 0
    assert web.http.get("/health").json()["job_workers"]["waiting"] == 0
    assert [a for a in _audit_actions(pg_url, job_id) if a in ("deploy.approved", "deploy.succeeded")] == [
        "deploy.approved",
        "deploy.succeeded",
    ]
    assert "Traceback" not in web.log() and "Traceback" not in jobs.log()


def test_a_worker_killed_mid_deploy_is_resumed_exactly_once_by_another_worker(
    pg_url,
    settings_for,
    procs,
    slack,
    github,
):
    serve, worker = procs
    settings = settings_for(
        pg_url, github_token=GITHUB_TOKEN, github_api_url=github.url, taisun_lease_seconds=2.0
    )
    github.run_script = ["queued"] + ["in_progress"] * 400 + [("completed", "success")]
    web = serve(settings)
    first = worker(settings)
    _slash(web, "deploy stg v1.2.3", ALICE, slack)
    slack.wait_for(lambda: _jobs(pg_url) and _jobs(pg_url)[0].progress.get("run_id"), timeout=30)
    first.kill()  # SIGKILL, mid-deploy: the run is dispatched and being followed
    (job,) = _jobs(pg_url)
    run_id = job.progress["run_id"]
    github.script_run(run_id, ["in_progress", ("completed", "success")])
    worker(settings)
    slack.wait_for(lambda: _jobs(pg_url)[0].state in ("succeeded", "failed"), timeout=60)
    (job,) = _jobs(pg_url)
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1  # followed again, never dispatched twice
    assert job.progress["run_id"] == run_id
    actions = _audit_actions(pg_url, job.id)
    assert actions.count("deploy.resumed") == 1 and actions.count("deploy.started") == 1
    assert actions.count("deploy.succeeded") == 1 and actions[-1] == "deploy.succeeded"
    slack.wait_for(lambda: "Succeeded" in text_of(slack.channel_messages(CHANNEL)[-1]), timeout=15)


def test_sigterm_hands_a_running_job_back_and_the_next_worker_finishes_it(
    pg_url,
    settings_for,
    procs,
    slack,
    github,
):
    serve, worker = procs
    # A long lease: a job left to run out its lease would wait here 10 minutes; handed back, it does not.
    settings = settings_for(
        pg_url, github_token=GITHUB_TOKEN, github_api_url=github.url, taisun_lease_seconds=600.0
    )
    github.run_script = ["queued"] + ["in_progress"] * 400 + [("completed", "success")]
    web = serve(settings)
    first = worker(settings, "--graceful-timeout", "1")
    _slash(web, "deploy stg v1.2.3", ALICE, slack)
    slack.wait_for(lambda: _jobs(pg_url) and _jobs(pg_url)[0].progress.get("run_id"), timeout=30)
    assert first.terminate() == 0  # a clean exit, within gunicorn's graceful timeout
    (job,) = _jobs(pg_url)
    assert job.state == "running" and job.lease_expires_at is None  # handed back, not left to expire
    assert "handed back" in first.log()
    github.script_run(job.progress["run_id"], ["in_progress", ("completed", "success")])
    worker(settings)
    _resumed_and_finished_once(pg_url, slack, github)


def test_a_worker_answers_health_and_metrics_only_and_says_when_it_cannot_start(
    pg_url,
    settings_for,
    procs,
    tmp_path,
):
    from tests.procs import run_cli

    _, worker = procs
    settings = settings_for(pg_url)
    w = worker(settings)
    health = w.http.get("/health")
    assert health.status_code == 200 and health.json()["role"] == "worker"
    assert w.http.post("/slack/events", content=b"x").status_code == 404
    assert w.http.post("/health").status_code == 405
    assert w.http.get("/metrics").status_code == 200
    none = run_cli(["worker", "--bind", "127.0.0.1:0"], settings, TAISUN_WORKERS="0")
    assert none.returncode == 2 and "TAISUN_WORKERS is 0" in none.stderr
    empty = run_cli(
        ["worker", "--bind", "127.0.0.1:0"],
        settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/empty.db"}),
    )
    assert empty.returncode == 2 and "never migrated" in empty.stderr and "Traceback" not in empty.stderr
    for value, said in (("25", "less than or equal to 19"), ("low", "a valid integer")):
        bad = run_cli(["worker", "--bind", "127.0.0.1:0"], settings, TAISUN_WORKER_NICE=value)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert f"TAISUN_WORKER_NICE: Input should be {said}" in bad.stderr


def _thread_stat(pid: int, field: int) -> list[int]:
    """Field `field` (1-based, as proc(5) numbers them) of every thread of process `pid`."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        out.append(int(stat[stat.rfind(")") + 2 :].split()[field - 3]))  # fields 1-2: pid, (comm)
    return out


def _niceness(pid: int) -> set[int]:
    """The niceness of every thread of process `pid` (Linux ranks threads, not processes)."""
    return set(_thread_stat(pid, 19))


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _session_nice(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None  # a kernel without autogroup scheduling (or a sandbox whose file reads empty)


SCHED_OTHER, SCHED_IDLE = 0, 5  # Linux's scheduling policies, as /proc/<pid>/task/<tid>/stat says them


def _policies(pid: int) -> list[int]:
    """The scheduling policy of every thread of process `pid`."""
    return _thread_stat(pid, 41)


def test_the_worker_yields_the_cpu_to_serves_acks_and_its_session_with_it(pg_url, settings_for, procs):
    serve, worker = procs
    settings = settings_for(pg_url)
    s = serve(settings)
    w = worker(settings)  # in a session of its own, as systemd and containers start it
    job_process = _children(w.proc.pid)
    assert job_process, "gunicorn's worker process that runs the jobs"
    for pid in (w.proc.pid, *job_process):
        assert _niceness(pid) == {19}, "every thread, the job threads included, at TAISUN_WORKER_NICE's 19"
    # The job threads under SCHED_IDLE (and any thread one of them starts): a waking ack preempts them
    # at once. The lease heartbeat and gunicorn's own threads keep the ordinary policy.
    (runner,) = job_process
    policies = _policies(runner)
    assert policies.count(SCHED_IDLE) >= settings.taisun_workers, policies
    assert SCHED_OTHER in policies and set(policies) == {SCHED_OTHER, SCHED_IDLE}, policies
    assert set(_policies(w.proc.pid)) == {SCHED_OTHER}, "gunicorn's arbiter"
    autogroups = _session_nice(w.proc.pid) is not None
    assert w.http.get("/health").json()["priority"] == {
        "nice": 19,
        "session_nice": 19 if autogroups else None,
        "idle_threads": settings.taisun_workers,
    }
    # serve, in a session of its own too, keeps the ordinary priority and policy: its acks go first.
    for pid in (s.proc.pid, *_children(s.proc.pid)):
        assert _niceness(pid) == {0}
        assert set(_policies(pid)) == {SCHED_OTHER}
        assert _session_nice(pid) in (0, None)
    # TAISUN_WORKER_NICE=0 and TAISUN_WORKER_IDLE_POLICY=false: as serve.
    even = ServedBot(
        settings,
        w.log_path.with_name("even.log"),
        command=("worker",),
        TAISUN_WORKER_NICE="0",
        TAISUN_WORKER_IDLE_POLICY="false",
    )
    try:
        assert even.http.get("/health").json()["priority"] == {
            "nice": 0,
            "session_nice": 0 if autogroups else None,
            "idle_threads": 0,
        }
        (even_runner,) = _children(even.proc.pid)
        assert set(_policies(even_runner)) == {SCHED_OTHER}
    finally:
        even.stop()


def test_a_job_threads_idle_policy_reaches_what_it_starts_and_nothing_else():
    """`idle_thread`: the calling thread, the threads it starts and the programs it runs (pg_dump,
    pgbackrest...) run under SCHED_IDLE; the process's other threads keep theirs. In a process of its
    own: an unprivileged thread can never leave SCHED_IDLE."""
    code = (
        "import os, subprocess, sys, threading\n"
        "from bot.core import priority\n"
        "seen = {}\n"
        "def job():\n"
        "    seen['took'] = priority.idle_thread()\n"
        "    seen['job'] = os.sched_getscheduler(0)\n"
        "    t = threading.Thread(target=lambda: seen.__setitem__('its_thread', os.sched_getscheduler(0)))\n"
        "    t.start(); t.join()\n"
        "    seen['its_program'] = int(subprocess.run([sys.executable, '-c',\n"
        "        'import os; print(os.sched_getscheduler(0))'], capture_output=True, text=True).stdout)\n"
        "t = threading.Thread(target=job); t.start(); t.join()\n"
        "seen['main'] = os.sched_getscheduler(0)\n"
        "seen['counted'] = priority.current().idle_threads\n"
        "print(sorted(seen.items()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    ).stdout
    assert out.strip() == str(
        sorted(
            {
                "took": True,
                "job": os.SCHED_IDLE,
                "its_thread": os.SCHED_IDLE,
                "its_program": os.SCHED_IDLE,
                "main": os.SCHED_OTHER,
                "counted": 1,
            }.items()
        )
    )


def test_a_worker_sharing_a_terminal_session_leaves_the_session_alone():
    """Started from a shell (not leading its session), the worker lowers only itself: the shell and
    whatever else runs in that session keep their priority."""
    before = _session_nice(os.getpid())
    code = "from bot.core.priority import yield_cpu; p = yield_cpu(7); print(p.nice, p.session_nice)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    ).stdout.split()
    assert out[0] == "7"
    assert out[1] == str(before)
    assert _session_nice(os.getpid()) == before


@pytest.mark.parametrize("content", ["", "garbled\n"])
def test_a_worker_on_a_host_whose_autogroup_file_reads_empty_still_lowers_itself(tmp_path, content):
    """Some sandboxes (CI's) list /proc/<pid>/autogroup and read it empty: the worker leading its
    session lowers its own niceness, reports no session niceness and writes nothing there."""
    fake = tmp_path / "autogroup"
    fake.write_text(content)
    code = (
        "import sys, pathlib, bot.core.priority as pr; pr.AUTOGROUP = pathlib.Path(sys.argv[1]); "
        "p = pr.yield_cpu(9); print(p.nice, p.session_nice)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(fake)],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=60, start_new_session=True,
    ).stdout.split()  # fmt: skip
    assert out == ["9", "None"]
    assert fake.read_text() == content


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_socket_mode_answers_over_the_websocket_and_serves_http_from_gunicorn(
    db_url, settings_for, slack, tmp_path
):
    from tests.fakes.socketmode import FakeSocketMode

    ws = FakeSocketMode().start()
    slack.app_token = "xapp-1-A0TAISUN-1-good"  # noqa: S105 (the local Slack's own app-level token)
    slack.socket_mode_url = ws.url
    bot = ServedBot(
        settings_for(db_url), tmp_path / "socket.log", command=("serve",), SLACK_APP_TOKEN=slack.app_token
    )
    try:
        ws.wait_connected()
        payload = {
            "token": "unused", "team_id": "T0LOCAL", "channel_id": CHANNEL, "user_id": ALICE, "user_name": "alice",
            "command": "/taisun", "text": "help", "response_url": slack.response_url("alice-ws"),
            "trigger_id": "ws-trigger-1", "api_app_id": "A0TAISUN",
        }  # fmt: skip
        ws.send_envelope("envelope-1", "slash_commands", payload)
        ack = ws.wait_ack("envelope-1")
        assert "/taisun deploy" in text_of(ack["payload"])  # the help, answered over the WebSocket
        # HTTP beside it, from gunicorn: /health, /metrics; Slack's events do not come this way.
        health = bot.http.get("/health")
        assert health.status_code == 200 and health.json()["database"] == "ok", health.text
        assert "taisun_commands_total" in bot.http.get("/metrics").text
        assert bot.http.post("/slack/events", content=b"{}").status_code == 404
        assert bot.terminate() == 0  # SIGTERM: gunicorn stops, the WebSocket is closed
        assert ws.wait_closed()
        assert "Traceback" not in bot.log()
    finally:
        bot.stop()
        ws.stop()


def test_sigterm_to_serve_running_jobs_itself_hands_a_running_job_back(
    pg_url, settings_for, tmp_path, slack, github
):
    """The embedded default (jobs in `taisun serve`): a SIGTERM mid-deploy hands the job back at once,
    and the next serve resumes the same run — no waiting out the lease, no second dispatch."""
    settings = settings_for(
        pg_url, github_token=GITHUB_TOKEN, github_api_url=github.url, taisun_lease_seconds=600.0
    )
    github.run_script = ["queued"] + ["in_progress"] * 400 + [("completed", "success")]
    first = ServedBot(settings, tmp_path / "serve-a.log", workers=1)
    second = None
    try:
        _slash(first, "deploy stg v1.2.3", ALICE, slack)
        slack.wait_for(lambda: _jobs(pg_url) and _jobs(pg_url)[0].progress.get("run_id"), timeout=30)
        os.killpg(
            first.proc.pid, signal.SIGTERM
        )  # as systemd stop does; with --graceful-timeout 20 (default)
        assert first.proc.wait(60) == 0
        (job,) = _jobs(pg_url)
        assert job.state == "running" and job.lease_expires_at is None  # handed back, not left for 10 min
        assert "handed back" in first.log_path.read_text()
        github.script_run(job.progress["run_id"], ["in_progress", ("completed", "success")])
        second = ServedBot(settings, tmp_path / "serve-b.log", workers=1)
        _resumed_and_finished_once(pg_url, slack, github)
    finally:
        first.stop()
        if second:
            second.stop()


def _metric(metrics_text: str, line_start: str) -> float:
    m = re.search(rf"^{re.escape(line_start)} (\S+)$", metrics_text, re.M)
    assert m, f"{line_start} is not in /metrics"
    return float(m.group(1))


def test_each_process_keeps_to_its_connection_budget_and_check_counts_it_against_the_server(
    pg_url, settings_for, procs, slack
):
    """TAISUN_DB_CONNECTIONS caps each process's pool; pg_stat_activity names who holds what; /metrics and
    `taisun check` say it, and check fails when one more process would not fit under max_connections."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    from tests.procs import run_cli

    serve, worker = procs
    settings = settings_for(pg_url)
    budget = {"TAISUN_DB_CONNECTIONS": "5"}
    web = serve(settings, **budget)
    jobs = worker(settings, **budget)
    peaks: dict[str, int] = {}
    done = threading.Event()
    watcher = make_engine(pg_url, connections=4, name="budget-watcher")
    dbname = watcher.url.database

    def sample() -> None:
        with watcher.connect() as conn:
            while not done.is_set():
                rows = conn.execute(
                    text(
                        "SELECT application_name, count(*) FROM pg_stat_activity "
                        "WHERE datname = :db GROUP BY 1"
                    ),
                    {"db": dbname},
                ).all()
                for name, n in rows:
                    peaks[name] = max(peaks.get(name, 0), n)
                conn.commit()
                done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    texts = ["status", "deploy stg v1.2.3", "deploys stg", "help", "lock stg"] * 12
    users = [ALICE, BOB]
    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(lambda i: _slash(web, texts[i], users[i % 2], slack), range(len(texts))))
    done.set()
    sampler.join()
    watcher.dispose()
    said = [str(r.get("text", "")) for r in replies]
    assert len(said) == 60 and not [t for t in said if "cannot reach my database" in t], said
    assert not [t for t in said if t.startswith(":warning:") and "lock" not in t], said
    # Two gunicorn workers of 5 each, plus serve's and the worker's NOTIFY/LISTEN connections.
    assert 2 <= peaks.get("taisun-serve", 0) <= 2 * (5 + 2), peaks
    assert 1 <= peaks.get("taisun-worker", 0) <= 5 + 2, peaks
    assert set(peaks) <= {"taisun-serve", "taisun-worker", "budget-watcher"}, peaks

    served = web.http.get("/metrics").text
    assert _metric(served, "taisun_db_connections_limit") == 10  # both gunicorn workers
    assert 1 <= _metric(served, 'taisun_db_connections{state="open"}') <= 10
    assert 0 <= _metric(served, 'taisun_db_connections{state="in_use"}') <= 10
    assert _metric(jobs.http.get("/metrics").text, "taisun_db_connections_limit") == 5
    # /health: the answering process's own pool, against its limit
    for proc in (web, jobs):
        pool = proc.http.get("/health").json()["db_connections"]
        assert pool["limit"] == 5 and 1 <= pool["open"] <= 5 and 0 <= pool["in_use"] <= pool["open"], pool

    check = run_cli(["check", "--json"], settings, TAISUN_JOBS="worker", **budget)
    row = {r["check"]: r for r in json.loads(check.stdout)}["database"]
    assert row["status"] == "ok", row
    assert "taisun-serve" in row["detail"] and "taisun-worker" in row["detail"], row
    assert "a bot process may open 7 (TAISUN_DB_CONNECTIONS 5 + 2 for NOTIFY/LISTEN)" in row["detail"]
    too_many = run_cli(["check"], settings, TAISUN_DB_CONNECTIONS="500")
    assert too_many.returncode == 1 and "✗ database" in too_many.stdout
    assert "one more would not fit under max_connections" in too_many.stdout
    assert "lower TAISUN_DB_CONNECTIONS" in too_many.stdout
    bad = run_cli(["check"], settings, TAISUN_DB_CONNECTIONS="2")
    assert bad.returncode != 0 and "TAISUN_DB_CONNECTIONS" in bad.stdout + bad.stderr
    assert "Traceback" not in web.log() and "Traceback" not in jobs.log()
