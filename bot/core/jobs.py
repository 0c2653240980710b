"""Durable jobs: requested → (pending_approval →) queued → running → a final state.

Every transition is a conditional UPDATE on the job row plus an audit row in the same
transaction, so a double click, two approvers at once or two replicas start a job
exactly once, and nothing happens that the audit log does not show. Workers hold a
lease on the job they run; a replica that dies leaves a lease that expires and
another replica resumes the job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from bot.backends.wake import NoSignal, WakeSignal
from bot.core import audit, deadline, dedupe, i18n, locks, priority
from bot.core.audit import AuditWriteFailed
from bot.core.i18n import msg, user_message
from bot.core.locks import SYSTEM_HOLDER, EnvironmentLocked
from bot.core.mrkdwn import mention, slack_time, trusted
from bot.core.ops import REGISTRY, AuditNote, JobContext, Operation, OpError, OpRefused, Request
from bot.core.policy import Attempt, NotAllowed
from bot.core.states import JobState
from bot.core.store.models import Job, Lock

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

# What a worker claims (when no live lease holds it).
RUNNABLE_STATES = (JobState.VALIDATING, JobState.QUEUED, JobState.RUNNING)


class LeaseLost(Exception):
    """This worker no longer holds the job (another replica took it over): stop, touch nothing."""


class JobNotFound(OpError):
    pass


class SelfApproval(OpError):
    pass


class ApprovalExpired(OpError):
    pass


class AlreadyDecided(OpError):
    pass


def now() -> datetime:
    return datetime.now(UTC)


def database_unreachable(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection: a blip, not a verdict on the job.

    A job that meets one is never failed for it: it waits under its lease and is resumed.
    """
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def backoff(failures: int, cap: float = 10.0) -> float:
    """Seconds to wait after the n-th failure in a row: 0.5, 1, 2, 4 ... up to cap."""
    return float(min(cap, 0.5 * 2 ** max(0, failures - 1)))


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _columns(obj: Any) -> dict[str, Any]:
    """The column values of a new ORM object, for an INSERT of its row. Columns left unset get their
    Python default on the object too, as an ORM flush would have filled them in."""
    row: dict[str, Any] = {}
    for attr in sa_inspect(type(obj)).column_attrs:
        if attr.key not in vars(obj):
            default = attr.columns[0].default
            if default is None or not (default.is_scalar or default.is_callable):
                continue  # a server default, or none: the database decides, as it did before
            setattr(obj, attr.key, default.arg(None) if default.is_callable else default.arg)
        row[attr.key] = getattr(obj, attr.key)
    return row


def _audit_fields(
    job: Job,
    event: str,
    actor_id: str,
    actor_name: str = "",
    outcome: str = "ok",
    detail: str | i18n.Msg = "",
    lang: str = "en",
) -> dict[str, Any]:
    """What the audit log records of a job's event (audit.append's and audit.append_along's fields)."""
    return {
        "actor_id": actor_id, "actor_name": actor_name, "action": f"{job.operation}.{event}",
        "environment": job.environment, "channel": job.channel, "outcome": outcome, "detail": detail,
        "job_id": job.id, "lang": lang,
        "params": {k: v for k, v in job.params.items() if k != "steps"} | ({"dry_run": True} if job.dry_run else {}),
    }  # fmt: skip


def _audit(s: Session, job: Job, event: str, actor_id: str, actor_name: str = "", **more: Any) -> None:
    """One audit row of a job's event, in the caller's transaction (`more`: outcome, detail, lang)."""
    audit.append(s, **_audit_fields(job, event, actor_id, actor_name, **more))


def audit_refusal(svc: Services, req: Request, refusal: BaseException | str) -> None:
    """Refusals are audited too (in the workspace language); if even that fails, the refusal still stands.

    A role refusal (NotAllowed) was audited by the policy check that raised it: not twice.
    """
    if getattr(refusal, "audited", False):
        return
    lang = svc.config.language
    reason = i18n.stored(refusal, lang) if isinstance(refusal, BaseException) else refusal
    try:
        with svc.sessions.begin() as s:
            audit.append(
                s, actor_id=req.user_id, actor_name=req.user_name, action=f"{req.operation}.refused",
                environment=req.env.name if req.env else "", channel=req.channel, params=req.params,
                outcome="refused", detail=reason, lang=lang,
            )  # fmt: skip
    except SQLAlchemyError:
        log.exception("could not audit a refusal")


