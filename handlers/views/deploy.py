"""The deploy form: opened by `/taisun deploy` with no arguments, submitted as a deploy request."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_bolt.request import BoltRequest

from bot.core.blocks import Action
from bot.core.i18n import t
from bot.core.mrkdwn import to_plain
from bot.core.ops import Request
from bot.core.replies import Reply
from bot.deploys.messages import DRY_RUN, deploy_modal
from bot.deploys.service import latest_tag_names
from handlers.common import Invocation, run_guarded, selected, services, too_late

log = logging.getLogger(__name__)


def open_deploy_modal(inv: Invocation) -> None:
    """Open at once (trigger_id lives 3 s), then fill the version list from GitHub."""
    svc, lang = inv.svc, inv.lang
    dry_run = bool(inv.cmd.args.get("dry_run"))  # `/taisun deploy --dry-run` ticks the box
    resp = inv.client.views_open(
        trigger_id=inv.trigger_id,
        view=deploy_modal(
            svc.config.environments, inv.channel_id, None, t("modal.deploy.loading", lang), lang, dry_run
        ),
    )
    view_id = resp["view"]["id"]

    def fill() -> None:
        try:
            tags = latest_tag_names(svc)
            note = "" if tags else t("modal.deploy.no_tags", lang)
            view = deploy_modal(svc.config.environments, inv.channel_id, tags, note, lang, dry_run)
        except Exception as e:
            log.warning("could not list tags for the deploy form", extra={"error": repr(e)})
            note = t("modal.deploy.tags_failed", lang, error=e)
            view = deploy_modal(svc.config.environments, inv.channel_id, None, note, lang, dry_run)
        inv.client.views_update(view_id=view_id, view=view)

    svc.later(fill)


def submit_deploy(ack: Ack, body: dict, view: dict, request: BoltRequest, context: BoltContext) -> None:
    """Check the form strictly, then request the deploy as `/taisun deploy` would."""
    svc = services(context)
    user = body.get("user") or {}
    user_id = str(user.get("id", ""))
    lang = svc.lang_for(user_id)
    channel = view.get("private_metadata") or svc.config.slack.ops_channel

    def tell(**reply: Any) -> None:
        """A private note in the form's channel (a form submission has no response_url)."""
        svc.slack.chat_postEphemeral(
            channel=channel, user=user_id, text=reply.get("text", ""), blocks=reply.get("blocks")
        )

    if too_late(svc, request, ack, tell, lang, what="deploy-form"):
        return
    values = (view.get("state") or {}).get("values") or {}
    env_name = str((selected(values, "env", Action.DEPLOY_ENV).get("selected_option") or {}).get("value", ""))
    version_el = selected(values, "version", Action.DEPLOY_VERSION)
    typed = (version_el.get("selected_option") or {}).get("value") or version_el.get("value") or ""
    version = str(typed).strip()
    ticked = selected(values, "options", Action.DEPLOY_OPTIONS).get("selected_options") or []
    dry_run = any(o.get("value") == DRY_RUN for o in ticked)
    env = svc.config.environments.get(env_name)
    errors: dict[str, str] = {}
    if env is None:
        errors["env"] = t("modal.deploy.pick_env", lang)
    if not re.fullmatch(svc.config.github.tag_pattern, version):
        # One release tag and nothing else: "v1.2.3 --dry-run" typed here is not a dry run.
        errors["version"] = t("modal.deploy.bad_version", lang, text=version[:40])
    if errors:
        ack(response_action="errors", errors={k: to_plain(v)[:150] for k, v in errors.items()})
        return
    req = Request(
        "deploy",
        env,
        {"version": version},
        user_id,
        str(user.get("username") or ""),
        channel,
        dry_run=dry_run,
    )

    def request_deploy() -> Reply:
        job = svc.jobs.request(req)
        key = "reply.checking_form_dry" if dry_run else "reply.checking_form"
        return Reply(t(key, lang, what=svc.describe(job, lang), job=job.id[:8]))

    reply = run_guarded(request_deploy, lang)
    assert reply is not None
    if reply.refused:
        ack(response_action="errors", errors={"version": reply.field_error()})
        return
    ack()
    svc.later(lambda: tell(**reply.payload()))
