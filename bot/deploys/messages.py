"""What the deploys capability shows: the status of each environment, and the deploy form."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.core.blocks import Action, Block, context, section, sections
from bot.core.i18n import t
from bot.core.mrkdwn import Mrkdwn, escape, is_user_id, link, mention, slack_time
from bot.core.states import JobState
from bot.core.store.models import Job
from bot.deploys.timeline import github_facts, is_outside, origin_of


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
    """A finished deploy or rollback on a status line: version, who, when (and how, when it was
    started on GitHub)."""
    if is_outside(job):
        return t(
            "timeline.status_deploy", lang, version=job.params.get("version", ""), user=started_by(job, lang),
            how=how_started(job, lang), time=slack_time(job.finished_at),
        )  # fmt: skip
    return t(
        "status.deploy", lang, version=job.params.get("version", ""), user=mention(job.requested_by),
        time=slack_time(job.finished_at),
    )  # fmt: skip


def started_by(job: Job, lang: str = "en") -> Mrkdwn:
    """Who started a deploy: a Slack mention, or for one started on GitHub the login (and the Slack
    user github.users maps it to)."""
    if not is_outside(job):
        return mention(job.requested_by)
    login = job.requested_by_name or str(github_facts(job).get("actor") or "") or "GitHub"
    if is_user_id(job.requested_by):
        return t("timeline.who_mapped", lang, user=mention(job.requested_by), login=login)
    return t("timeline.who", lang, login=login)


def how_started(job: Job, lang: str = "en") -> Mrkdwn:
    """How a deploy was started: from Slack, a push to a branch, a pushed tag, `gh workflow run`, ..."""
    origin, gh = origin_of(job), github_facts(job)
    ref = str(gh.get("ref") or "")
    if origin == "slack":
        return t("timeline.how.slack", lang)
    if origin in ("push", "tag", "workflow_dispatch", "deployment"):
        return t(f"timeline.how.{origin}", lang, ref=ref or "?")
    return t("timeline.how.other", lang, event=origin)


def run_link(job: Job, lang: str = "en") -> Mrkdwn:
    """The deploy's workflow run as a link ("run #123"), or nothing when it has none."""
    gh = github_facts(job)
    url = str(gh.get("run_url") or (job.progress or {}).get("run_url") or "")
    if not url:
        return Mrkdwn("")
    number = gh.get("run_number") or gh.get("run_id") or (job.progress or {}).get("run_id") or ""
    return link(url, t("timeline.run", lang, number=number))


def outside_facts(job: Job, lang: str = "en") -> Mrkdwn:
    """The card's line for a deploy started on GitHub: how it started and its run."""
    bits = [how_started(job, lang)]
    run = run_link(job, lang)
    if run:
        bits.append(run)
    return Mrkdwn(" · ").join(bits)


def _verdict(job: Job, lang: str) -> Mrkdwn:
    progress = job.progress or {}
    if job.state == JobState.SIMULATED or job.params.get("simulated"):
        return t("deploys.simulated", lang)
    if job.state in JobState.ACTIVE:
        return t("deploys.pending", lang)
    verified = progress.get("verified")
    if verified is None:
        verified = job.state == JobState.SUCCEEDED  # rows from before the verdict was kept
    text = t("deploys.verified" if verified else "deploys.not_verified", lang)
    if progress.get("smoke") == "failed":
        text = Mrkdwn(" · ").join([text, t("deploys.smoke_failed", lang)])
    elif progress.get("smoke") == "passed":
        text = Mrkdwn(" · ").join([text, t("deploys.smoke_passed", lang)])
    return text


def deploys_blocks(environment: str, jobs: list[Job], state_label: Any, lang: str = "en") -> list[Block]:
    """`/taisun deploys <env>`: the environment's timeline, newest first, whoever started each deploy."""
    title = t("deploys.title", lang, env=environment)
    if not jobs:
        return [section(title), context(t("deploys.none", lang, env=environment))]
    lines = []
    for job in jobs:
        run = run_link(job, lang)
        lines.append(
            t(
                "deploys.line", lang, time=slack_time(job.finished_at or job.started_at or job.created_at),
                op=t(f"deploys.op.{job.operation}", lang), version=escape(str(job.params.get("version") or "?")),
                user=started_by(job, lang), how=how_started(job, lang), state=state_label(job.state, lang, job.dry_run),
                verdict=_verdict(job, lang), run=Mrkdwn(" · ") + run if run else "",
            )
        )  # fmt: skip
    return [
        section(title),
        *sections(lines),
        context(t("deploys.footer", lang, n=len(jobs), env=environment)),
    ]
