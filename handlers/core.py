"""help, status, audit, lock, unlock, jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot import audit, blocks, locks
from bot.backends import http
from bot.commands import SPECS
from bot.i18n import t
from bot.jobs import SYSTEM_HOLDER, audit_refusal
from bot.ops.base import OpError, Request
from bot.store.models import Job
from handlers.commands import subcommand
from handlers.context import Invocation, Reply


@subcommand("help")
def help_(inv: Invocation) -> Reply:
    policy = inv.svc.policy
    allowed = [
        s for s in SPECS
        if s.role is None or any(policy.has_role(inv.user_id, s.role, env) for env in [None, *inv.svc.config.environments.values()])
    ]  # fmt: skip
    return blocks.message("TAISUN ChatOps commands", blocks.help_blocks(allowed, inv.lang))


def _last_deploys(inv: Invocation) -> dict[str, Job]:
    with inv.svc.read_sessions() as s:
        rows = s.scalars(
            select(Job).where(Job.operation.in_(("deploy", "rollback")), Job.state == "succeeded", Job.dry_run.is_(False))
            .order_by(Job.finished_at.desc()).limit(50)
        )  # fmt: skip
        last: dict[str, Job] = {}
        for job in rows:
            last.setdefault(job.environment, job)
        return last


def _deploy_line(job: Job) -> str:
    simulated = " (simulated)" if job.params.get("simulated") else ""
    return f"{job.params.get('version', '')}{simulated} by <@{job.requested_by}> {blocks.slack_time(job.finished_at)}"


@subcommand("status")
def status(inv: Invocation) -> Reply:
    envs = [inv.cmd.env] if inv.cmd.env else list(inv.svc.config.environments.values())
    lang = inv.lang
    # Locks and history come from the database now; the live checks run after the ack.
    with inv.svc.read_sessions() as s:
        held = {e.name: locks.current(s, e.name) for e in envs}
    lock_text = {name: locks.LockInfo.of(lk).describe() for name, lk in held.items() if lk}
    last = _last_deploys(inv)

    def check() -> Reply:
        reports = http.check_many({e.name: e.url for e in envs}, timeout=3.0)
        rows = []
        for e in envs:
            r = reports[e.name]
            job = last.get(e.name)
            rows.append({
                "name": e.name, "branch": e.branch, "url": e.url, "health": r.health, "healthy": r.healthy,
                "version": r.version, "lock": lock_text.get(e.name),
                "last_deploy": _deploy_line(job) if job else None,
            })  # fmt: skip
        return blocks.message("Environment status", blocks.status_blocks(rows, lang))

    inv.later(check)
    names = ", ".join(e.name for e in envs)
    return blocks.message(t("reply.status_checking", lang, envs=names))


@subcommand("audit")
def audit_(inv: Invocation) -> Reply:
    env = inv.cmd.env
    with inv.svc.read_sessions() as s:
        events = audit.recent(s, environment=env.name if env else None, limit=inv.cmd.args.get("n", 10))
    return blocks.message("Audit log", blocks.audit_blocks(events, env.name if env else None, inv.lang))


@subcommand("lock")
def lock(inv: Invocation) -> Reply:
    env = inv.cmd.env
    assert env is not None
    req = Request(
        "lock", env, {"reason": inv.cmd.args.get("reason", "")}, inv.user_id, inv.user_name, inv.channel_id
    )
    inv.svc.jobs.require(req, "operator", "lock an environment")
    minutes = inv.svc.config.defaults.lock_expiry_minutes
    reason = inv.cmd.args.get("reason") or "locked by hand"
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
        audit_refusal(inv.svc, req, str(e))
        held = e.info
        reply = blocks.error(str(e))
        if not held.job_id and inv.svc.policy.has_role(inv.user_id, "approver", env):
            reply["blocks"].append(
                {"type": "actions", "elements": [blocks.button("Take over the lock", blocks.Action.LOCK_TAKEOVER, env.name, style="danger",
                 confirm=blocks.confirm_dialog("Take over?", f"<@{held.holder_id}> will be told you took the lock on {env.name}.", yes="Take over"))]}
            )  # fmt: skip
        return reply
    return blocks.message(
        f"🔒 {env.name} is locked: {reason}",
        [blocks.section(f"🔒 *{env.name}* is locked by <@{inv.user_id}>: {blocks.escape(reason)}\n"
                        f"No deploys or changes until `/taisun unlock {env.name}`. It expires in {minutes} minutes; "
                        "you will be reminded before that.")],
        ephemeral=False,
    )  # fmt: skip


@subcommand("unlock")
def unlock(inv: Invocation) -> Reply:
    env = inv.cmd.env
    assert env is not None
    req = Request("unlock", env, {}, inv.user_id, inv.user_name, inv.channel_id)
    inv.svc.jobs.require(req, "operator", "unlock an environment")
    with inv.svc.sessions.begin() as s:
        held = locks.current(s, env.name)
        if held is None:
            return blocks.message(f"{env.name} is not locked.")
        if held.job_id:
            raise OpError(
                f"{env.name} is held by a running job `{held.job_id[:8]}`; it is released when the job ends."
            )
        others = held.holder_id not in (inv.user_id, SYSTEM_HOLDER)
        if others and not inv.svc.policy.has_role(inv.user_id, "admin", env):
            raise OpError(
                f"{locks.LockInfo.of(held).describe()}. Only they or an admin can unlock it; "
                "an approver can take it over from the lock message."
            )
        previous = held.holder_id
        locks.release(s, env.name)
        audit.append(
            s, actor_id=inv.user_id, actor_name=inv.user_name, action="lock.released", environment=env.name,
            channel=inv.channel_id, params={"holder": previous}, outcome="ok",
        )  # fmt: skip
    return blocks.message(
        f"🔓 {env.name} is unlocked",
        [blocks.section(f"🔓 *{env.name}* is unlocked by <@{inv.user_id}>.")],
        ephemeral=False,
    )


@subcommand("jobs")
def jobs(inv: Invocation) -> Reply:
    if inv.cmd.args.get("action") == "cancel":
        prefix = inv.cmd.args["id"]
        with inv.svc.read_sessions() as s:
            matches = list(s.scalars(select(Job.id).where(Job.id.startswith(prefix)).limit(2)))
        if len(matches) != 1:
            raise OpError(f"No single job starts with `{prefix}`. `/taisun jobs` lists them.")
        job = inv.svc.jobs.cancel(
            matches[0], inv.user_id, inv.user_name, reason=f"cancelled by {inv.user_name or inv.user_id}"
        )
        return blocks.message(f"Cancelled job {job.id[:8]}.")
    active = inv.svc.jobs.active()
    return blocks.message("Active jobs", blocks.jobs_list_blocks(active, inv.svc.describe))