class JobService:
    """Requests, approvals, rejections and cancellations: the fast, user-facing transitions."""

    def __init__(self, svc: Services):
        self.svc = svc

    def _ack_session(self) -> Session:
        """The ack path's session. On PostgreSQL the rows are written by one statement sent on its own
        (audit.append_along) and the session only reads the lock: the read sessions, in autocommit
        (bot.wiring). On SQLite the writes go through the session, in one transaction."""
        if self.svc.read_sessions.kw["bind"].dialect.name == "postgresql":
            return self.svc.read_sessions()
        return self.svc.sessions()

    def require(self, req: Request, role: str, action: str) -> None:
        """Check a role; a refusal is audited (by the policy) before it is raised."""
        self.svc.policy.require(req.user_id, role, req.env, action, req.attempt())

    def op(self, name: str) -> Operation:
        return REGISTRY[name]

    def request(self, req: Request) -> Job:
        """Check and record a request (ack path: database only, no network). Raises on refusal."""
        op = self.op(req.operation)
        env = req.env
        try:
            self.svc.policy.require(req.user_id, op.role, env, msg("act.run", op=op.name), req.attempt())
            op.check_request(self.svc, req)
        except (NotAllowed, OpError) as e:
            audit_refusal(self.svc, req, e)
            raise
        job = Job(
            id=str(uuid.uuid4()),
            operation=op.name,
            environment=env.name if env else "",
            params=req.params,
            state=JobState.VALIDATING,
            requested_by=req.user_id,
            requested_by_name=req.user_name,
            channel=req.channel,
            response_url=req.response_url,
            dry_run=req.dry_run,
            created_at=now(),
            updated_at=now(),
        )
        try:
            # The ack path's round trips. On PostgreSQL the job and its audit row are one statement
            # in autocommit (no BEGIN, no COMMIT: py-spy had the transaction's five round trips at a
            # third of serve's CPU) that carries the answer deadline to the database, and writes them
            # only where the environment has no lock row at all: one round trip in the common case.
            # Where it has one, the lock is read and decided on here (refused now, not after
            # "Checking…"; or the requester's own manual lock, noted in the job), then the rows are
            # written. The lock is read to refuse, not held (the job takes it when it starts), so
            # neither needs a transaction around it. SQLite: one transaction, guarded as it commits.
            with self._ack_session() as s:
                locked = env is not None and op.needs_lock and not req.dry_run
                unless = locks.no_lock_row(job.environment) if locked else None
                written = self._write_request(s, job, req, unless)
                if not written and locked:
                    held = locks.current(s, job.environment)
                    if locks.through_own_lock(held, req.user_id):
                        assert held is not None
                        job.params = req.params = {**req.params, "through_own_lock": {"reason": held.reason}}
                    elif held is not None:
                        raise EnvironmentLocked(locks.LockInfo.of(held))
                    written = self._write_request(s, job, req)  # past a stale lock row, or one's own
                s.commit()
            if not written:
                raise deadline.missed()
        except EnvironmentLocked as e:
            audit_refusal(self.svc, req, e)
            raise
        except OperationalError:
            raise  # the database is unreachable: the caller says so ("nothing was run")
        except SQLAlchemyError as e:
            raise AuditWriteFailed(key="err.audit_request") from e
        self.svc.runner.wake()
        return job

    @staticmethod
    def _write_request(
        s: Session, job: Job, req: Request, unless: tuple[Any, dict[str, Any]] | None = None
    ) -> bool:
        """The job row and its `requested` audit row, while the request's answer can be on time."""
        within = deadline.budget()
        if within is not None and within <= 0:
            raise deadline.missed()
        return audit.append_along(
            s, (Job.__table__, _columns(job)), within=within, unless=unless,
            **_audit_fields(job, "requested", req.user_id, req.user_name),
        )  # fmt: skip

    def get(self, job_id: str) -> Job:
        with self.svc.sessions() as s:
            job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(key="err.gone")
        return job

    def approve(self, job_id: str, user_id: str, user_name: str = "") -> Job:
        """Approve a pending job exactly once; takes the environment lock with it."""
        job = self.get(job_id)
        op = self.op(job.operation)
        env = self.svc.config.environments.get(job.environment)
        if job.state != JobState.PENDING_APPROVAL:
            raise _already_decided(job)
        if user_id == job.requested_by:
            self._audit_denied(job, user_id, user_name, msg("err.self_approval"))
            raise SelfApproval(key="err.self_approval")
        self.svc.policy.require(
            user_id, "approver", env, msg("act.approve", op=op.name),
            _attempt_on(job, user_name, event="approval_denied"),
        )  # fmt: skip
        if job.expires_at and job.expires_at <= now():
            self.expire(job.id)
            raise ApprovalExpired(key="err.expired")
        try:
            with self.svc.sessions.begin() as s:
                if op.needs_lock and env is not None:
                    locks.acquire(
                        s, env.name, holder_id=job.requested_by, holder_name=job.requested_by_name,
                        reason=op.describe(job, self.svc.config.language), job_id=job.id, channel=job.channel,
                    )  # fmt: skip
                res = s.execute(
                    update(Job)
                    .where(
                        Job.id == job.id,
                        Job.state == JobState.PENDING_APPROVAL,
                        or_(Job.expires_at.is_(None), Job.expires_at > now()),
                    )
                    .values(state=JobState.QUEUED, approved_by=user_id, updated_at=now())
                )
                if res.rowcount != 1:
                    s.rollback()
                    raise _already_decided(self.get(job.id))
                job.state, job.approved_by = JobState.QUEUED, user_id
                _audit(s, job, "approved", user_id, user_name)
        except EnvironmentLocked:
            raise
        except SQLAlchemyError as e:
            fresh = self.get(job.id)
            if fresh.state != JobState.PENDING_APPROVAL:
                raise _already_decided(fresh) from None
            raise AuditWriteFailed(key="err.audit_approval") from e
        self.svc.runner.wake()
        self.svc.outbox.job_changed(job.id)
        return self.get(job.id)

    def reason_required(self, job: Job) -> bool:
        """Whether rejecting this job needs a reason: where changes need approval (production) and for
        destructive operations (a restore), the requester and the audit log must learn why; elsewhere
        (a forced deploy in a freeze window, say) a reason is welcome, not required."""
        env = self.svc.config.environments.get(job.environment)
        op = REGISTRY.get(job.operation)
        return bool(env and env.approval_required) or bool(op and op.destructive)

    def may_reject(self, job_id: str, user_id: str, user_name: str = "") -> Job:
        """Check a Reject click before its form opens: the job still waits and the clicker may
        reject it (a refusal is audited by the policy). The requester may always withdraw."""
        job = self.get(job_id)
        if job.state != JobState.PENDING_APPROVAL:
            raise _already_decided(job)
        if user_id != job.requested_by:
            env = self.svc.config.environments.get(job.environment)
            self.svc.policy.require(user_id, "approver", env, msg("act.reject"), _attempt_on(job, user_name))
        return job

    def reject(self, job_id: str, user_id: str, user_name: str = "", reason: str = "") -> Job:
        """Reject a waiting job with the rejecter's reason (stored in its result, shown on its card
        and in its audit row); the requester's own Reject withdraws it. Nothing runs either way."""
        job = self.may_reject(job_id, user_id, user_name)
        withdrawn = user_id == job.requested_by
        reason = " ".join(reason.split())[:500]
        if not withdrawn and not reason and self.reason_required(job):
            raise OpError(key="err.reject_reason_required")
        lang = self.svc.config.language  # the card's language
        key = "job.result.rejected_because" if reason else "job.result.rejected_by"
        result = i18n.t(key, lang, user=mention(user_id), reason=reason)
        outcome = JobState.CANCELLED if withdrawn else JobState.REJECTED
        with self.svc.sessions.begin() as s:
            res = s.execute(
                update(Job).where(Job.id == job.id, Job.state == JobState.PENDING_APPROVAL)
                .values(state=outcome, finished_at=now(), updated_at=now(), result=result)
            )  # fmt: skip
            if res.rowcount != 1:
                s.rollback()
                raise _already_decided(self.get(job.id))
            # The row's actor says who; its detail is what they gave as the reason (plain text).
            _audit(s, job, outcome, user_id, user_name, outcome=outcome, detail=reason)
        self.svc.outbox.job_changed(job.id)
        return self.get(job.id)

    def expire(self, job_id: str) -> bool:
        with self.svc.sessions.begin() as s:
            res = s.execute(
                update(Job).where(Job.id == job_id, Job.state == JobState.PENDING_APPROVAL, Job.expires_at <= now())
                .values(state=JobState.EXPIRED, finished_at=now(), updated_at=now(),
                        result=i18n.t("job.result.expired", self.svc.config.language))
            )  # fmt: skip
            if res.rowcount != 1:
                return False
            job = s.get(Job, job_id)
            assert job is not None
            _audit(
                s, job, "expired", "taisun", "TAISUN", outcome="expired", detail=msg("audit.why.no_approval"),
                lang=self.svc.config.language,
            )  # fmt: skip
        self.svc.outbox.job_changed(job_id)
        return True

    def cancel(
        self, job_id: str, user_id: str, user_name: str = "", reason: str = "", *, host_operator: bool = False
    ) -> Job:
        """Cancel a job that has not started, or one whose worker died (lease expired).

        host_operator: the caller runs `taisun jobs cancel` on the bot's host, with its database
        credentials; Slack roles do not apply to them.
        """
        job = self.get(job_id)
        if not host_operator and user_id != job.requested_by:
            self.svc.policy.require(
                user_id, "admin", None, msg("act.cancel_other"), _attempt_on(job, user_name)
            )
        t = now()
        with self.svc.sessions.begin() as s:
            res = s.execute(
                update(Job)
                .where(
                    Job.id == job.id,
                    or_(
                        Job.state.in_((JobState.VALIDATING, JobState.PENDING_APPROVAL, JobState.QUEUED)),
                        and_(
                            Job.state == JobState.RUNNING,
                            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < t),
                        ),
                    ),
                    or_(
                        Job.lease_expires_at.is_(None),
                        Job.lease_expires_at < t,
                        Job.state == JobState.PENDING_APPROVAL,
                    ),
                )
                .values(
                    state=JobState.CANCELLED,
                    finished_at=t,
                    updated_at=t,
                    result=reason
                    or i18n.t("job.result.cancelled_by", self.svc.config.language, user=mention(user_id)),
                )
            )
            if res.rowcount != 1:
                s.rollback()
                fresh = self.get(job.id)
                if fresh.state == JobState.RUNNING:
                    raise OpError(key="err.cancel_running")
                raise _already_decided(fresh)
            locks.release_for_job(s, job.id)
            _audit(s, job, "cancelled", user_id, user_name, outcome="cancelled", detail=reason)
        self.svc.outbox.job_changed(job.id)
        return self.get(job.id)

    def _audit_denied(self, job: Job, user_id: str, user_name: str, why: i18n.Msg) -> None:
        try:
            with self.svc.sessions.begin() as s:
                _audit(
                    s, job, "approval_denied", user_id, user_name, outcome="refused", detail=why,
                    lang=self.svc.config.language,
                )  # fmt: skip
        except SQLAlchemyError:
            log.exception("could not audit a denied approval")

    def waiting(self) -> tuple[int, datetime | None]:
        """Runnable jobs no worker holds now, and when the oldest was asked for: a worker that is down
        or behind shows here (`taisun serve`'s /health, when jobs run in `taisun worker`)."""
        t = now()
        with self.svc.read_sessions() as s:
            count, oldest = s.execute(
                select(func.count(), func.min(Job.created_at)).where(
                    Job.state.in_(RUNNABLE_STATES),
                    or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < t),
                )
            ).one()
        return int(count), oldest

    def active(self, environment: str | None = None) -> list[Job]:
        with self.svc.sessions() as s:
            q = select(Job).where(Job.state.in_(JobState.ACTIVE)).order_by(Job.created_at)
            if environment:
                q = q.where(Job.environment == environment)
            return list(s.scalars(q))


