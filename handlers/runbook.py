"""Runbook listeners: `/taisun runbook list|run`, the step buttons and their modals."""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core import blocks
from bot.core.blocks import Action
from bot.core.i18n import msg, t, t_plain, user_message
from bot.core.mrkdwn import to_plain
from bot.core.policy import Attempt
from bot.core.services import Services
from bot.incidents import messages as blocks_incident
from bot.incidents import runs as runbook_runs
from bot.incidents import service as incidents
from bot.incidents.runs import NeedsVersion
from handlers.commands import run_guarded, subcommand, too_late
from handlers.context import Invocation, Reply
from handlers.incident import channel_of, on_click, user_of, value_of


@subcommand("runbook")
def runbook(inv: Invocation) -> Reply:
    svc, args = inv.svc, inv.cmd.args
    catalog = runbook_runs.load_catalog()
    if args["action"] == "list":
        lang = inv.lang
        lines = [
            t(
                "rb.list.line",
                lang,
                id=b.id,
                title=blocks.escape(b.title_for(lang)),
                kind=t(f"rb.kind.{b.kind}", lang),
            )
            for b in catalog.runbooks.values()
        ] or [t("rb.list.none", lang)]
        out = [blocks.section(t("rb.list.title", lang)), blocks.section("\n".join(lines))]
        if catalog.errors:
            bad = "\n".join(p for e in catalog.errors for p in e.problems[:3])
            out.append(blocks.section(t("rb.list.invalid", lang, problems=bad[:2800])))
        out.append(blocks.context(t("rb.list.how", lang)))
        return blocks.message(t("rb.list.text", lang), out)
    attempt = Attempt("runbook", inv.user_name, inv.channel_id, {"action": "run", "name": args["name"]})
    svc.policy.require(inv.user_id, "responder", inv.cmd.env, msg("act.runbook"), attempt)
    book = runbook_runs.find_runbook(args["name"], catalog)
    incident_id = None
    here = incidents.for_channel(svc, inv.channel_id)
    if (
        isinstance(here, incidents.Incident)
        and here.dedicated_channel == inv.channel_id
        and here.state == "open"
    ):
        incident_id = here.id  # steps land on that incident's timeline
    run = runbook_runs.start_run(
        svc, book, inv.cmd.env, user_id=inv.user_id, user_name=inv.user_name, channel=inv.channel_id,
        drill=bool(args.get("drill")), incident_id=incident_id,
    )  # fmt: skip
    key = "rb.reply.starting_drill" if run.drill else "rb.reply.starting"
    return blocks.message(t(key, inv.lang, title=book.title_for(inv.lang)))


def _split(value: str) -> tuple[str, str]:
    run_id, _, step_id = value.partition("|")
    return run_id, step_id


