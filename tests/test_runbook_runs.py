"""Runbook runs through the real signed-request path: checklists, checks, actions with approval, drills."""

from __future__ import annotations

import re
import shutil
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.checks import run_checks
from bot.core import audit
from bot.core.blocks import Action
from bot.core.ops import REGISTRY
from bot.core.store.models import AuditEvent, Job
from bot.incidents.runs import find_runbook
from tests.chatops_helpers import (
    click,
    fast,
    replies,
    runs_of,
    settle,
    skip,
    step_value,
    steps_of,
    submit_view,
    top_level,
    wait_step,
)
from tests.harness import ALICE, BOB, CHANNEL, MALLORY, text_of
from tests.test_runbooks import RUNBOOKS

ROLLBACK_DRILL = """
id: rollback-drill
kind: runbook
title: {en: Roll back production, ja: 本番をロールバック}
steps:
  - id: announce
    title: {en: Announce the rollback, ja: ロールバックを告知}
    manual:
      text: {en: Tell the channel., ja: チャンネルに告知する。}
  - id: health
    title: {en: Health before, ja: 事前ヘルスチェック}
    check:
      http: {path: /health, expect_status: 200, expect_json: {status: ok}}
  - id: rollback
    title: {en: Roll back to v1.2.2, ja: v1.2.2 へロールバック}
    action:
      operation: rollback
      params: {version: v1.2.2}
  - id: version
    title: {en: Running version, ja: 稼働バージョン}
    check:
      http: {path: /version}
"""
DB_SANITY = """
id: db-sanity
kind: runbook
title: {en: Database sanity, ja: データベース確認}
steps:
  - id: read-only
    title: {en: Session is read-only, ja: 読み取り専用}
    check:
      sql: {query: "SHOW transaction_read_only"}
  - id: sessions
    title: {en: Active sessions, ja: アクティブセッション}
    check:
      sql: {query: "SELECT count(*) AS sessions FROM pg_stat_activity"}
"""
DEPLOY_FIX = """
id: deploy-fix
kind: runbook
title: {en: Deploy the fix, ja: 修正をデプロイ}
steps:
  - id: deploy
    title: {en: Deploy the fixed release, ja: 修正版をデプロイ}
    action:
      operation: deploy
"""
BROKEN = """
id: broken
kind: runbook
title: {en: Broken, ja: 壊れている}
steps:
  - id: look
    title: {en: Look, ja: 見る}
    manual:
      text: {en: Look., ja: 見る。}
  - id: flush
    title: {en: Flush everything, ja: 全部消す}
    action:
      operation: flush-all
"""


