"""Button clicks. Values carry only ids; everything is re-checked from the database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from slack_bolt import Ack, App, Respond

from bot import audit, blocks, locks
from bot.blocks import Action
from bot.ops.base import Request
from bot.services import Services
from handlers.commands import run_guarded
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
        def _handler(ack: Ack, body: dict, respond: Respond) -> None:
            ack()
            user_id, user_name = _user(body)
            reply = run_guarded(lambda: fn(_value(body), user_id, user_name, body), svc.lang_for(user_id))
            if reply:
                respond(replace_original=False, **reply)

    def approve(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        job = svc.jobs.approve(job_id, user_id, user_name)
        svc.metrics.approved((datetime.now(UTC) - job.created_at).total_seconds())
        return None  # the card itself changes to show who approved

    def reject(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        svc.jobs.reject(job_id, user_id, user_name, reason=f"rejected by {user_name or user_id}")
        return None

    def cancel(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        svc.jobs.cancel(job_id, user_id, user_name)
        return None

    def rollback(job_id: str, user_id: str, user_name: str, body: dict) -> Reply:
        failed = svc.jobs.get(job_id)
        env = svc.config.environments.get(failed.environment)
        target = str(failed.progress.get("rollback_to", ""))
        channel = str((body.get("channel") or {}).get("id") or failed.channel)
        job = svc.jobs.request(
            Request(
                "rollback",
                env,
                {"version": target, "after_failed_job": failed.id[:8]},
                user_id,
                user_name,
                channel,
            )
        )
        return blocks.message(
            f"Rolling back {failed.environment} to {target or 'the previous version'}… job `{job.id[:8]}`"
        )

    def take_over(env_name: str, user_id: str, user_name: str, body: dict) -> Reply:
        env = svc.config.environments.get(env_name)
        if env is None:
            return blocks.error("That environment is no longer configured.")
        svc.policy.require(user_id, "approver", env, "take over a lock")
        minutes = svc.config.defaults.lock_expiry_minutes
        with svc.sessions.begin() as s:
            held = locks.current(s, env.name)
            if held is not None and held.job_id:
                return blocks.error("A running job holds that lock now; it is released when the job ends.")
            previous = held.holder_id if held else ""
            reason = f"taken over from <@{previous}>" if previous else "locked by hand"
            if held is not None:
                locks.release(s, env.name)
                s.flush()
            locks.acquire(s, env.name, holder_id=user_id, holder_name=user_name, reason=reason,
                          expires_at=datetime.now(UTC) + timedelta(minutes=minutes))  # fmt: skip
            audit.append(s, actor_id=user_id, actor_name=user_name, action="lock.taken_over", environment=env.name,
                         params={"previous_holder": previous}, outcome="ok")  # fmt: skip
        if previous:
            svc.later(
                lambda: svc.slack.chat_postMessage(
                    channel=previous, text=f"<@{user_id}> took over your lock on {env.name}."
                )
            )
        return blocks.message(f"🔒 You now hold the lock on {env.name}.")

    on_click(Action.APPROVE, approve)
    on_click(Action.REJECT, reject)
    on_click(Action.CANCEL, cancel)
    on_click(Action.ROLLBACK, rollback)
    on_click(Action.LOCK_TAKEOVER, take_over)
