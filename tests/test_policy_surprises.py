"""No policy surprises: Reject asks why (required in production), the lock a rollback leaves is
released only by the one who rolled back or an admin (and its card says so), and an incident
declared without --env says which environment it is for."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent
from tests.chatops_helpers import submit_view
from tests.harness import ALICE, BOB, CAROL, MALLORY, last_card, locked, text_of, the_job

ALWAYS_FROZEN = [
    {
        "name": "release freeze",
        "start": {"day": "mon", "time": "00:00"},
        "end": {"day": "sun", "time": "23:59"},
    }
]


def _reject_form(slack, before: set[str]) -> dict:  # type: ignore[no-untyped-def,type-arg]
    view_id = slack.wait_for(lambda: next(iter(set(slack.views) - before), None))
    view = slack.views[view_id]
    assert view["callback_id"] == Action.REJECT_MODAL
    return view  # type: ignore[no-any-return]


def _why(text: str) -> dict:  # type: ignore[type-arg]
    return {"reason": {Action.REJECT_REASON: {"type": "plain_text_input", "value": text}}}


def _audit_rows(bot, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with bot.svc.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_reject_asks_why_required_in_production_and_the_reason_is_on_the_card_and_in_the_audit_log(
    db_url, make_bot, slack
):
    bot = make_bot(
        db_url, config_mutate=lambda c: c["environments"]["staging"].update(freeze_windows=ALWAYS_FROZEN)
    )
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card, job = last_card(slack), the_job(bot)

    # Someone who may not reject gets no form, only the refusal.
    views = set(slack.views)
    bot.click(Action.REJECT, job.id, MALLORY, card)
    bot.settle()
    assert set(slack.views) == views and "You need the" in slack.ephemeral(MALLORY)[-1].text

    bot.click(Action.REJECT, job.id, BOB, card)
    form = _reject_form(slack, views)
    reason = next(b for b in form["blocks"] if b.get("block_id") == "reason")
    assert reason["optional"] is False and "Required for production" in reason["hint"]["text"]
    assert the_job(bot).state == "pending_approval"  # nothing decided until the form is sent
    status, body = submit_view(bot, form, _why("   "), BOB)
    assert status == 200 and "Say why you reject it" in json.loads(body)["errors"]["reason"]
    assert the_job(bot).state == "pending_approval"

    assert submit_view(bot, form, _why("the migration in v1.2.3 has not been reviewed"), BOB)[0] == 200
    bot.settle()
    job = the_job(bot)
    assert job.state == "rejected" and "the migration in v1.2.3 has not been reviewed" in job.result
    final = text_of(last_card(slack))
    assert "*Why:* rejected by <@U0BOB>: the migration in v1.2.3 has not been reviewed" in final
    told = slack.wait_for(lambda: next((m for m in slack.ephemeral(BOB) if "You rejected" in m.text), None))
    assert f"job `{job.id[:8]}`" in told.text
    (row,) = _audit_rows(bot, "deploy.rejected")  # who is the row's actor; why is its detail
    assert row.actor_id == BOB and row.detail == "the migration in v1.2.3 has not been reviewed"
    view = text_of(bot.command("audit prod 5", user=CAROL))
    assert (
        "<@U0BOB>  *deploy.rejected* `production`  _rejected_ — the migration in v1.2.3 has not been" in view
    )

    # Elsewhere (a forced deploy in staging's freeze window) the reason is optional.
    bot.command('deploy stg v1.2.3 --force "checkout hotfix"', user=BOB)
    bot.settle()
    forced = the_job(bot)
    assert forced.state == "pending_approval"
    views = set(slack.views)
    bot.click(Action.REJECT, forced.id, CAROL, last_card(slack))
    form = _reject_form(slack, views)
    assert next(b for b in form["blocks"] if b.get("block_id") == "reason")["optional"] is True
    assert submit_view(bot, form, _why(""), CAROL)[0] == 200
    bot.settle()
    assert the_job(bot).state == "rejected" and the_job(bot).result == "rejected by <@U0CAROL>"


def test_the_lock_a_rollback_leaves_is_released_by_the_one_who_rolled_back_or_an_admin(
    db_url, make_bot, slack
):
    bot = make_bot(db_url)
    bot.command("rollback stg v1.2.2", user=ALICE)
    bot.settle()
    assert locked(bot, "staging")
    card = text_of(last_card(slack))
    assert "This rollback left *staging* locked" in card
    assert "<@U0ALICE> (who rolled back) or an admin can release it with `/taisun unlock staging`" in card

    # BOB is an operator and an approver: neither lets him past the lock someone else's rollback left.
    refused = bot.command("unlock stg", user=BOB)
    assert (
        refused["text"].startswith(":warning:")
        and "only <@U0ALICE>, who rolled back, or an admin" in refused["text"]
    )
    assert locked(bot, "staging")
    deploy = bot.command("deploy stg v1.2.3", user=BOB)
    assert "<@U0ALICE> (who rolled back) or an admin can release it" in deploy["text"]
    lock_reply = bot.command("lock stg mine now", user=BOB)
    assert Action.LOCK_TAKEOVER not in json.dumps(lock_reply)  # no take-over button for this lock
    status, _ = bot.click(Action.LOCK_TAKEOVER, "staging", BOB)  # nor through an old one
    assert status == 200
    bot.settle()
    assert "who rolled back, or an admin" in slack.ephemeral(BOB)[-1].text
    assert locked(bot, "staging")
    assert [r.actor_id for r in _audit_rows(bot, "unlock.refused")] == [BOB]
    assert [r.actor_id for r in _audit_rows(bot, "lock.refused") if r.params.get("take_over")] == [BOB]

    assert "unlocked" in bot.command("unlock stg", user=ALICE)["text"]  # the one who rolled back
    assert not locked(bot, "staging")
    (released,) = _audit_rows(bot, "lock.released")
    assert released.params == {"holder": "taisun", "rolled_back_by": ALICE}

    bot.command("rollback stg v1.2.2", user=BOB)
    bot.settle()
    assert locked(bot, "staging")
    assert "unlocked" in bot.command("unlock stg", user=CAROL)["text"]  # an admin
    assert not locked(bot, "staging")


def test_an_incident_declared_without_env_says_which_environment_it_is_for(db_url, make_bot, slack):
    bot = make_bot(db_url)
    reply = bot.command('incident declare sev3 "checkout is slow"', user=ALICE)["text"]
    assert "INC-1 declared for *production*" in reply
    assert "No `--env` was given, so it is for *production*" in reply and "`--env development`" in reply
    reply = bot.command('incident declare sev3 "staging is slow" --env stg', user=ALICE)["text"]
    assert "INC-2 declared for *staging*" in reply and "--env` was given" not in reply
