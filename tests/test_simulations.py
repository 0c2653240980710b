"""Simulations are not successes: a job that changed nothing ends `simulated`, says so once, and is
never counted as a deploy; a simulated rollback may go back along simulated deploys (the demo), a
real one never does; the incident checklist's rollback step asks for a version it cannot infer."""

from __future__ import annotations

import json
import re

from bot.core.blocks import Action
from bot.slack import signing
from tests.audit_helpers import exported_audit
from tests.chatops_helpers import (
    checklist_in,
    click,
    fast,
    header_of,
    runs_of,
    settle,
    step_value,
    submit_view,
    wait_step,
)
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, CHANNEL, last_card, text_of, the_job


def _card_blocks(slack) -> str:  # type: ignore[no-untyped-def]
    """What the newest card shows (its blocks, not the notification text)."""
    return json.dumps(last_card(slack).blocks, ensure_ascii=False)


def _metric(bot, operation: str, outcome: str) -> float:  # type: ignore[no-untyped-def]
    """taisun_jobs_finished_total for one operation and outcome, read from GET /metrics."""
    status: list[str] = []
    body = b"".join(
        bot.wsgi(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda s, h, exc_info=None: status.append(s)
        )
    ).decode()
    assert status[0].startswith("200")
    line = re.search(
        rf'^taisun_jobs_finished_total\{{operation="{operation}",outcome="{outcome}"\}} (\S+)$', body, re.M
    )
    return float(line[1]) if line else 0.0


