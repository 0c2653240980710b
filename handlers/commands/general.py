"""The subcommands that are no operation: help, status, audit, lock, unlock, jobs."""

from __future__ import annotations

from sqlalchemy import select

from bot.audit.messages import audit_blocks
from bot.backends import http
from bot.core import audit, blocks, locking, locks
from bot.core.commands import specs
from bot.core.i18n import t
from bot.core.locks import EnvironmentLocked
from bot.core.ops import OpError, Request
from bot.core.replies import Refused, Reply
from bot.core.store.models import Job
from bot.deploys import timeline
from bot.deploys.messages import deploy_line, deploys_blocks, status_blocks
from bot.deploys.service import last_changes, newer_simulation
from bot.observability.messages import slo_compact
from bot.slack.messages import help_blocks, jobs_list_blocks, state_label
from handlers.common import Invocation


def help_(inv: Invocation) -> Reply | None:
    policy = inv.svc.policy
    allowed = [
        s for s in specs()
        if s.role is None or any(policy.has_role(inv.user_id, s.role, env) for env in [None, *inv.svc.config.environments.values()])
    ]  # fmt: skip
    return Reply(t("help.text", inv.lang), help_blocks(allowed, inv.lang))


def status(inv: Invocation) -> Reply | None:
    envs = [inv.cmd.env] if inv.cmd.env else list(inv.svc.config.environments.values())
    lang = inv.lang
    # Locks and history come from the database now; the live checks run after the ack.
    with inv.svc.read_sessions() as s:
        held = {e.name: locks.current(s, e.name) for e in envs}
    lock_text = {name: locks.LockInfo.of(lk).describe(lang) for name, lk in held.items() if lk}
    with inv.svc.read_sessions() as s:
        last, simulated = last_changes(s), last_changes(s, simulated=True)

    def check() -> Reply | None:
        obs = inv.svc.observability  # the SLO line (viewers), asked of Prometheus while /health is checked
        slo_envs = {
            e.name for e in envs if obs.configured(e) and inv.svc.policy.has_role(inv.user_id, "viewer", e)
        }
        slo = obs.slo_states_soon([e for e in envs if e.name in slo_envs]) if slo_envs else None
        reports = http.check_many({e.name: e.url for e in envs}, timeout=3.0, recent=inv.svc.recent_checks)
        slo_states = slo.result() if slo else {}
        rows = []
        for e in envs:
            r = reports[e.name]
            job = last.get(e.name)
            rows.append({
                "name": e.name, "branch": e.branch, "url": e.url, "health": r.text(lang), "healthy": r.healthy,
                "version": r.version, "lock": lock_text.get(e.name),
                "last_deploy": deploy_line(job, lang) if job else None,
                "last_simulation": deploy_line(sim, lang) if (sim := newer_simulation(simulated.get(e.name), job)) else None,
                "slo": slo_compact(slo_states.get(e.name), lang) if e.name in slo_envs else None,
            })  # fmt: skip
        return Reply(t("status.text", lang), status_blocks(rows, lang))

    inv.later(check)
    names = ", ".join(e.name for e in envs)
    return Reply(t("reply.status_checking", lang, envs=names))


def deploys(inv: Invocation) -> Reply | None:
    """`/taisun deploys <env> [n]`: the deploy timeline, whoever started each deploy."""
    env = inv.cmd.env
    assert env is not None
    jobs = timeline.entries(inv.svc, env.name, int(inv.cmd.args.get("n", 10)))
    return Reply(
        t("deploys.text", inv.lang, env=env.name), deploys_blocks(env.name, jobs, state_label, inv.lang)
    )


def audit_(inv: Invocation) -> Reply | None:
    env = inv.cmd.env
    with inv.svc.read_sessions() as s:
        events = audit.recent(s, environment=env.name if env else None, limit=inv.cmd.args.get("n", 10))
    return Reply(t("audit.text", inv.lang), audit_blocks(events, env.name if env else None, inv.lang))


def lock(inv: Invocation) -> Reply | None:
    env = inv.cmd.env
    assert env is not None
    req = Request(
        "lock", env, {"reason": inv.cmd.args.get("reason", "")}, inv.user_id, inv.user_name, inv.channel_id
    )
    lang = inv.lang
    try:
        locked = locking.lock(inv.svc, req)
    except EnvironmentLocked as e:
        held = e.info
        if locking.may_take_over(inv.svc, held, inv.user_id, env):
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
            e.extra_blocks = ({"type": "actions", "elements": [button]},)
        raise
    # Posted in the channel for everyone: the workspace language.
    ws = inv.svc.config.language
    return Reply(
        t("lock.locked_text", ws, env=env.name, reason=locked.reason),
        [blocks.section(t("lock.locked", ws, env=env.name, user=blocks.mention(inv.user_id), reason=locked.reason,
                          minutes=locked.minutes))],
        ephemeral=False,
    )  # fmt: skip


def unlock(inv: Invocation) -> Reply | None:
    env = inv.cmd.env
    assert env is not None
    req = Request("unlock", env, {}, inv.user_id, inv.user_name, inv.channel_id)
    done = locking.unlock(inv.svc, req)
    lang, ws = inv.lang, inv.svc.config.language
    if done.outcome == "not_locked":
        return Reply(t("lock.not_locked", lang, env=env.name))
    if done.outcome == "not_yours":
        assert done.info is not None
        raise Refused(done.info.not_yours(lang))
    return Reply(
        t("lock.unlocked_text", ws, env=env.name),
        [blocks.section(t("lock.unlocked", ws, env=env.name, user=blocks.mention(inv.user_id)))],
        ephemeral=False,
    )


def jobs(inv: Invocation) -> Reply | None:
    if inv.cmd.args.get("action") == "cancel":
        prefix = inv.cmd.args["id"]
        with inv.svc.read_sessions() as s:
            matches = list(s.scalars(select(Job.id).where(Job.id.startswith(prefix)).limit(2)))
        if len(matches) != 1:
            raise OpError(key="jobs.no_single", prefix=prefix)
        # No reason typed: the card says "cancelled by …"; the audit row's actor says who.
        job = inv.svc.jobs.cancel(matches[0], inv.user_id, inv.user_name)
        return Reply(t("jobs.cancelled", inv.lang, job=job.id[:8]))
    active = inv.svc.jobs.active()
    return Reply(t("jobs.text", inv.lang), jobs_list_blocks(active, inv.svc.describe, inv.lang))
