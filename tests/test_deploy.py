"""Deploy and rollback scenarios against a loopback GitHub and a loopback service."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from bot.core import locks
from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Job
from tests.audit_helpers import exported_audit, facts
from tests.chatops_helpers import submit_view
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, BOB, CAROL, CHANNEL, actions, buttons, text_of, the_job

DAVE = "U0DAVE"  # an operator who is not an approver


@pytest.fixture
def gh_bot(db_url, make_bot, github):
    def make(**kw):
        def mutate(cfg):
            cfg["roles"]["operator"].append(DAVE)
            if "config_mutate" in kw:
                kw["config_mutate"](cfg)

        extra = {k: v for k, v in kw.items() if k != "config_mutate"}
        return make_bot(
            db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, config_mutate=mutate, **extra
        )

    return make


def card_for(slack, job_id_prefix: str = ""):
    msgs = [
        m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m) or "job `" in text_of(m)
    ]
    return msgs[-1] if msgs else None


def test_production_deploy_goes_from_request_to_verified_success(gh_bot, github, slack, service):
    bot = gh_bot()
    ack = bot.command("deploy prod v1.2.3", user=ALICE)
    assert "Checking" in ack["text"]
    card = slack.wait_for(
        lambda: next((m for m in slack.channel_messages(CHANNEL) if Action.APPROVE in buttons(m)), None)
    )
    text = text_of(card)
    assert "v1.2.2 → *v1.2.3*" in text  # live version → target
    assert "commits>" in text and "feat: change 3" in text  # what changes, from GitHub compare
    assert github.dispatches == []  # nothing runs before approval
    job = the_job(bot)
    status, _ = bot.click(Action.APPROVE, job.id, BOB, card)
    assert status == 200
    bot.settle(30)
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1
    assert github.runs[0]["inputs"] == {"environment": "production", "version": "v1.2.3", "rollback": "false"}
    final = slack.channel_messages(CHANNEL)[-1]
    assert "Succeeded" in text_of(final) and "Verified: healthy, version `v1.2.3`" in text_of(final)
    assert "approved by <@U0BOB>" in text_of(final)
    assert actions(bot, job.id) == [
        "deploy.requested", "deploy.checked", "deploy.awaiting_approval", "deploy.approved", "deploy.started",
        "deploy.dispatch", "deploy.dispatched", "deploy.run_found", "deploy.run_completed",
        "deploy.verify_attempt", "deploy.verified", "deploy.succeeded",
    ]  # fmt: skip


def test_an_auditor_can_tie_a_deploy_to_its_run_and_see_what_was_checked(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    job = the_job(bot)
    assert job.state == "succeeded", job.result
    rows = exported_audit(bot.settings, job.id)  # `taisun audit export`, after `audit verify` passed
    assert [r["action"] for r in rows] == [
        "deploy.requested", "deploy.checked", "deploy.queued", "deploy.started", "deploy.dispatch",
        "deploy.dispatched", "deploy.run_found", "deploy.run_completed", "deploy.verify_attempt", "deploy.verified",
        "deploy.succeeded",
    ]  # fmt: skip
    run = github.runs[0]
    inputs = {"environment": "staging", "version": "v1.2.3", "rollback": "false"}
    where = {"repository": "taisun/taisun-v2", "workflow": "cd.yml", "ref": bot.svc.config.github.ref}
    (checked,) = facts(rows, "deploy.checked")
    assert (
        checked["version"] == "v1.2.3" and checked["live_version"] == "v1.2.2" and len(checked["sha"]) == 40
    )
    assert (
        checked["changes"] == "known"
        and checked["commits"] == 2
        and "/compare/v1.2.2...v1.2.3" in checked["compare_url"]
    )
    assert facts(rows, "deploy.dispatch") == [
        {**where, "inputs": inputs, "tag": "v1.2.3", "sha": checked["sha"]}
    ]
    assert facts(rows, "deploy.dispatched") == [
        {**where, "inputs": inputs, "run_id": None}
    ]  # found by listing
    assert facts(rows, "deploy.run_found") == [
        {"run_id": run["id"], "run_url": run["html_url"], "found_by": "run listing"}
    ]
    assert facts(rows, "deploy.run_completed") == [
        {"run_id": run["id"], "run_url": run["html_url"], "conclusion": "success"}
    ]
    seen = {
        "url": bot.svc.config.environments["staging"].url, "health": "ok (200)", "health_ok": True,
        "version": "v1.2.3", "expected_version": "v1.2.3", "version_ok": True,
    }  # fmt: skip
    assert facts(rows, "deploy.verify_attempt") == [{"attempt": 1, **seen}]
    assert facts(rows, "deploy.verified") == [{"attempts": 1, "failed_checks": [], **seen}]
    assert [r["outcome"] for r in rows if r["action"] == "deploy.dispatch"] == ["pending"]
    assert all(r["actor_id"] == "taisun" for r in rows[1:] if r["action"] != "deploy.requested")
    assert GITHUB_TOKEN not in json.dumps(rows)


def test_a_failed_verification_and_its_rollback_are_audited_attempt_by_attempt(
    gh_bot, slack, github, service
):
    bot = gh_bot()
    service.healthy = False
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    failed = the_job(bot)
    card = slack.channel_messages(CHANNEL)[-1]
    service.healthy = True
    bot.click(Action.ROLLBACK, failed.id, BOB, card)
    bot.settle(30)
    rollback = the_job(bot)
    assert rollback.state == "succeeded", rollback.result
    rows = exported_audit(bot.settings)
    deploy_rows = [r for r in rows if r["job_id"] == failed.id]
    attempts = [r for r in deploy_rows if r["action"] == "deploy.verify_attempt"]
    assert len(attempts) >= 2 and {r["outcome"] for r in attempts} == {"failed"}
    assert [r["params"]["attempt"] for r in attempts] == list(range(1, len(attempts) + 1))
    assert {r["params"]["health"] for r in attempts} == {"503 Service Unavailable"}
    (verdict,) = [r for r in deploy_rows if r["action"] == "deploy.verified"]
    assert verdict["outcome"] == "failed" and verdict["params"]["failed_checks"] == ["health"]
    assert deploy_rows[-1]["action"] == "deploy.failed"
    back = [r for r in rows if r["job_id"] == rollback.id]
    assert [r["action"] for r in back] == [
        "rollback.requested", "rollback.checked", "rollback.queued", "rollback.started", "rollback.dispatch",
        "rollback.dispatched", "rollback.run_found", "rollback.run_completed", "rollback.verify_attempt",
        "rollback.verified", "rollback.succeeded",
    ]  # fmt: skip
    assert back[0]["actor_id"] == BOB and back[0]["params"]["after_failed_job"] == failed.id
    (dispatch,) = facts(back, "rollback.dispatch")
    assert dispatch["inputs"] == {"environment": "staging", "version": "v1.2.2", "rollback": "true"}
    assert facts(back, "rollback.run_found")[0]["run_id"] == github.runs[0]["id"]


def test_an_automatic_rollback_dispatch_is_audited(gh_bot, slack, github, service):
    def auto(cfg):
        cfg["environments"]["staging"]["auto_rollback"] = True

    bot = gh_bot(config_mutate=auto)
    service.healthy = False
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    job = the_job(bot)
    assert job.state == "failed" and "Rolled back automatically to `v1.2.2`" in job.result
    assert Action.ROLLBACK not in buttons(slack.channel_messages(CHANNEL)[-1])  # already rolled back
    rows = exported_audit(bot.settings, job.id)
    actions_ = [r["action"] for r in rows]
    assert actions_[-4:] == [
        "deploy.verified",
        "deploy.auto_rollback_dispatch",
        "deploy.auto_rollback_dispatched",
        "deploy.failed",
    ]
    (sent,) = facts(rows, "deploy.auto_rollback_dispatched")
    assert (
        sent["target"] == "v1.2.2"
        and sent["inputs"]["rollback"] == "true"
        and sent["inputs"]["version"] == "v1.2.2"
    )
    assert len(github.dispatches) == 2


def test_requester_cannot_approve_their_own_deploy(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy prod v1.2.3", user=BOB)
    slack.wait_for(lambda: card_for(slack))
    job = the_job(bot)
    bot.click(Action.APPROVE, job.id, BOB)
    bot.settle()
    assert the_job(bot).state == "pending_approval"
    assert "someone else has to approve" in text_of(slack.ephemeral(BOB)[-1])
    assert "deploy.approval_denied" in actions(bot, job.id)
    assert github.dispatches == []


def test_an_operator_who_is_not_an_approver_cannot_approve(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy prod v1.2.3", user=ALICE)
    slack.wait_for(lambda: card_for(slack))
    job = the_job(bot)
    bot.click(Action.APPROVE, job.id, DAVE)
    bot.settle()
    assert the_job(bot).state == "pending_approval"
    assert "*approver* role" in text_of(slack.ephemeral(DAVE)[-1])


def test_a_rejected_card_keeps_its_job_id_and_the_rejecter_is_told(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy prod v1.2.3", user=ALICE)
    card = slack.wait_for(lambda: card_for(slack))
    job = the_job(bot)
    status, _ = bot.click(Action.REJECT, job.id, BOB, card)
    assert status == 200
    form = slack.wait_for(lambda: next(iter(slack.views.values()), None))  # Reject asks why
    reason = {"reason": {Action.REJECT_REASON: {"type": "plain_text_input", "value": "not this week"}}}
    assert submit_view(bot, form, reason, BOB)[0] == 200
    bot.settle()
    assert the_job(bot).state == "rejected"
    final = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "Rejected" in final and f"job `{job.id[:8]}`" in final
    told = text_of(slack.wait_for(lambda: slack.ephemeral(BOB)[-1] if slack.ephemeral(BOB) else None))
    assert f"You rejected “Deploy v1.2.3 to production” (job `{job.id[:8]}`)" in told
    assert github.dispatches == []


def test_an_expired_approval_cannot_start_the_deploy(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy prod v1.2.3", user=ALICE)
    slack.wait_for(lambda: card_for(slack))
    job = the_job(bot)
    with bot.svc.sessions.begin() as s:  # half an hour passes
        s.execute(
            update(Job).where(Job.id == job.id).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    bot.click(Action.APPROVE, job.id, BOB)
    bot.settle()
    assert the_job(bot).state == "expired"
    assert "expired" in text_of(slack.ephemeral(BOB)[-1])
    assert "Expired" in text_of(slack.channel_messages(CHANNEL)[-1])  # the card says so too
    assert github.dispatches == []


def test_a_missing_tag_changes_nothing_and_lists_the_latest_tags(gh_bot, slack, github):
    bot = gh_bot()
    ack = bot.command("deploy prod v9.9.9", user=ALICE)["text"]
    # The ack promises nothing untrue: this request gets no card, only a private answer.
    assert "If it checks out, I'll post its card in this channel; if not, I'll tell you why, here." in ack
    bot.settle()
    assert the_job(bot).state == "invalid"
    reply = text_of(slack.ephemeral(ALICE)[-1])
    assert "no tag `v9.9.9`" in reply and "`v1.2.3`" in reply
    assert slack.channel_messages(CHANNEL) == []  # not announced to the channel
    assert github.dispatches == []
    assert "not locked" in bot.command("unlock prod")["text"]


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (502, "GitHub answered 502 to comparing v1.2.2...v1.2.3"),
        (404, "GitHub answered 404 to comparing v1.2.2...v1.2.3"),
    ],
)
def test_a_failing_github_compare_shows_changes_unknown_and_the_deploy_goes_on(
    gh_bot, slack, github, status, why
):
    bot = gh_bot()
    github.fail_next("/compare/", status, times=3)  # every retry of the GET fails too
    bot.command("deploy prod v1.2.3", user=ALICE)
    card = slack.wait_for(lambda: card_for(slack))
    text = text_of(card)
    assert f"changes unknown: {why}" in text and "(the deploy goes on)" in text
    assert the_job(bot).state == "pending_approval"  # information never blocks a deploy
    bot.click(Action.APPROVE, the_job(bot).id, BOB, card)
    bot.settle(30)
    assert the_job(bot).state == "succeeded"
    with bot.svc.sessions() as s:
        checked = s.scalars(select(AuditEvent).where(AuditEvent.action == "deploy.checked")).one()
    assert checked.params["changes"] == "unknown" and why in checked.params["changes_unknown_why"]


def test_a_live_version_that_is_not_a_tag_shows_changes_unknown(gh_bot, slack, github, service):
    service.version = "main-3f9c2e1"  # a branch build is live
    bot = gh_bot()
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    assert the_job(bot).state == "succeeded"
    text = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "changes unknown: the live version `main-3f9c2e1` is not a tag in taisun/taisun-v2" in text


def test_only_the_tag_check_refuses_a_deploy(gh_bot, slack, github):
    bot = gh_bot()
    github.fail_next("/git/ref/tags/v1.2.3", 502, times=3)
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    assert the_job(bot).state == "invalid"
    assert "Could not check `v1.2.3` on GitHub: GitHub answered 502" in text_of(slack.ephemeral(ALICE)[-1])
    assert github.dispatches == []


def test_one_commit_is_one_commit(gh_bot, slack, github, service):
    github.add_tag("v1.2.4", github.add_commit("fix: the one change"))
    service.version = "v1.2.3"
    bot = gh_bot()
    bot.command("deploy prod v1.2.4", user=ALICE)  # v1.2.3 is live: one commit apart
    text = text_of(slack.wait_for(lambda: card_for(slack)))
    assert "|1 commit> since v1.2.3" in text and "1 commits" not in text


def test_a_malformed_version_is_refused_at_once(gh_bot):
    bot = gh_bot()
    reply = bot.command("deploy prod latest")
    assert "not a release tag" in reply["text"] and "v1.2.3" in reply["text"]
    with bot.svc.sessions() as s:
        assert s.scalar(select(Job.id)) is None


def test_staging_deploys_without_approval(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    assert the_job(bot).state == "succeeded"
    assert len(github.dispatches) == 1


def test_a_locked_environment_refuses_with_who_and_why(gh_bot, github):
    bot = gh_bot()
    bot.command("lock production DB migration running", user=CAROL)
    reply = bot.command("deploy prod v1.2.3", user=ALICE)
    text = reply["text"]
    assert "locked by <@U0CAROL>" in text and "DB migration running" in text
    assert github.dispatches == []


def test_the_lock_holder_deploys_through_their_own_lock_and_keeps_it(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("lock staging checking the migration", user=ALICE)
    ack = bot.command("deploy staging v1.2.3", user=ALICE)["text"]
    assert "Checking" in ack and "goes through your own lock" in ack
    bot.settle(30)
    job = the_job(bot)
    assert job.state == "succeeded", job.result  # not refused later, at prepare
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "goes through <@U0ALICE>'s own lock on staging — “checking the migration”" in card
    assert len(github.dispatches) == 1
    with bot.svc.sessions() as s:
        lock = locks.current(s, "staging")
        assert lock is not None and lock.holder_id == ALICE and lock.job_id == ""  # still held, by hand
    # Anyone else is still refused at once, with who holds it.
    assert "locked by <@U0ALICE>" in bot.command("deploy staging v1.2.2", user=BOB)["text"]


def test_two_jobs_never_run_through_the_same_lock_at_once(gh_bot, slack, github):
    github.run_script = ["queued"] + ["in_progress"] * 200 + [("completed", "success")]
    bot = gh_bot()
    bot.command("lock staging hotfix window", user=ALICE)
    bot.command("deploy staging v1.2.3", user=ALICE)
    slack.wait_for(lambda: the_job(bot).state == "running" and github.dispatches, timeout=20)
    first = the_job(bot)
    bot.command("restart staging", user=ALICE)
    slack.wait_for(lambda: the_job(bot).state == "refused", timeout=20)
    assert f"locked by a running job `{first.id[:8]}`" in the_job(bot).result
    github.complete_run(github.runs[0]["id"], "success")  # the deploy finishes
    bot.settle(30)
    assert the_job(bot, "deploy").state == "succeeded"
    bot.command("restart staging", user=ALICE)  # and then the holder's next job goes through again
    bot.settle(30)
    assert the_job(bot).state == "simulated"  # it ran (no AWS credentials here: as a simulation)


def test_a_freeze_window_refuses_unless_break_glass_forces_it_and_then_needs_approval(gh_bot, slack, github):
    now = datetime.now(UTC).astimezone()
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Asia/Tokyo"))
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    start = {
        "day": days[local.weekday()],
        "time": (local - timedelta(minutes=local.minute % 60 + 60)).strftime("%H:00")
        if local.hour >= 1
        else "00:00",
    }
    end = {"day": days[(local.weekday() + 1) % 7], "time": "23:59"}
    del now

    def frozen(cfg):
        cfg["environments"]["staging"]["freeze_windows"] = [
            {"name": "release freeze", "start": start, "end": end}
        ]

    bot = gh_bot(config_mutate=frozen)
    refused = bot.command("deploy stg v1.2.3", user=ALICE)
    assert "freeze window “release freeze”" in refused["text"] and "--force" in refused["text"]
    not_break_glass = bot.command('deploy stg v1.2.3 --force "hotfix"', user=ALICE)
    assert "*break-glass* role" in not_break_glass["text"]
    bot.command('deploy stg v1.2.3 --force "hotfix for INC-9"', user=BOB)  # bob has break-glass
    card = slack.wait_for(lambda: card_for(slack))
    assert "FREEZE OVERRIDE" in text_of(card) and "hotfix for INC-9" in text_of(card)
    assert the_job(bot).state == "pending_approval"  # staging needs no approval, but a forced deploy does
    with bot.svc.sessions() as s:
        refusals = s.scalars(select(AuditEvent).where(AuditEvent.action == "deploy.refused")).all()
    assert len(refusals) == 2


def test_a_failed_health_check_offers_a_one_click_rollback(gh_bot, slack, github, service):
    bot = gh_bot()
    service.healthy = False
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    failed = the_job(bot)
    assert failed.state == "failed" and "Verification failed" in failed.result
    # Only /health failed, and the result says so (the version was the expected one).
    assert "the health check failed: /health answered 503 Service Unavailable" in failed.result
    assert "(/version is `v1.2.3` as expected)" in failed.result
    card = slack.channel_messages(CHANNEL)[-1]
    assert Action.ROLLBACK in buttons(card)
    dialog = rollback_dialog(card)
    assert "Roll staging back to `v1.2.2`" in dialog  # a concrete version, not "the previous one"
    service.healthy = True
    bot.click(Action.ROLLBACK, failed.id, ALICE, card)
    bot.settle(30)
    rollback = the_job(bot)
    assert rollback.operation == "rollback" and rollback.state == "succeeded", rollback.result
    # The version the dialog named is the version dispatched.
    assert github.runs[0]["inputs"] == {"environment": "staging", "version": "v1.2.2", "rollback": "true"}
    assert "Rolling back staging to v1.2.2" in text_of(slack.ephemeral(ALICE)[-1])
    # the environment stays locked until someone fixes it
    text = bot.command("deploy stg v1.2.3", user=ALICE)["text"]
    assert "rolled back from" in text and "fix before deploying again" in text


def rollback_dialog(card) -> str:
    """The text of the Roll back button's confirm dialog."""
    for block in card.blocks:
        for el in block.get("elements", []) if block.get("type") == "actions" else []:
            if el.get("action_id") == Action.ROLLBACK:
                return el["confirm"]["text"]["text"]
    raise AssertionError("no Roll back button")


