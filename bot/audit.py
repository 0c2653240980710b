"""The audit log: append-only and hash-chained, so an edited, inserted or deleted row shows.

A row is written in the transaction of the change it records, so neither exists without the
other. It is written *unchained* (no seq, prev_hash or hash), and the chainer links new rows into
the single chain moments later, in batches, one chainer at a time across all replicas. No request
waits on the chain's head, which used to be one lock every audited write in every process took
turns on (BENCHMARKS.md). The price: a row is tamper-evident from the moment it is chained (well
under a second after its commit when a bot runs), not from its commit.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from bot.logs import redact, redact_obj
from bot.mrkdwn import Mrkdwn, to_plain
from bot.store.models import AuditEvent, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
CHAIN_BATCH = 500  # rows linked per chainer transaction
STALE_UNCHAINED = timedelta(minutes=1)  # verify calls older unchained rows a problem
EXPORT_FIELDS = (
    "seq", "ts", "actor_id", "actor_name", "action", "environment", "channel",
    "params", "outcome", "detail", "job_id", "prev_hash", "hash",
)  # fmt: skip


class AuditWriteFailed(Exception):
    """The audit row could not be written, so the operation must not run.

    Raised with `key=`, it is shown in each reader's language (bot.i18n.user_message).
    """

    def __init__(self, message: str = "", *, key: str = "", **fields: Any):
        from bot.i18n import t

        self.key, self.fields = key, fields
        super().__init__(message or t(key, "en", **fields))


def _canonical(ev: AuditEvent) -> bytes:
    body = {
        "seq": ev.seq,
        "ts": ev.ts.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": ev.actor_id,
        "actor_name": ev.actor_name,
        "action": ev.action,
        "environment": ev.environment,
        "channel": ev.channel,
        "params": ev.params,
        "outcome": ev.outcome,
        "detail": ev.detail,
        "job_id": ev.job_id,
        "prev_hash": ev.prev_hash,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def compute_hash(ev: AuditEvent) -> str:
    return hashlib.sha256(_canonical(ev)).hexdigest()


def append(
    session: Session,
    *,
    actor_id: str,
    action: str,
    outcome: str,
    actor_name: str = "",
    environment: str = "",
    channel: str = "",
    params: dict[str, Any] | None = None,
    detail: str = "",
    job_id: str = "",
) -> AuditEvent:
    """Add one audit row to the caller's transaction; the chainer links it after the commit."""
    ev = AuditEvent(
        seq=None,
        ts=datetime.now(UTC),
        actor_id=actor_id,
        actor_name=redact(actor_name)[:255],
        action=action,
        environment=environment,
        channel=channel,
        params=redact_obj(params or {}),
        outcome=outcome,
        detail=redact(to_plain(detail) if isinstance(detail, Mrkdwn) else detail),  # plain text for auditors
        job_id=job_id,
        prev_hash=None,
        hash=None,
    )
    session.add(ev)
    session.info["audit_appended"] = True
    return ev


_chain_wanted = threading.Event()


@event.listens_for(Session, "after_commit")
def _wake_chainer(session: Session) -> None:
    if session.info.pop("audit_appended", False):
        _chain_wanted.set()


@event.listens_for(Session, "after_rollback")
def _forget_appended(session: Session) -> None:
    session.info.pop("audit_appended", None)


def chain_pending(begin: Callable[[], Any], limit: int = CHAIN_BATCH) -> int:
    """Link up to `limit` unchained rows, oldest first, into the chain; returns how many.

    `begin()` opens a write transaction (sessionmaker.begin). Locking the head row first makes
    chainers in every process and replica take turns, so the chain stays one line.
    """
    with begin() as s:
        head = s.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
        rows = list(
            s.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(limit))
        )
        seq, prev = head.seq, head.hash
        for ev in rows:
            seq += 1
            ev.seq, ev.prev_hash = seq, prev
            ev.hash = prev = compute_hash(ev)
        head.seq, head.hash = seq, prev
        return len(rows)


def chain_all(begin: Callable[[], Any]) -> int:
    """Link every unchained row (the CLI does this before verify and export)."""
    total = 0
    while n := chain_pending(begin):
        total += n
    return total


