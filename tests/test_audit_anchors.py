"""A keyed audit chain, anchored outside the database: what someone with write access to the
database (and perhaps the key) can no longer do unnoticed, on SQLite and PostgreSQL."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, update

from bot.core import audit
from bot.core.store.models import AuditEvent, AuditHead
from tests.backend_fixtures import Bucket, aws, moto_endpoint, s3_bucket  # noqa: F401
from tests.harness import ALICE, BOB, CHANNEL, Bot
from tests.procs import run_cli

KEY = secrets.token_hex(32)


def anchored_to(bucket: str, interval_minutes: float = 60) -> Callable[[dict[str, Any]], None]:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["audit"] = {
            "anchor": {
                "interval_minutes": interval_minutes,
                "s3_bucket": bucket,
                "s3_prefix": "anchors/",
                "slack_channel": CHANNEL,
            }
        }

    return mutate


def some_history(bot: Bot, n: int = 3) -> None:
    for i in range(n):
        bot.command(f"lock stg reason {i}", user=ALICE)
        bot.command("unlock stg", user=ALICE)


def verify(bot: Bot, *args: str, key: str | None = KEY) -> tuple[int, dict[str, Any]]:
    settings = bot.settings.model_copy(update={"taisun_audit_key": key or ""})
    result = run_cli(["audit", "verify", "--json", *args], settings)
    return result.returncode, json.loads(result.stdout)


def cli(bot: Bot, *args: str) -> Any:
    result = run_cli(["audit", *args], bot.settings)
    assert result.returncode == 0, result.stderr
    return result


def anchor_messages(slack) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text for m in slack.channel_messages(CHANNEL) if m.text.startswith("Audit log anchor")]


def rewrite_chain(bot: Bot, from_seq: int, mac: Callable[[bytes], str]) -> None:
    """What someone with write access does after an edit: recompute every hash from `from_seq` on, and the head."""
    with bot.svc.sessions.begin() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq)))
        prev = audit.GENESIS
        for ev in rows:
            if ev.seq >= from_seq:  # type: ignore[operator]
                ev.prev_hash = prev
                ev.hash = mac(audit.canonical(ev))
            prev = ev.hash  # type: ignore[assignment]
        s.execute(update(AuditHead).values(seq=rows[-1].seq, hash=prev))


def public_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def with_the_key(data: bytes) -> str:
    return hmac.new(KEY.encode(), data, hashlib.sha256).hexdigest()


def test_a_running_bot_keys_and_anchors_the_chain_and_verify_passes(
    db_url, make_bot, slack, s3_bucket: Bucket
):
    bot = make_bot(db_url, config_mutate=anchored_to(s3_bucket.name, 0.005), taisun_audit_key=KEY)
    some_history(bot)
    bot.settle()
    # the bot anchors on its own once rows were added: an S3 object and a message in the channel
    slack.wait_for(lambda: anchor_messages(slack), timeout=15)
    listed = s3_bucket.s3.list_objects_v2(Bucket=s3_bucket.name, Prefix="anchors/").get("Contents", [])
    assert listed, "no anchor object in S3"
    message = anchor_messages(slack)[-1]
    assert "HMAC-SHA256" in message and "taisun audit verify --anchor" in message

    code, report = verify(bot)
    assert code == 0 and report["ok"], report["problems"]
    assert report["keyed"] == report["rows"] and report["anchors_checked"] >= 1
    seq_mac = re.search(r"--anchor (\d+:[0-9a-f]{64})", message)[1]  # type: ignore[index]
    code, report = verify(bot, "--no-s3", "--anchor", seq_mac)  # the anchor as the channel saw it
    assert code == 0 and report["anchors_checked"] == 1, report
    with bot.svc.sessions() as s:
        anchored = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.anchored")).all()
        assert {a.params["to"].split()[0].split(":")[0] for a in anchored} >= {
            "s3",
            "slack",
        }  # each write audited
        first = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).first()
        assert first is not None and first.action == "audit.keyed" and first.keyed


def test_deleting_the_newest_rows_and_rewriting_the_head_is_caught_by_the_anchor(
    db_url, make_bot, slack, s3_bucket: Bucket
):
    bot = make_bot(db_url, start=False, config_mutate=anchored_to(s3_bucket.name), taisun_audit_key=KEY)
    some_history(bot)
    cli(bot, "anchor")  # as the bot does every hour
    anchored = int(re.search(r"seq (\d+)", anchor_messages(slack)[-1])[1])  # type: ignore[index]
    some_history(bot, 1)
    cli(bot, "chain")

    keep = anchored - 3
    with bot.svc.sessions.begin() as s:  # someone with write access cuts the log and covers it up
        s.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
        last = s.scalars(select(AuditEvent).where(AuditEvent.seq == keep)).one()
        s.execute(update(AuditHead).values(seq=keep, hash=last.hash))

    code, report = verify(bot, "--no-s3")  # the database alone cannot tell
    assert code == 0 and any("no anchor was checked" in n for n in report["notes"])
    code, report = verify(bot)
    assert code == 1 and not report["ok"]
    assert any(
        "truncated" in p and f"records seq {anchored}" in p and f"ends at seq {keep}" in p
        for p in report["problems"]
    ), report["problems"]


def test_an_edit_with_the_public_sha256_chain_recomputed_fails_on_the_mac(
    db_url, make_bot, s3_bucket: Bucket
):
    bot = make_bot(db_url, start=False, config_mutate=anchored_to(s3_bucket.name), taisun_audit_key=KEY)
    some_history(bot)
    cli(bot, "chain")
    assert verify(bot, "--no-s3")[0] == 0
    with bot.svc.sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(detail="nothing to see"))
    rewrite_chain(bot, 3, public_sha256)

    code, report = verify(bot, "--no-s3")
    assert code == 1
    assert any("row seq 3" in p and "edited" in p and "MAC" in p for p in report["problems"]), report[
        "problems"
    ]

    # marking the rows unkeyed as well does not help: the chain started keyed
    with bot.svc.sessions.begin() as s:
        s.execute(update(AuditEvent).values(keyed=False))
        s.execute(update(AuditHead).values(key_id=None))
    rewrite_chain(bot, 1, public_sha256)
    code, report = verify(bot, "--no-s3")
    assert code == 1 and any("no row is keyed" in p for p in report["problems"]), report["problems"]


def test_older_history_is_safe_even_from_the_key_holder_once_anchored(
    db_url, make_bot, slack, s3_bucket: Bucket
):
    bot = make_bot(db_url, start=False, config_mutate=anchored_to(s3_bucket.name), taisun_audit_key=KEY)
    some_history(bot)
    cli(bot, "anchor")
    with bot.svc.sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor_id=BOB))
    rewrite_chain(bot, 2, with_the_key)  # someone holding the key and write access

    code, report = verify(bot, "--no-s3")  # consistent under the key: only the anchor knows better
    assert code == 0, report["problems"]
    code, report = verify(bot)
    assert code == 1 and any("is not the row anchored" in p for p in report["problems"]), report["problems"]


def test_rows_chained_before_the_key_keep_their_sha256_and_still_verify(db_url, make_bot):
    bot = make_bot(db_url, start=False)
    some_history(bot, 2)
    cli(bot, "chain")  # unkeyed: no key yet
    unkeyed = run_cli(["audit", "verify"], bot.settings)
    assert unkeyed.returncode == 0 and "the chain is unkeyed" in unkeyed.stderr  # said plainly
    check = run_cli(["check", "--json"], bot.settings)
    (row,) = [r for r in json.loads(check.stdout) if r["check"] == "audit"]
    assert "unkeyed" in row["detail"] and "recompute the chain" in row["detail"]

    keyed = make_bot(db_url, start=False, taisun_audit_key=KEY)  # the key is set from now on
    some_history(keyed, 1)
    result = run_cli(["audit", "chain"], keyed.settings)
    assert result.returncode == 0
    code, report = verify(keyed, "--no-s3")
    assert code == 0, report["problems"]
    assert 0 < report["keyed"] < report["rows"]
    assert any("chained before the key was set" in n for n in report["notes"])
    with keyed.svc.sessions() as s:
        marker = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.keyed")).one()
        assert marker.keyed and marker.params["from_seq"] == marker.seq

    code, report = verify(keyed, "--no-s3", key=None)  # without the key nothing keyed can be checked
    assert code == 1 and any("TAISUN_AUDIT_KEY is not set here" in p for p in report["problems"])
    code, report = verify(keyed, "--no-s3", key=secrets.token_hex(32))
    assert code == 1 and any("not the key the chain is keyed with" in p for p in report["problems"])
    # a bot with no key (or another) leaves new rows unchained rather than fork the chain
    some_history(bot, 1)
    result = run_cli(["audit", "chain"], bot.settings)
    assert result.returncode != 0 and "keyed with key" in result.stderr
