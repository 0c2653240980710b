"""Real processes: gunicorn-served bots over HTTP, two replicas on one database, SIGKILL mid-deploy."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from bot.core.blocks import Action
from bot.core.store.db import make_engine, session_factory
from bot.core.store.models import AuditEvent, Job
from bot.slack import signing
from tests.conftest import GITHUB_TOKEN, PG_OK, create_pg_database, drop_pg_database
from tests.harness import ALICE, BOB, BOT_TOKEN, CAROL, CHANNEL, buttons, text_of
from tests.procs import ServedBot, run_cli, stop_all

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path):
    bots: list[ServedBot] = []

    def start(settings, workers: int = 2) -> ServedBot:
        bot = ServedBot(settings, tmp_path / f"bot-{len(bots)}.log", workers=workers)
        bots.append(bot)
        return bot

    yield start
    stop_all(bots)


@pytest.fixture
def pg_url():
    if not PG_OK:
        pytest.skip("PostgreSQL not reachable")
    from bot.core.store.db import migrate

    url = create_pg_database()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


def _slash(bot: ServedBot, text: str, user: str, slack) -> dict:
    body, ctype = signing.slash_command(
        text, user_id=user, user_name=user, channel_id=CHANNEL, response_url=slack.response_url(f"{user}-x")
    )
    resp = bot.post(body, ctype)
    assert resp.status_code == 200, resp.text
    return resp.json() if resp.content else {}


def _jobs(url: str) -> list[Job]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return list(s.scalars(select(Job).order_by(Job.created_at)))
    finally:
        engine.dispose()


def test_help_over_gunicorn_and_forged_requests_get_401_and_do_nothing(db_url, settings_for, served, slack):
    bot = served(settings_for(db_url))
    reply = _slash(bot, "help", ALICE, slack)
    assert "/taisun deploy" in text_of(reply)
    body, ctype = signing.slash_command("lock prod evil", user_id=ALICE, channel_id=CHANNEL)
    assert bot.post(body, ctype, secret="wrong-secret").status_code == 401
    assert bot.post(body, ctype, timestamp=int(time.time()) - 301).status_code == 401
    assert "not locked" in _slash(bot, "unlock prod", ALICE, slack)["text"]
    health = bot.http.get("/health").json()
    assert health["database"] == "ok"
    assert "taisun_commands_total" in bot.http.get("/metrics").text


def test_twenty_concurrent_approvals_across_two_replicas_dispatch_once(
    pg_url, settings_for, served, slack, github
):
    settings = settings_for(pg_url, github_token=GITHUB_TOKEN, github_api_url=github.url)
    a, b = served(settings, workers=2), served(settings, workers=2)
    _slash(a, "deploy prod v1.2.3", ALICE, slack)
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None),
        timeout=20,
    )
    job_id = buttons(card)[Action.APPROVE]
    start = threading.Barrier(20)

    def click(i: int) -> int:
        bot, user = (a, BOB) if i % 2 else (b, CAROL)
        body, ctype = signing.block_action(Action.APPROVE, job_id, user_id=user, channel_id=CHANNEL, message_ts=card.ts,
                                           response_url=slack.response_url(f"{user}-{i}"))  # fmt: skip
        start.wait()
        return bot.post(body, ctype).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(click, range(20)))
    assert statuses == [200] * 20
    slack.wait_for(lambda: _jobs(pg_url)[0].state in ("succeeded", "failed"), timeout=60)
    (job,) = _jobs(pg_url)
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        approvals = s.scalars(select(AuditEvent).where(AuditEvent.action == "deploy.approved")).all()
    engine.dispose()
    assert len(approvals) == 1
    assert run_cli(["audit", "verify"], settings).returncode == 0  # the chain stayed one line under the race


def test_a_bot_killed_mid_deploy_finishes_the_same_run_after_restart(
    db_url, settings_for, served, slack, github
):
    settings = settings_for(
        db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, taisun_lease_seconds=2.0
    )
    github.run_script = ["queued"] + ["in_progress"] * 400 + [("completed", "success")]
    first = served(settings, workers=1)
    _slash(first, "deploy stg v1.2.3", ALICE, slack)
    slack.wait_for(
        lambda: (_jobs(db_url) or [None])[0] is not None and _jobs(db_url)[0].progress.get("run_id"),
        timeout=30,
    )
    first.kill()
    run_id = _jobs(db_url)[0].progress["run_id"]
    github.script_run(run_id, ["in_progress", ("completed", "success")])
    served(settings, workers=1)
    slack.wait_for(lambda: _jobs(db_url)[0].state in ("succeeded", "failed"), timeout=60)
    (job,) = _jobs(db_url)
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1  # followed again, never dispatched twice
    assert job.progress["run_id"] == run_id
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        actions = [
            e.action
            for e in s.scalars(select(AuditEvent).where(AuditEvent.job_id == job.id).order_by(AuditEvent.id))
        ]
    engine.dispose()
    assert "deploy.resumed" in actions and actions[-1] == "deploy.succeeded"
    slack.wait_for(lambda: "Succeeded" in text_of(slack.channel_messages(CHANNEL)[-1]), timeout=10)


def test_secrets_never_reach_the_logs(db_url, settings_for, served, slack, github):
    settings = settings_for(db_url, github_token=GITHUB_TOKEN, github_api_url=github.url)
    github.fail_next("/git/ref/tags", 401)  # a GitHub error whose handling might echo the token
    bot = served(settings, workers=1)
    _slash(bot, "deploy stg v1.2.3", ALICE, slack)
    _slash(bot, "status", ALICE, slack)
    slack.wait_for(
        lambda: _jobs(db_url) and _jobs(db_url)[0].state not in ("validating", "queued", "running"),
        timeout=30,
    )
    bot.stop()
    log = bot.log()
    assert log  # the bot did log
    for secret in (BOT_TOKEN, GITHUB_TOKEN, settings.slack_signing_secret):
        assert secret not in log
    for line in log.splitlines():
        if line.startswith("{"):
            json.loads(line)  # every log line is one JSON object


def test_bad_config_fails_with_file_field_and_reason_not_a_traceback(tmp_path):
    bad = tmp_path / "taisun.yml"
    bad.write_text(
        "environments:\n  production:\n    url: example.com\n    approvers: [alice]\n    colour: blue\n"
    )
    result = run_cli(["check"], TAISUN_CONFIG=str(bad), DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2
    err = result.stderr
    assert str(bad) in err
    assert "environments.production.url" in err and "http://" in err
    assert "environments.production.approvers" in err and "'alice'" in err
    assert "environments.production.colour: unknown setting" in err
    assert "Traceback" not in err
    broken = tmp_path / "broken.yml"
    broken.write_text("environments:\n  production: [\n")
    result = run_cli(["check"], TAISUN_CONFIG=str(broken), DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2 and "not valid YAML" in result.stderr and "line" in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path, settings_for):
    settings = settings_for(f"sqlite:///{tmp_path}/empty.db")
    result = run_cli(["serve", "--bind", "127.0.0.1:0"], settings, timeout=60)
    assert result.returncode == 2
    assert "never migrated" in result.stderr and "taisun migrate" in result.stderr


def test_audit_verify_names_edited_inserted_and_deleted_rows(db_url, make_bot, settings_for):
    bot = make_bot(db_url)
    for i in range(6):
        bot.command(f"lock stg reason {i}")
        bot.command("unlock stg")
    settings = bot.settings
    assert run_cli(["audit", "verify"], settings).returncode == 0
    run_cli(["audit", "chain"], settings)  # verify only reads: link every row before tampering with one
    with bot.svc.sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(detail="nothing to see"))
    result = run_cli(["audit", "verify"], settings)
    assert result.returncode == 1 and "row seq 3" in result.stderr and "edited" in result.stderr
    with bot.svc.sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(detail=""))  # put it back
        s.delete(s.scalars(select(AuditEvent).where(AuditEvent.seq == 7)).one())
    result = run_cli(["audit", "verify"], settings)
    assert result.returncode == 1 and "seq 7 missing" in result.stderr
    with bot.svc.sessions.begin() as s:
        last = s.scalars(
            select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq.desc())
        ).first()
        s.delete(last)
    result = run_cli(["audit", "verify", "--json"], settings)
    report = json.loads(result.stdout)
    assert not report["ok"] and any("newest rows" in p for p in report["problems"])
    out = run_cli(["audit", "export", "--format", "csv"], settings)
    assert out.returncode == 0 and out.stdout.startswith("seq,ts,actor_id")


def test_the_shell_reads_commands_from_stdin(tmp_path):
    script = "/taisun help\n/taisun deploy stg v1.2.3\n/taisun audit staging\n"
    result = run_cli(
        ["shell", "--database", f"sqlite:///{tmp_path}/shell.db"],
        stdin=script,
        TAISUN_CONFIG="",
        GITHUB_TOKEN="",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/taisun deploy <env> <version>" in out
    # the example config's workspace language is Japanese: the card and its steps read Japanese
    # a simulation is no success
    assert "シミュレーション — 何も変更していません" in out and "成功" not in out
    assert "deploy.simulated" in out
    # the bot's JSON log goes to a file beside the database, not between the messages (the banner,
    # in the shell's language since #13, names it)
    log = tmp_path / "taisun-shell.log"
    assert '"level"' not in out and '"level"' not in result.stderr and str(log) in out.splitlines()[0]
    assert log.exists()


def _steps(url: str) -> str:
    jobs = _jobs(url)
    return " ".join(s["text"] for s in jobs[0].progress.get("steps", [])) if jobs else ""


@pytest.mark.parametrize("stage", ["requested", "approved", "verifying"])
def test_a_bot_killed_at_any_stage_ends_the_job_exactly_once_after_restart(
    stage, db_url, settings_for, served, slack, github, service
):
    settings = settings_for(
        db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, taisun_lease_seconds=2.0
    )
    if stage == "requested":
        github.stall_next("/git/ref/tags/v1.2.3", 30)  # prepare hangs on GitHub...
        first = served(settings, workers=1)
        _slash(first, "deploy stg v1.2.3", ALICE, slack)
        slack.wait_for(
            lambda: any(r.method == "GET" and "/git/ref/tags/v1.2.3" in r.path for r in github.requests),
            timeout=20,
        )
    elif stage == "approved":
        first = served(
            settings.model_copy(update={"taisun_workers": 0}), workers=1
        )  # it takes requests, runs nothing
        _slash(first, "deploy prod v1.2.3", ALICE, slack)
        engine = make_engine(db_url)
        with session_factory(engine).begin() as s:  # the check a worker would do, done by hand
            job = s.scalars(select(Job)).one()
            job.state = "pending_approval"
        engine.dispose()
        body, ctype = signing.block_action(
            Action.APPROVE,
            job.id,
            user_id=BOB,
            channel_id=CHANNEL,
            response_url=slack.response_url("U0BOB-k"),
        )
        assert first.post(body, ctype).status_code == 200
        slack.wait_for(lambda: _jobs(db_url)[0].state == "queued", timeout=20)
    else:
        service.healthy = False
        first = served(settings, workers=1)
        _slash(first, "deploy stg v1.2.3", ALICE, slack)
        slack.wait_for(lambda: "Verifying" in _steps(db_url), timeout=30)
    first.kill()  # ...and the bot dies there
    service.healthy = True
    github.clear_faults()
    served(settings, workers=1)
    slack.wait_for(lambda: _jobs(db_url)[0].state in ("succeeded", "failed", "invalid"), timeout=60)
    (job,) = _jobs(db_url)
    assert job.state == "succeeded", (stage, job.state, job.result)
    assert len(github.dispatches) == 1
    slack.wait_for(
        lambda: any("Succeeded" in text_of(m) for m in slack.channel_messages(CHANNEL)), timeout=15
    )


def test_stuck_jobs_are_listed_and_an_operator_can_cancel_one(db_url, settings_for, slack, github):
    settings = settings_for(db_url, github_token=GITHUB_TOKEN, github_api_url=github.url)
    engine = make_engine(db_url)
    from datetime import UTC, datetime, timedelta

    from bot.core import audit

    with session_factory(engine).begin() as s:  # a job left running by a worker that is gone
        s.add(Job(id="11111111-2222-3333-4444-555555555555", operation="deploy", environment="staging",
                  params={"version": "v1.2.3"}, state="running", requested_by=ALICE, lease_owner="dead:1",
                  lease_expires_at=datetime.now(UTC) - timedelta(minutes=5)))  # fmt: skip
    listing = run_cli(["jobs", "--json"], settings, TAISUN_WORKERS="0")
    (row,) = json.loads(listing.stdout)
    assert row["state"] == "running" and row["lease_owner"] == "dead:1"
    result = run_cli(
        ["jobs", "cancel", "11111111", "--reason", "worker host gone"], settings, TAISUN_WORKERS="0"
    )
    assert result.returncode == 0, result.stderr
    with session_factory(engine)() as s:
        assert s.get(Job, "11111111-2222-3333-4444-555555555555").state == "cancelled"
        assert audit.recent(s, limit=1)[0].action == "deploy.cancelled"
    engine.dispose()


def test_a_japanese_reader_hears_japanese_from_both_gunicorn_workers_and_slack_is_asked_once(
    db_url, settings_for, served, slack
):
    """`taisun serve`'s two workers each keep their own memory: the locale learned by one serves the other,
    from the very first answer (sent to both at once), and Slack is asked about Bob once."""
    slack.add_user(BOB, "bob", locale="ja-JP")

    def english(cfg):  # type: ignore[no-untyped-def]
        cfg["language"] = "en"

    bot = served(settings_for(db_url, config_mutate=english), workers=2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: text_of(_slash(bot, "help", BOB, slack)), range(16)))
    assert all("コマンド一覧" in a for a in answers), [a[:60] for a in answers]
    assert slack.count("users.info") == 1