def test_a_stale_roll_back_button_refuses_once_the_environment_has_moved_on(gh_bot, slack, github, service):
    for tag in ("v1.2.4", "v1.2.5"):
        github.add_commit(f"feat: {tag}")
        github.add_tag(tag)
    bot = gh_bot()
    service.healthy = False
    bot.command("deploy stg v1.2.4", user=ALICE)
    bot.settle(30)
    failed = the_job(bot)
    assert failed.state == "failed"
    old_card = slack.channel_messages(CHANNEL)[-1]
    service.healthy = True
    for version in ("v1.2.3", "v1.2.5"):  # newer releases go out after the failed one
        bot.command(f"deploy stg {version}", user=ALICE)
        bot.settle(30)
        assert the_job(bot).state == "succeeded"
    dispatched = list(github.dispatches)
    status, _ = bot.click(Action.ROLLBACK, failed.id, BOB, old_card)
    assert status == 200
    bot.settle(30)
    reply = text_of(slack.ephemeral(BOB)[-1])
    assert (
        "staging has moved on to v1.2.5 since this deploy" in reply and "`/taisun rollback staging`" in reply
    )
    assert github.dispatches == dispatched  # nothing was dispatched: v1.2.5 stays live
    assert service.version_fn() == "v1.2.5"
    assert the_job(bot).operation == "deploy"  # no rollback job was made
    with bot.svc.sessions() as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "rollback.refused")).one()
    assert refused.actor_id == BOB and "moved on to v1.2.5" in refused.detail
    # The dialog named a concrete version: the one the button would have dispatched.
    assert "Roll staging back to `v1.2.2`" in rollback_dialog(old_card)


