"""Anchors: the audit chain's head (seq and MAC) written where the database's writers cannot rewrite it.

The chain makes an edited, inserted or deleted row show, but someone who can write the database can
delete the newest rows and rewrite audit_head to match, and someone who also holds the key can
rewrite everything. An anchor fixes the head as it was at a moment: in an S3 object (immutable
under Object Lock), in a message in a Slack channel, or in a file. `taisun audit verify` then names
truncation (an anchor beyond the log's end) and rewrites (the row at an anchored seq differs).

Replicas take turns: the one whose chainer finds an anchor due claims it on the head row's lock.
An anchor is due when `audit.anchor.interval_minutes` have passed and rows other than anchor rows
were added; each written anchor is itself an `audit.anchored` row.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.core import audit
from bot.core.audit import Anchor, AnchorError
from bot.core.config import AuditAnchorConfig
from bot.core.i18n import t
from bot.core.logs import redact
from bot.core.store.models import AuditEvent, AuditHead

log = logging.getLogger(__name__)

ANCHORED = "audit.anchored"  # the audit row each written anchor leaves
NEWEST_S3_ANCHORS = 10  # verify reads this many (the newest protects all rows before it)
_ANCHOR_ARG = re.compile(r"(\d+):([0-9a-f]{64})")


def parse_anchor(text: str, where: str = "--anchor") -> Anchor:
    """SEQ:MAC, as an anchor message shows it."""
    m = _ANCHOR_ARG.fullmatch(text.strip())
    if m is None:
        raise AnchorError(f"{where} {text!r}: expected SEQ:MAC, e.g. 1234:{'0' * 64}")
    return Anchor(int(m[1]), m[2], where=where)


def read_anchor_file(path: str | Path) -> list[Anchor]:
    """Anchors from a file: one a line, JSON (as `taisun audit anchor -o` writes) or SEQ:MAC."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise AnchorError(f"{path}: cannot read the anchor file: {e.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{n}"
        if line.startswith("{"):
            try:
                out.append(Anchor.from_json(json.loads(line), where))
            except ValueError as e:
                raise AnchorError(f"{where}: not valid JSON: {e}") from None
        else:
            out.append(parse_anchor(line, where))
    return out


class S3Anchors:
    """One S3 object per anchor; keys sort by seq. Object Lock on the bucket makes them immutable."""

    def __init__(self, bucket: str, prefix: str):
        self.bucket, self.prefix = bucket, prefix

    def _s3(self) -> Any:
        from bot.backends.aws import client

        return client("s3")

    def write(self, anchor: Anchor) -> str:
        assert anchor.at is not None
        key = f"{self.prefix}{anchor.seq:012d}-{anchor.at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.json"
        self._s3().put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(anchor.to_json()).encode(),
            ContentType="application/json",
        )
        return f"s3://{self.bucket}/{key}"

    def newest(self, n: int = NEWEST_S3_ANCHORS) -> list[Anchor]:
        s3 = self._s3()
        try:
            keys: list[str] = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
            out = []
            for key in sorted(keys)[-n:]:
                body = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                out.append(Anchor.from_json(json.loads(body), f"s3://{self.bucket}/{key}"))
        except AnchorError:
            raise
        except Exception as e:
            raise AnchorError(
                f"cannot read anchors from s3://{self.bucket}/{self.prefix}: {redact(str(e))[:300]}"
            ) from None
        return out


@dataclass
class AnchorResult:
    anchor: Anchor
    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


Sink = tuple[str, Callable[[Anchor], str]]  # (name, write -> where it went)


class Anchorer:
    """Writes the chain's head to each sink when an anchor is due (or when asked), auditing each write."""

    def __init__(self, begin: Callable[[], Any], sinks: list[Sink], interval: timedelta):
        self.begin = begin
        self.sinks = sinks
        self.interval = interval
        self._next_check = 0.0

    def tick(self) -> None:
        """Called by the chainer after each round; looks at the database at most once a minute."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + min(60.0, self.interval.total_seconds())
        try:
            self.anchor()
        except Exception as e:  # the database or a sink is down: the next due check tries again
            log.warning("could not anchor the audit chain", extra={"error": redact(repr(e))[:300]})

    def _claim(self, force: bool) -> Anchor | None:
        """On the head row's lock: the head to anchor, or None when none is due."""
        with self.begin() as s:
            head = s.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
            at = datetime.now(UTC)
            if head.seq == 0:
                return None
            if not force:
                if head.anchored_at is not None and at - head.anchored_at < self.interval:
                    return None
                added = s.scalar(
                    select(func.count(AuditEvent.id)).where(
                        AuditEvent.seq > head.anchored_seq, AuditEvent.action != ANCHORED
                    )
                )
                if not added:
                    return None
            keyed = bool(s.scalar(select(AuditEvent.keyed).where(AuditEvent.seq == head.seq)))
            head.anchored_seq, head.anchored_at = head.seq, at
            return Anchor(head.seq, head.hash, keyed, head.key_id or "", at)

    def anchor(self, force: bool = False) -> AnchorResult | None:
        """Write the head to every sink when due (or now, with force); each write is an audit row."""
        anchor = self._claim(force)
        if anchor is None:
            return None
        result = AnchorResult(anchor)
        for name, write in self.sinks:
            try:
                where, error = write(anchor), ""
                result.written.append(where)
            except Exception as e:
                where, error = name, redact(f"{type(e).__name__}: {e}")[:300]
                result.failed.append(f"{name}: {error}")
                log.error("audit anchor not written", extra={"sink": name, "error": error})
            with self.begin() as s:  # before the next sink is written to
                audit.append(
                    s, actor_id="taisun", actor_name="TAISUN", action=ANCHORED, outcome="error" if error else "ok",
                    params={"seq": anchor.seq, "hash": anchor.hash, "keyed": anchor.keyed, "to": where},
                    detail=error,
                )  # fmt: skip
        return result


def file_sink(path: str | Path) -> Sink:
    """Append each anchor to a file as a JSON line (`taisun audit anchor -o FILE`)."""

    def write(anchor: Anchor) -> str:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(anchor.to_json()) + "\n")
        return str(path)

    return str(path), write


def slack_sink(post: Callable[[str, str], str], channel: str, lang: str) -> Sink:
    """Post each anchor to a channel as a short message; returns where it went."""

    def write(anchor: Anchor) -> str:
        alg = "HMAC-SHA256" if anchor.keyed else "SHA-256"
        ts = post(channel, t("audit.anchor.text", lang, seq=anchor.seq, alg=alg, hash=anchor.hash))
        return f"slack {channel} {ts}"

    return f"slack {channel}", write


def configured_sinks(
    config: AuditAnchorConfig, post: Callable[[str, str], str] | None, lang: str
) -> list[Sink]:
    """The sinks audit.anchor names: S3 and/or a Slack channel (when the bot can post)."""
    sinks: list[Sink] = []
    if config.s3_bucket:
        s3 = S3Anchors(config.s3_bucket, config.s3_prefix)
        sinks.append((f"s3://{config.s3_bucket}/{config.s3_prefix}", s3.write))
    if config.slack_channel and post is not None:
        sinks.append(slack_sink(post, config.slack_channel, lang))
    return sinks
