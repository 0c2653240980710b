"""The states the bot's durable things move through, one enum each, with the groups that matter.

They are `StrEnum`s: a member is its string, so the database keeps the same values (no migration),
a row read back compares equal to its member, and f-strings, JSON and metric labels see the value.

    job          validating → (pending_approval →) queued → running → a final state
    runbook step pending → (running →) done | passed | failed | skipped
    runbook run  open → completed
    incident     open → resolved
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


class IncidentState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
