"""The states the bot's durable things move through, one enum each, with the groups that matter.

They are `StrEnum`s: a member is its string, so the database keeps the same values (no migration),
a row read back compares equal to its member, and f-strings, JSON and metric labels see the value.

    job          validating → (pending_approval →) queued → running → a final state
    runbook step pending → (running →) done | passed | failed | skipped
    runbook run  open → completed
    incident     open → resolved
    a line of a job card's progress: running (the last line, replaced by the next) or how it went
    deploy watch              watching → ok | breached | unwatched (off: no watch configured)
    security task occurrence  scheduled → due → done | missed (the next one came first)
    access review             open → complete
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class JobState(StrEnum):
    """A job (bot.core.jobs): its state is changed only by conditional UPDATEs."""

    VALIDATING = "validating"  # a worker checks the request (prepare)
    PENDING_APPROVAL = "pending_approval"
    QUEUED = "queued"  # approved (or needing no approval): waits for a worker
    RUNNING = "running"  # a worker holds its lease
    SUCCEEDED = "succeeded"
    SIMULATED = "simulated"  # ran as a labelled simulation: nothing was changed
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody approved it in time
    CANCELLED = "cancelled"
    INVALID = "invalid"  # prepare found the request invalid (a missing tag): nothing ran
    REFUSED = "refused"  # the policy said no once the request was checked

    # Not final yet: listed by `taisun jobs` and `/taisun jobs`.
    ACTIVE: ClassVar[frozenset[JobState]]
    # Finished for good: a lock held by such a job is free, a runbook step following it is done.
    FINAL: ClassVar[frozenset[JobState]]
    # Approved and not finished: it holds (or is about to take) its environment's lock.
    UNDER_WAY: ClassVar[frozenset[JobState]]
    # A worker has something to do with it (check it, start it, carry it on).
    FOR_WORKERS: ClassVar[frozenset[JobState]]
    # Approved and started at some point, so it may have side effects (a workflow run) on record.
    MAY_HAVE_RUN: ClassVar[frozenset[JobState]]


JobState.ACTIVE = frozenset(
    {JobState.VALIDATING, JobState.PENDING_APPROVAL, JobState.QUEUED, JobState.RUNNING}
)
JobState.FINAL = frozenset(JobState) - JobState.ACTIVE
JobState.UNDER_WAY = frozenset({JobState.QUEUED, JobState.RUNNING})
JobState.FOR_WORKERS = frozenset({JobState.VALIDATING, JobState.QUEUED, JobState.RUNNING})
JobState.MAY_HAVE_RUN = frozenset(JobState) - {
    JobState.VALIDATING, JobState.PENDING_APPROVAL, JobState.REJECTED, JobState.EXPIRED,
    JobState.INVALID, JobState.REFUSED,
}  # fmt: skip


class StepState(StrEnum):
    """One step of a runbook run (bot.incidents.runs)."""

    PENDING = "pending"
    RUNNING = "running"  # a check is being made, or the step's job is under way
    DONE = "done"  # a person ticked it, or its job finished well
    PASSED = "passed"  # its check passed
    FAILED = "failed"  # its check or its job failed: it can be tried again
    SKIPPED = "skipped"  # a person skipped it, saying why

    # Finished: the phase can move on once all its steps are.
    TERMINAL: ClassVar[frozenset[StepState]]
    # Waiting for someone: its buttons are live.
    OPEN: ClassVar[frozenset[StepState]]


StepState.TERMINAL = frozenset({StepState.DONE, StepState.PASSED, StepState.SKIPPED})
StepState.OPEN = frozenset({StepState.PENDING, StepState.FAILED})


class RunState(StrEnum):
    """A runbook run: open until every step is done or skipped."""

    OPEN = "open"
    COMPLETED = "completed"


class Progress(StrEnum):
    """How one line of a job card's progress went (bot.core.ops.JobContext.step)."""

    RUNNING = "running"  # under way: the next line replaces it
    DONE = "done"
    FAILED = "failed"
    WARNING = "warning"  # went on, with something a person should look at
    INFO = "info"  # a fact, neither good nor bad
    SKIPPED = "skipped"


class IncidentState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class WatchState(StrEnum):
    """The watch after a verified deploy (bot.deploys.watch), kept in the job's progress."""

    OFF = "off"  # the environment has no watch
    WATCHING = "watching"
    OK = "ok"  # every measurement taken, none breached for long enough
    BREACHED = "breached"  # failure_limit measurements in a row beyond a limit
    UNWATCHED = "unwatched"  # Prometheus could not be asked error_limit times in a row


class OccurrenceState(StrEnum):
    """One time a security task is due (bot.security.tasks)."""

    SCHEDULED = "scheduled"
    DUE = "due"  # posted: waits for its owner (or its scan) to mark it done
    DONE = "done"
    MISSED = "missed"  # the next occurrence came due first


class ReviewState(StrEnum):
    """An access review (bot.security.review)."""

    OPEN = "open"
    COMPLETE = "complete"
