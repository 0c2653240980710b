"""What the deploys capability shows: the status of each environment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.blocks import Block, context, section
from bot.core.i18n import t
from bot.core.mrkdwn import slack_time


def status_blocks(rows: list[dict[str, Any]], lang: str = "en") -> list[Block]:
    """rows: name, branch, url, health (text), healthy (bool|None), version, lock (text|None), latency_ms."""
    blocks: list[Block] = [section(t("status.title", lang))]
    for r in rows:
        icon = {True: "🟢", False: "🔴", None: "⚪"}[r.get("healthy")]
        lines = [
            t(
                "status.head",
                lang,
                icon=icon,
                env=r["name"],
                branch=r.get("branch") or "—",
                url=r.get("url") or t("status.no_url", lang),
            ),
            t("status.line", lang, health=r.get("health", "—"), version=r.get("version") or "—"),
        ]
        if r.get("lock"):
            lines.append(f"🔒 {r['lock']}")
        if r.get("last_deploy"):
            lines.append(t("status.last_deploy", lang, what=r["last_deploy"]))
        if r.get("last_simulation"):  # never counted as a deploy: said apart, after the real one
            lines.append(t("status.last_simulation", lang, what=r["last_simulation"]))
        blocks.append(section("\n".join(lines)))
    blocks.append(context(t("status.checked", lang, time=slack_time(datetime.now(UTC)))))
    return blocks
