"""The job engine's own rules: leases decide who may act."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from bot.core.store.models import AuditEvent, Job
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, BOB, actions


def follow_in_a_thread(bot, job_id: str) -> tuple[threading.Thread, int]:  # type: ignore[no-untyped-def]
    """Run a claimed deploy on a thread of its own until it follows its run; the thread and the run's id."""
    following = threading.Thread(target=bot.svc.runner.execute, args=(job_id,), daemon=True)
    following.start()  # dispatches and follows the run, which stays in progress

    def progress() -> dict:
        with bot.svc.sessions() as s:
            return s.get(Job, job_id).progress

    bot.slack.wait_for(lambda: progress().get("run_id"), timeout=30)
    return following, progress()["run_id"]


def test_a_prepared_deploy_commits_its_checks_and_awaiting_approval_once_before_its_card(
    db_url, make_bot, github
):  # type: ignore[no-untyped-def]
    """The checks a prepare makes are reads (the tag, /version, the compare): what it records commits
    with the job's next state, one transaction, not one per step and one more for the state — each a
    WAL flush the acks' commits queue behind (BENCHMARKS §6l). The audit log and the card still show
    every step, in order, and the card is posted after they are on record."""
    from sqlalchemy import event

    bot = make_bot(db_url, start=False, github_token=GITHUB_TOKEN, github_api_url=github.url)
    bot.command("deploy production v1.2.3", user=ALICE)
    runner = bot.svc.runner
    job_id = runner.claim_one()
    commits: list[list[str]] = []
    statements: list[str] = []
    event.listen(bot.svc.engine, "before_cursor_execute", lambda _c, _cu, sql, *_: statements.append(sql))
    event.listen(bot.svc.engine, "commit", lambda _c: commits.append(statements[:]) or statements.clear())
    runner.execute(job_id)
    assert len(commits) == 1, [[s.split(" WHERE")[0][:60] for s in c] for c in commits]
    assert any(s.startswith("INSERT INTO audit_events") for s in commits[0])
    assert actions(bot, job_id)[-2:] == ["deploy.checked", "deploy.awaiting_approval"]
    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
        checked = s.scalars(
            select(AuditEvent).where(AuditEvent.job_id == job_id, AuditEvent.action == "deploy.checked")
        ).one()
    assert job.state == "pending_approval" and job.progress["sha"] == checked.params["sha"]
    assert not bot.slack.channel_messages()  # nothing posted yet: the outbox has not run
    bot.svc.outbox.start()
    assert bot.svc.outbox.flush()
    card = bot.slack.channel_messages()[-1]
    assert job.progress["sha"][:10] in str(card.blocks)  # the checked commit, on the card


def test_a_job_counts_as_running_until_its_card_is_queued(db_url, make_bot):  # type: ignore[no-untyped-def]
    """A checked deploy leaves the workers' states (it awaits approval) before its card is queued. Whoever
    waits for the runner to be idle and then for the outbox — the shell reading a script, a graceful stop —
    must not find the job gone from both: the shell then read `1` before the card's [1] Approve existed
    (CI, 2026-12-06: "no button [1]")."""
    bot = make_bot(db_url, start=False)
    bot.command("deploy production v1.2.3", user=ALICE)
    runner = bot.svc.runner
    job_id = runner.claim_one()
    seen: list[int] = []
    bot.svc.outbox.job_hooks.append(lambda: seen.append(runner.busy))
    runner.execute(job_id)
    with bot.svc.sessions() as s:
        assert s.get(Job, job_id).state == "pending_approval"
    assert seen and seen[-1] == 1, seen  # the card's update was queued while the job still counted
    assert runner.busy == 0