def register(app: App, svc: Services) -> None:
    def done(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        runbook_runs.complete_step(svc, *_split(value), user_id, user_name)
        return None

    def recheck(value: str, user_id: str, user_name: str, body: dict) -> Reply:
        runbook_runs.recheck(svc, *_split(value), user_id, user_name)
        return None

    on_click(app, svc, Action.STEP_DONE, done, thing="runbook")
    on_click(app, svc, Action.STEP_RECHECK, recheck, thing="runbook")

    def step_attempt(user_name: str, channel: str, what: str, value: str) -> Attempt:
        run_id, step_id = _split(value)
        return Attempt("runbook", user_name, channel, {"action": what, "run": run_id, "step": step_id})

    @app.action(Action.STEP_SKIP)
    def skip(ack: Ack, body: dict, client: WebClient, respond: Any) -> None:
        user_id, user_name = user_of(body)
        value = value_of(body)

        def open_modal() -> Reply:
            attempt = step_attempt(user_name, channel_of(body), "skip_step", value)
            svc.policy.require(user_id, "responder", None, msg("act.skip_step"), attempt)
            run_id, step_id = _split(value)
            loaded = runbook_runs.load_run(svc, run_id)
            lang = svc.lang_for(user_id)
            title = loaded.book.step(step_id).title_for(lang)
            client.views_open(
                trigger_id=body.get("trigger_id", ""), view=blocks_incident.skip_modal(title, value, lang)
            )
            return None

        reply = run_guarded(open_modal, svc.lang_for(user_id))
        ack()
        if reply:
            respond(replace_original=False, **reply)

    @app.action(Action.STEP_RUN)
    def run(ack: Ack, body: dict, client: WebClient, respond: Any, request: BoltRequest) -> None:
        user_id, user_name = user_of(body)
        if too_late(svc, request, ack, respond, svc.lang_for(user_id), what=Action.STEP_RUN):
            return
        value = value_of(body)
        channel = str((body.get("channel") or {}).get("id", ""))

        def request_step() -> Reply:
            attempt = step_attempt(user_name, channel, "run_step", value)
            svc.policy.require(user_id, "responder", None, msg("act.run_step"), attempt)
            run_id, step_id = _split(value)
            try:
                job = runbook_runs.request_action(svc, run_id, step_id, user_id, user_name, channel=channel)
            except NeedsVersion as e:
                loaded = runbook_runs.load_run(svc, run_id)
                title = loaded.book.step(step_id).title_for(lang)
                meta = json.dumps({"value": value, "channel": channel})
                client.views_open(
                    trigger_id=body.get("trigger_id", ""),
                    view=blocks_incident.version_modal(title, meta, lang, why=user_message(e, lang)),
                )
                return None
            key = "rb.reply.requested_dry" if job.dry_run else "rb.reply.requested"
            return blocks.message(t(key, lang, what=svc.describe(job, lang), job=job.id[:8]))

        lang = svc.lang_for(user_id)
        reply = run_guarded(request_step, lang)
        ack()
        if reply:
            respond(replace_original=False, **reply)

    @app.view(Action.STEP_SKIP_MODAL)
    def submit_skip(ack: Ack, body: dict, view: dict) -> None:
        user_id, user_name = user_of(body)
        values = view.get("state", {}).get("values", {})
        reason = str((values.get("reason", {}).get(Action.STEP_SKIP_REASON) or {}).get("value") or "")

        def record() -> Reply:
            attempt = step_attempt(user_name, "", "skip_step", view.get("private_metadata", ""))
            svc.policy.require(user_id, "responder", None, msg("act.skip_step"), attempt)
            runbook_runs.skip_step(svc, *_split(view.get("private_metadata", "")), user_id, user_name, reason)
            return None

        reply = run_guarded(record, svc.lang_for(user_id))
        if reply:
            ack(
                response_action="errors",
                errors={"reason": to_plain(reply["text"]).removeprefix(":warning: ")[:150]},
            )
            return
        ack()

    @app.view(Action.STEP_PARAMS_MODAL)
    def submit_version(ack: Ack, body: dict, view: dict) -> None:
        user_id, user_name = user_of(body)
        values = view.get("state", {}).get("values", {})
        version = str((values.get("version", {}).get(Action.STEP_VERSION) or {}).get("value") or "").strip()
        if not re.fullmatch(svc.config.github.tag_pattern, version):
            ack(
                response_action="errors",
                errors={"version": t_plain("rb.reply.not_a_tag", svc.lang_for(user_id), version=version)},
            )
            return
        meta = json.loads(view.get("private_metadata") or "{}")

        def request() -> Reply:
            attempt = step_attempt(
                user_name, str(meta.get("channel", "")), "run_step", str(meta.get("value", ""))
            )
            svc.policy.require(user_id, "responder", None, msg("act.run_step"), attempt)
            run_id, step_id = _split(str(meta.get("value", "")))
            runbook_runs.request_action(
                svc,
                run_id,
                step_id,
                user_id,
                user_name,
                channel=str(meta.get("channel", "")),
                version=version,
            )
            return None

        reply = run_guarded(request, svc.lang_for(user_id))
        if reply:
            ack(
                response_action="errors",
                errors={"version": to_plain(reply["text"]).removeprefix(":warning: ")[:150]},
            )
            return
        ack()
