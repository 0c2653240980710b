"""Subcommands that become durable jobs: deploy, rollback, restart, cache-clear, backup."""

from __future__ import annotations

from bot.core import blocks
from bot.core.i18n import t
from bot.core.ops import REGISTRY, OpError
from handlers.commands import subcommand
from handlers.context import Invocation, Reply


def request_job(inv: Invocation, operation: str) -> Reply:
    """Record the request (audit + job row) and ack; a worker checks it and posts the card."""
    if operation not in REGISTRY:
        raise OpError(key="reply.unavailable", name=operation)
    job = inv.svc.jobs.request(inv.request(operation))
    what = inv.svc.describe(job, inv.lang)
    key = "reply.checking_dry" if job.dry_run else "reply.checking"
    text = t(key, inv.lang, what=what, job=job.id[:8])
    if job.params.get("through_own_lock") is not None:
        text += "\n" + t("reply.through_own_lock", inv.lang, env=job.environment)
    return blocks.message(text)


@subcommand("deploy")
def deploy(inv: Invocation) -> Reply:
    if inv.cmd.args.get("modal"):
        from handlers.views import open_deploy_modal

        return {"text": "", "_after": lambda: open_deploy_modal(inv)}
    return request_job(inv, "deploy")


@subcommand("rollback")
def rollback(inv: Invocation) -> Reply:
    return request_job(inv, "rollback")


@subcommand("restart")
def restart(inv: Invocation) -> Reply:
    return request_job(inv, "restart")


@subcommand("cache-clear")
def cache_clear(inv: Invocation) -> Reply:
    return request_job(inv, "cache-clear")


@subcommand("backup")
def backup(inv: Invocation) -> Reply:
    action = inv.cmd.args["action"]
    if action == "list":
        from bot.operations.backup import list_reply

        lang = inv.lang
        inv.later(lambda: list_reply(inv.svc, lang))
        return blocks.message(t("op.backup.list.listing", lang))
    return request_job(inv, "backup" if action == "run" else "restore")