def test_a_roll_back_button_refuses_while_a_newer_deploy_is_under_way(gh_bot, slack, github, service):
    def approval_on_staging(cfg):
        cfg["environments"]["staging"]["approval_required"] = True

    bot = gh_bot(config_mutate=approval_on_staging)
    service.healthy = False
    bot.command("deploy stg v1.2.3", user=ALICE)
    card = slack.wait_for(lambda: card_for(slack))
    bot.click(Action.APPROVE, the_job(bot).id, BOB, card)
    bot.settle(30)
    failed = the_job(bot)
    assert failed.state == "failed"
    card = slack.channel_messages(CHANNEL)[-1]
    service.healthy = True
    bot.command("deploy dev v1.2.3", user=ALICE)  # another environment: does not count
    bot.settle(30)
    bot.command("deploy stg v1.2.3", user=BOB)  # staging again, waiting for approval
    bot.settle(30)
    assert the_job(bot).state == "pending_approval"
    bot.click(Action.ROLLBACK, failed.id, ALICE, card)
    bot.settle(30)
    assert "A newer change to staging (v1.2.3" in text_of(slack.ephemeral(ALICE)[-1])
    assert [j for j in github.dispatches if j["inputs"]["rollback"] == "true"] == []


def test_tag_moved_after_approval_stops_the_deploy(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy prod v1.2.3", user=ALICE)
    card = slack.wait_for(lambda: card_for(slack))
    github.move_tag("v1.2.3", github.add_commit("sneaky change"))
    bot.click(Action.APPROVE, the_job(bot).id, BOB, card)
    bot.settle(30)
    job = the_job(bot)
    assert job.state == "failed" and "now points to" in job.result
    assert github.dispatches == []


def test_dispatch_answered_502_is_never_sent_twice(gh_bot, slack, github):
    bot = gh_bot()
    github.fail_next("/dispatches", 502, after_effect=True)
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    job = the_job(bot)
    assert len(github.dispatches) == 1
    assert job.state == "succeeded", job.result  # the run it did start was found and followed


def test_dry_run_shows_what_would_happen_and_changes_nothing(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy prod v1.2.3 --dry-run", user=ALICE)
    bot.settle(30)
    job = the_job(bot)
    assert job.state == "simulated" and job.dry_run  # a dry run is never a success: nothing changed
    card = slack.channel_messages(CHANNEL)[-1]
    text = json.dumps(card.blocks, ensure_ascii=False)
    assert "would dispatch `cd.yml`" in text and "version=v1.2.3" in text  # the inputs, not a repr
    assert "Dry run — nothing was changed" in text
    assert text.lower().count("dry run") == 1, text  # said once on the card, not three times
    assert github.dispatches == []


def test_rollback_without_a_version_picks_the_previous_verified_one(gh_bot, slack, github):
    bot = gh_bot()
    bot.command("deploy stg v1.2.2", user=ALICE)
    bot.settle(30)
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    bot.command("rollback stg", user=ALICE)
    bot.settle(30)
    job = the_job(bot)
    assert job.operation == "rollback" and job.state == "succeeded", job.result
    assert job.params["version"] == "v1.2.2" and job.params["from_version"] == "v1.2.3"
    assert "v1.2.3 → *v1.2.2*" in text_of(slack.channel_messages(CHANNEL)[-1])


def test_a_github_deployment_records_the_outcome_when_configured(gh_bot, github):
    def deployments_on(cfg):
        cfg["github"]["create_deployment"] = True

    bot = gh_bot(config_mutate=deployments_on)
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(30)
    assert the_job(bot).state == "succeeded"
    (dep,) = github.deployments
    assert dep["environment"] == "staging" and dep["ref"] == "v1.2.3"
    assert [s["state"] for s in dep["statuses"]] == ["in_progress", "success"]
    steps = [a for a in actions(bot, the_job(bot).id) if a.startswith("deploy.deployment")]
    assert steps == ["deploy.deployment_created", "deploy.deployment_status", "deploy.deployment_status"]


def test_a_deploy_never_follows_a_run_another_deploy_follows(gh_bot, slack, github, service):
    """Two deploys to two environments a moment apart, the second one's run not listed yet (GitHub's
    lag): it keeps looking for its own run, never adopting the first's, however many requests that
    never ran lie about (awaiting approval). Both run cd.yml on develop: only the claim tells them apart."""
    bot = gh_bot(config_mutate=lambda cfg: cfg["environments"]["development"].update(branch="develop"))
    github.run_script = ["queued"] + ["in_progress"] * 10_000  # the first deploy's run stays under way
    for user in (ALICE, CAROL, ALICE):
        bot.command("deploy prod v1.2.3", user=user)
    assert "Checking" in bot.command("deploy stg v1.2.3", user=ALICE)["text"]

    def run_of(env: str) -> int | None:
        with bot.svc.sessions() as s:
            job = s.scalars(select(Job).where(Job.environment == env, Job.operation == "deploy")).first()
            return int(job.progress["run_id"]) if job and job.progress.get("run_id") else None

    first = slack.wait_for(lambda: run_of("staging"), timeout=30)
    github.run_list_lag = 10**6  # the next run stays out of every listing until show_run()
    assert "Checking" in bot.command("deploy dev v1.2.3", user=ALICE)["text"]
    slack.wait_for(lambda: len(github.dispatches) == 2, timeout=30)
    listed = len(github.requests_to("/actions/workflows/", "GET"))
    slack.wait_for(lambda: len(github.requests_to("/actions/workflows/", "GET")) >= listed + 3, timeout=30)
    assert run_of("development") is None  # the first deploy's run was listed every time: not taken
    second = next(r["id"] for r in github.runs if r["id"] != first)
    github.show_run(second)
    assert slack.wait_for(lambda: run_of("development"), timeout=30) == second
    assert run_of("staging") == first


def test_the_runs_other_deploys_follow_are_read_from_the_jobs_that_ran(gh_bot):
    """What a deploy looking for its run must skip: the runs of deploys and rollbacks of the last day
    that started (their run id read out of the JSON by the database), never its own."""
    from bot.deploys.service import claimed_run_ids

    bot = gh_bot()
    now = datetime.now(UTC)
    rows = [  # (id, operation, state, progress, age)
        ("running", "deploy", "running", {"run_id": 11}, timedelta(0)),
        ("done", "rollback", "succeeded", {"run_id": "12", "smoke_run_id": 13}, timedelta(hours=2)),
        ("failed", "deploy", "failed", {"run_id": 14}, timedelta(hours=23)),
        ("old", "deploy", "succeeded", {"run_id": 15}, timedelta(days=2)),
        ("restart", "restart", "running", {"run_id": 16}, timedelta(0)),
        ("waiting", "deploy", "pending_approval", {}, timedelta(0)),
        ("mine", "deploy", "running", {"run_id": 17}, timedelta(0)),
    ]
    with bot.svc.sessions.begin() as s:
        for job_id, op, state, progress, age in rows:
            s.add(Job(id=job_id, operation=op, environment="staging", params={}, state=state,
                      requested_by=ALICE, progress=progress, created_at=now - age, updated_at=now))  # fmt: skip
    with bot.svc.sessions.begin() as s:  # a busy day: many requests that never started
        s.add_all(
            Job(id=f"asked-{i}", operation="deploy", environment="production", params={}, state="pending_approval",
                requested_by=ALICE, created_at=now, updated_at=now)
            for i in range(50)
        )  # fmt: skip
    fetched: list[int] = []
    engine = bot.svc.sessions.kw["bind"]

    asking = threading.get_ident()  # the bot's own threads (the sweeper, the runner) read jobs too

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if threading.get_ident() != asking:
            return
        if statement.lstrip().upper().startswith("SELECT") and "jobs" in statement:
            fetched.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", count)
    try:
        assert claimed_run_ids(bot.svc, "mine") == {11, 12, 14}
    finally:
        event.remove(engine, "after_cursor_execute", count)
    assert claimed_run_ids(bot.svc, "mine", "smoke_run_id") == {13}
    if engine.dialect.name == "postgresql":  # (SQLite's cursors do not count a SELECT's rows)
        assert fetched == [3], "only the run ids of jobs that ran are read, not every request of the day"
