"""Modals: the deploy form."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot import blocks
from bot.blocks import Action
from bot.commands import UsageError, parse
from bot.i18n import t
from bot.mrkdwn import to_plain
from bot.services import Services
from handlers.commands import run_guarded

if TYPE_CHECKING:
    from handlers.context import Invocation

log = logging.getLogger(__name__)


def deploy_modal(
    svc: Services, channel_id: str, tags: list[str] | None, note: str = "", lang: str = "en"
) -> dict[str, Any]:
    envs = [{"text": {"type": "plain_text", "text": name}, "value": name} for name in svc.config.environments]
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
    view_blocks = [
        {"type": "input", "block_id": "env", "label": {"type": "plain_text", "text": t("modal.deploy.env", lang)},
         "element": {"type": "static_select", "action_id": Action.DEPLOY_ENV, "options": envs}},
        {"type": "input", "block_id": "version", "label": {"type": "plain_text", "text": t("modal.deploy.version", lang)},
         "element": version},
    ]  # fmt: skip
    if note:
        view_blocks.append(blocks.context(note))
    return {
        "type": "modal",
        "callback_id": Action.DEPLOY_MODAL,
        "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": t("modal.deploy.title", lang)},
        "submit": {"type": "plain_text", "text": t("modal.deploy.submit", lang)},
        "close": {"type": "plain_text", "text": t("card.cancel", lang)},
        "blocks": view_blocks,
    }


def open_deploy_modal(inv: Invocation) -> None:
    """Open at once (trigger_id lives 3 s), then fill the version list from GitHub."""
    svc, lang = inv.svc, inv.lang
    resp = inv.client.views_open(
        trigger_id=inv.trigger_id,
        view=deploy_modal(svc, inv.channel_id, None, t("modal.deploy.loading", lang), lang),
    )
    view_id = resp["view"]["id"]

    def fill() -> None:
        from bot.ops.deploy import latest_tag_names

        try:
            tags = latest_tag_names(svc)
            view = deploy_modal(
                svc, inv.channel_id, tags, "" if tags else t("modal.deploy.no_tags", lang), lang
            )
        except Exception as e:
            log.warning("could not list tags for the deploy form", extra={"error": repr(e)})
            view = deploy_modal(svc, inv.channel_id, None, t("modal.deploy.tags_failed", lang, error=e), lang)
        inv.client.views_update(view_id=view_id, view=view)

    svc.later(fill)


def register(app: App, svc: Services) -> None:
    @app.view(Action.DEPLOY_MODAL)
    def submit_deploy(ack: Ack, body: dict, view: dict, client: Any) -> None:
        values = view.get("state", {}).get("values", {})
        env = ((values.get("env", {}).get(Action.DEPLOY_ENV) or {}).get("selected_option") or {}).get(
            "value", ""
        )
        version_el = values.get("version", {}).get(Action.DEPLOY_VERSION) or {}
        version = (version_el.get("selected_option") or {}).get("value") or version_el.get("value") or ""
        user = body.get("user", {})
        lang = svc.lang_for(str(user.get("id", "")))
        try:
            cmd = parse(f"deploy {env} {version}", svc.config)
        except UsageError as e:
            ack(response_action="errors", errors={"version": to_plain(e.message(lang))[:150]})
            return
        channel = view.get("private_metadata") or svc.config.slack.ops_channel
        from bot.ops.base import Request

        req = Request(
            "deploy",
            cmd.env,
            {"version": cmd.args["version"]},
            user.get("id", ""),
            user.get("username", ""),
            channel,
        )

        def request() -> None:
            svc.jobs.request(req)

        reply = run_guarded(request, lang)
        if reply:
            ack(
                response_action="errors",
                errors={"version": to_plain(reply["text"]).removeprefix(":warning: ")[:150]},
            )
            return
        ack()
