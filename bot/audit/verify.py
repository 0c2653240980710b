"""`taisun audit verify`: check the hash chain against every anchor that can be read, and say what
was found, for a person (intact / TAMPERED and each problem) or for a script (--json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from bot.audit import anchors as anchor_module
from bot.core import audit
from bot.core.config import AuditAnchorConfig, ConfigError


def verify_and_report(
    engine: Any,
    key: Any,
    where: AuditAnchorConfig,
    *,
    anchors: Sequence[str] = (),
    anchor_files: Sequence[str] = (),
    s3: bool = True,
    json_output: bool = False,
) -> int:
    """Exit code 0 when the log is intact; the report on stdout (problems on stderr)."""
    found: list[anchor_module.Anchor] = []
    unreadable: list[str] = []
    try:
        found += [anchor_module.parse_anchor(a) for a in anchors]
        for path in anchor_files:
            found += anchor_module.read_anchor_file(path)
    except anchor_module.AnchorError as e:
        raise ConfigError(str(e)) from None
    if where.s3_bucket and s3:  # the newest anchors the bot wrote to S3
        try:
            found += anchor_module.S3Anchors(where.s3_bucket, where.s3_prefix).newest()
        except anchor_module.AnchorError as e:
            unreadable.append(str(e))
    report = audit.verify(engine, key, found)
    report.problems += unreadable
    if json_output:
        print(json.dumps({"ok": report.ok, "rows": report.rows, "keyed": report.keyed,
                          "unchained": report.unchained, "anchors_checked": report.anchors_checked,
                          "problems": report.problems, "notes": report.notes}))  # fmt: skip
        return 0 if report.ok else 1
    if report.ok:
        kind = f"{report.keyed} keyed (HMAC-SHA256)" if report.keyed else "none keyed"
        print(f"audit log intact: {report.rows} rows ({kind}), hash chain unbroken, "
              f"{report.anchors_checked} anchor(s) matched")  # fmt: skip
        if report.unchained:
            print(f"  {report.unchained} row(s) written in the last minute are not chained yet")
    else:
        print(f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.rows} rows", file=sys.stderr)
        for p in report.problems:
            print(f"  - {p}", file=sys.stderr)
    for note in report.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0 if report.ok else 1
