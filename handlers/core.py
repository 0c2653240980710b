"""help, status, audit, lock, unlock, jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.audit.messages import audit_blocks
from bot.backends import http
from bot.core import audit, blocks, locks
from bot.core.commands import SPECS
from bot.core.i18n import msg, t, t_plain
from bot.core.jobs import SYSTEM_HOLDER, audit_refusal
from bot.core.ops import OpError, Request
from bot.core.store.models import Job
from bot.deploys.messages import status_blocks
from bot.deploys.service import last_changes
from bot.slack.messages import help_blocks, jobs_list_blocks
from handlers.commands import subcommand
from handlers.context import Invocation, Reply


@subcommand("help")
def help_(inv: Invocation) -> Reply:
    policy = inv.svc.policy
    allowed = [
        s for s in SPECS
        if s.role is None or any(policy.has_role(inv.user_id, s.role, env) for env in [None, *inv.svc.config.environments.values()])
    ]  # fmt: skip
    return blocks.message(t("help.text", inv.lang), help_blocks(allowed, inv.lang))


def _deploy_line(job: Job, lang: str) -> str:
    return t(
        "status.deploy", lang, version=job.params.get("version", ""), user=blocks.mention(job.requested_by),
        time=blocks.slack_time(job.finished_at),
    )  # fmt: skip


def _newer(simulation: Job | None, verified: Job | None) -> Job | None:
    """A simulation newer than the last verified deploy (the demo's history), else None."""
    if simulation is None or simulation.finished_at is None:
        return None
    if verified is not None and verified.finished_at and verified.finished_at >= simulation.finished_at:
        return None
    return simulation


@subcommand("status")
def status(inv: Invocation) -> Reply:
    envs = [inv.cmd.env] if inv.cmd.env else list(inv.svc.config.environments.values())
    lang = inv.lang
    # Locks and history come from the database now; the live checks run after the ack.
    with inv.svc.read_sessions() as s:
        held = {e.name: locks.current(s, e.name) for e in envs}
    lock_text = {name: locks.LockInfo.of(lk).describe(lang) for name, lk in held.items() if lk}
    with inv.svc.read_sessions() as s:
        last, simulated = last_changes(s), last_changes(s, simulated=True)

    def check() -> Reply:
        reports = http.check_many({e.name: e.url for e in envs}, timeout=3.0, recent=inv.svc.recent_checks)
        rows = []
        for e in envs:
            r = reports[e.name]
            job = last.get(e.name)
            rows.append({
                "name": e.name, "branch": e.branch, "url": e.url, "health": r.text(lang), "healthy": r.healthy,
                "version": r.version, "lock": lock_text.get(e.name),
                "last_deploy": _deploy_line(job, lang) if job else None,
                "last_simulation": _deploy_line(sim, lang) if (sim := _newer(simulated.get(e.name), job)) else None,
            })  # fmt: skip
        return blocks.message(t("status.text", lang), status_blocks(rows, lang))

    inv.later(check)
    names = ", ".join(e.name for e in envs)
    return blocks.message(t("reply.status_checking", lang, envs=names))


@subcommand("audit")
def audit_(inv: Invocation) -> Reply:
    env = inv.cmd.env
    with inv.svc.read_sessions() as s:
        events = audit.recent(s, environment=env.name if env else None, limit=inv.cmd.args.get("n", 10))
    return blocks.message(
        t("audit.text", inv.lang), audit_blocks(events, env.name if env else None, inv.lang)
    )


@subcommand("lock")
def lock(inv: Invocation) -> Reply:
    env = inv.cmd.env
    assert env is not None
    req = Request(
        "lock", env, {"reason": inv.cmd.args.get("reason", "")}, inv.user_id, inv.user_name, inv.channel_id
    )
    inv.svc.jobs.require(req, "operator", msg("act.lock"))
    minutes = inv.svc.config.defaults.lock_expiry_minutes
    lang = inv.lang
    # The reason is stored and shown as plain text: escaped wherever Slack will read it.
    reason = inv.cmd.args.get("reason") or t_plain("lock.by_hand", inv.svc.config.language)
    try:
        with inv.svc.sessions.begin() as s:
            locks.acquire(
                s, env.name, holder_id=inv.user_id, holder_name=inv.user_name, reason=reason,
                expires_at=datetime.now(UTC) + timedelta(minutes=minutes), channel=inv.channel_id,
            )  # fmt: skip
            audit.append(
                s, actor_id=inv.user_id, actor_name=inv.user_name, action="lock.acquired", environment=env.name,
                channel=inv.channel_id, params={"reason": reason, "expires_in_minutes": minutes}, outcome="ok",
            )  # fmt: skip
    except locks.EnvironmentLocked as e:
        audit_refusal(inv.svc, req, e)
        held = e.info
        reply = blocks.error(e.message(lang))
        # A manual lock can be taken over by an approver; the lock a rollback left cannot (bot/core/locks.py).
        if (
            not held.job_id
            and held.holder_id != SYSTEM_HOLDER
            and inv.svc.policy.has_role(inv.user_id, "approver", env)
        ):
            confirm = blocks.confirm_dialog(
                t("lock.takeover_title", lang), t("lock.takeover_text", lang, user=blocks.mention(held.holder_id), env=env.name),
                lang=lang, yes=t("lock.takeover_yes", lang),
            )  # fmt: skip
            button = blocks.button(
                t("lock.takeover_button", lang),
                blocks.Action.LOCK_TAKEOVER,
                env.name,
                style="danger",
                confirm=confirm,
            )
            reply["blocks"].append({"type": "actions", "elements": [button]})
        return reply
    # Posted in the channel for everyone: the workspace language.
    ws = inv.svc.config.language
    return blocks.message(
        t("lock.locked_text", ws, env=env.name, reason=reason),
        [blocks.section(t("lock.locked", ws, env=env.name, user=blocks.mention(inv.user_id), reason=reason,
                          minutes=minutes))],
        ephemeral=False,
    )  # fmt: skip


@subcommand("unlock")
def unlock(inv: Invocation) -> Reply:
    env = inv.cmd.env
    assert env is not None
    req = Request("unlock", env, {}, inv.user_id, inv.user_name, inv.channel_id)
    inv.svc.jobs.require(req, "operator", msg("act.unlock"))
    lang, ws = inv.lang, inv.svc.config.language
    refusal: OpError | None = None
    not_yours: locks.LockInfo | None = None
    with inv.svc.sessions.begin() as s:
        held = locks.current(s, env.name)
        if held is None:
            return blocks.message(t("lock.not_locked", lang, env=env.name))
        info = locks.LockInfo.of(held)
        if held.job_id:
            refusal = OpError(key="lock.held_by_job", env=env.name, job=held.job_id[:8])
        elif not info.may_release(inv.user_id, inv.svc.policy.has_role(inv.user_id, "admin", env)):
            not_yours = info  # the holder, the one who rolled back, or an admin
        else:
            locks.release(s, env.name)
            audit.append(
                s, actor_id=inv.user_id, actor_name=inv.user_name, action="lock.released", environment=env.name,
                channel=inv.channel_id, outcome="ok",
                params={"holder": held.holder_id} | ({"rolled_back_by": info.kept_for} if info.kept_for else {}),
            )  # fmt: skip
    if not_yours is not None:  # audited in its own transaction, in the workspace language
        audit_refusal(inv.svc, req, not_yours.not_yours(ws))
        return blocks.error(not_yours.not_yours(lang))
    if refusal is not None:
        audit_refusal(inv.svc, req, refusal)
        raise refusal
    return blocks.message(
        t("lock.unlocked_text", ws, env=env.name),
        [blocks.section(t("lock.unlocked", ws, env=env.name, user=blocks.mention(inv.user_id)))],
        ephemeral=False,
    )


@subcommand("jobs")
def jobs(inv: Invocation) -> Reply:
    if inv.cmd.args.get("action") == "cancel":
        prefix = inv.cmd.args["id"]
        with inv.svc.read_sessions() as s:
            matches = list(s.scalars(select(Job.id).where(Job.id.startswith(prefix)).limit(2)))
        if len(matches) != 1:
            raise OpError(key="jobs.no_single", prefix=prefix)
        # No reason typed: the card says "cancelled by …"; the audit row's actor says who.
        job = inv.svc.jobs.cancel(matches[0], inv.user_id, inv.user_name)
        return blocks.message(t("jobs.cancelled", inv.lang, job=job.id[:8]))
    active = inv.svc.jobs.active()
    return blocks.message(
        t("jobs.text", inv.lang), jobs_list_blocks(active, inv.svc.describe, inv.lang)
    )