def test_a_check_held_for_the_next_state_is_still_audited_when_a_lock_refuses_the_job(db_url, make_bot):
    """Staging needs no approval: the deploy's checks commit with its lock and `queued`. When someone
    locked the environment between the request and the check, the lock refuses the job — and the
    checked step it had made is on record before the refusal, as before."""
    from bot.core import locks

    bot = make_bot(db_url, start=False)
    bot.command("deploy stg v1.2.3", user=ALICE)
    with bot.svc.sessions.begin() as s:
        locks.acquire(s, "staging", holder_id=BOB, holder_name="bob", reason="hotfix in progress")
    runner = bot.svc.runner
    job_id = runner.claim_one()
    runner.execute(job_id)
    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
    assert job.state == "refused" and "hotfix in progress" in job.result
    assert actions(bot, job_id)[-2:] == ["deploy.checked", "deploy.refused"]
    assert job.progress.get("fields")  # the checked step's progress, saved with its audit row


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # synchronous_commit is PostgreSQL's
def test_a_claims_unflushed_commit_leaves_every_pooled_connection_flushing_later_commits(db_url, make_bot):
    """A claim commits without waiting for the disk, safe only because the job's next write is
    lease-guarded and synchronous (its flush carries the claim's record). The setting must end with
    the claim's statement: every connection goes back to the pool committing synchronously."""
    from sqlalchemy import event

    bot = make_bot(db_url, start=False)
    bot.command("deploy stg v1.2.3", user=ALICE)
    seen: list[str] = []

    def on_checkin(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        if dbapi_conn is None:
            return
        with dbapi_conn.cursor() as cur:
            cur.execute("SHOW synchronous_commit")
            seen.append(cur.fetchone()[0])
        dbapi_conn.rollback()

    event.listen(bot.svc.engine.pool, "checkin", on_checkin)
    try:
        assert bot.svc.runner.claim_one() is not None
    finally:
        event.remove(bot.svc.engine.pool, "checkin", on_checkin)
    assert seen and set(seen) == {"on"}, seen


def test_a_worker_that_lost_its_lease_stops_before_its_next_step_and_does_not_end_the_job(db_url, make_bot):
    bot = make_bot(db_url, start=False)  # no background workers: this test drives one by hand
    bot.command("deploy stg v1.2.3", user=ALICE)
    runner = bot.svc.runner
    job_id = runner.claim_one()
    runner.execute(job_id)  # prepare: staging needs no approval, so it is queued and run
    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
    assert job.state == "simulated"  # ran to its end (no GITHUB_TOKEN here: as a simulation)

    bot.command("deploy dev v1.2.3", user=ALICE)
    second = runner.claim_one()
    with bot.svc.sessions.begin() as s:  # another replica took this one over meanwhile
        s.execute(update(Job).where(Job.id == second).values(lease_owner="other-replica"))
    runner.execute(second)
    with bot.svc.sessions() as s:
        job = s.get(Job, second)
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.job_id == second)))
    assert job.state == "validating" and job.lease_owner == "other-replica"  # left alone
    assert actions == ["deploy.requested"]  # nothing done, nothing ended, by the worker that lost it


def test_a_job_whose_lease_ran_out_while_this_worker_runs_it_is_not_claimed_again_here(
    db_url, make_bot, github
):
    """Found by the suite on a loaded machine: a nice-19 worker's heartbeat starved past a 2 s lease,
    and another thread of the same worker claimed the deploy it was still following: the job ran twice
    at once in one process (two `resumed` rows), where the lease guard cannot tell the threads apart."""
    github.run_script = ["queued"] + ["in_progress"] * 10_000 + [("completed", "success")]
    bot = make_bot(db_url, start=False, github_token=GITHUB_TOKEN, github_api_url=github.url)
    bot.command("deploy stg v1.2.3", user=ALICE)
    runner = bot.svc.runner
    job_id = runner.claim_one()
    following, run_id = follow_in_a_thread(bot, job_id)
    gets = len(github.requests_to(f"/actions/runs/{run_id}", "GET"))
    github.stall_next(f"/actions/runs/{run_id}", 5.0, method="GET")  # the follower waits on GitHub ...
    bot.slack.wait_for(lambda: len(github.requests_to(f"/actions/runs/{run_id}", "GET")) > gets, timeout=30)
    with bot.svc.sessions.begin() as s:  # ... and meanwhile its lease runs out: no heartbeat came in time
        s.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=None))
    assert runner.claim_one() is None  # still this worker's: it runs here once

    other = make_bot(db_url, start=False, github_token=GITHUB_TOKEN, github_api_url=github.url)
    assert other.svc.runner.claim_one() == job_id  # another replica may take it over
    github.script_run(run_id, ["in_progress", ("completed", "success")])
    other.svc.runner.execute(job_id)
    following.join(30)
    assert not following.is_alive()  # the first follower stopped at its next step: the lease is gone
    with bot.svc.sessions() as s:
        job = s.get(Job, job_id)
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.job_id == job_id)))
    assert job.state == "succeeded", job.result
    assert len(github.dispatches) == 1
    assert actions.count("deploy.resumed") == 1 and actions.count("deploy.succeeded") == 1


