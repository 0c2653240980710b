"""Button clicks. Values carry only ids; everything is re-checked from the database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from slack_bolt import Ack, App, Respond
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core import audit, blocks, locks
from bot.core.blocks import Action
from bot.core.i18n import msg, t
from bot.core.jobs import audit_refusal
from bot.core.mrkdwn import to_plain
from bot.core.ops import Request
from bot.core.policy import Attempt
from bot.core.services import Services
from bot.slack.messages import reject_modal
from handlers.commands import run_guarded, too_late
from handlers.context import Reply

log = logging.getLogger(__name__)


def _user(body: dict) -> tuple[str, str]:
    user = body.get("user") or {}
    return str(user.get("id", "")), str(user.get("username") or user.get("name") or "")


def _value(body: dict) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value") or "")[:100]


def register(app: App, svc: Services) -> None:
    def on_click(action_id: str, fn) -> None:  # type: ignore[no-untyped-def]
        @app.action(action_id)
        def _handler(ack: Ack, body: dict, respond: Respond, request: BoltRequest) -> None:
            user_id, user_name = _user(body)
            if too_late(svc, request, ack, respond, svc.lang_for(user_id), what=action_id):
                return
            ack()
            reply = run_guarded(lambda: fn(_value(body), user_id, user_name, body), svc.lang_for(user_id))
            if reply:
                respond(replace_original=False, **reply)

    def approve(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        job = svc.jobs.approve(job_id, user_id, user_name)
        svc.metrics.approved((datetime.now(UTC) - job.created_at).total_seconds())
        return None  # the card itself changes to show who approved

    @app.action(Action.REJECT)
    def reject(ack: Ack, body: dict, client: WebClient, respond: Respond, request: BoltRequest) -> None:
        """Reject asks why in a small form (the requester's own Reject withdraws at once)."""
        user_id, user_name = _user(body)
        lang = svc.lang_for(user_id)
        if too_late(svc, request, ack, respond, lang, what=Action.REJECT):
            return
        ack()

        def ask_why() -> Reply:
            job = svc.jobs.may_reject(_value(body), user_id, user_name)
            if user_id == job.requested_by:
                job = svc.jobs.reject(job.id, user_id, user_name)
                return blocks.message(
                    t("reply.withdrawn", lang, what=svc.describe(job, lang), job=job.id[:8])
                )
            channel = str((body.get("channel") or {}).get("id") or job.channel)
            view = reject_modal(
                job, svc.describe(job, lang), channel, svc.jobs.reason_required(job), lang
            )
            client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
            return None

        reply = run_guarded(ask_why, lang)
        if reply:
            respond(replace_original=False, **reply)

    def cancel(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        svc.jobs.cancel(job_id, user_id, user_name)
        return None

    def rollback(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        """The failed deploy card's button: back to the version its dialog named, or a refusal
        when the environment has moved on since (the check is Rollback.check_request's)."""
        failed = svc.jobs.get(job_id)
        env = svc.config.environments.get(failed.environment)
        channel = str((body.get("channel") or {}).get("id") or failed.channel)
        job = svc.jobs.request(
            Request("rollback", env, {"after_failed_job": failed.id}, user_id, user_name, channel)
        )
        lang = svc.lang_for(user_id)
        return blocks.message(
            t(
                "reply.rolling_back",
                lang,
                env=failed.environment,
                target=job.params["version"],
                job=job.id[:8],
            )
        )

    def take_over(env_name: str, user_id: str, user_name: str, body: dict) -> Reply:
        env = svc.config.environments.get(env_name)
        lang, ws = svc.lang_for(user_id), svc.config.language
        if env is None:
            return blocks.error(t("lock.env_gone", lang))
        channel = body.get("channel")
        attempt = Attempt(
            "lock", user_name, channel.get("id", "") if isinstance(channel, dict) else "", {"take_over": True}
        )
        svc.policy.require(user_id, "approver", env, msg("act.take_over"), attempt)
        minutes = svc.config.defaults.lock_expiry_minutes
        kept: locks.LockInfo | None = None  # the lock a rollback left, when this person may not release it
        previous = ""
        with svc.sessions.begin() as s:
            held = locks.current(s, env.name)
            if held is not None and held.job_id:
                return blocks.error(t("lock.job_holds_now", lang))
            info = locks.LockInfo.of(held) if held is not None else None
            # The lock a rollback left is not taken over: only the one who rolled back or an admin
            # releases it (an old button must not get around that).
            if (
                info is not None
                and info.holder_id == locks.SYSTEM_HOLDER
                and not info.may_release(user_id, svc.policy.has_role(user_id, "admin", env))
            ):
                kept = info
            else:
                previous = held.holder_id if held else ""
                # A lock's reason is plain text (usually what a person typed); it is escaped where shown.
                taken = (
                    t("lock.taken_from", ws, user=blocks.mention(previous))
                    if previous
                    else t("lock.by_hand", ws)
                )
                reason = to_plain(taken, names=svc.user_name)
                if held is not None:
                    locks.release(s, env.name)
                    s.flush()
                locks.acquire(s, env.name, holder_id=user_id, holder_name=user_name, reason=reason,
                              expires_at=datetime.now(UTC) + timedelta(minutes=minutes))  # fmt: skip
                audit.append(s, actor_id=user_id, actor_name=user_name, action="lock.taken_over",
                             environment=env.name, params={"previous_holder": previous}, outcome="ok")  # fmt: skip
        if kept is not None:
            audit_refusal(svc, Request("lock", env, {"take_over": True}, user_id, user_name, attempt.channel),
                          kept.not_yours(ws))  # fmt: skip
            return blocks.error(kept.not_yours(lang))
        if previous:
            svc.later(
                lambda: svc.slack.chat_postMessage(
                    channel=previous,
                    text=t(
                        "lock.taken_dm", svc.lang_for(previous), user=blocks.mention(user_id), env=env.name
                    ),
                )
            )
        return blocks.message(t("lock.you_hold", lang, env=env.name))

    on_click(Action.APPROVE, approve)
    on_click(Action.CANCEL, cancel)
    on_click(Action.ROLLBACK, rollback)
    on_click(Action.LOCK_TAKEOVER, take_over)
