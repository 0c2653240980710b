"""`/taisun metrics | slo | logs | trace`: read-only answers from the monitoring stack.

Each checks the viewer role and the configuration at once (a refusal is the ack), then acks with
"Asking…" and answers after the ack: Prometheus, Loki and Jaeger are never waited on in Slack's 3 s.
"""

from __future__ import annotations

from bot.backends.monitoring import MonitoringError
from bot.core.config import Environment
from bot.core.i18n import msg, t, t_plain
from bot.core.mrkdwn import link
from bot.core.policy import Attempt
from bot.core.replies import Refused, Reply
from bot.observability import messages
from bot.observability.service import Observability
from bot.slack.files import dm_text_file
from handlers.common import Invocation

PREVIEW_LINES = 5  # lines shown in the reply when all of them went up as a file


def _may_read(inv: Invocation, env: Environment | None, what: str) -> None:
    """The viewer role (in `env`, or anywhere when none is named); a refusal is audited and raised."""
    attempt = Attempt(
        what, inv.user_name, inv.channel_id, {"command": what}, environment=env.name if env else ""
    )
    inv.svc.policy.require(inv.user_id, "viewer", env, msg("obs.act.read"), attempt)


def _readable(inv: Invocation, envs: list[Environment], what: str) -> list[Environment]:
    """The environments among `envs` this person may read; refused (audited) when there is none."""
    mine = [e for e in envs if inv.svc.policy.has_role(inv.user_id, "viewer", e)]
    if not mine:
        _may_read(inv, None, what)
    return mine


def _obs(inv: Invocation) -> Observability:
    return inv.svc.observability


def _refused(e: MonitoringError) -> Refused:
    """A monitoring service that did not answer (or refused) as the reader's refusal, in their language."""
    return Refused(key=e.key, **e.fields)


def metrics(inv: Invocation) -> Reply | None:
    env = inv.cmd.env
    assert env is not None
    _may_read(inv, env, "metrics")
    obs, lang = _obs(inv), inv.lang
    obs.require(env, "prometheus")

    def answer() -> Reply | None:
        try:
            report = obs.metrics(env)
        except MonitoringError as e:
            raise _refused(e) from None
        return Reply(t("metrics.text", lang, env=env.name), messages.metrics_blocks(report, lang))

    inv.later(answer)
    return Reply(t("metrics.checking", lang, env=env.name))


def slo(inv: Invocation) -> Reply | None:
    obs, lang = _obs(inv), inv.lang
    if inv.cmd.env is not None:
        _may_read(inv, inv.cmd.env, "slo")
        obs.require(inv.cmd.env, "prometheus")
        envs = [inv.cmd.env]
    else:
        envs = _readable(inv, list(inv.svc.config.environments.values()), "slo")
        envs = [e for e in envs if obs.configured(e)]
        if not envs:
            raise Refused(key="slo.none")
    names = ", ".join(e.name for e in envs)
    warn = obs.obs.budget_warning_percent

    def answer() -> Reply | None:
        reports = obs.slo_reports(envs)  # a Prometheus that did not answer is said so for its environment
        return Reply(t("slo.text", lang, envs=names), messages.slo_blocks(reports, warn, lang))

    inv.later(answer)
    return Reply(t("slo.checking", lang, envs=names))


def logs(inv: Invocation) -> Reply | None:
    env = inv.cmd.env
    assert env is not None
    _may_read(inv, env, "logs")
    obs, lang, args = _obs(inv), inv.lang, inv.cmd.args
    search = obs.log_search(env, args.get("words") or [], args.get("since", ""), args.get("level", ""))
    inline = obs.obs.logs_inline_lines
    svc, user_id = inv.svc, inv.user_id

    def answer() -> Reply | None:
        try:
            result = obs.logs(env, search)
        except MonitoringError as e:
            raise _refused(e) from None
        file_link, upload_error, shown = None, "", inline
        if len(result.lines) > inline:  # long: the whole of it as a file, the newest few here
            shown = PREVIEW_LINES
            name = f"logs-{env.name}-{result.end:%Y%m%d-%H%M%S}.txt"
            up = dm_text_file(
                svc.slack, user_id, filename=name, title=t_plain("logs.file_title", lang, env=env.name),
                content=result.as_text(),
                comment=t("logs.file_comment", lang, env=env.name, query=search.logql, n=len(result.lines)),
            )  # fmt: skip
            if up.permalink:
                file_link = link(up.permalink, up.name)
            else:
                upload_error, shown = up.error, inline
        return Reply(
            t("logs.text", lang, env=env.name),
            messages.logs_blocks(result, lang, shown=shown, file_link=file_link, upload_error=upload_error),
        )

    inv.later(answer)
    return Reply(t("logs.searching", lang, env=env.name))


def trace(inv: Invocation) -> Reply | None:
    obs, lang = _obs(inv), inv.lang
    trace_id = str(inv.cmd.args["id"])
    if inv.cmd.env is not None:
        _may_read(inv, inv.cmd.env, "trace")
        envs = obs.trace_envs(inv.cmd.env)
    else:  # the role first: who may not read learns nothing of the configuration
        mine = {e.name for e in _readable(inv, list(inv.svc.config.environments.values()), "trace")}
        envs = [e for e in obs.trace_envs(None) if e.name in mine]
        if not envs:
            raise Refused(key="trace.no_jaeger")
    obs.check_trace_id(trace_id)

    def answer() -> Reply | None:
        answers = obs.trace(trace_id, envs)
        return Reply(
            t("trace.text", lang, id=trace_id), messages.trace_blocks(trace_id.lower(), answers, lang)
        )

    inv.later(answer)
    return Reply(t("trace.looking", lang, id=trace_id))


SUBCOMMANDS = {"metrics": metrics, "slo": slo, "logs": logs, "trace": trace}
