"""Modals: the deploy form."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_bolt.request import BoltRequest
from sqlalchemy.exc import SQLAlchemyError

from bot.core import blocks
from bot.core.audit import AuditWriteFailed
from bot.core.blocks import Action
from bot.core.i18n import t, user_message
from bot.core.locks import EnvironmentLocked
from bot.core.mrkdwn import to_plain
from bot.core.ops import OpError, Request
from bot.core.policy import NotAllowed
from bot.core.services import Services
from handlers.commands import too_late

if TYPE_CHECKING:
    from handlers.context import Invocation

log = logging.getLogger(__name__)

DRY_RUN = "dry_run"  # the value of the form's "Dry run" checkbox


def deploy_modal(
    svc: Services,
    channel_id: str,
    tags: list[str] | None,
    note: str = "",
    lang: str = "en",
    dry_run: bool = False,
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
    dry_run = bool(inv.cmd.args.get("dry_run"))  # `/taisun deploy --dry-run` ticks the box
    resp = inv.client.views_open(
        trigger_id=inv.trigger_id,
        view=deploy_modal(svc, inv.channel_id, None, t("modal.deploy.loading", lang), lang, dry_run),
    )
    view_id = resp["view"]["id"]

    def fill() -> None:
        from bot.deploys.service import latest_tag_names

        try:
            tags = latest_tag_names(svc)
            note = "" if tags else t("modal.deploy.no_tags", lang)
            view = deploy_modal(svc, inv.channel_id, tags, note, lang, dry_run)
        except Exception as e:
            log.warning("could not list tags for the deploy form", extra={"error": repr(e)})
            note = t("modal.deploy.tags_failed", lang, error=e)
            view = deploy_modal(svc, inv.channel_id, None, note, lang, dry_run)
        inv.client.views_update(view_id=view_id, view=view)

    svc.later(fill)


def _selected(values: dict[str, Any], block: str, action: str) -> dict[str, Any]:
    return values.get(block, {}).get(action) or {}


def register(app: App, svc: Services) -> None:
    @app.view(Action.REJECT_MODAL)
    def submit_reject(ack: Ack, body: dict, view: dict, request: BoltRequest) -> None:
        """The Reject form: the job is rejected with the reason typed, or the form says what is missing."""
        user = body.get("user") or {}
        user_id, user_name = str(user.get("id", "")), str(user.get("username") or user.get("name") or "")
        lang = svc.lang_for(user_id)
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        channel = str(meta.get("channel") or svc.config.slack.ops_channel)

        def tell(**reply: Any) -> None:
            """A private note in the card's channel (a form submission has no response_url)."""
            svc.slack.chat_postEphemeral(
                channel=channel, user=user_id, text=reply.get("text", ""), blocks=reply.get("blocks")
            )

        if too_late(svc, request, ack, tell, lang, what="reject-form"):
            return
        values = (view.get("state") or {}).get("values") or {}
        reason = str(_selected(values, "reason", Action.REJECT_REASON).get("value") or "")
        try:
            job = svc.jobs.reject(str(meta.get("job") or ""), user_id, user_name, reason=reason)
        except (NotAllowed, OpError, AuditWriteFailed) as e:
            ack(response_action="errors", errors={"reason": to_plain(user_message(e, lang))[:150]})
            return
        except SQLAlchemyError:
            log.exception("database error while handling the reject form")
            ack(response_action="errors", errors={"reason": to_plain(t("reply.db_down", lang))[:150]})
            return
        ack()
        text = t("reply.rejected", lang, what=svc.describe(job, lang), job=job.id[:8])
        svc.later(lambda: tell(**blocks.message(text)))

    @app.view(Action.DEPLOY_MODAL)
    def submit_deploy(ack: Ack, body: dict, view: dict, request: BoltRequest) -> None:
        """Check the form strictly, then request the deploy as `/taisun deploy` would."""
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
        env_name = str(
            (_selected(values, "env", Action.DEPLOY_ENV).get("selected_option") or {}).get("value", "")
        )
        version_el = _selected(values, "version", Action.DEPLOY_VERSION)
        typed = (version_el.get("selected_option") or {}).get("value") or version_el.get("value") or ""
        version = str(typed).strip()
        ticked = _selected(values, "options", Action.DEPLOY_OPTIONS).get("selected_options") or []
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
        try:
            job = svc.jobs.request(req)
        except (NotAllowed, EnvironmentLocked, OpError, AuditWriteFailed) as e:
            ack(response_action="errors", errors={"version": to_plain(user_message(e, lang))[:150]})
            return
        except SQLAlchemyError:
            log.exception("database error while handling the deploy form")
            ack(response_action="errors", errors={"version": to_plain(t("reply.db_down", lang))[:150]})
            return
        ack()
        key = "reply.checking_form_dry" if dry_run else "reply.checking_form"
        text = t(key, lang, what=svc.describe(job, lang), job=job.id[:8])
        svc.later(lambda: tell(**blocks.message(text)))
