"""What the operations capability shows beyond the job card: the backup list and the nightly report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.backends.backup import BackupInfo
from bot.core import blocks, i18n
from bot.core.i18n import t
from bot.core.ops import human_bytes
from bot.core.replies import Reply
from bot.core.store.models import Job


def backup_list_cannot(where: str, problem: str, lang: str) -> Reply:
    """The list cannot be read here (no AWS credentials): where it would be, and why not."""
    return Reply(
        t("op.backup.list.cannot", lang, where=where, problem=problem),
        [blocks.section(t("op.backup.list.cannot_long", lang, where=where, problem=problem))],
    )


def backup_list_empty(where: str, lang: str) -> Reply:
    return Reply(
        t("op.backup.list.empty", lang, where=where),
        [blocks.section(t("op.backup.list.empty_long", lang, where=where))],
    )


def backup_list(items: list[BackupInfo], where: str, retention_days: int, lang: str) -> Reply:
    """`/taisun backup list`: the database backups, newest first, with age, size and checksum."""
    now = datetime.now(UTC)
    lines = []
    for i in items[:25]:
        age = i18n.coarse_duration((now - i.taken_at).total_seconds(), lang)  # "29 days", not "696h 00m"
        check = f"sha256 `{i.sha256[:12]}…`" if i.sha256 else t("op.backup.list.unfinished", lang)
        lines.append(
            t("op.backup.list.line", lang, id=i.id, time=blocks.slack_time(i.taken_at), age=age,
              size=human_bytes(i.size_bytes), check=check)
        )  # fmt: skip
    more = "\n" + t("op.backup.list.more", lang, n=len(items) - 25) if len(items) > 25 else ""
    return Reply(
        t("op.backup.list.text", lang, n=len(items), where=where),
        [
            blocks.section(t("op.backup.list.title", lang, where=where, days=retention_days)),
            blocks.section(blocks.Mrkdwn("\n").join(lines) + more),
            blocks.context(t("op.backup.list.how", lang)),
        ],
    )


def report_blocks(job: Job, summary: dict[str, Any], lang: str = "en") -> tuple[str, list[dict[str, Any]]]:
    ok = summary["ok"]
    if ok:
        head = t("op.backup.report.ok", lang)
    elif summary["simulated"]:
        head = t("op.backup.report.simulated", lang)
    else:
        head = t("op.backup.report.failed", lang)
    text = f"{head}: {job.result}"
    body = [blocks.section(f"*{head}*\n{job.result}")]
    steps = (job.progress or {}).get("steps") or []
    if steps:
        body.append(
            blocks.section(
                "\n".join(f"{blocks.STEP_ICON.get(s['status'], '•')} {s['text']}" for s in steps)[-3000:]
            )
        )
    body.append(blocks.context(f"`taisun backup run` · job `{job.id[:8]}`"))
    return text, body