def _attempt_on(job: Job, user_name: str, event: str = "refused") -> Attempt:
    """A click or command on an existing job, as its refusal is audited (`<operation>.<event>`)."""
    params = {k: v for k, v in job.params.items() if k != "steps"} | (
        {"dry_run": True} if job.dry_run else {}
    )
    return Attempt(job.operation, user_name, job.channel, params, job.id, job.environment, event)


def _already_decided(job: Job) -> AlreadyDecided:
    """Why a click on a card that has moved on does nothing, in the clicker's language."""
    if job.state in JobState.UNDER_WAY:
        if job.approved_by:
            return AlreadyDecided(key=f"err.decided.{job.state}_by", user=mention(job.approved_by))
        return AlreadyDecided(key=f"err.decided.{job.state}")
    done = JobState.SUCCEEDED if job.state == JobState.SIMULATED else job.state  # a simulation is done
    if job.approved_by and done in (JobState.SUCCEEDED, JobState.FAILED):
        # A late approver (often the loser of an approval race on a quick job) learns who approved.
        return AlreadyDecided(key=f"err.decided.{done}_by", user=mention(job.approved_by))
    if job.state == JobState.SIMULATED:
        return AlreadyDecided(key="err.decided.succeeded")
    if job.state in (JobState.SUCCEEDED, JobState.EXPIRED, JobState.REJECTED, JobState.CANCELLED):
        return AlreadyDecided(key=f"err.decided.{job.state}")
    return AlreadyDecided(key="err.decided.other", state=msg(f"state.{job.state}"))


