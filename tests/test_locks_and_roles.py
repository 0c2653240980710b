"""Manual locks (expiry, reminders, take-over) and role resolution through Slack user groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.core.blocks import Action
from bot.core.states import JobState
from bot.core.store.models import AuditEvent, Job, Lock
from tests.backend_fixtures import redis_base, redis_port  # noqa: F401  (fixtures, requested by name)
from tests.harness import ALICE, BOB, CAROL, CHANNEL, text_of


def test_a_manual_lock_holder_is_reminded_once_before_it_expires_then_it_expires(db_url, make_bot, slack):
    bot = make_bot(db_url)
    bot.command("lock stg load test", user=ALICE)
    with bot.svc.sessions.begin() as s:  # the lock is about to expire
        s.execute(update(Lock).values(expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    bot.svc.runner.sweep()
    bot.svc.runner.sweep()  # a second replica sweeping at once must not remind again
    bot.settle()
    reminders = [m for m in slack.channel_messages("DU0ALICE") if "expires at" in m.text]
    assert len(reminders) == 1 and "staging" in reminders[0].text
    with bot.svc.sessions.begin() as s:
        s.execute(update(Lock).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    bot.svc.runner.sweep()
    bot.settle()
    assert any("expired" in m.text for m in slack.channel_messages(CHANNEL))
    assert "not locked" in bot.command("unlock stg")["text"]
    with bot.svc.sessions() as s:
        assert (
            s.scalar(select(AuditEvent.action).where(AuditEvent.action == "lock.expired")) == "lock.expired"
        )


def test_an_approver_can_take_over_a_lock_and_the_previous_holder_is_told(db_url, make_bot, slack):
    bot = make_bot(db_url)
    bot.command("lock prod holiday", user=ALICE)
    refused = bot.command("lock prod incident", user=BOB)
    assert Action.LOCK_TAKEOVER in text_of(refused)
    bot.click(Action.LOCK_TAKEOVER, "production", BOB)
    bot.settle()
    assert "You now hold the lock" in text_of(slack.ephemeral(BOB)[-1])
    assert any("took over your lock" in m.text for m in slack.channel_messages("DU0ALICE"))
    assert "locked by <@U0BOB>" in bot.command("deploy prod v1.2.3", user=ALICE)["text"]


def test_only_approvers_may_take_over_a_lock(db_url, make_bot, slack):
    def dave_is_operator(cfg):
        cfg["roles"]["operator"].append("U0DAVE")

    bot = make_bot(db_url, config_mutate=dave_is_operator)
    bot.command("lock prod holiday", user=ALICE)
    bot.click(Action.LOCK_TAKEOVER, "production", "U0DAVE")
    bot.settle()
    assert "*approver* role" in text_of(slack.ephemeral("U0DAVE")[-1])


def test_group_membership_comes_from_slack_and_is_cached(db_url, make_bot, slack):
    bot = make_bot(db_url)
    policy = bot.svc.policy
    assert policy.has_role(CAROL, "approver")
    calls = slack.count("usergroups.users.list")
    assert policy.has_role(BOB, "approver")
    assert slack.count("usergroups.users.list") == calls  # cached
    slack.add_usergroup("sre-leads", {BOB})  # carol leaves the group
    assert policy.has_role(CAROL, "approver")  # until the cache expires...
    bot.svc.policy.directory.invalidate()
    assert not policy.has_role(CAROL, "approver")  # ...then Slack's answer wins


def test_a_slack_outage_never_grants_a_role(db_url, make_bot, slack):
    bot = make_bot(db_url)
    slack.fail("usergroups.list", 500, times=10)
    assert not bot.svc.policy.has_role(BOB, "approver")


def test_the_per_person_command_limit_is_one_limit_across_replicas_with_redis(db_url, make_bot, redis_base):  # noqa: F811
    """Two replicas behind a load balancer: with REDIS_URL the person gets the limit once, not twice."""

    def three_a_minute(cfg):  # type: ignore[no-untyped-def]
        cfg["defaults"]["commands_per_minute"] = 3

    a = make_bot(db_url, config_mutate=three_a_minute, redis_url=redis_base)
    b = make_bot(db_url, config_mutate=three_a_minute, redis_url=redis_base)
    answers = [(a, b)[i % 2].command("help", user=BOB)["text"] for i in range(5)]
    refused = [text for text in answers if "more than 3 commands a minute" in text]
    assert len(refused) == 2, answers  # 3 allowed in all, wherever they landed
    assert "commands" in a.command("help", user=ALICE)["text"]  # someone else is not limited


def test_without_redis_answering_the_limit_is_counted_in_each_process(db_url, make_bot):
    def three_a_minute(cfg):  # type: ignore[no-untyped-def]
        cfg["defaults"]["commands_per_minute"] = 3

    from tests.backend_fixtures import free_port

    dead = f"redis://127.0.0.1:{free_port()}"  # nothing listens: fail open, count locally
    bot = make_bot(db_url, config_mutate=three_a_minute, redis_url=dead)
    answers = [bot.command("help", user=BOB)["text"] for _ in range(4)]
    assert ["more than 3 commands a minute" in text for text in answers] == [False, False, False, True]


def test_a_request_is_decided_by_the_live_lock_not_by_a_lock_row_the_sweeper_has_yet_to_remove(
    db_url, make_bot, slack
):
    """A request is written at once where the environment has no lock row; where it has one, the lock
    is read: an expired lock, or one held by a job that has finished, lets it through like no lock,
    a live one refuses it, and the requester's own manual lock lets it through, noted."""
    bot = make_bot(db_url, start=False)  # no worker runs (and releases) the jobs, no sweeper sweeps

    def deploys() -> list[Job]:
        with bot.svc.sessions() as s:
            return list(s.scalars(select(Job).where(Job.operation == "deploy").order_by(Job.created_at)))

    def lock_rows() -> list[str]:
        with bot.svc.sessions() as s:
            return list(s.scalars(select(Lock.environment)))

    bot.command("lock stg load test", user=ALICE)
    assert "locked by <@U0ALICE>" in bot.command("deploy stg v1.2.3", user=BOB)["text"]
    assert deploys() == []
    # Alice's own lock lets her deploys through, and the job says so.
    assert "Checking" in bot.command("deploy stg v1.2.3", user=ALICE)["text"]
    assert deploys()[-1].params["through_own_lock"] == {"reason": "load test"}

    with bot.svc.sessions.begin() as s:  # expired a second ago: the sweeper has not removed it yet
        s.execute(update(Lock).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert "Checking" in bot.command("deploy stg v1.2.3", user=BOB)["text"]
    assert "through_own_lock" not in deploys()[-1].params
    finished = deploys()[0].id  # Alice's, through her lock: it ran and failed, its worker died
    with bot.svc.sessions.begin() as s:  # before unlocking; the lock row is still the job's
        s.execute(update(Job).where(Job.id == finished).values(state=JobState.FAILED))
        s.execute(update(Lock).values(expires_at=None, holder_id=CAROL, job_id=finished))
    assert "Checking" in bot.command("deploy stg v1.2.3", user=BOB)["text"]
    assert lock_rows() == ["staging"]  # both went past a row that is still there
    assert len(deploys()) == 3
    with bot.svc.sessions() as s:
        requested = list(s.scalars(select(AuditEvent.job_id).where(AuditEvent.action == "deploy.requested")))
    assert sorted(requested) == sorted(j.id for j in deploys())  # each job with its audit row
