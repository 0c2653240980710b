"""The audit log: append-only and hash-chained, so an edited, inserted or deleted row shows.

A row is written in the transaction of the change it records, so neither exists without the
other. It is written *unchained* (no seq, prev_hash or hash), and the chainer links new rows into
the single chain moments later, in batches, one chainer at a time across all replicas. No request
waits on the chain's head, which used to be one lock every audited write in every process took
turns on (BENCHMARKS.md). The price: a row is tamper-evident from the moment it is chained (well
under a second after its commit when a bot runs), not from its commit.

With TAISUN_AUDIT_KEY set, each row's hash is an HMAC-SHA256 under that key, which never enters the
database: someone who can write the database but does not hold the key cannot edit a row and
recompute the chain. Rows chained before the key existed keep their SHA-256. Anchors
(bot/audit/anchors.py) write the head outside the database, so deleting the newest rows shows too.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import hmac
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Table,
    and_,
    bindparam,
    cast,
    event,
    func,
    literal,
    select,
)
from sqlalchemy import insert as sa_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.core.i18n import Msg, msg, render_plain
from bot.core.logs import redact, redact_obj, register_secret
from bot.core.mrkdwn import Mrkdwn, to_plain
from bot.core.replies import Refusal
from bot.core.store.hot import HotStatement
from bot.core.store.models import AuditEvent, AuditHead

if TYPE_CHECKING:
    from bot.core.policy import Attempt, RefusalRecorder

log = logging.getLogger(__name__)


class AnchorError(Exception):
    """An anchor could not be read (bad file, bad --anchor, S3 unreachable)."""


@dataclass(frozen=True)
class Anchor:
    """The chain's head at a moment: row `seq` had this hash (a MAC when keyed)."""

    seq: int
    hash: str
    keyed: bool = False
    key_id: str = ""
    at: datetime | None = None
    where: str = ""

    def describe(self) -> str:
        when = f"at {self.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if self.at else ""
        return " ".join(p for p in (when, f"({self.where})" if self.where else "") if p)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "hash": self.hash, "keyed": self.keyed, "key_id": self.key_id,
            "at": self.at.isoformat() if self.at else None,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any, where: str) -> Anchor:
        try:
            seq, digest = int(data["seq"]), str(data["hash"])
            at = datetime.fromisoformat(data["at"]) if data.get("at") else None
        except (KeyError, TypeError, ValueError) as e:
            raise AnchorError(f"{where}: not an anchor (seq, hash, at): {e}") from None
        if seq < 1 or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise AnchorError(f"{where}: not an anchor: seq {seq}, hash {digest[:70]!r}")
        return cls(seq, digest, bool(data.get("keyed")), str(data.get("key_id") or ""), at, where)


GENESIS = "0" * 64
CHAIN_BATCH = 500  # rows linked per chainer transaction
STALE_UNCHAINED = timedelta(minutes=1)  # verify calls older unchained rows a problem
EXPORT_FIELDS = (
    "seq", "ts", "actor_id", "actor_name", "action", "environment", "channel",
    "params", "outcome", "detail", "detail_msg", "job_id", "prev_hash", "hash", "keyed",
)  # fmt: skip
KEY_MIN_CHARS = 32


class AuditWriteFailed(Refusal):
    """The audit row could not be written, so the operation must not run.

    Raised with `key=`, it is shown in each reader's language (bot.core.i18n.user_message).
    """

    def __init__(self, message: str = "", *, key: str = "", **fields: Any):
        from bot.core.i18n import t

        self.key, self.fields = key, fields
        super().__init__(message or t(key, "en", **fields))


def canonical(ev: AuditEvent) -> bytes:
    """The row's content as it is hashed: public, so anyone can check an unkeyed chain."""
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
    if ev.detail_msg is not None:  # only rows that have one: the hashes of older rows stay as they were
        body["detail_msg"] = ev.detail_msg
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


