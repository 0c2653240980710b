"""Restart scenarios: SSM rolling restarts on moto instances, local systemctl (a fake script), resume after a crash."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.backends import aws as aws_factory
from bot.core.blocks import Action
from bot.core.ops import OpError, Request
from bot.core.store.models import AuditEvent, Job
from tests.audit_helpers import exported_audit, facts
from tests.backend_fixtures import aws, moto_endpoint  # noqa: F401
from tests.harness import ALICE, BOB, CHANNEL, actions, buttons, last_card, locked, text_of, the_job

FAKE_SYSTEMCTL = """\
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
log = os.path.join(here, "calls.jsonl")
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
with open(log) as f:
    n = sum(1 for _ in f)
verb, service = sys.argv[1], sys.argv[-1]
if service == "ghost":
    print(f"Unit {service}.service could not be found.", file=sys.stderr); sys.exit(4)
fail_on = os.path.join(here, "fail-on-call")
if os.path.exists(fail_on) and n == int(open(fail_on).read()):
    print(f"Job for {service}.service failed because the control process exited with error code.",
          file=sys.stderr)
    sys.exit(1)
if verb == "status":
    print(f"* {service}.service - TAISUN\\n     Active: active (running) since Mon 2026-11-30 02:00:00 JST")
"""


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "systemctl"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{FAKE_SYSTEMCTL}")
    path.chmod(0o755)
    return path


def calls(systemctl: Path) -> list[list[str]]:
    log = systemctl.parent / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def fast_restart(cfg, env: str = "staging", **restart) -> None:
    cfg["environments"][env]["restart"].update(
        {"health_attempts": 2, "health_interval_seconds": 0.05} | restart
    )


@pytest.fixture
def launch(aws):
    """launch(count, env) -> ids of new running instances tagged Environment=<env>, sorted."""
    ec2 = aws_factory.client("ec2")  # one client per test: building one costs a few hundred ms

    def run(count: int, env: str = "staging") -> list[str]:
        resp = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=count, MaxCount=count,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Environment", "Value": env}]}],
        )  # fmt: skip
        return sorted(i["InstanceId"] for i in resp["Instances"])

    return run


@pytest.fixture
def ssm_sent(aws, monkeypatch) -> list[tuple[str, list[str]]]:
    """(instance, commands) of every SendCommand moto received, in order. (moto's ListCommands
    reports every instance of the account for a command sent to one, so it cannot tell.)"""
    import moto.ssm.models

    sent: list[tuple[str, list[str]]] = []
    real = moto.ssm.models.SimpleSystemManagerBackend.send_command

    def record(self, *args, **kwargs):
        sent.append((list(kwargs["instance_ids"])[0], list(kwargs["parameters"]["commands"])))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(moto.ssm.models.SimpleSystemManagerBackend, "send_command", record)
    return sent


class SickAfter:
    """A service whose /health turns 503 once `n` SSM restarts have been sent (the n-th instance broke it)."""

    def __init__(self, n: int, sent: list):
        owner = self
        self.n, self.sent = n, sent

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                healthy = self.path != "/health" or len(owner.sent) < owner.n
                body = b'{"version": "v1.2.3"}' if self.path == "/version" else b"{}"
                self.send_response(200 if healthy else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- SSM rolling restarts ------------------------------------------------------------------------


def test_staging_rolling_restart_goes_one_instance_at_a_time_with_health_after_each(
    db_url, make_bot, slack, ssm_sent, launch
):
    ids = launch(3)
    launch(1, "production")  # another environment's instance is never touched
    bot = make_bot(db_url, config_mutate=fast_restart)
    ack = bot.command("restart stg")
    bot.settle()
    job = the_job(bot)
    assert job.id[:8] in ack["text"]  # the ack names the job whose card follows
    assert job.state == "succeeded", job.result
    assert ssm_sent == [(iid, ["systemctl restart taisun"]) for iid in ids]
    card = text_of(last_card(slack))
    assert "3 running instance(s)" in card  # the runbook's status step
    for iid in ids:
        assert f"`{iid}`: restarted · /health ok (200)" in card
    assert "restarted on 3 of 3 in staging" in job.result
    # Each instance is its own audit row: which instance, the SSM command id, /health after.
    rows = exported_audit(bot.settings, job.id)
    assert [r["action"] for r in rows] == [
        "restart.requested", "restart.queued", "restart.started",
        "restart.instance_restarted", "restart.instance_restarted", "restart.instance_restarted",
        "restart.succeeded",
    ]  # fmt: skip
    restarted = facts(rows, "restart.instance_restarted")
    assert [r["instance"] for r in restarted] == ids
    assert all(r["command_id"] and r["status"] == "Success" and r["backend"] == "ssm" for r in restarted)
    assert len({r["command_id"] for r in restarted}) == 3
    assert all(r["health"].startswith("ok (200)") and r["service"] == "taisun" for r in restarted)
    assert not locked(bot, "staging")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rolling_restart_stops_at_the_first_instance_whose_health_check_fails(
    db_url, make_bot, slack, ssm_sent, launch
):
    ids = launch(3)
    sick = SickAfter(2, ssm_sent)
    try:
        bot = make_bot(
            db_url,
            config_mutate=lambda c: (fast_restart(c), c["environments"]["staging"].update(url=sick.url)),
        )
        bot.command("restart stg")
        bot.settle()
    finally:
        sick.stop()
    job = the_job(bot)
    assert job.state == "failed"
    assert [iid for iid, _ in ssm_sent] == ids[:2]  # the third instance was never restarted
    assert f"stopped at `{ids[1]}`" in job.result and "503" in job.result
    assert f"left untouched: {ids[2]}" in job.result and "1 of 3 restarted and healthy" in job.result
    card = text_of(last_card(slack))
    assert f"`{ids[0]}`: restarted · /health ok (200)" in card
    assert f"`{ids[1]}`: restarted, but /health stayed unhealthy: 503" in card
    assert f"`{ids[2]}`: not restarted" in card
    assert job.progress["restart_done"] == [ids[0]]
    assert actions(bot, job.id)[-1] == "restart.failed"
    rows = exported_audit(bot.settings, job.id)
    assert [r["instance"] for r in facts(rows, "restart.instance_restarted")] == [ids[0]]
    (stopped,) = [r for r in rows if r["action"] == "restart.instance_failed"]
    assert stopped["outcome"] == "failed" and stopped["params"]["instance"] == ids[1]
    assert (
        stopped["params"]["status"] == "Success" and stopped["params"]["command_id"]
    )  # restarted, then sick
    assert "503" in stopped["params"]["health"] and stopped["params"]["untouched"] == [ids[2]]
    assert not locked(bot, "staging")  # released: the next attempt is not blocked


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_why_a_rolling_restart_stopped_is_said_in_japanese_in_a_japanese_workspace(
    db_url, make_bot, slack, ssm_sent, launch
):
    """The reason is the bot's sentence around what /health answered: no English in a Japanese card."""
    ids = launch(2)
    sick = SickAfter(1, ssm_sent)

    def japanese(c):  # type: ignore[no-untyped-def]
        fast_restart(c)
        c["environments"]["staging"].update(url=sick.url)
        c["language"] = "ja"

    try:
        bot = make_bot(db_url, config_mutate=japanese)
        bot.command("restart stg")
        bot.settle()
    finally:
        sick.stop()
    job = the_job(bot)
    assert job.state == "failed"
    assert f"{ids[0]} の再起動後のヘルスチェックに失敗しました: 異常（HTTP 503" in job.result, job.result
    assert f"（未再起動: {ids[1]}）" in job.result
    assert "health check failed" not in job.result and "not restarted" not in job.result
    (stopped,) = [r for r in exported_audit(bot.settings, job.id) if r["action"] == "restart.instance_failed"]
    # kept as a message: the audit view shows it in each reader's language
    assert stopped["detail_msg"]["key"] == "op.restart.why.unhealthy"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_resumed_restart_goes_on_with_the_next_instance_and_never_repeats_a_finished_one(
    db_url, make_bot, ssm_sent, launch
):
    ids = launch(3)
    bot = make_bot(db_url, start=False, config_mutate=fast_restart)
    bot.command("restart stg")
    job = the_job(bot)
    # The replica that ran it died after the first instance was done, in the middle of the second.
    with bot.svc.sessions.begin() as s:
        s.execute(
            update(Job).where(Job.id == job.id).values(
                state="running", started_at=datetime.now(UTC), lease_owner="dead-replica",
                lease_expires_at=datetime.now(UTC) - timedelta(seconds=1),
                params=job.params, progress={"restart_targets": ids, "restart_done": [ids[0]], "restart_current": ids[1]},
            )
        )  # fmt: skip
    bot.svc.start()
    bot.settle()
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert [iid for iid, _ in ssm_sent] == ids[1:]  # the finished instance was not restarted again
    assert job.progress["restart_done"] == ids
    assert "restart.resumed" in actions(bot, job.id)
    assert any("restarting it again" in s["text"] for s in job.progress["steps"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_production_restart_without_aws_credentials_is_a_labelled_simulation_after_approval(
    db_url, make_bot, slack, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    bot = make_bot(db_url)
    bot.command("restart prod")
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    assert "SIMULATED — no AWS credentials" in text_of(card)
    job = the_job(bot)
    assert job.state == "pending_approval"  # production follows its approval policy
    bot.click(Action.APPROVE, job.id, BOB, card)
    bot.settle()
    job = the_job(bot)
    assert job.state == "simulated"  # nothing was restarted: never a success
    assert "SIMULATED: nothing was restarted" in job.result
    assert "would restart `taisun` on instances tagged `Environment=production`" in text_of(last_card(slack))
    assert "Simulated — nothing was changed" in text_of(last_card(slack))
    assert actions(bot, job.id) == [
        "restart.requested", "restart.awaiting_approval", "restart.approved", "restart.started", "restart.simulated",
    ]  # fmt: skip


# --- local systemctl -----------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_local_restart_runs_status_then_restart_then_health(db_url, make_bot, slack, systemctl):
    bot = make_bot(db_url, config_mutate=lambda c: fast_restart(c, "development", systemctl=[str(systemctl)]))
    bot.command("restart dev taisun")
    bot.settle()
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert calls(systemctl) == [["status", "--no-pager", "taisun"], ["restart", "taisun"]]
    card = text_of(last_card(slack))
    assert "Status of `taisun`" in card and "Active: active (running)" in card
    assert "restarted · /health ok (200)" in card
    rows = exported_audit(bot.settings, job.id)
    (restarted,) = facts(rows, "restart.instance_restarted")
    assert (
        restarted["backend"] == "local"
        and restarted["status"] == "Success"
        and restarted["service"] == "taisun"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failing_systemctl_restart_stops_with_its_message_and_releases_the_lock(
    db_url, make_bot, slack, systemctl
):
    (systemctl.parent / "fail-on-call").write_text("2")  # status passes, the restart fails
    bot = make_bot(db_url, config_mutate=lambda c: fast_restart(c, "development", systemctl=[str(systemctl)]))
    bot.command("restart dev")
    bot.settle()
    job = the_job(bot)
    assert job.state == "failed"
    assert "exited with code 1: Job for taisun.service failed" in job.result
    assert "0 of 1 restarted and healthy" in job.result
    assert "restart Failed" in text_of(last_card(slack))
    assert actions(bot, job.id) == [
        "restart.requested",
        "restart.queued",
        "restart.started",
        "restart.instance_failed",
        "restart.failed",
    ]
    assert not locked(bot, "development")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_service_systemd_does_not_know_fails_at_the_status_step_and_restarts_nothing(
    db_url, make_bot, systemctl
):
    def mutate(c):
        fast_restart(c, "development", systemctl=[str(systemctl)])
        c["environments"]["development"]["services"] = ["taisun", "ghost"]

    bot = make_bot(db_url, config_mutate=mutate)
    bot.command("restart dev ghost")
    bot.settle()
    job = the_job(bot)
    assert job.state == "failed"
    assert "Status check failed, nothing was restarted: systemd has no unit 'ghost'" in job.result
    assert calls(systemctl) == [["status", "--no-pager", "ghost"]]
    assert actions(bot, job.id)[-1] == "restart.failed"
    assert not locked(bot, "development")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unknown_service_is_refused_before_anything_is_recorded_or_run(db_url, make_bot, systemctl):
    bot = make_bot(db_url, config_mutate=lambda c: fast_restart(c, "development", systemctl=[str(systemctl)]))
    reply = bot.command("restart dev nginx")
    assert "Unknown service `nginx` in development. Services: taisun" in reply["text"]
    # A runbook (or anything else) asking the job engine directly gets the same check, audited.
    env = bot.svc.config.environments["development"]
    with pytest.raises(OpError, match="Unknown service `nginx`"):
        bot.svc.jobs.request(Request("restart", env, {"service": "nginx"}, ALICE, "alice", CHANNEL))
    with bot.svc.sessions() as s:
        assert s.scalar(select(Job.id)) is None
        refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "restart.refused")).all()
    assert len(refused) == 1 and "Unknown service" in refused[0].detail
    assert calls(systemctl) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dry_run_shows_the_plan_and_restarts_nothing(db_url, make_bot, slack, systemctl):
    bot = make_bot(db_url, config_mutate=lambda c: fast_restart(c, "development", systemctl=[str(systemctl)]))
    bot.command("restart dev --dry-run")
    bot.settle()
    job = the_job(bot)
    assert job.state == "simulated" and "DRY RUN: nothing was restarted" in job.result
    card = json.dumps(last_card(slack).blocks, ensure_ascii=False)
    assert "would restart `taisun`" in card and "Dry run — nothing was changed" in card
    assert card.lower().count("dry run") == 1, card  # said once on the card
    assert calls(systemctl) == []
