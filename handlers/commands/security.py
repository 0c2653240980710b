"""`/taisun security …`: the task list, done, snooze, the dependency scan, an access review, secret ages."""

from __future__ import annotations

from bot.core.i18n import msg, t
from bot.core.mrkdwn import channel_link
from bot.core.policy import Attempt
from bot.core.replies import Reply
from bot.security import messages, review, rotation, tasks
from handlers.common import Invocation


def security(inv: Invocation) -> Reply | None:
    svc, args, lang = inv.svc, inv.cmd.args, inv.lang
    action = args["action"]
    if action == "list":
        lines = tasks.task_lines(svc, lang)
        return Reply(t("security.list.text", lang), messages.task_list_blocks(lines, lang))
    if action == "done":
        occ = tasks.open_for(svc, args["task"])
        tasks.mark_done(svc, occ.id, inv.user_id, inv.user_name, args.get("note", ""), channel=inv.channel_id)
        return Reply(t("security.reply.done", lang, title=_title(inv, args["task"])))
    if action == "snooze":
        occ = tasks.open_for(svc, args["task"])
        done = tasks.snooze(
            svc, occ.id, inv.user_id, inv.user_name, hours=args.get("hours"), channel=inv.channel_id
        )
        until = messages.when(done.snoozed_until)
        return Reply(t("security.reply.snoozed", lang, title=_title(inv, args["task"]), until=until))
    if action == "scan":
        job = tasks.request_scan(svc, inv.user_id, inv.user_name, inv.channel_id)
        return Reply(t("security.reply.scan", lang, job=job.id[:8], channel=channel_link(job.channel)))
    if action == "review":
        review.require_reviewer(svc, inv.user_id, inv.user_name, "review_start", inv.channel_id)
        task = next((x for x in tasks.tasks(svc) if x.kind == "access_review"), None)
        channel = tasks.channel_for(svc, task) if task else inv.channel_id

        def start() -> Reply:  # Slack's groups are read off the ack path; a refusal (a scope) is told
            started = review.start(svc, inv.user_id, inv.user_name, channel, check=False)
            return Reply(
                t("security.reply.review", lang, id=started.id, channel=channel_link(started.channel))
            )

        inv.later(start)
        return Reply(t("security.reply.review_preparing", lang))
    # secrets: who may see the watched secrets' names and ages is who owns the rotation
    task = next((x for x in tasks.tasks(svc) if x.kind == "secret_rotation"), None)
    if task is not None:
        tasks.require_owner(svc, task, inv.user_id, inv.user_name, "secrets", inv.channel_id)
    else:
        attempt = Attempt("security", inv.user_name, inv.channel_id, {"action": "secrets"})
        svc.policy.require(inv.user_id, "admin", None, msg("security.act.secrets"), attempt)

    def check() -> Reply:
        items = rotation.check(svc)
        rotation.audit_check(svc, items, inv.user_id, inv.user_name, inv.channel_id)
        return Reply(t("security.secrets.text", lang), messages.secrets_blocks(items, lang))

    inv.later(check)
    return Reply(t("security.reply.secrets_checking", lang, n=len(svc.config.security.secrets.watch)))


def _title(inv: Invocation, task_id: str) -> str:
    return tasks.title(tasks.find_task(inv.svc, task_id), inv.lang)
