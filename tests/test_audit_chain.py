"""The audit chain is linked off the request path: one line, whatever the writers and chainers."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.core import audit
from bot.core.store.db import make_engine, session_factory
from bot.core.store.models import AuditEvent
from tests.harness import ALICE
from tests.procs import run_cli


def test_many_writers_and_two_replicas_chainers_make_one_unbroken_chain(db_url):
    """8 writer threads commit audit rows while two chainers (two replicas' engines) link them."""
    engines = [make_engine(db_url), make_engine(db_url)]
    chainers = [audit.AuditChainer(session_factory(e).begin, interval=0.01) for e in engines]
    for c in chainers:
        c.start()
    writes = session_factory(engines[0])

    def writer(n: int) -> None:
        for i in range(25):
            with writes.begin() as s:
                audit.append(s, actor_id=f"U{n}", action="test.write", outcome="ok", detail=f"{n}/{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in chainers:
        c.stop()
    try:
        report = audit.verify(engines[0])
        assert report.ok, report.problems
        assert report.rows == 200 and report.unchained == 0
        with writes() as s:
            seqs = sorted(s.scalars(select(AuditEvent.seq)))
        assert seqs == list(range(1, 201))  # every row once, no gap, no seq twice
    finally:
        for e in engines:
            e.dispose()


def test_rows_left_unchained_are_reported_when_stale_and_verify_leaves_them_alone(db_url, make_bot):
    """verify and export only read; `taisun audit chain` (or a running bot) links what is waiting."""
    bot = make_bot(db_url, start=False)  # no chainer runs: as if every bot had stopped
    bot.command("lock stg maintenance", user=ALICE)
    fresh = audit.verify(bot.svc.engine)
    assert fresh.ok and fresh.unchained >= 1 and fresh.rows == 0  # seconds old: waiting, not a problem

    with bot.svc.sessions.begin() as s:  # ...two minutes later
        s.execute(
            update(AuditEvent)
            .where(AuditEvent.seq.is_(None))
            .values(ts=datetime.now(UTC) - timedelta(minutes=2))
        )
        # and a row slipped in by whoever can write the table, unchained and backdated
        s.add(AuditEvent(seq=None, ts=datetime.now(UTC) - timedelta(hours=1), actor_id="U0MALLORY",
                         action="deploy.approved", outcome="ok", params={}, prev_hash=None, hash=None))  # fmt: skip
    stale = audit.verify(bot.svc.engine)
    assert not stale.ok and "not chained yet" in stale.problems[0]
    unchained_before = stale.unchained

    result = run_cli(["audit", "verify", "--json"], bot.settings)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["ok"] and report["unchained"] == unchained_before
    assert any("not chained yet" in p for p in report["problems"])
    export = run_cli(["audit", "export"], bot.settings)
    exported = [json.loads(line) for line in export.stdout.splitlines()]
    assert export.returncode == 0 and "not chained yet" in export.stderr
    assert [r["action"] for r in exported if r["seq"] is None][-1] == "deploy.approved"  # shown, unchained
    assert audit.verify(bot.svc.engine).unchained == unchained_before  # verify and export wrote nothing
    with bot.svc.sessions() as s:
        assert s.scalar(select(audit.AuditHead.seq)) == 0

    chained = run_cli(["audit", "chain"], bot.settings)
    assert chained.returncode == 0 and f"chained {unchained_before} row(s)" in chained.stdout
    after = audit.verify(bot.svc.engine)
    assert after.ok and after.unchained == 0 and after.rows == unchained_before


def test_sqlite_writers_queue_in_the_process_and_a_failed_transaction_lets_the_next_one_in(tmp_path):
    """SQLite's single writer: threads queue on a lock of the process; an error must release it."""
    import pytest

    from bot.core.store.db import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    writes = session_factory(engine)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), writes.begin() as s:  # fails mid-transaction: rolled back
        audit.append(s, actor_id="U1", action="test.fail", outcome="error")
        raise Boom
    with pytest.raises(Exception), writes.begin() as s:  # fails at the database (NOT NULL)
        audit.append(s, actor_id=None, action="test.null", outcome="error")  # type: ignore[arg-type]

    def writer(n: int) -> None:
        for i in range(20):
            with writes.begin() as s:
                audit.append(s, actor_id=f"U{n}", action="test.write", outcome="ok", detail=str(i))

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)  # nobody is left waiting for a lock never released
    assert audit.chain_all(writes.begin) == 160
    assert audit.verify(engine).ok
    engine.dispose()