IDLE_POLL_SECONDS = 15.0  # job threads other than the first: their own look when no ring came


class Doorbell:
    """Wakes idle job threads: one per ring, all of them to stop.

    A thread that claims a job rings again, so a burst of requests spreads over as many threads as it
    needs; one new job no longer sends every idle thread to the database at once to race for it.
    Rings are counted (up to the number of threads), so a ring while every thread is busy is not lost."""

    def __init__(self, threads: int) -> None:
        self._cond = threading.Condition()
        self._rings = 0
        self._limit = max(1, threads)
        self._everyone = False

    def ring(self) -> None:
        with self._cond:
            self._rings = min(self._limit, self._rings + 1)
            self._cond.notify()

    def ring_all(self) -> None:
        with self._cond:
            self._everyone = True
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Until a ring (taken), ring_all, or the timeout (the poll)."""
        with self._cond:
            if not self._rings and not self._everyone:
                self._cond.wait(timeout)
            if self._rings:
                self._rings -= 1


@dataclass
class _Held:
    """What a job's prepare saved, held for the transaction that moves the job on (JobRunner._prepare)."""

    holding: bool = True
    saved: bool = False
    notes: list[AuditNote] = field(default_factory=list)


class JobRunner:
    """Worker threads of the bot's own (never Bolt's listener pool) that run jobs under a lease.

    In `taisun serve` with TAISUN_JOBS=worker it has no job threads: wake() then tells the workers in
    other processes through `signal`, and `housekeeping` keeps the sweep (approvals that expire, lock
    reminders, the capabilities' sweeps) running in serve as it always did.
    """

    def __init__(
        self,
        svc: Services,
        *,
        threads: int = 4,
        poll_seconds: float = 1.0,
        lease_seconds: float = 30.0,
        signal: WakeSignal | None = None,
        housekeeping: bool = False,
        idle_policy: bool = False,
    ):
        self.svc = svc
        self.idle_policy = idle_policy  # job threads under SCHED_IDLE (bot.core.priority)
        self.owner = new_owner_id()
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self._beat_seconds = lease_seconds / 3  # a lease is renewed three times before it runs out
        self.signal: WakeSignal = signal or NoSignal()
        self.housekeeping = housekeeping
        self._bell = Doorbell(threads)
        self._poller_lock = threading.Lock()
        self._poller_taken = False  # an idle thread looks every poll_seconds; the others wait for a ring
        self._stop = threading.Event()
        self._draining = threading.Event()  # no new claims; running jobs go on
        self._frozen = False  # stopping: this process's job threads may record nothing more
        self._workers: list[threading.Thread] = []
        self._job_threads: list[threading.Thread] = []
        self._running: set[str] = set()
        self._renewed: dict[str, float] = {}  # job id → when (monotonic) its lease was last renewed here
        self._running_lock = threading.Lock()
        self._last_sweep = 0.0
        self._last_prune = 0.0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._workers:
            return
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"taisun-job-{i}", daemon=True)
            t.start()
            self._workers.append(t)
            self._job_threads.append(t)
        if self.threads:
            self.signal.listen(self._bell.ring)  # other processes' requests wake this one's threads
        elif self.housekeeping:
            sweeper = threading.Thread(target=self._housekeeping_loop, name="taisun-sweep", daemon=True)
            sweeper.start()
            self._workers.append(sweeper)
        hb = threading.Thread(target=self._heartbeat_loop, name="taisun-lease", daemon=True)
        hb.start()
        self._workers.append(hb)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread, waiting at most `timeout` seconds in all (they are daemon threads)."""
        self._stop.set()
        self._bell.ring_all()
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()
        self._job_threads.clear()
        self.signal.stop()

    def drain(self, timeout: float) -> list[str]:
        """A graceful stop (SIGTERM): claim nothing more, let running jobs end for up to `timeout`
        seconds, then hand the leases of those still running back, so another worker resumes them
        at once instead of after the lease. Returns the ids handed back.

        Before handing back, this process's job threads are frozen: their next progress save raises
        LeaseLost, so none of them starts another side effect once another worker may hold the job
        (operations save progress before each side effect). Stop the process right after.
        """
        self._draining.set()
        self._bell.ring_all()
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._running_lock:
            left = sorted(self._running)
        if not left:
            return []
        self._frozen = True
        handed: list[str] = []
        for job_id in left:
            try:
                with self.svc.sessions.begin() as s:
                    res = s.execute(
                        update(Job).where(Job.id == job_id, Job.lease_owner == self.owner)
                        .values(lease_expires_at=None)
                    )  # fmt: skip
                if res.rowcount == 1:
                    handed.append(job_id)
            except Exception as e:
                _log_failure("could not hand a job back at stop; its lease will run out", e, job_id=job_id)
        if handed:
            log.warning("stopped with jobs still running; handed back for another worker to resume",
                        extra={"jobs": handed})  # fmt: skip
            self.signal.send()
        return handed

    def wake(self) -> None:
        """A job may be runnable: one of this process's idle job threads looks now, and so do the workers
        elsewhere."""
        self._bell.ring()
        self.signal.send()

    @property
    def busy(self) -> int:
        with self._running_lock:
            return len(self._running)

    @property
    def alive(self) -> int:
        """Job worker threads running now (/health turns red at 0: requests would be taken, never run)."""
        return sum(1 for t in self._job_threads if t.is_alive())

    # -- claiming --------------------------------------------------------------------
    def _housekeeping_loop(self) -> None:
        """The sweep, in a process that runs no job (`taisun serve` when jobs run in `taisun worker`)."""
        while not self._stop.wait(self.poll_seconds):
            try:
                self._maybe_sweep()
            except Exception as e:
                _log_failure("job sweep failed", e)

    def _loop(self) -> None:
        """Claim and run jobs until stopped. Nothing a job or the database does may end this thread.

        Idle threads wait for the doorbell. One of them at a time (the poller) also looks every
        poll_seconds — a signal lost, a lease run out, a slot come due — and a claim rings for the
        next; the others look on their own only every IDLE_POLL_SECONDS, so 64 idle threads are not 64
        queries a second."""
        if self.idle_policy:
            priority.idle_thread()
        failures = 0
        while not self._stop.is_set() and not self._draining.is_set():
            try:
                self._maybe_sweep()
            except Exception as e:
                _log_failure("job sweep failed", e)
            try:
                job_id = self.claim_one()
            except Exception as e:
                failures += 1
                _log_failure("could not claim a job", e)
                self._stop.wait(backoff(failures))
                continue
            failures = 0
            if job_id:
                self._bell.ring()  # there may be more: the next idle thread looks, not all of them
                try:
                    self.execute(job_id)
                except Exception as e:  # execute() handles its own errors; this is the last net
                    _log_failure("job worker error", e, job_id=job_id)
                continue
            with self._poller_lock:
                polling, self._poller_taken = not self._poller_taken, True
            try:
                self._bell.wait(self.poll_seconds if polling else max(self.poll_seconds, IDLE_POLL_SECONDS))
            finally:
                if polling:
                    with self._poller_lock:
                        self._poller_taken = False

    def claim_one(self) -> str | None:
        """Take the oldest runnable job under a lease (a conditional UPDATE decides between replicas).

        On PostgreSQL it is one statement: the oldest runnable row no one else is claiming right now
        (FOR UPDATE SKIP LOCKED), leased and returned, so many job threads and replicas claiming at once
        neither wait on each other nor try the same row."""
        t = now()
        free = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < t)
        runnable = and_(Job.state.in_(JobState.FOR_WORKERS), free)
        with self._running_lock:
            mine = sorted(self._running)
        if mine:
            # A job this process is running whose lease ran out (its heartbeat starved on a busy host)
            # is still ours: the next beat renews it. Claiming it again would run it twice at once here,
            # where the lease guard cannot tell the two threads apart. Another replica may take it.
            runnable = and_(runnable, Job.id.not_in(mine))
        lease = {"lease_owner": self.owner, "lease_expires_at": t + self.lease,
                 "attempts": Job.attempts + 1, "updated_at": t}  # fmt: skip
        if self.svc.engine.dialect.name == "postgresql":
            oldest = (
                select(Job.id).where(runnable).order_by(Job.created_at).limit(1)
                .with_for_update(skip_locked=True).scalar_subquery()
            )  # fmt: skip
            # One round trip in autocommit, and a commit that waits for no WAL flush: every write the
            # job makes after its claim is lease-guarded and committed synchronously (before any side
            # effect), and WAL is one sequence, so that flush carries the claim to the disk first. A
            # claim lost with the database server itself frees the job, and the worker's next guarded
            # write finds it no longer holds it (LeaseLost). BENCHMARKS §6l: the acks' commits queue
            # behind the worker's WAL flushes.
            unflushed = func.set_config("synchronous_commit", "off", True).is_not(None)
            with self.svc.read_sessions.kw["bind"].connect() as conn:  # autocommit on PostgreSQL
                return conn.execute(
                    update(Job).where(Job.id == oldest, runnable, unflushed).values(**lease).returning(Job.id)
                ).scalar_one_or_none()
        with self.svc.read_sessions() as s:
            candidates = list(s.scalars(select(Job.id).where(runnable).order_by(Job.created_at).limit(5)))
        for job_id in candidates:
            with self.svc.sessions.begin() as s:
                res = s.execute(update(Job).where(Job.id == job_id, runnable).values(**lease))
            if res.rowcount == 1:
                return job_id
        return None

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self._beat_seconds):
            with self._running_lock:
                ids = sorted(self._running)
            if ids:
                self._extend(ids)

    def _extend(self, job_ids: list[str]) -> None:
        """Renew this worker's leases on `job_ids` in one statement and one commit; when the database is
        away, the next beat tries again. One commit a beat, however many jobs: with 50 followed deploys a
        row each was 50 synchronous commits, and the acks' commits queue behind every WAL flush."""
        if self._frozen:
            return  # handed back at stop: the jobs are another worker's to take
        beat = time.monotonic()
        try:
            with self.svc.sessions.begin() as s:
                s.execute(
                    update(Job).where(Job.id.in_(job_ids), Job.lease_owner == self.owner)
                    .values(lease_expires_at=now() + self.lease)
                )  # fmt: skip
        except Exception as e:
            _log_failure("could not extend the leases of running jobs", e, job_id=",".join(job_ids))
            return
        with self._running_lock:
            self._renewed.update((job_id, beat) for job_id in job_ids if job_id in self._running)

    def _heartbeat(self, job_id: str) -> None:
        """An operation's heartbeat between its polls (a follow polls as often as every half second): the lease
        is renewed only when no beat has renewed it for a beat's interval — the beat thread may be starved
        on a busy host — not at every poll, which was a commit per poll per job."""
        with self._running_lock:
            renewed = self._renewed.get(job_id, 0.0)
        if time.monotonic() - renewed >= self._beat_seconds:
            self._extend([job_id])

    # -- running ---------------------------------------------------------------------
    def execute(self, job_id: str) -> None:
        """Run a claimed job to its end, or leave it under its lease to be resumed. Never raises."""
        with self._running_lock:
            self._running.add(job_id)
            self._renewed[job_id] = time.monotonic()  # claimed (leased) just now
        try:
            self._execute(job_id)
        except Exception as e:
            if database_unreachable(e):
                # Not the job's fault: it resumes (here or on another replica) once the database answers.
                log.warning("database unreachable during a job; it will be resumed",
                            extra={"job_id": job_id, "error": repr(e)[:300]})  # fmt: skip
                self._hand_back(job_id)
            else:
                log.exception("job crashed", extra={"job_id": job_id})
                self._finish(
                    job_id, JobState.FAILED, i18n.t("job.result.internal_error", self.svc.config.language)
                )
        finally:
            # The card's update is queued while the job still counts as running here: whoever waits
            # for `busy` to fall to 0 and then for the outbox (the shell's settle, a graceful stop)
            # never sees a job finished whose card is not yet queued.
            try:
                self.svc.outbox.job_changed(job_id)
            except Exception as e:
                _log_failure("could not queue a card update", e, job_id=job_id)
            with self._running_lock:
                self._running.discard(job_id)
                self._renewed.pop(job_id, None)

    def _hand_back(self, job_id: str) -> None:
        """Free this worker's lease as soon as the database answers, so the job resumes at once.

        Gives up after one lease period: by then the lease has run out anyway.
        """
        deadline = time.monotonic() + self.lease.total_seconds()
        failures = 0
        while not self._stop.is_set():
            try:
                with self.svc.sessions.begin() as s:
                    s.execute(
                        update(Job).where(Job.id == job_id, Job.lease_owner == self.owner)
                        .values(lease_expires_at=None)
                    )  # fmt: skip
                return
            except Exception as e:
                failures += 1
                if not database_unreachable(e) or time.monotonic() >= deadline:
                    _log_failure("could not hand a job back; its lease will run out", e, job_id=job_id)
                    return
                self._stop.wait(backoff(failures))

    def _write_progress(
        self, s: Session, job: Job, progress: dict[str, Any], notes: Sequence[AuditNote]
    ) -> None:
        """A step's progress and its audit rows, in the caller's transaction.

        Only while this worker still holds the lease: operations save before each side effect, so a
        worker that lost its job to another replica stops first (LeaseLost rolls the transaction back:
        no audit row for a step not ours)."""
        res = s.execute(
            update(Job)
            .where(Job.id == job.id, Job.lease_owner == self.owner)
            .values(progress=progress, updated_at=now())
        )
        if res.rowcount != 1:
            raise LeaseLost(job.id)
        for note in notes:  # the step's audit rows commit with the step, or neither does
            audit.append(
                s, actor_id=SYSTEM_HOLDER, actor_name="TAISUN",
                action=f"{job.operation}.{note.event}", environment=job.environment,
                channel=job.channel, params=note.facts, outcome=note.outcome,
                detail=note.detail, job_id=job.id, lang=self.svc.config.language,
            )  # fmt: skip

    def _context(self, job: Job, held: _Held | None = None) -> JobContext:
        env = self.svc.config.environments.get(job.environment)

        def save_progress(values: dict[str, Any], notes: tuple[AuditNote, ...] = ()) -> None:
            progress = {**job.progress, **values}
            if held is not None and held.holding:  # a prepare's: commits with the job's next state
                held.notes.extend(notes)
                held.saved = True
                job.progress = progress
                return
            failures = 0
            while True:
                if self._frozen:
                    raise LeaseLost(job.id)  # handed back at stop: touch nothing more
                try:
                    with self.svc.sessions.begin() as s:
                        self._write_progress(s, job, progress, notes)
                    break
                except LeaseLost:
                    raise
                except Exception as e:
                    # A blip: the operation waits here, before its next side effect, and goes on
                    # when the database is back (or learns then that another worker has the job).
                    if not database_unreachable(e) or self._stop.is_set():
                        raise
                    failures += 1
                    _log_failure("could not save job progress yet", e, job_id=job.id)
                    self._stop.wait(backoff(failures))
            job.progress = progress
            self.svc.outbox.job_changed(job.id)

        return JobContext(
            job=job,
            svc=self.svc,
            env=env,
            save_progress=save_progress,
            heartbeat=lambda: self._heartbeat(job.id),
        )

    def _execute(self, job_id: str) -> None:
        with self.svc.read_sessions() as s:  # a read: autocommit on PostgreSQL (one round trip)
            job = s.get(Job, job_id)
        if job is None or job.lease_owner != self.owner or job.state in JobState.FINAL:
            return
        op = REGISTRY.get(job.operation)
        if op is None:
            self._finish(
                job_id,
                JobState.FAILED,
                i18n.t("job.result.unknown_op", self.svc.config.language, op=job.operation),
            )
            return
        if job.state == JobState.VALIDATING:
            self._prepare(op, job)
        elif job.state in JobState.UNDER_WAY:
            self._run(op, self._context(job))

    def _prepare(self, op: Operation, job: Job) -> None:
        """Check the request (op.prepare), then await approval or queue the job.

        A prepare only reads (GitHub, /version, the history): what it saves and audits is held and
        commits in the transaction that moves the job on — one commit, not one per step and another for
        the state (each a WAL flush the acks' commits queue behind, BENCHMARKS §6l). Its audit rows
        still commit before the card is posted, the next side effect; a prepare cut short by a crash
        changed nothing and runs again. Where the job ends instead (refused, failed, a lock taken),
        the held steps commit first, on their own, as they always did."""
        held = _Held()
        ctx = self._context(job, held)
        try:
            op.prepare(ctx)
        except LeaseLost:
            return
        except OpError as e:  # OpRefused: the request is invalid; anything else: it failed
            self._end_prepared(
                ctx, held, JobState.INVALID if isinstance(e, OpRefused) else JobState.FAILED, e
            )
            return
        except Exception as e:
            if not database_unreachable(e):
                self._release(ctx, held)  # the steps it had recorded, before execute() fails the job
            raise
        env = ctx.env
        approval = op.approval_required(self.svc, job, env)  # decided before the transaction opens
        minutes = (
            self.svc.config.approval_expiry(env) if env else self.svc.config.defaults.approval_expiry_minutes
        )
        t = now()
        try:
            with self.svc.sessions.begin() as s:
                if held.saved:  # lease-guarded: LeaseLost rolls the move back too
                    self._write_progress(s, job, job.progress, held.notes)
                if approval:
                    s.execute(
                        update(Job).where(Job.id == job.id, Job.state == JobState.VALIDATING)
                        .values(state=JobState.PENDING_APPROVAL, expires_at=t + timedelta(minutes=minutes),
                                lease_owner="", lease_expires_at=None, updated_at=t)
                    )  # fmt: skip
                    _audit(s, job, "awaiting_approval", "taisun", "TAISUN", outcome="pending")
                    return
                if env is not None and op.takes_lock(job):
                    locks.acquire(
                        s, env.name, holder_id=job.requested_by, holder_name=job.requested_by_name,
                        reason=op.describe(job, self.svc.config.language), job_id=job.id, channel=job.channel,
                    )  # fmt: skip
                s.execute(update(Job).where(Job.id == job.id).values(state=JobState.QUEUED, updated_at=t))
                _audit(s, job, "queued", "taisun", "TAISUN")
        except LeaseLost:
            return
        except EnvironmentLocked as e:
            self._end_prepared(ctx, held, JobState.REFUSED, e)
            return
        held.holding = False  # from here on every step commits before its side effect
        job.state = JobState.QUEUED
        self._run(op, ctx)

    def _end_prepared(self, ctx: JobContext, held: _Held, state: JobState, why: Exception) -> None:
        """A job that ends in its prepare: the steps it held on record first, then how it ended."""
        if self._release(ctx, held):
            self._finish(ctx.job.id, state, user_message(why, self.svc.config.language))

    def _release(self, ctx: JobContext, held: _Held) -> bool:
        """Commit what a prepare held, on its own; False when this worker no longer holds the job."""
        held.holding = False
        if not held.saved:
            return True
        try:
            ctx.save_progress({}, tuple(held.notes))
        except LeaseLost:
            return False
        return True

    def _run(self, op: Operation, ctx: JobContext) -> None:
        job = ctx.job
        if job.state == JobState.RUNNING and not op.resumable:
            self._finish(
                job.id, JobState.FAILED, i18n.t("job.result.not_resumable", self.svc.config.language)
            )
            return
        t = now()
        with self.svc.sessions.begin() as s:
            s.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(state=JobState.RUNNING, started_at=job.started_at or t, updated_at=t)
            )
            if job.state != JobState.RUNNING:
                _audit(s, job, "started", "taisun", "TAISUN")
            else:
                _audit(
                    s, job, "resumed", "taisun", "TAISUN", lang=self.svc.config.language,
                    detail=msg("audit.why.resumed", attempt=job.attempts, owner=self.owner),
                )  # fmt: skip
        job.state = JobState.RUNNING
        self.svc.outbox.job_changed(job.id)
        try:
            op.run(ctx)
        except LeaseLost:
            log.warning("lost the lease on a running job; another worker has it", extra={"job_id": job.id})
            return
        except OpError as e:
            # Stored on the job and shown on the channel's card: the workspace language.
            self._finish(job.id, JobState.FAILED, user_message(e, self.svc.config.language))
            return
        except Exception as e:
            if database_unreachable(e):
                raise  # execute() leaves the job to be resumed: a blip is not a failed deploy
            log.error(
                "operation raised",
                extra={"job_id": job.id, "error": repr(e), "trace": traceback.format_exc()},
            )
            self._finish(
                job.id, JobState.FAILED,
                i18n.t("job.result.unexpected", self.svc.config.language, error=f"{type(e).__name__}: {e}"),
            )  # fmt: skip
            return
        # An operation that only simulated (a dry run, or no credentials) changed nothing: it
        # ends `simulated`, which no history, status or metric counts as a success.
        self._finish(
            job.id,
            JobState.SIMULATED if ctx.progress.get("simulated") else JobState.SUCCEEDED,
            ctx.progress.get("result", ""),
            keep_lock=op.keep_lock_after(job, self.svc.config.language),
        )

    def _finish(self, job_id: str, state: JobState, result: str, keep_lock: str | None = None) -> None:
        """Record how the job ended; while the database is unreachable, try again with backoff.

        The outcome is known and must not be lost to a blip (a restart that finished must not be
        resumed as "not resumable"). Stopping gives up: the job then resumes under its lease.
        """
        failures = 0
        while True:
            try:
                self._finish_once(job_id, state, result, keep_lock)
                return
            except Exception as e:
                if not database_unreachable(e) or self._stop.is_set():
                    _log_failure("could not record how a job ended; it resumes under its lease", e,
                                 job_id=job_id, unexpected=not database_unreachable(e))  # fmt: skip
                    return
                failures += 1
                _log_failure("could not record how a job ended yet", e, job_id=job_id)
                self._stop.wait(backoff(failures))

    def _finish_once(self, job_id: str, state: JobState, result: str, keep_lock: str | None) -> None:
        """Move to a final state, release (or convert) the lock, audit — all in one transaction."""
        t = now()
        with self.svc.sessions.begin() as s:
            job = s.get(Job, job_id, with_for_update=True)
            if job is None or job.state in JobState.FINAL:
                return
            if job.lease_owner and job.lease_owner != self.owner:
                return  # another worker took the job over; it decides how it ends
            job.state, job.result, job.finished_at, job.updated_at = state, result, t, t
            job.lease_owner, job.lease_expires_at = "", None
            if keep_lock:
                lock = s.get(Lock, job.environment)
                if lock is not None and lock.job_id == job.id:
                    # Held by the bot itself now: nobody deploys past it until someone unlocks on purpose.
                    lock.job_id, lock.reason, lock.acquired_at = "", keep_lock, t
                    lock.holder_id, lock.holder_name = SYSTEM_HOLDER, "TAISUN"
                    lock.kept_for = job.requested_by  # who rolled back: they or an admin release it
            else:
                locks.release_for_job(s, job.id)
            outcome = {JobState.SUCCEEDED: "ok", JobState.FAILED: "error"}.get(state, str(state))
            # A job's result is mrkdwn the bot rendered (as the card shows it): the audit log gets
            # its plain text, not the markup and entities.
            _audit(s, job, state, "taisun", "TAISUN", outcome=outcome, detail=trusted(result))
        self.svc.metrics.job_finished(job, state)

    # -- housekeeping ----------------------------------------------------------------
    def _maybe_sweep(self) -> None:
        if time.monotonic() - self._last_sweep < 15:
            return
        self._last_sweep = time.monotonic()
        self.sweep()

    def sweep(self) -> None:
        """Expire stale approvals and remind lock holders. Safe to run on every replica at once."""
        t = now()
        with self.svc.read_sessions() as s:
            expired = list(
                s.scalars(select(Job.id).where(Job.state == JobState.PENDING_APPROVAL, Job.expires_at <= t))
            )
        for job_id in expired:
            self.svc.jobs.expire(job_id)
        self._sweep_locks()
        self._prune_delivery_keys()
        for hook in self.svc.sweep_hooks:
            try:
                hook()
            except Exception:
                log.exception("sweep hook failed")

    def _prune_delivery_keys(self) -> None:
        """Forget duplicate-delivery keys past their TTL, now and then (every replica may; it is idempotent)."""
        if self._last_prune and time.monotonic() - self._last_prune < 600:
            return
        self._last_prune = time.monotonic()
        dedupe.prune(self.svc.sessions)

    def _sweep_locks(self) -> None:
        """Remind holders before their manual lock expires; announce expired locks."""
        d = self.svc.config.defaults
        with self.svc.sessions.begin() as s:
            remind, expired = locks.sweep_manual_locks(
                s, remind_within=timedelta(minutes=d.lock_reminder_minutes)
            )
            for info in expired:
                audit.append(
                    s, actor_id=SYSTEM_HOLDER, actor_name="TAISUN", action="lock.expired",
                    environment=info.environment, params={"holder": info.holder_id, "reason": info.reason}, outcome="ok",
                )  # fmt: skip
        for info in remind:
            # A DM: the holder's language; the reason they typed is escaped like any other field.
            text = i18n.t(
                "lock.reminder_dm", self.svc.lang_for(info.holder_id), env=info.environment, reason=info.reason,
                until=slack_time(info.expires_at, "{time}"),
            )  # fmt: skip
            self.svc.later(
                lambda info=info, text=text: self.svc.slack.chat_postMessage(
                    channel=info.holder_id, text=text
                )
            )
        for info in expired:
            channel = self.svc.config.slack.ops_channel
            text = i18n.t(
                "lock.expired_notice", self.svc.config.language, env=info.environment,
                user=mention(info.holder_id), reason=info.reason,
            )  # fmt: skip
            self.svc.later(
                lambda channel=channel, text=text: self.svc.slack.chat_postMessage(channel=channel, text=text)
            )


def _log_failure(
    what: str, error: BaseException, *, job_id: str = "", unexpected: bool | None = None
) -> None:
    """A database blip is a warning (it passes); anything else is an error with its traceback."""
    extra = {"job_id": job_id, "error": repr(error)[:300]} if job_id else {"error": repr(error)[:300]}
    if unexpected is None:
        unexpected = not database_unreachable(error)
    if unexpected:
        log.error(what, extra=extra, exc_info=error)
    else:
        log.warning(what, extra=extra)