class AuditKey:
    """The chain's secret (TAISUN_AUDIT_KEY). Only its id, a MAC of a fixed text, is ever stored."""

    def __init__(self, secret: str):
        self._secret = secret.encode()
        self.id = hmac.new(self._secret, b"taisun audit key id", hashlib.sha256).hexdigest()[:16]

    def mac(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"AuditKey(id={self.id})"  # never the secret


def audit_key(secret: str) -> AuditKey | None:
    """The key from TAISUN_AUDIT_KEY, or None when it is not set; a short one is refused."""
    if not secret:
        return None
    register_secret(secret)  # never in a log line, whatever prints it
    if len(secret) < KEY_MIN_CHARS:
        from bot.core.config import ConfigError

        raise ConfigError(
            f"TAISUN_AUDIT_KEY has {len(secret)} characters; use {KEY_MIN_CHARS} or more random ones "
            "(e.g. `openssl rand -hex 32`): anyone who guesses it can rewrite the audit log unnoticed."
        )
    return AuditKey(secret)


class AuditKeyMismatch(Exception):
    """The chain is keyed with another key (or this process has none): rows wait for one that has it."""


def compute_hash(ev: AuditEvent, key: AuditKey | None = None) -> str:
    """The row's hash: HMAC-SHA256 under the key for a keyed row, else SHA-256."""
    if getattr(ev, "keyed", False):
        if key is None:
            raise AuditKeyMismatch("a keyed row needs TAISUN_AUDIT_KEY")
        return key.mac(canonical(ev))
    return hashlib.sha256(canonical(ev)).hexdigest()


def append(session: Session, **event: Any) -> AuditEvent:
    """Add one audit row to the caller's transaction; the chainer links it after the commit.

    `event`: _event_row's fields. `detail` is plain text, or a catalogue message (bot.core.i18n.msg):
    then it is kept as such, for each reader's language, and its text in `lang` (the workspace
    language) is the record's `detail`.
    """
    ev = AuditEvent(**_event_row(**event))
    session.add(ev)
    session.info["audit_appended"] = True
    return ev


def _event_row(
    *,
    actor_id: str,
    action: str,
    outcome: str,
    actor_name: str = "",
    environment: str = "",
    channel: str = "",
    params: dict[str, Any] | None = None,
    detail: str | Msg = "",
    job_id: str = "",
    lang: str = "en",
) -> dict[str, Any]:
    """The audit_events row of one event, as append and append_along write it."""
    detail_msg = None
    if isinstance(detail, dict):
        detail_msg = redact_obj(_plain_fields(detail))
        detail = render_plain(detail_msg, lang)
    return {
        "seq": None,
        "ts": datetime.now(UTC),
        "actor_id": actor_id,
        "actor_name": redact(actor_name)[:255],
        "action": action,
        "environment": environment,
        "channel": channel,
        "params": redact_obj(params or {}),
        "outcome": outcome,
        "detail": redact(to_plain(detail) if isinstance(detail, Mrkdwn) else detail),  # plain, for auditors
        "detail_msg": detail_msg,
        "job_id": job_id,
        "prev_hash": None,
        "hash": None,
        "keyed": False,  # linked (and keyed, with TAISUN_AUDIT_KEY) by the chainer
    }


def append_along(
    session: Session,
    along: tuple[Table, dict[str, Any]],
    *,
    within: float | None,
    unless: tuple[ColumnElement[bool], dict[str, Any]] | None = None,
    **event: Any,
) -> bool:
    """Write the row `along` names (a table and its row) and the audit row recording it (`event`:
    _event_row's fields), both or neither, only while `within` seconds have not passed (None: no
    deadline) and, with `unless` (an EXISTS clause, built once, and its parameters), only where it
    finds nothing; True when written.

    On PostgreSQL it is one statement that commits on its own, outside the session's transaction (in
    autocommit, one round trip: no BEGIN, no COMMIT; bot.core.store.hot): WITH along AS (INSERT …
    SELECT … WHERE <deadline>) INSERT INTO audit_events … SELECT … FROM along. The deadline is the
    database's own clock, read after whatever lock the statement waited on: a write that would land
    after its answer was due lands nowhere. Elsewhere (SQLite) the two rows are added to the caller's
    transaction, whose commit the answer deadline guards (bot.core.deadline.install), and the result
    is True.
    """
    row = _event_row(**event)
    table, other = along
    clause, unless_params = unless if unless is not None else (None, {})
    if session.get_bind().dialect.name != "postgresql":
        if clause is not None and session.execute(select(clause), unless_params).scalar():
            return False
        session.execute(sa_insert(table), other)
        session.execute(_INSERT_EVENT, row)
        session.info["audit_appended"] = True
        return True
    both = {
        **row,
        **{_ALONG + k: v for k, v in other.items()},
        _WITHIN: _UNBOUND if within is None else within,
        **unless_params,
    }
    # Sent by psycopg itself on a pooled connection (bot.core.store.hot): the session is not used.
    written = (
        _insert_along(table, tuple(other), tuple(row), clause).first(session.get_bind(), both) is not None
    )
    if written:
        _chain_wanted.set()  # committed: the chainer links it
    return written


_INSERT_EVENT = sa_insert(AuditEvent.__table__)
_ALONG = "along_"  # the other table's parameters, apart from the audit row's (both have `params`...)
_WITHIN = "within_seconds"
_UNBOUND = 365 * 86400.0  # no deadline


@functools.cache
def _insert_along(
    table: Table, columns: tuple[str, ...], event_columns: tuple[str, ...], unless: ColumnElement[bool] | None
) -> HotStatement:
    """The PostgreSQL statement of append_along, built once per shape (values bound at each call).

    PostgreSQL runs a data-modifying WITH once and to completion, and only at the top of a statement;
    the audit row is selected FROM it, so it exists exactly when the other row does. `now()` is when
    the statement's own transaction began, before any lock wait; clock_timestamp() is the time as the
    row is made. Values are CAST to their column's type: in a SELECT list PostgreSQL cannot infer it.
    """
    in_time = func.clock_timestamp() < func.now() + func.make_interval(
        0, 0, 0, 0, 0, 0, bindparam(_WITHIN, type_=Float)
    )
    first = (
        sa_insert(table)
        .from_select(
            list(columns),
            select(
                *(cast(bindparam(_ALONG + c, type_=table.c[c].type), table.c[c].type) for c in columns)
            ).where(in_time if unless is None else and_(in_time, ~unless)),
        )
        .returning(literal(1).label("written"))
        .cte("along")
    )
    events = AuditEvent.__table__
    return HotStatement(
        sa_insert(events)
        .from_select(
            list(event_columns),
            select(
                *(cast(bindparam(c, type_=events.c[c].type), events.c[c].type) for c in event_columns)
            ).select_from(first),
        )
        .returning(events.c.id)
    )


def _plain_fields(message: Msg) -> Msg:
    """A message to store: markup in its fields (a mention, a date) as the plain text the record has."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict) and "key" in value:
            return _plain_fields(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, Mrkdwn):
            return to_plain(value)
        return value if value is None or isinstance(value, str | int | float | bool) else str(value)

    return {"key": message["key"], "fields": {k: plain(v) for k, v in (message.get("fields") or {}).items()}}


def refusal_recorder(begin: Callable[[], Any], lang: str = "en") -> RefusalRecorder:
    """The policy's refusal log: one `<thing>.refused` row per refusal, in its own transaction.

    Returns whether the row was written; when it cannot be (the database is down) the refusal
    still stands, and the log says so.
    """

    def record(
        actor_id: str, attempt: Attempt, environment: str, reason: str | Msg, params: dict[str, Any]
    ) -> bool:
        try:
            with begin() as s:
                append(
                    s, actor_id=actor_id, actor_name=attempt.user_name, action=f"{attempt.thing}.{attempt.event}",
                    environment=environment, channel=attempt.channel, params=params, outcome="refused",
                    detail=reason, job_id=attempt.job_id, lang=lang,
                )  # fmt: skip
            return True
        except SQLAlchemyError:
            log.exception("could not audit a refusal", extra={"action": f"{attempt.thing}.{attempt.event}"})
            return False

    return record


_chain_wanted = threading.Event()


@event.listens_for(Session, "after_commit")
def _wake_chainer(session: Session) -> None:
    if session.info.pop("audit_appended", False):
        _chain_wanted.set()


@event.listens_for(Session, "after_rollback")
def _forget_appended(session: Session) -> None:
    session.info.pop("audit_appended", None)


def chain_pending(begin: Callable[[], Any], limit: int = CHAIN_BATCH, key: AuditKey | None = None) -> int:
    """Link up to `limit` unchained rows, oldest first, into the chain; returns how many.

    `begin()` opens a write transaction (sessionmaker.begin). Locking the head row first makes
    chainers in every process and replica take turns, so the chain stays one line. With a key the
    rows are keyed; the first time, an `audit.keyed` row marks where the keyed chain starts. A
    keyed chain is never continued without its key (AuditKeyMismatch): rows wait for a process
    that has it, and verify reports them when they wait too long.
    """
    with begin() as s:
        head = s.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
        if head.key_id and (key is None or key.id != head.key_id):
            mine = f"key {key.id}" if key else "no TAISUN_AUDIT_KEY"
            raise AuditKeyMismatch(
                f"the audit chain is keyed with key {head.key_id} and this process has {mine}"
            )
        marker = None
        if key is not None and head.key_id is None:
            marker = append(
                s, actor_id="taisun", actor_name="TAISUN", action="audit.keyed", outcome="ok",
                params={"key_id": key.id, "from_seq": head.seq + 1},
                detail=msg("audit.why.keyed"),
            )  # fmt: skip
            s.flush()
            head.key_id = key.id
        rows = list(
            s.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(limit))
        )
        if marker is not None:  # the keyed chain starts with its marker
            rows = [marker, *(r for r in rows if r is not marker)]
        seq, prev = head.seq, head.hash
        for ev in rows:
            seq += 1
            ev.seq, ev.prev_hash, ev.keyed = seq, prev, key is not None
            ev.hash = prev = compute_hash(ev, key)
        head.seq, head.hash = seq, prev
        return len(rows)


def chain_all(begin: Callable[[], Any], key: AuditKey | None = None) -> int:
    """Link every unchained row (the chainer, and `taisun audit chain`)."""
    total = 0
    while n := chain_pending(begin, key=key):
        total += n
    return total


class AuditChainer:
    """A thread that links new audit rows soon after they are committed, and at least every second.

    After chaining it gives the anchorer (bot/audit/anchors.py) its turn to write the head outside the
    database when one is due.
    """

    def __init__(
        self, begin: Callable[[], Any], interval: float = 1.0, key: AuditKey | None = None,
        anchorer: Any = None,
    ):  # fmt: skip
        self.begin = begin
        self.interval = interval
        self.key = key
        self.anchorer = anchorer
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
                chain_all(self.begin, self.key)
                failures = 0
            except AuditKeyMismatch as e:  # a misconfigured replica must not fork the chain
                failures += 1
                log.error("AUDIT ROWS NOT CHAINED: this bot's TAISUN_AUDIT_KEY is not the chain's key",
                          extra={"error": str(e)})  # fmt: skip
                continue
            except Exception as e:  # the database is down or busy: rows wait, nothing is lost
                failures += 1
                log.warning("could not chain audit rows yet", extra={"error": repr(e)[:300]})
                continue
            if self.anchorer is not None:
                self.anchorer.tick()

    def stop(self) -> None:
        self._stop.set()
        _chain_wanted.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            chain_all(self.begin, self.key)  # what this process wrote last
        except Exception as e:
            log.warning("audit rows left unchained at stop; any bot or `taisun audit chain` links them",
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
    keyed: int = 0  # rows whose hash is an HMAC under TAISUN_AUDIT_KEY
    anchors_checked: int = 0
    notes: list[str] = field(default_factory=list)  # what this verification could not detect

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


def _seqs(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}–{last}"


def verify(engine: Engine, key: AuditKey | None = None, anchors: Sequence[Anchor] = ()) -> VerifyReport:
    """Walk the chain and name every row that was edited, inserted or deleted. Reads only.

    Keyed rows are checked with `key` (their MAC cannot be recomputed without it). Each anchor (the
    head as it was written outside the database) must still be in the log, unchanged: an anchor
    beyond the log's end means the newest rows were deleted. Rows not chained yet are counted; one
    left unchained for over a minute is a problem (no bot has been running to chain it, or it was
    inserted past the bot).
    """
    report = VerifyReport()
    with Session(engine) as s:
        report.unchained, oldest = s.execute(
            select(func.count(AuditEvent.id), func.min(AuditEvent.ts)).where(AuditEvent.seq.is_(None))
        ).one()
        head_seq, head_hash, head_key = s.execute(
            select(AuditHead.seq, AuditHead.hash, AuditHead.key_id).where(AuditHead.id == 1)
        ).one()
    if oldest is not None and datetime.now(UTC) - oldest.astimezone(UTC) > STALE_UNCHAINED:
        report.problems.append(
            f"{report.unchained} row(s) written since {oldest.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC are not "
            "chained yet: no bot has been running to chain them, or they were inserted past the bot "
            "(`taisun audit chain` links them)"
        )
    wrong_key = key is not None and head_key is not None and head_key != key.id
    if wrong_key:
        assert key is not None
        report.problems.append(
            f"TAISUN_AUDIT_KEY here (key id {key.id}) is not the key the chain is keyed with ({head_key}): "
            "keyed rows cannot be checked"
        )
    by_seq: dict[int, list[Anchor]] = {}
    for a in anchors:
        by_seq.setdefault(a.seq, []).append(a)
    unchecked: list[int] = []  # keyed rows this process has no (right) key for
    first_keyed = 0
    expected_seq, prev_hash = 1, GENESIS
    for ev in _iter_rows(engine):
        report.rows += 1
        assert ev.seq is not None
        label = f"row seq {ev.seq} (id {ev.id}, {ev.action} by {ev.actor_id})"
        if ev.seq > expected_seq:
            report.problems.append(
                f"{_seqs(expected_seq, ev.seq - 1)} missing: rows were deleted before {label}"
            )
        if ev.keyed:
            report.keyed += 1
            first_keyed = first_keyed or ev.seq
        elif first_keyed:
            report.problems.append(
                f"{label} is not keyed but follows keyed rows: it was written or rewritten by someone without "
                "TAISUN_AUDIT_KEY"
            )
        if ev.keyed and (key is None or wrong_key):
            unchecked.append(ev.seq)
        elif compute_hash(ev, key) != ev.hash:
            what = "MAC (HMAC-SHA256 under TAISUN_AUDIT_KEY)" if ev.keyed else "hash"
            report.problems.append(f"{label} was edited: its content no longer matches its {what}")
        elif ev.prev_hash != prev_hash and ev.seq == expected_seq:
            report.problems.append(
                f"{label} does not chain to the row before it: a row was inserted or replaced"
            )
        for a in by_seq.pop(ev.seq, []):
            if a.hash != ev.hash:
                report.problems.append(
                    f"{label} is not the row anchored {a.describe()}: the log was rewritten at or before "
                    f"seq {ev.seq} (its {'MAC' if ev.keyed else 'hash'} differs from the anchor's)"
                )
            else:
                report.anchors_checked += 1
        expected_seq, prev_hash = ev.seq + 1, ev.hash
    last = expected_seq - 1
    for seq, missing in sorted(by_seq.items()):
        for a in missing:
            if seq > last:
                report.problems.append(
                    f"the log was truncated: the anchor {a.describe()} records seq {seq}, but the log ends at seq "
                    f"{last}; the newest rows were deleted (and audit_head rewritten to match)"
                )
            else:
                report.problems.append(f"row seq {seq}, anchored {a.describe()}, was deleted")
    if head_seq > last:
        report.problems.append(
            f"the newest rows ({_seqs(last + 1, head_seq)}) were deleted: the log ends at seq {last}"
        )
    elif head_seq == last and head_hash != prev_hash:
        report.problems.append(f"row seq {head_seq} is not the row that was written last: it was replaced")
    if unchecked:
        report.problems.append(
            f"{len(unchecked)} keyed row(s) ({_seqs(unchecked[0], unchecked[-1])}) were not checked: "
            + ("TAISUN_AUDIT_KEY is not set here" if key is None else "it is not this chain's key")
        )
    if key is not None and not report.keyed and not wrong_key:
        report.problems.append(
            "TAISUN_AUDIT_KEY is set, but no row is keyed: no bot has chained with it yet (start one, or run "
            "`taisun audit chain`), or the keyed rows were replaced by someone without the key"
        )
    _explain_limits(report, key, first_keyed)
    return report


def _explain_limits(report: VerifyReport, key: AuditKey | None, first_keyed: int) -> None:
    """Say plainly what this verification cannot have detected."""
    if key is None and not report.keyed:
        report.notes.append(
            "the chain is unkeyed (plain SHA-256): anyone who can write the database can edit rows and "
            "recompute the chain, or delete the newest rows and rewrite audit_head, and verify cannot tell. "
            "Set TAISUN_AUDIT_KEY for every bot and here to make it a keyed (HMAC-SHA256) chain."
        )
    elif first_keyed > 1:
        report.notes.append(
            f"{_seqs(1, first_keyed - 1)} were chained before the key was set and carry a plain SHA-256: an "
            "anchor taken after them protects them, the key does not"
        )
    if not report.anchors_checked:
        report.notes.append(
            "no anchor was checked: deleting the newest rows and rewriting audit_head to match goes unnoticed, "
            "and so does any rewrite by someone holding the key. Configure audit.anchor, or pass "
            "--anchor SEQ:MAC from an anchor message."
        )
    elif report.keyed:
        report.notes.append(
            "rows after the newest anchor are protected by the key alone: someone holding the key and "
            "write access to the database can rewrite or delete them"
        )
    else:
        report.notes.append(
            "rows after the newest anchor are not protected: anyone who can write the database can rewrite "
            "or delete them"
        )


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
        "detail_msg": ev.detail_msg,
        "job_id": ev.job_id,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        "keyed": ev.keyed,
    }


def _unchained_rows(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id)))


def spreadsheet_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: one starting with = + - @ (or a tab or CR) would be read
    as a formula (CSV injection), so it gets a leading `'`, which spreadsheets hide."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export(engine: Engine, out: IO[str], fmt: str = "jsonl", progress: Any = None) -> tuple[int, int]:
    """Write every row as JSON lines or CSV, chained rows in seq order, then rows not chained yet.

    Reads only. Returns (rows written, of which not chained yet). JSON lines are verbatim; CSV cells a
    spreadsheet would run as a formula (a display name or reason starting with `=`) get a leading `'`.
    """
    n = 0
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    unchained = _unchained_rows(engine)
    for ev in itertools.chain(_iter_rows(engine), unchained):
        row = redact_obj(_export_row(ev))
        if writer:
            row["params"] = json.dumps(row["params"], ensure_ascii=False, sort_keys=True)
            if row["detail_msg"] is not None:
                row["detail_msg"] = json.dumps(row["detail_msg"], ensure_ascii=False, sort_keys=True)
            writer.writerow({k: spreadsheet_cell(v) for k, v in row.items()})
        else:
            if row["detail_msg"] is None:  # as in the hash: only rows that have one carry it
                del row["detail_msg"]
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
        if progress:
            progress(n)
    return n, len(unchained)
