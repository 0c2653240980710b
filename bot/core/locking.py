"""What `/taisun lock`, `/taisun unlock` and the take-over button do: the rules and the rows, so the
listeners only parse, reply and render (and the CLI could call the same).

Every outcome is audited here: a lock taken or released, a take-over, and each refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.core import audit, locks
from bot.core.config import Environment
from bot.core.i18n import msg, t, t_plain
from bot.core.jobs import audit_refusal
from bot.core.locks import SYSTEM_HOLDER, EnvironmentLocked, LockInfo
from bot.core.mrkdwn import mention, to_plain
from bot.core.ops import OpError, Request
from bot.core.policy import Attempt

if TYPE_CHECKING:
    from bot.core.services import Services


@dataclass(frozen=True)
class Locked:
    """A lock taken by hand: its reason as stored and how long it lasts."""

    reason: str
    minutes: float


def lock(svc: Services, req: Request) -> Locked:
    """Lock `req.env` for `req.user_id` (operator). Raises NotAllowed or EnvironmentLocked, audited."""
    env = req.env
    assert env is not None
    svc.jobs.require(req, "operator", msg("act.lock"))
    minutes = svc.config.defaults.lock_expiry_minutes
    # The reason is stored and shown as plain text: escaped wherever Slack will read it.
    reason = req.params.get("reason") or t_plain("lock.by_hand", svc.config.language)
    try:
        with svc.sessions.begin() as s:
            locks.acquire(
                s, env.name, holder_id=req.user_id, holder_name=req.user_name, reason=reason,
                expires_at=datetime.now(UTC) + timedelta(minutes=minutes), channel=req.channel,
            )  # fmt: skip
            audit.append(
                s, actor_id=req.user_id, actor_name=req.user_name, action="lock.acquired", environment=env.name,
                channel=req.channel, params={"reason": reason, "expires_in_minutes": minutes}, outcome="ok",
            )  # fmt: skip
    except EnvironmentLocked as e:
        audit_refusal(svc, req, e)
        raise
    return Locked(reason, minutes)


def may_take_over(svc: Services, held: LockInfo, user_id: str, env: Environment) -> bool:
    """A manual lock can be taken over by an approver; a job's lock and the lock a rollback left cannot."""
    return (
        not held.job_id and held.holder_id != SYSTEM_HOLDER and svc.policy.has_role(user_id, "approver", env)
    )


@dataclass(frozen=True)
class Unlocked:
    """How an unlock ended: "not_locked", "released", or "not_yours" (with the lock it found)."""

    outcome: str
    info: LockInfo | None = None


def unlock(svc: Services, req: Request) -> Unlocked:
    """Release `req.env`'s manual lock: its holder, the one who rolled back, or an admin may.

    A lock a job holds is refused with OpError; every refusal is audited."""
    env = req.env
    assert env is not None
    svc.jobs.require(req, "operator", msg("act.unlock"))
    refusal: OpError | None = None
    not_yours: LockInfo | None = None
    with svc.sessions.begin() as s:
        held = locks.current(s, env.name)
        if held is None:
            return Unlocked("not_locked")
        info = LockInfo.of(held)
        if held.job_id:
            refusal = OpError(key="lock.held_by_job", env=env.name, job=held.job_id[:8])
        elif not info.may_release(req.user_id, svc.policy.has_role(req.user_id, "admin", env)):
            not_yours = info  # the holder, the one who rolled back, or an admin
        else:
            locks.release(s, env.name)
            audit.append(
                s, actor_id=req.user_id, actor_name=req.user_name, action="lock.released", environment=env.name,
                channel=req.channel, outcome="ok",
                params={"holder": held.holder_id} | ({"rolled_back_by": info.kept_for} if info.kept_for else {}),
            )  # fmt: skip
    if not_yours is not None:  # audited in its own transaction, in the workspace language
        audit_refusal(svc, req, not_yours.not_yours(svc.config.language))
        return Unlocked("not_yours", not_yours)
    if refusal is not None:
        audit_refusal(svc, req, refusal)
        raise refusal
    return Unlocked("released", info)


@dataclass(frozen=True)
class TakeOver:
    """How a take-over ended: "job_holds" (a job took the lock meanwhile), "kept" (the lock a rollback
    left, which this person may not release: `info`), or "taken" (`previous` holder, "" if none)."""

    outcome: str
    previous: str = ""
    info: LockInfo | None = None


def take_over(svc: Services, env: Environment, user_id: str, user_name: str, channel: str) -> TakeOver:
    """An approver takes a manual lock over (or takes a free environment's lock); the previous holder
    is told by DM. Raises NotAllowed (audited by the policy)."""
    attempt = Attempt("lock", user_name, channel, {"take_over": True})
    svc.policy.require(user_id, "approver", env, msg("act.take_over"), attempt)
    minutes = svc.config.defaults.lock_expiry_minutes
    ws = svc.config.language
    kept: LockInfo | None = None
    previous = ""
    with svc.sessions.begin() as s:
        held = locks.current(s, env.name)
        if held is not None and held.job_id:
            return TakeOver("job_holds")
        info = LockInfo.of(held) if held is not None else None
        # The lock a rollback left is not taken over: only the one who rolled back or an admin
        # releases it (an old button must not get around that).
        if (
            info is not None
            and info.holder_id == SYSTEM_HOLDER
            and not info.may_release(user_id, svc.policy.has_role(user_id, "admin", env))
        ):
            kept = info
        else:
            previous = held.holder_id if held else ""
            # A lock's reason is plain text (usually what a person typed); it is escaped where shown.
            taken = t("lock.taken_from", ws, user=mention(previous)) if previous else t("lock.by_hand", ws)
            reason = to_plain(taken, names=svc.user_name)
            if held is not None:
                locks.release(s, env.name)
                s.flush()
            locks.acquire(s, env.name, holder_id=user_id, holder_name=user_name, reason=reason,
                          expires_at=datetime.now(UTC) + timedelta(minutes=minutes))  # fmt: skip
            audit.append(s, actor_id=user_id, actor_name=user_name, action="lock.taken_over",
                         environment=env.name, params={"previous_holder": previous}, outcome="ok")  # fmt: skip
    if kept is not None:
        audit_refusal(svc, Request("lock", env, {"take_over": True}, user_id, user_name, channel),
                      kept.not_yours(ws))  # fmt: skip
        return TakeOver("kept", info=kept)
    if previous:
        svc.later(
            lambda: svc.slack.chat_postMessage(
                channel=previous,
                text=t("lock.taken_dm", svc.lang_for(previous), user=mention(user_id), env=env.name),
            )
        )
    return TakeOver("taken", previous)