def _open_home(bot, user: str) -> None:  # type: ignore[no-untyped-def]
    body, ctype = signing.event_callback(
        {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"},
        event_id=f"Ev-home-{user}-sim",
    )
    assert bot.post(body, ctype)[0] == 200


def test_a_simulated_deploy_ends_simulated_says_so_once_and_is_never_counted_as_a_deploy(
    db_url, make_bot, slack
):
    bot = make_bot(db_url)  # no GITHUB_TOKEN: deploys are labelled simulations
    succeeded_before = _metric(bot, "deploy", "succeeded")
    simulated_before = _metric(bot, "deploy", "simulated")
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle()
    job = the_job(bot)
    assert job.state == "simulated", job.result

    card = _card_blocks(slack)
    assert "🧪 *Deploy v1.2.3 to staging*" in card and "*Simulated — nothing was changed*" in card
    assert "Succeeded" not in card and "✅" not in card
    assert card.count("GITHUB_TOKEN") == 1, card  # the banner says why, once (not in steps, result, fields)
    assert "with inputs `environment=staging, rollback=false, version=v1.2.3`" in card  # not a Python repr
    assert "{'" not in card and "False" not in card

    (row,) = [r for r in exported_audit(bot.settings, job.id) if r["action"] == "deploy.simulated"]
    assert row["outcome"] == "simulated" and row["actor_id"] == "taisun"
    assert _metric(bot, "deploy", "simulated") == simulated_before + 1
    assert _metric(bot, "deploy", "succeeded") == succeeded_before  # never a success

    # `/taisun status`: no "last deploy" (nothing was deployed); the simulation is named as one.
    bot.command("status stg", user=ALICE)
    bot.settle()
    status = slack.wait_for(lambda: next((m for m in slack.ephemeral(ALICE) if "last" in text_of(m)), None))
    shown = text_of(status)
    assert "last deploy:" not in shown
    assert "last simulated deploy: v1.2.3 by <@U0ALICE>" in shown and "nothing was changed" in shown
    # Home: no "last:" deploy line for staging either.
    _open_home(bot, ALICE)
    bot.settle()
    home = slack.wait_for(lambda: slack.home.get(ALICE))
    assert "last: deploy" not in text_of({"blocks": home["blocks"]})


def test_simulated_restart_and_backup_cards_end_simulated_in_either_language(
    db_url, make_bot, slack, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "BACKUP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    bot = make_bot(db_url, config_mutate=lambda c: c.update(language="ja"))
    bot.command("restart stg", user=ALICE)
    bot.settle()
    assert the_job(bot).state == "simulated"
    card = _card_blocks(slack)
    assert "🧪" in card and "シミュレーション — 何も変更していません" in card and "成功" not in card
    assert card.count("AWS") == 1, card  # why it is a simulation: said by the banner alone
    bot.command("backup run", user=ALICE)
    bot.settle()
    assert the_job(bot).state == "simulated"
    assert "シミュレーション — 何も変更していません" in _card_blocks(slack)


def test_a_simulated_rollback_goes_back_along_simulated_deploys_but_a_real_one_never_does(
    db_url, make_bot, slack, github, service
):
    demo = make_bot(db_url)  # no GITHUB_TOKEN, as in the demo
    for version in ("v1.2.2", "v1.2.3"):
        bot_reply = demo.command(f"deploy stg {version}", user=ALICE)
        assert "Checking" in bot_reply["text"]
        demo.settle()
    demo.command("rollback stg", user=ALICE)
    demo.settle()
    rollback = the_job(demo)
    assert rollback.operation == "rollback" and rollback.state == "simulated", rollback.result
    assert rollback.params["version"] == "v1.2.2" and rollback.params["from_version"] == "v1.2.3"
    card = _card_blocks(slack)
    assert "v1.2.3 (the last simulated deploy) → *v1.2.2*" in card and "unknown" not in card
    assert "Simulated — nothing was changed" in card
    assert "unlock" in demo.command("unlock stg", user=ALICE)["text"]  # the rollback's lock, by its requester
    demo.stop()

    # The same database, now with GitHub: simulated deploys are no history for a real rollback.
    real = make_bot(db_url, github_token=GITHUB_TOKEN, github_api_url=github.url)
    real.command("rollback stg", user=ALICE)
    real.settle(30)
    job = the_job(real)
    assert job.operation == "rollback" and job.state == "succeeded", job.result
    # From what /version answers (v1.2.2) to the next older release tag, not to the simulated v1.2.3.
    assert job.params["from_version"] == "v1.2.2" and job.params["version"] == "v1.1.0"
    assert github.runs[-1]["inputs"]["version"] == "v1.1.0"


def test_the_checklist_rollback_step_asks_for_a_version_when_none_can_be_inferred(db_url, make_bot, slack):
    bot = fast(make_bot(db_url))  # no deploy on record, no GitHub: nothing to infer a version from
    bot.command('incident declare sev2 "checkout errors" --env production', user=ALICE)
    settle(bot)
    checklist = checklist_in(slack, header_of(slack, "INC-1"))
    (run,) = runs_of(bot)
    click(bot, Action.STEP_RUN, step_value(checklist, "rollback", Action.STEP_RUN), ALICE, checklist)
    view = slack.wait_for(
        lambda: next((v for v in slack.views.values() if v["callback_id"] == Action.STEP_PARAMS_MODAL), None)
    )
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert "which version to roll production back to" in shown and "no earlier deploy" in shown
    assert wait_step(bot, run.id, "rollback", "pending")  # nothing was requested yet
    status, body = submit_view(bot, view, {"version": {Action.STEP_VERSION: {"value": "last one"}}}, ALICE)
    assert status == 200 and b"not a release tag" in body
    submit_view(bot, view, {"version": {Action.STEP_VERSION: {"value": "v1.2.2"}}}, ALICE)
    step = wait_step(bot, run.id, "rollback", "running", "done", "failed")
    job = the_job(bot, "rollback")
    assert step.job_id == job.id and job.params["version"] == "v1.2.2" and job.requested_by == ALICE
    settle(bot)


def test_a_runbook_step_shows_its_parameters_as_people_type_them(db_url, make_bot, slack):
    bot = fast(make_bot(db_url))
    bot.command("runbook run db-connection-reset stg", user=ALICE)
    settle(bot)
    (run,) = runs_of(bot)
    checklist = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if run.id in text_of(m)), None)
    )
    text = text_of(checklist)
    assert "db-connection-reset restart=false" in text and "restart=False" not in text
