"""What the deploys capability shows: the status of each environment, and the deploy form."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.core.blocks import Action, Block, context, section
from bot.core.i18n import t
from bot.core.mrkdwn import mention, slack_time
from bot.core.store.models import Job


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
        if r.get("slo"):  # the environment's SLOs (bot.observability), when it has a Prometheus
            lines.append(r["slo"])
        blocks.append(section("\n".join(lines)))
    blocks.append(context(t("status.checked", lang, time=slack_time(datetime.now(UTC)))))
    return blocks


DRY_RUN = "dry_run"  # the value of the deploy form's "Dry run" checkbox


def deploy_modal(
    environments: Iterable[str],
    channel_id: str,
    tags: list[str] | None,
    note: str = "",
    lang: str = "en",
    dry_run: bool = False,
) -> dict[str, Any]:
    envs = [{"text": {"type": "plain_text", "text": name}, "value": name} for name in environments]
    if tags:
        version: dict[str, Any] = {
            "type": "static_select",
            "action_id": Action.DEPLOY_VERSION,
            "options": [{"text": {"type": "plain_text", "text": t}, "value": t} for t in tags[:100]],
            "initial_option": {"text": {"type": "plain_text", "text": tags[0]}, "value": tags[0]},
        }
    else:
        version = {
            "type": "plain_text_input",
            "action_id": Action.DEPLOY_VERSION,
            "placeholder": {"type": "plain_text", "text": "v1.2.3"},
        }
    # Flags are form controls, never text typed into the version field.
    dry = {"text": {"type": "plain_text", "text": t("modal.deploy.dry_run", lang)}, "value": DRY_RUN}
    options: dict[str, Any] = {"type": "checkboxes", "action_id": Action.DEPLOY_OPTIONS, "options": [dry]}
    if dry_run:
        options["initial_options"] = [dry]
    view_blocks = [
        {"type": "input", "block_id": "env", "label": {"type": "plain_text", "text": t("modal.deploy.env", lang)},
         "element": {"type": "static_select", "action_id": Action.DEPLOY_ENV, "options": envs}},
        {"type": "input", "block_id": "version", "label": {"type": "plain_text", "text": t("modal.deploy.version", lang)},
         "element": version},
        {"type": "input", "block_id": "options", "optional": True,
         "label": {"type": "plain_text", "text": t("modal.deploy.options", lang)}, "element": options},
    ]  # fmt: skip
    if note:
        view_blocks.append(context(note))
    return {
        "type": "modal",
        "callback_id": Action.DEPLOY_MODAL,
        "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": t("modal.deploy.title", lang)},
        "submit": {"type": "plain_text", "text": t("modal.deploy.submit", lang)},
        "close": {"type": "plain_text", "text": t("card.cancel", lang)},
        "blocks": view_blocks,
    }


def deploy_line(job: Job, lang: str) -> str:
    """A finished deploy or rollback on a status line: version, who, when."""
    return t(
        "status.deploy", lang, version=job.params.get("version", ""), user=mention(job.requested_by),
        time=slack_time(job.finished_at),
    )  # fmt: skip