@pytest.fixture
def runbook_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped runbooks plus the test ones, through TAISUN_RUNBOOKS."""
    directory = tmp_path / "runbooks"
    shutil.copytree(RUNBOOKS, directory, ignore=shutil.ignore_patterns("*.md"))
    (directory / "rollback-drill.yml").write_text(textwrap.dedent(ROLLBACK_DRILL))
    (directory / "db-sanity.yml").write_text(textwrap.dedent(DB_SANITY))
    (directory / "deploy-fix.yml").write_text(textwrap.dedent(DEPLOY_FIX))
    monkeypatch.setenv("TAISUN_RUNBOOKS", str(directory))
    return directory


def checklist_of(slack, run_id: str):  # type: ignore[no-untyped-def]
    """The top-level checklist message of a run (its buttons carry the run id)."""
    return slack.wait_for(lambda: next((m for m in top_level(slack, CHANNEL) if run_id in text_of(m)), None))


def title(bot, runbook_id: str, step_id: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """A runbook's or step's title in the language the bot writes channel messages in."""
    book = find_runbook(runbook_id)
    lang = bot.svc.config.language
    return book.step(step_id).title_for(lang) if step_id else book.title_for(lang)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # nothing here depends on the database
def test_runbook_list_names_each_runbook_and_a_malformed_one_is_refused_with_file_and_step(
    db_url, make_bot, runbook_dir, capsys
):
    (runbook_dir / "broken.yml").write_text(textwrap.dedent(BROKEN))
    bot = make_bot(db_url)
    listing = text_of(bot.command("runbook list", user=MALLORY))  # listing needs no role
    # Titles come in the reader's language (their Slack locale, else the config's).
    assert re.search(r"`incident-response` — (インシデント対応|Incident response) · _incident-flow_", listing)
    assert re.search(r"`rollback-drill` — (本番をロールバック|Roll back production) · _runbook_", listing)
    assert "_troubleshooting_" in listing
    assert "broken.yml: step 2 (flush)" in listing and "flush-all" in listing

    refused = text_of(bot.command("runbook run broken production", user=ALICE))
    assert "invalid, so it cannot be run" in refused
    assert "broken.yml: step 2 (flush)" in refused and "action operation 'flush-all' is unknown" in refused
    assert runs_of(bot) == []
    assert "no runbook `nope`" in bot.command("runbook run nope", user=ALICE)["text"]
    assert "needs an environment" in bot.command("runbook run rollback-drill", user=ALICE)["text"]

    # `taisun check` fails on the same file.
    capsys.readouterr()
    assert run_checks(bot.settings) == 1
    out = capsys.readouterr().out
    assert "✗ runbooks" in out


def test_action_step_runs_the_real_operation_with_approval_and_records_the_outcome(
    db_url, make_bot, slack, runbook_dir
):
    bot = fast(make_bot(db_url))
    ack = bot.command("runbook run rollback-drill prod", user=ALICE)
    assert re.search(r"Starting \*(本番をロールバック|Roll back production)\*", ack["text"])
    settle(bot)
    (run,) = runs_of(bot)
    checklist = checklist_of(slack, run.id)
    assert run.environment == "production"
    # The health check waits for the step before it.
    assert steps_of(bot, run.id)["health"].state == "pending"
    click(bot, Action.STEP_DONE, step_value(checklist, "announce", Action.STEP_DONE), ALICE, checklist)
    wait_step(bot, run.id, "health", "passed")

    click(bot, Action.STEP_RUN, step_value(checklist, "rollback", Action.STEP_RUN), ALICE, checklist)
    reply = slack.wait_for(lambda: next((m for m in slack.ephemeral(ALICE) if "Requested" in m.text), None))
    assert "v1.2.2" in reply.text
    step = wait_step(bot, run.id, "rollback", "running")
    settle(bot)
    with bot.svc.sessions() as s:
        job = s.get(Job, steps_of(bot, run.id)["rollback"].job_id)
    assert job is not None and job.state == "pending_approval" and job.requested_by == ALICE
    assert job.params["version"] == "v1.2.2" and not job.dry_run
    slack.wait_for(lambda: "waiting for approval" in text_of(checklist))

    # The requester cannot approve their own step; someone in @sre-leads can.
    card = next(m for m in top_level(slack, CHANNEL) if job.id in text_of(m) and Action.APPROVE in text_of(m))
    replies_to_alice = len(slack.ephemeral(ALICE))
    click(bot, Action.APPROVE, job.id, ALICE, card)
    slack.wait_for(lambda: len(slack.ephemeral(ALICE)) > replies_to_alice)  # told why not
    with bot.svc.sessions() as s:
        assert s.get(Job, job.id).state == "pending_approval"  # type: ignore[union-attr]
    assert steps_of(bot, run.id)["rollback"].state == "running"
    click(bot, Action.APPROVE, job.id, BOB, card)
    step = wait_step(bot, run.id, "rollback", "done")
    assert step.job_state == "simulated" and "approved by <@U0BOB>" in step.result
    assert job.params.get("simulated")  # no GITHUB_TOKEN: a labelled simulation, as the operation says
    wait_step(bot, run.id, "version", "passed")
    settle(bot)
    (run,) = runs_of(bot)
    assert run.state == "completed"

    thread = "\n".join(m.text for m in replies(slack, checklist))
    assert f"▶️ <@U0ALICE> ran *{title(bot, 'rollback-drill', 'rollback')}*" in thread
    assert f"job `{job.id[:8]}` simulated — nothing was changed, approved by <@U0BOB>" in thread
    assert "complete" in thread
    assert f"✅ *{title(bot, 'rollback-drill')}*" in text_of(checklist)
    with bot.svc.sessions() as s:
        actions = [
            (e.action, e.job_id)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action.startswith("runbook.")).order_by(AuditEvent.id)
            )
        ]
    assert ("runbook.action_requested", job.id) in actions and ("runbook.action_finished", job.id) in actions
    assert [a for a, _ in actions].count("runbook.step_done") == 1
    assert audit.verify(bot.svc.engine).ok


def test_failed_check_can_be_rerun_skip_needs_a_reason_and_a_missing_operation_is_explained(
    db_url, make_bot, slack, service, runbook_dir, monkeypatch
):
    bot = fast(make_bot(db_url))
    # An operation this bot does not have (the composition root registers every operation when the
    # bot is built, so it is taken away afterwards): the step says so instead of running anything.
    monkeypatch.delitem(REGISTRY, "restart", raising=False)
    bot.command("runbook run service-restart stg", user=ALICE)
    settle(bot)
    (run,) = runs_of(bot)
    checklist = checklist_of(slack, run.id)
    click(bot, Action.STEP_DONE, step_value(checklist, "status", Action.STEP_DONE), BOB, checklist)
    wait_step(bot, run.id, "current-version", "passed")
    settle(bot)

    click(bot, Action.STEP_RUN, step_value(checklist, "restart", Action.STEP_RUN), ALICE, checklist)
    slack.wait_for(
        lambda: any("`restart` operation is not available" in m.text for m in slack.ephemeral(ALICE))
    )
    assert steps_of(bot, run.id)["restart"].state == "pending"

    # Skip asks for a reason; an empty one is refused on the form.
    click(bot, Action.STEP_SKIP, step_value(checklist, "restart", Action.STEP_SKIP), ALICE, checklist)
    view = slack.wait_for(lambda: next(iter(slack.views.values()), None))
    status, body = submit_view(bot, view, {"reason": {Action.STEP_SKIP_REASON: {"value": "  "}}}, ALICE)
    assert b"errors" in body and b"Say why" in body
    service.healthy = False
    skip(bot, slack, checklist, "restart", ALICE, "restarted by hand with systemctl")
    failed = wait_step(bot, run.id, "health", "failed")
    assert "503" in failed.result
    settle(bot)
    assert "❌" in text_of(checklist) and "Run check again" in text_of(checklist)
    service.healthy = True
    click(bot, Action.STEP_RECHECK, step_value(checklist, "health", Action.STEP_RECHECK), BOB, checklist)
    wait_step(bot, run.id, "health", "passed")
    settle(bot)
    (run,) = runs_of(bot)
    assert run.state == "completed"
    assert "skipped by <@U0ALICE>" in text_of(checklist) and "restarted by hand" in text_of(checklist)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQL checks speak PostgreSQL
def test_sql_check_runs_read_only_on_the_environment_database(
    db_url, make_bot, slack, runbook_dir, monkeypatch
):
    monkeypatch.setenv("STAGING_DATABASE_URL", db_url)
    bot = fast(make_bot(db_url))
    bot.command("runbook run db-sanity staging", user=ALICE)
    (run,) = slack.wait_for(lambda: runs_of(bot))
    ro = wait_step(bot, run.id, "read-only", "passed", "failed")
    assert ro.state == "passed" and "on" in ro.result.split("```")[1].split()
    sessions = wait_step(bot, run.id, "sessions", "passed", "failed")
    assert sessions.state == "passed" and "sessions" in sessions.result
    settle(bot)


def test_two_people_clicking_done_at_once_record_it_once_and_a_drill_needs_no_approval(
    db_url, make_bot, slack, runbook_dir
):
    bot = fast(make_bot(db_url))
    bot.command("runbook run rollback-drill production", user=ALICE)
    settle(bot)
    (run,) = runs_of(bot)
    checklist = checklist_of(slack, run.id)
    value = step_value(checklist, "announce", Action.STEP_DONE)
    threads = [
        threading.Thread(target=click, args=(bot, Action.STEP_DONE, value, u, checklist))
        for u in (ALICE, BOB)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    step = wait_step(bot, run.id, "announce", "done")
    loser = BOB if step.actor_id == ALICE else ALICE
    slack.wait_for(lambda: any("Already done by" in m.text for m in slack.ephemeral(loser)))
    with bot.svc.sessions() as s:
        done = s.scalars(select(AuditEvent).where(AuditEvent.action == "runbook.step_done")).all()
    assert len(done) == 1
    # Nobody outside the responder role can tick steps.
    status, _ = bot.click(
        Action.STEP_DONE, step_value(checklist, "rollback", Action.STEP_DONE), MALLORY, checklist
    )
    slack.wait_for(lambda: any("responder" in m.text for m in slack.ephemeral(MALLORY)))
    assert steps_of(bot, run.id)["rollback"].state == "pending"

    # --drill: the same runbook's actions run as dry runs, without approval even on production.
    bot.command("runbook run rollback-drill production --drill", user=BOB)
    settle(bot)
    drill = next(m for m in top_level(slack, CHANNEL) if "DRILL" in text_of(m))
    (drill_run,) = [r for r in runs_of(bot) if r.drill]
    click(bot, Action.STEP_RUN, step_value(drill, "rollback", Action.STEP_RUN), BOB, drill)
    step = wait_step(bot, drill_run.id, "rollback", "done", "failed")
    assert step.state == "done"
    with bot.svc.sessions() as s:
        job = s.get(Job, step.job_id)
    assert job is not None and job.dry_run and job.approved_by == ""

    # A deploy step without a version asks for one before it requests anything.
    bot.command("runbook run deploy-fix production --drill", user=BOB)
    settle(bot)
    (fix_run,) = [r for r in runs_of(bot) if r.runbook_id == "deploy-fix"]
    fix = checklist_of(slack, fix_run.id)
    click(bot, Action.STEP_RUN, step_value(fix, "deploy", Action.STEP_RUN), BOB, fix)
    view = slack.wait_for(
        lambda: next((v for v in slack.views.values() if v["callback_id"] == Action.STEP_PARAMS_MODAL), None)
    )
    assert steps_of(bot, fix_run.id)["deploy"].state == "pending"
    status, body = submit_view(bot, view, {"version": {Action.STEP_VERSION: {"value": "latest"}}}, BOB)
    assert b"not a release tag" in body
    submit_view(bot, view, {"version": {Action.STEP_VERSION: {"value": "v1.2.4"}}}, BOB)
    step = wait_step(bot, fix_run.id, "deploy", "done", "failed")
    with bot.svc.sessions() as s:
        job = s.get(Job, step.job_id)
    assert job is not None and job.params["version"] == "v1.2.4" and job.dry_run
    settle(bot)
