"""What the observability capability shows: metrics, SLOs, log lines, traces and the compact SLO line
of status and the Home tab. Pure functions: reports in, Block Kit out."""

from __future__ import annotations

from bot.backends.monitoring import MonitoringError
from bot.core.blocks import Block, context, section
from bot.core.i18n import MESSAGES, duration, t
from bot.core.mrkdwn import Mrkdwn, escape, link, slack_time
from bot.observability.service import (
    LogResult,
    MetricsReport,
    Reading,
    SloReading,
    SloReport,
    TraceAnswer,
    stamp,
)

ICON = {"ok": "✅", "warning": "⚠️", "critical": "❌", "no_data": "⚪", "failed": "❔"}
CODE_LINE = 280  # characters of one log line shown inline (the file has them whole)


def number(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def with_unit(value: float, unit: str, decimals: int) -> str:
    text = number(value, decimals)
    if not unit:
        return text
    return f"{text}{unit}" if unit.startswith(("%", "/")) else f"{text} {unit}"


def metric_name(r: Reading | str, title: str = "", lang: str = "en") -> Mrkdwn:
    name = r.name if isinstance(r, Reading) else r
    title = r.spec.title if isinstance(r, Reading) else title
    key = f"metrics.name.{name}"
    if title:
        return escape(title)
    return t(key, lang) if key in MESSAGES else escape(name)


def _limits(r: Reading, lang: str) -> Mrkdwn:
    s = r.spec
    parts = []
    side = "below" if s.below else "above"
    if s.warning is not None:
        parts.append(
            t(
                f"metrics.warn_{side}",
                lang,
                v=with_unit(s.warning, s.unit, 0 if s.warning.is_integer() else 2),
            )
        )
    if s.critical is not None:
        parts.append(
            t(
                f"metrics.crit_{side}",
                lang,
                v=with_unit(s.critical, s.unit, 0 if s.critical.is_integer() else 2),
            )
        )
    return t("metrics.limits", lang, limits=Mrkdwn(", ").join(parts)) if parts else Mrkdwn("")


def reading_line(r: Reading, lang: str) -> Mrkdwn:
    if r.status == "failed":
        return t("metrics.failed", lang, icon=ICON["failed"], name=metric_name(r, lang=lang), error=r.error)
    if r.value is None:
        return t("metrics.no_data", lang, icon=ICON["no_data"], name=metric_name(r, lang=lang))
    value = with_unit(r.value, r.spec.unit, r.spec.decimals)
    return t(
        "metrics.line", lang, icon=ICON[r.status], name=metric_name(r, lang=lang), value=value,
        status=t(f"obs.status.{r.status}", lang), limits=_limits(r, lang),
    )  # fmt: skip


def _grafana(url: str, lang: str) -> list[Mrkdwn]:
    return [Mrkdwn("📈 ") + link(url, t("obs.open_grafana", lang))] if url else []


def metrics_blocks(report: MetricsReport, lang: str = "en") -> list[Block]:
    lines = [reading_line(r, lang) for r in report.readings]
    return [
        section(t("metrics.title", lang, env=report.env)),
        section("\n".join(lines)),
        context(
            t("obs.as_of", lang, time=slack_time(report.at)), t("metrics.how", lang, window=report.window),
            *_grafana(report.grafana_url, lang),
        ),
    ]  # fmt: skip


def slo_name(s: SloReading, lang: str) -> Mrkdwn:
    key = f"slo.name.{s.name}"
    if s.spec.title:
        return escape(s.spec.title)
    return t(key, lang) if key in MESSAGES else escape(s.name)


def _burn(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}×"


def _percent(value: float, objective: float) -> str:
    """Enough decimals to tell the value from the objective (99.95 vs 99.9)."""
    decimals = max(2, len(f"{objective:g}".partition(".")[2]) + 1)
    return f"{value:.{decimals}f}"


def slo_line(s: SloReading, lang: str) -> Mrkdwn:
    name, icon, objective = slo_name(s, lang), ICON[s.status], f"{s.spec.objective:g}"
    if s.status == "failed":
        return t("slo.failed", lang, icon=icon, name=name, error=s.error)
    if s.sli is None or s.budget_left is None:
        return t("slo.no_data", lang, icon=icon, name=name, objective=objective)
    minutes = s.budget_left_minutes or 0.0
    return t(
        "slo.line", lang, icon=icon, name=name, objective=objective, sli=_percent(s.sli, s.spec.objective),
        left=f"{s.budget_left:.1f}", minutes=f"{minutes:.1f}", total=f"{s.budget_minutes:.1f}",
        burn1h=_burn(s.burn.get("1h")), burn6h=_burn(s.burn.get("6h")),
    )  # fmt: skip


def slo_blocks(
    reports: dict[str, SloReport | MonitoringError], warning_percent: float, lang: str = "en"
) -> list[Block]:
    out: list[Block] = []
    for env, report in reports.items():
        if isinstance(report, MonitoringError):
            out += [section(t("slo.title", lang, env=env, days="—")), section(f"⚠️ {report.message(lang)}")]
            continue
        out += [
            section(t("slo.title", lang, env=env, days=report.window_days)),
            section("\n".join(slo_line(s, lang) for s in report.slos)),
        ]
        if report.grafana_url:
            out.append(context(*_grafana(report.grafana_url, lang)))
    ats = [r.at for r in reports.values() if isinstance(r, SloReport)]
    foot = [t("slo.how", lang, warn=f"{warning_percent:g}")]
    if ats:
        foot.insert(0, t("obs.as_of", lang, time=slack_time(max(ats))))
    out.append(context(*foot))
    return out


def slo_compact(report: SloReport | MonitoringError | None, lang: str = "en") -> Mrkdwn:
    """One line per environment for status and Home: each SLO ✅/⚠️/❌ with its budget left."""
    if report is None:
        return t("slo.compact_waiting", lang)
    if isinstance(report, MonitoringError):
        return t("slo.compact_down", lang, error=report.message(lang))
    items = []
    for s in report.slos:
        icon, name = ICON[s.status], slo_name(s, lang)
        if s.status == "failed":
            items.append(t("slo.compact_failed", lang, icon=icon, name=name))
        elif s.budget_left is None:
            items.append(t("slo.compact_no_data", lang, icon=icon, name=name))
        else:
            items.append(
                t("slo.compact_item", lang, icon=icon, name=name, left=f"{max(s.budget_left, 0):.0f}")
            )
    return t("slo.compact", lang, items=Mrkdwn(" · ").join(items))


def _code(lines: list[str]) -> Mrkdwn:
    """Log lines in a code block: escaped, and a ``` inside a line cannot end the block early."""
    body = "\n".join(escape(ln).replace("```", "ˋˋˋ") for ln in lines)
    return Mrkdwn("```") + Mrkdwn(body) + Mrkdwn("```")


def log_lines(result: LogResult, n: int) -> list[str]:
    out = []
    for ln in result.lines[:n]:
        text = " ".join(ln.line.split())
        out.append(f"{stamp(ln.ns)[11:]}  {text[:CODE_LINE] + ('…' if len(text) > CODE_LINE else '')}")
    return out


def logs_blocks(result: LogResult, lang: str, *, shown: int, file_link: Mrkdwn | None = None,
                upload_error: str = "") -> list[Block]:  # fmt: skip
    s = result.search
    since = duration(s.since_seconds, lang)
    out: list[Block] = [section(t("logs.title", lang, env=s.env, query=s.logql))]
    if not result.lines:
        out.append(section(t("logs.none", lang, since=since)))
        return out
    n = len(result.lines)
    notes = [
        t("logs.summary_one", lang, since=since) if n == 1 else t("logs.summary", lang, n=n, since=since)
    ]
    if result.capped:
        notes.append(t("logs.capped", lang, limit=result.limit))
    if file_link is not None:
        notes.append(
            t("logs.file", lang, n=len(result.lines), link=file_link, shown=min(shown, len(result.lines)))
        )
    elif upload_error:
        notes.append(t("logs.file_failed", lang, error=upload_error, shown=min(shown, len(result.lines))))
    out.append(context(Mrkdwn(" ").join(notes)))
    # A section holds 3,000 characters: as many lines as fit.
    lines = log_lines(result, shown)
    while lines and len(_code(lines)) > 2900:
        lines.pop()
    out.append(section(_code(lines)))
    return out


def trace_blocks(trace_id: str, answers: list[TraceAnswer], lang: str = "en") -> list[Block]:
    out: list[Block] = [section(t("trace.title", lang, id=trace_id))]
    for a in answers:
        open_link = link(a.link, t("trace.open", lang))
        if a.trace is not None:
            tr = a.trace
            text = t(
                "trace.found", lang, env=a.env, operation=tr.operation, service=tr.service,
                duration=_span_time(tr.duration_us), spans=tr.spans, services=", ".join(tr.services) or "—",
                time=slack_time(tr.start, "{date_short_pretty} {time_secs}"),
            )  # fmt: skip
            if tr.errors:
                text += Mrkdwn(" · ") + t("trace.errors", lang, n=tr.errors)
        elif a.error is not None:
            text = t("trace.no_answer", lang, env=a.env, error=a.error.message(lang))
        else:
            text = t("trace.not_found", lang, env=a.env)
        out.append(section(text + Mrkdwn("\n") + open_link))
    return out


def _span_time(us: int) -> str:
    if us < 1000:
        return f"{us} µs"
    if us < 1_000_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1_000_000:.2f} s"