class AuditChainer:
    """A thread that links new audit rows soon after they are committed, and at least every second."""

    def __init__(self, begin: Callable[[], Any], interval: float = 1.0):
        self.begin = begin
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taisun-audit-chainer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            _chain_wanted.wait(self.interval if not failures else min(30.0, 2.0**failures))
            _chain_wanted.clear()
            try:
                chain_all(self.begin)
                failures = 0
            except Exception as e:  # the database is down or busy: rows wait, nothing is lost
                failures += 1
                log.warning("could not chain audit rows yet", extra={"error": repr(e)[:300]})

    def stop(self) -> None:
        self._stop.set()
        _chain_wanted.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            chain_all(self.begin)  # what this process wrote last
        except Exception as e:
            log.warning("audit rows left unchained at stop; any bot or `taisun audit verify` chains them",
                        extra={"error": repr(e)[:300]})  # fmt: skip


def recent(session: Session, *, environment: str | None = None, limit: int = 10) -> list[AuditEvent]:
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if environment:
        q = q.where(AuditEvent.environment == environment)
    return list(session.scalars(q))


def recent_by_actor(session: Session, actor_id: str, limit: int = 5) -> list[AuditEvent]:
    q = select(AuditEvent).where(AuditEvent.actor_id == actor_id).order_by(AuditEvent.id.desc()).limit(limit)
    return list(session.scalars(q))


@dataclass
class VerifyReport:
    rows: int = 0  # chained rows checked
    problems: list[str] = field(default_factory=list)
    unchained: int = 0  # rows written but not linked yet (seconds old, when a bot runs)

    @property
    def ok(self) -> bool:
        return not self.problems


def _iter_rows(engine: Engine, batch: int = 5000) -> Iterator[AuditEvent]:
    """All rows in seq order, in keyset-paginated batches (constant memory on any size)."""
    last = 0
    while True:
        with Session(engine) as s:
            rows = list(
                s.scalars(
                    select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
                )
            )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq or last


def verify(engine: Engine) -> VerifyReport:
    """Walk the chain and name every row that was edited, inserted or deleted.

    Rows not chained yet are counted; one left unchained for over a minute is a problem (no bot
    has been running to chain it, or one was removed from the chain's view).
    """
    report = VerifyReport()
    with Session(engine) as s:
        report.unchained, oldest = s.execute(
            select(func.count(AuditEvent.id), func.min(AuditEvent.ts)).where(AuditEvent.seq.is_(None))
        ).one()
    if oldest is not None and datetime.now(UTC) - oldest.astimezone(UTC) > STALE_UNCHAINED:
        report.problems.append(
            f"{report.unchained} row(s) written since {oldest.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC are not "
            "chained yet: no bot has been running to chain them (`taisun audit verify` chains them first)"
        )
    expected_seq, prev_hash = 1, GENESIS
    for ev in _iter_rows(engine):
        report.rows += 1
        assert ev.seq is not None
        label = f"row seq {ev.seq} (id {ev.id}, {ev.action} by {ev.actor_id})"
        if ev.seq > expected_seq:
            gap = f"seq {expected_seq}" if ev.seq == expected_seq + 1 else f"seq {expected_seq}–{ev.seq - 1}"
            report.problems.append(f"{gap} missing: rows were deleted before {label}")
        if compute_hash(ev) != ev.hash:
            report.problems.append(f"{label} was edited: its content no longer matches its hash")
        elif ev.prev_hash != prev_hash and ev.seq == expected_seq:
            report.problems.append(
                f"{label} does not chain to the row before it: a row was inserted or replaced"
            )
        expected_seq, prev_hash = ev.seq + 1, ev.hash
    with Session(engine) as s:
        head_seq, head_hash = s.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head_seq >= expected_seq:
        report.problems.append(
            f"the newest rows (seq {expected_seq}–{head_seq}) were deleted: the log ends at seq {expected_seq - 1}"
        )
    elif head_seq == expected_seq - 1 and head_hash != prev_hash:
        report.problems.append(f"row seq {head_seq} is not the row that was written last: it was replaced")
    return report


def _export_row(ev: AuditEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "ts": ev.ts.isoformat(),
        "actor_id": ev.actor_id,
        "actor_name": ev.actor_name,
        "action": ev.action,
        "environment": ev.environment,
        "channel": ev.channel,
        "params": ev.params,
        "outcome": ev.outcome,
        "detail": ev.detail,
        "job_id": ev.job_id,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


def export(engine: Engine, out: IO[str], fmt: str = "jsonl", progress: Any = None) -> int:
    """Write every row as JSON lines or CSV; returns the number of rows."""
    n = 0
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for ev in _iter_rows(engine):
        row = redact_obj(_export_row(ev))
        if writer:
            row["params"] = json.dumps(row["params"], ensure_ascii=False, sort_keys=True)
            writer.writerow(row)
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
        if progress:
            progress(n)
    return n
