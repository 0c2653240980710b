"""`/taisun runbook list | run <name> [env] [--drill]`."""

from __future__ import annotations

from bot.core import blocks
from bot.core.i18n import msg, t
from bot.core.policy import Attempt
from bot.core.replies import Reply
from bot.core.states import IncidentState
from bot.incidents import runs as runbook_runs
from bot.incidents import service as incidents
from handlers.common import Invocation


def runbook(inv: Invocation) -> Reply | None:
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
        return Reply(t("rb.list.text", lang), out)
    attempt = Attempt("runbook", inv.user_name, inv.channel_id, {"action": "run", "name": args["name"]})
    svc.policy.require(inv.user_id, "responder", inv.cmd.env, msg("act.runbook"), attempt)
    book = runbook_runs.find_runbook(args["name"], catalog)
    incident_id = None
    here = incidents.for_channel(svc, inv.channel_id)
    if (
        isinstance(here, incidents.Incident)
        and here.dedicated_channel == inv.channel_id
        and here.state == IncidentState.OPEN
    ):
        incident_id = here.id  # steps land on that incident's timeline
    run = runbook_runs.start_run(
        svc, book, inv.cmd.env, user_id=inv.user_id, user_name=inv.user_name, channel=inv.channel_id,
        drill=bool(args.get("drill")), incident_id=incident_id,
    )  # fmt: skip
    key = "rb.reply.starting_drill" if run.drill else "rb.reply.starting"
    return Reply(t(key, inv.lang, title=book.title_for(inv.lang)))
