"""The job worker's place in the CPU queue: behind the acks Slack waits for.

A job (a deploy's prepare, a followed run, a backup) can start a second later without anyone
noticing; an ack later than 3 s is an error in front of the person who typed. When both want the
CPU, `taisun worker` lets `taisun serve` go first, by its niceness.

Niceness alone is not enough on most Linux hosts. With autogroup scheduling
(kernel.sched_autogroup_enabled=1, the default) the kernel first shares the CPU between sessions and
a process's niceness only ranks it within its own: a worker started in a session of its own, as
systemd starts every service and a container starts its PID 1, would compete with `taisun serve` as
an equal at any niceness. Its session's autogroup niceness (/proc/self/autogroup) is what ranks it
against other sessions, so a worker that leads its session sets that too. A worker sharing a
session (started from a terminal) leaves the session alone: the niceness of its own process still
ranks it behind a `taisun serve` in the same session. Under cgroup v2 with the cpu controller on
(any unit with CPUWeight=) neither applies between services: taisun-worker.service sets CPUWeight.

Niceness decides shares, not who runs first: a serve thread that wakes while a nice-19 job thread
runs may wait out the rest of that thread's time slice, on every wakeup an ack makes (the request,
each database answer). So the job threads also take Linux's SCHED_IDLE policy (`idle_thread`), and
so does everything they start (pg_dump, gzip, pgbackrest, a pool thread first needed by a job): an
ordinary thread that wakes is then placed and run ahead of them. The lease heartbeat, started before
any job thread, keeps the ordinary policy, so a busy host slows a job and its card but never lets its
lease run out while it runs. An unprivileged thread cannot leave SCHED_IDLE again, which is why it is
set per job thread and not for the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

AUTOGROUP = Path("/proc/self/autogroup")  # "/autogroup-85 nice 0"
_idle_threads = 0  # job threads of this process that took SCHED_IDLE
_count_lock = threading.Lock()


@dataclass(frozen=True)
class Priority:
    nice: int  # this process's niceness (threads and children started from now on inherit it)
    session_nice: int | None  # its autogroup's, when it leads its session and autogroups exist
    idle_threads: int = 0  # job threads running under SCHED_IDLE


def _autogroup_nice() -> int | None:
    try:
        return int(AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None  # no autogroup scheduling (or no /proc): niceness ranks processes directly


def current() -> Priority:
    return Priority(os.getpriority(os.PRIO_PROCESS, 0), _autogroup_nice(), _idle_threads)


def idle_thread() -> bool:
    """Put the calling thread, and every thread and process it starts from now on, under SCHED_IDLE.
    Irreversible for an unprivileged thread. False (logged) where the platform has no such policy."""
    global _idle_threads
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None:
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as e:
        log.warning("could not give a job thread the idle CPU policy", extra={"error": str(e)})
        return False
    with _count_lock:
        _idle_threads += 1
    return True


def yield_cpu(nice: int) -> Priority:
    """Run at niceness `nice` at least (0–19; never raised back if already lower), and give this
    process's session the same when it leads it. Best effort: what could not be set is logged."""
    if nice <= 0:
        return current()
    have = os.getpriority(os.PRIO_PROCESS, 0)
    if have < nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, min(nice, 19))
        except OSError as e:
            log.warning("could not lower the worker's CPU priority", extra={"nice": nice, "error": str(e)})
    if os.getsid(0) == os.getpid():
        group = _autogroup_nice()
        if group is not None and group < nice:
            with contextlib.suppress(OSError):  # read-only /proc (a hardened container): as before
                AUTOGROUP.write_text(str(min(nice, 19)))
    got = current()
    log.info(
        "the worker yields the CPU to the acks",
        extra={"nice": got.nice, "session_nice": got.session_nice},
    )
    return got
