"""Subcommands that become durable jobs. An operation's own subcommand (Operation.command) requests
it as it is; deploy (its form) and backup (list, restore) say more here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bot.core import blocks
from bot.core.i18n import t
from bot.core.ops import REGISTRY, OpError
from bot.core.replies import Reply
from bot.operations.backup import list_reply
from bot.operations.pitr import pitr_list_lines, status_reply
from handlers.common import Invocation
from handlers.views.deploy import open_deploy_modal


def request_job(inv: Invocation, operation: str) -> Reply | None:
    """Record the request (audit + job row) and ack; a worker checks it and posts the card."""
    if operation not in REGISTRY:
        raise OpError(key="reply.unavailable", name=operation)
    job = inv.svc.jobs.request(inv.request(operation))
    what = inv.svc.describe(job, inv.lang)
    key = "reply.checking_dry" if job.dry_run else "reply.checking"
    text = t(key, inv.lang, what=what, job=job.id[:8])
    if job.params.get("through_own_lock") is not None:
        text += "\n" + t("reply.through_own_lock", inv.lang, env=job.environment)
    return Reply(text)


def deploy(inv: Invocation) -> Reply | None:
    if inv.cmd.args.get("modal"):
        return Reply(after=lambda: open_deploy_modal(inv))
    return request_job(inv, "deploy")


def backup(inv: Invocation) -> Reply | None:
    action = inv.cmd.args["action"]
    lang = inv.lang
    if action == "list":
        inv.later(lambda: with_pitr_sets(inv, list_reply(inv.svc, lang)))
        return Reply(t("op.backup.list.listing", lang))
    if action == "status":  # pgbackrest info and pg_stat_archiver are read off the ack path
        inv.later(lambda: status_reply(inv.svc, lang))
        return Reply(t("rpo.checking", lang))
    if action == "drill":
        return request_job(inv, "drill")
    if action == "run" and inv.cmd.args.get("kind"):
        return request_job(inv, "pitr_backup")
    return request_job(inv, "backup" if action == "run" else "restore")


def with_pitr_sets(inv: Invocation, reply: Reply) -> Reply:
    """`backup list` shows the pgBackRest backup sets after the pg_dump copies."""
    lines = pitr_list_lines(inv.svc, inv.lang)
    if lines and not reply.refused:
        return dataclasses.replace(reply, blocks=[*(reply.blocks or []), *blocks.sections(lines)])
    return reply


# The operations' subcommands that do more than request their operation as it is.
SUBCOMMANDS: dict[str, Callable[[Invocation], Reply | None]] = {"deploy": deploy, "backup": backup}