def test_a_followed_deploy_keeps_its_lease_with_a_renewal_per_beat_not_per_poll(db_url, make_bot, github):
    """A follow polls GitHub every half second and beats between polls; the lease must stay alive
    even with no beat thread (here none runs: the bot is not started), but renewing it at every poll
    was a synchronous commit per poll per job — 100 a second with 50 followed deploys, each a WAL
    flush the acks' commits waited behind (BENCHMARKS §6k). A renewal per beat interval keeps the
    lease as safe (renewed three times before it runs out) for a fraction of the commits."""
    from sqlalchemy import event

    github.run_script = ["queued"] + ["in_progress"] * 10_000 + [("completed", "success")]
    lease = 3.0  # a beat a second; the follow polls every 0.5 s (verify_interval_seconds 0.1 × 5)
    bot = make_bot(db_url, start=False, github_token=GITHUB_TOKEN, github_api_url=github.url,
                   taisun_lease_seconds=lease)  # fmt: skip
    other = make_bot(db_url, start=False, github_token=GITHUB_TOKEN, github_api_url=github.url)
    bot.command("deploy stg v1.2.3", user=ALICE)
    runner = bot.svc.runner
    job_id = runner.claim_one()
    renewals: list[float] = []

    @event.listens_for(bot.svc.engine, "before_cursor_execute")
    def count(_conn, _cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE jobs SET lease_expires_at"):
            renewals.append(time.monotonic())

    following, run_id = follow_in_a_thread(bot, job_id)
    polls_before = len(github.requests_to(f"/actions/runs/{run_id}", "GET"))
    started = time.monotonic()
    while time.monotonic() - started < 2.5 * lease:  # past two leases: only renewals kept it
        assert other.svc.runner.claim_one() is None  # never free for another replica to take
        time.sleep(0.1)
    polls = len(github.requests_to(f"/actions/runs/{run_id}", "GET")) - polls_before
    beats = [t for t in renewals if t >= started]
    github.script_run(run_id, [("completed", "success")])
    following.join(60)
    assert not following.is_alive()
    with bot.svc.sessions() as s:
        assert s.get(Job, job_id).state == "succeeded"
    assert polls >= 10, polls  # it polled every half second or so ...
    most = 2.5 * lease / (lease / 3) + 1  # ... and renewed once a beat
    assert 2 <= len(beats) <= most, (len(beats), polls)
    assert len(beats) < polls / 1.5, (len(beats), polls)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite writers never overlap
def test_a_taker_that_lost_the_race_to_a_lock_released_meanwhile_takes_it(db_url, make_bot):
    """Found by the benchmark: a short job took and released the lock between our failed INSERT
    and our look at the winner; the job crashed instead of taking the now free lock."""
    from sqlalchemy import event

    from bot.core import locks

    bot = make_bot(db_url, start=False)
    other = bot.svc.sessions  # another replica's transactions
    with bot.svc.sessions.begin() as s:
        assert s.get(locks.Lock, "staging") is None  # free when we looked

        @event.listens_for(s, "before_flush", once=True)
        def other_takes_it(*_):  # type: ignore[no-untyped-def]
            with other.begin() as o:
                locks.acquire(o, "staging", holder_id="U0OTHER", reason="short job", job_id="j-other")

        @event.listens_for(s, "after_transaction_end")
        def other_lets_go(_session, transaction):  # type: ignore[no-untyped-def]
            if transaction.nested:
                with other.begin() as o:
                    locks.release_for_job(o, "j-other")

        lock = locks.acquire(s, "staging", holder_id=ALICE, reason="mine")
    with bot.svc.sessions() as s:
        held = s.get(locks.Lock, "staging")
    assert lock.holder_id == ALICE and held is not None and held.holder_id == ALICE


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite writers never overlap
def test_two_takers_racing_for_a_free_lock_get_one_lock_and_one_clear_refusal(db_url, make_bot):
    import threading

    from bot.core import locks

    bot = make_bot(db_url, start=False)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def take(who: str) -> None:
        try:
            with bot.svc.sessions.begin() as s:
                s.get(Job, "none")  # start the transaction first, as a job transition does
                barrier.wait()
                locks.acquire(s, "staging", holder_id=who, reason="race")
                time.sleep(0.2)  # hold the row while the other one inserts
            outcomes.append("took")
        except locks.EnvironmentLocked:
            outcomes.append("refused")
        except Exception as e:  # an aborted transaction would land here
            outcomes.append(f"error: {type(e).__name__}")

    threads = [threading.Thread(target=take, args=(w,)) for w in ("U0A", "U0B")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(outcomes) == ["refused", "took"], outcomes


def test_one_new_job_sends_one_idle_thread_to_claim_it_not_all_of_them(db_url, make_bot):
    """Sixteen idle job threads and one request: the job runs, and the threads did not all race to
    lease it (each lease attempt is an UPDATE of the jobs table; a stampede is 16 or more)."""
    from sqlalchemy import event

    bot = make_bot(db_url, taisun_workers=16)
    time.sleep(1.5)  # every thread has polled once and sleeps until the next poll or a ring
    attempts: list[float] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        sql = " ".join(statement.split()).lower()
        if (
            sql.startswith("update jobs set")
            and "lease_owner=" in sql.replace(" = ", "=")
            and "attempts" in sql
        ):
            attempts.append(time.monotonic())

    event.listen(bot.svc.engine, "before_cursor_execute", count)
    try:
        started = time.monotonic()
        bot.command("deploy stg v1.2.3", user=ALICE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with bot.svc.sessions() as s:
                if s.scalar(select(Job.state)) == "simulated":
                    break
            time.sleep(0.05)
        with bot.svc.sessions() as s:
            assert s.scalar(select(Job.state)) == "simulated"
        woken = [t for t in attempts if t - started < 0.9]  # before any thread's own poll came round
    finally:
        event.remove(bot.svc.engine, "before_cursor_execute", count)
    assert 1 <= len(woken) <= 4, f"{len(woken)} lease attempts for one job"
