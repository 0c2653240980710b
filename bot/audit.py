"""The audit log: append-only and hash-chained, so an edited, inserted or deleted row shows."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from bot.logs import redact, redact_obj
from bot.store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
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
    """Add one audit row to the caller's transaction, chained after the newest one.

    The first statement is a write to the head row, so concurrent writers (threads,
    processes, replicas) queue on it and the chain stays a single line.
    """
    seq, prev = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one()  # one round trip while holding the chain's head: it serializes every audited write
    ev = AuditEvent(
        seq=seq,
        ts=datetime.now(UTC),
        actor_id=actor_id,
        actor_name=redact(actor_name)[:255],
        action=action,
        environment=environment,
        channel=channel,
        params=redact_obj(params or {}),
        outcome=outcome,
        detail=redact(detail),
        job_id=job_id,
        prev_hash=prev,
    )
    ev.hash = compute_hash(ev)
    session.add(ev)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=ev.hash))
    return ev


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
    rows: int = 0
    problems: list[str] = field(default_factory=list)

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
        last = rows[-1].seq


def verify(engine: Engine) -> VerifyReport:
    """Walk the chain and name every row that was edited, inserted or deleted."""
    report = VerifyReport()
    expected_seq, prev_hash = 1, GENESIS
    for ev in _iter_rows(engine):
        report.rows += 1
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
