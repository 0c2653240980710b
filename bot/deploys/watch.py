"""The watch after a verified deploy or rollback (#16): what Argo Rollouts' analysis does for
Kubernetes, for this team's workflow deploys.

Where `environments.<name>.watch_minutes` is set, the deploy job measures the watched metrics
(`observability.watch.metrics`: error rate and p99 by default) just before it dispatches (the
baseline), and after verification (and the smoke test) once every `interval` for `watch_minutes`.
A measurement fails when a metric is beyond the guide's critical threshold (observability.metrics)
or beyond its baseline by both the factor and the margin; `failure_limit` failing measurements in a
row are a breach. The breach fails the deploy with the numbers (its card offers Roll back), or,
where `auto_rollback` is true, hands the environment's lock to a rollback job that goes the normal
rollback way (dispatch, follow, verify, and its own watch).

Measurement n is due at the watch's start plus n intervals and asks Prometheus about that instant,
so the numbers do not depend on when the bot got round to asking: a job resumed after a restart
measures what it missed at the times it missed them, from the state saved with each measurement,
and never measures one twice (each has its audit row, written with the saved state). A Prometheus
that does not answer `error_limit` times in a row ends the watch honestly: the deploy is verified
but not watched, and the card and the result say why.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.backends.monitoring import MonitoringError, shown_url
from bot.core import audit
from bot.core.config import Environment, MetricQuery, WatchConfig, WatchLimit
from bot.core.i18n import msg, stored, t, user_message
from bot.core.locks import SYSTEM_HOLDER
from bot.core.mrkdwn import Mrkdwn, slack_time, to_plain, trusted
from bot.core.ops import REGISTRY, JobContext, OpError
from bot.core.states import JobState, Progress, WatchState
from bot.core.store.models import Job, Lock
from bot.observability.messages import metric_name, with_unit

# The longest one wait between measurements sleeps before the job's lease is renewed.
NAP_SECONDS = 5.0


@dataclass(frozen=True)
class Reason:
    """Why one metric failed a measurement: beyond its critical threshold, or beyond its baseline."""

    metric: str
    kind: str  # "critical" or "baseline"
    value: float
    threshold: float  # the critical threshold, or the limit the baseline gives
    baseline: float | None = None

    def facts(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "kind": self.kind, "value": _json(self.value), "threshold": self.threshold,
            "baseline": _json(self.baseline),
        }  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    verdict: str  # ok, failed, no_data, error
    values: dict[str, float | None] = field(default_factory=dict)
    reasons: list[Reason] = field(default_factory=list)
    error: str = ""  # mrkdwn in the workspace language: why Prometheus gave no numbers


@dataclass(frozen=True)
class Outcome:
    """How the watch ended: off (none configured), ok, breached or unwatched, and what to say."""

    state: WatchState
    text: str = ""  # mrkdwn in the workspace language (the breach's numbers, why it was not watched)


# --------------------------------------------------------------------------- the arithmetic


def beyond(value: float, threshold: float, below: bool) -> bool:
    return value < threshold if below else value > threshold


def baseline_limit(baseline: float, limit: WatchLimit, below: bool) -> float:
    """How far a metric may move from its baseline: past both `factor`× and `margin` (in its unit)."""
    if below:
        return min(baseline / limit.factor, baseline - limit.margin)
    return max(baseline * limit.factor, baseline + limit.margin)


def judge(
    name: str, value: float | None, spec: MetricQuery, limit: WatchLimit, baseline: float | None
) -> Reason | None:
    """Why `value` fails a measurement: beyond the critical threshold (said first), else beyond what
    its baseline allows; None when it passes, or when there is no value to judge."""
    if value is None:
        return None
    if spec.critical is not None and beyond(value, spec.critical, spec.below):
        return Reason(name, "critical", value, spec.critical, baseline)
    if baseline is not None:
        bound = baseline_limit(baseline, limit, spec.below)
        if beyond(value, bound, spec.below):
            return Reason(name, "baseline", value, bound, baseline)
    return None


def measurement_count(minutes: float, interval_seconds: int) -> int:
    return max(1, math.ceil(minutes * 60 / interval_seconds))


# --------------------------------------------------------------------------- texts


def _json(value: float | None) -> float | None:
    """A number as the job's progress and the audit row keep it (JSON has no NaN or infinity)."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def _value(ctx: JobContext, name: str, value: float | None) -> str:
    spec = ctx.svc.config.observability.metrics[name]
    if value is None:
        return ctx.t("watch.no_data")
    return with_unit(value, spec.unit, spec.decimals)


def _name(ctx: JobContext, name: str) -> Mrkdwn:
    spec = ctx.svc.config.observability.metrics.get(name)
    return metric_name(name, spec.title if spec else "", ctx.lang)


def numbers(ctx: JobContext, values: dict[str, float | None]) -> Mrkdwn:
    """`Error rate 0.02%, Response time (p99) 248 ms` in the workspace language."""
    parts = [ctx.t("watch.number", name=_name(ctx, n), value=_value(ctx, n, v)) for n, v in values.items()]
    return Mrkdwn(", ").join(parts) if parts else ctx.t("watch.no_data")


def _threshold(ctx: JobContext, r: Reason) -> str:
    """A configured threshold as it was written (5%, 1000 ms); a limit from the baseline as the metric's numbers."""
    spec = ctx.svc.config.observability.metrics[r.metric]
    if r.kind == "critical" and float(r.threshold).is_integer():
        return with_unit(r.threshold, spec.unit, 0)
    return _value(ctx, r.metric, r.threshold)


def reason_text(ctx: JobContext, r: Reason) -> Mrkdwn:
    spec = ctx.svc.config.observability.metrics[r.metric]
    fields = {
        "name": _name(ctx, r.metric), "value": _value(ctx, r.metric, r.value),
        "threshold": _threshold(ctx, r), "op": "<" if spec.below else ">",
    }  # fmt: skip
    if r.kind == "critical" and r.baseline is None:
        return ctx.t("watch.reason.critical", **fields)
    if r.kind == "critical":
        return ctx.t("watch.reason.critical_baseline", baseline=_value(ctx, r.metric, r.baseline), **fields)
    return ctx.t("watch.reason.baseline", baseline=_value(ctx, r.metric, r.baseline), **fields)


# --------------------------------------------------------------------------- the baseline


def measure_baseline(ctx: JobContext, env: Environment) -> None:
    """The watched metrics just before the dispatch, once (saved with its audit row); a Prometheus
    that does not answer leaves the watch to the critical thresholds, and the card says so."""
    if not env.watch_minutes or "watch_baseline" in ctx.progress:
        return
    w = ctx.svc.config.observability.watch
    at = ctx.svc.clock.now()
    facts = {"at": at.isoformat(), "window": w.baseline_window}
    try:
        report = ctx.svc.observability.evaluate(env, list(w.metrics), at=at, window=w.baseline_window)
    except (MonitoringError, OpError) as e:
        why = _failure(e, ctx.lang)
        ctx.record(
            "watch_baseline", outcome="error", detail=stored(e, ctx.lang), **facts,
            save={"watch_baseline": {**facts, "error": why}},
        )  # fmt: skip
        ctx.step(ctx.t("watch.baseline_failed", why=trusted(why)), Progress.WARNING)
        return
    values = {r.name: _json(r.value) for r in report.readings if r.status != "failed"}
    refused = [r for r in report.readings if r.status == "failed"]
    if refused:  # Prometheus answered, but refused this metric's query: no baseline for it
        facts["refused"] = {r.name: r.error for r in refused}
    ctx.record("watch_baseline", values=values, **facts, save={"watch_baseline": {**facts, "values": values}})
    ctx.step(ctx.t("watch.baseline", numbers=numbers(ctx, values), window=w.baseline_window), Progress.DONE)


def _failure(e: BaseException, lang: str) -> str:
    """What Prometheus (or its configuration) said instead of numbers, as mrkdwn in `lang`."""
    if isinstance(e, MonitoringError):
        return str(e.message(lang))
    return str(user_message(e, lang))


# --------------------------------------------------------------------------- the watch


def watch(ctx: JobContext, env: Environment) -> Outcome:
    """Watch the environment for its watch_minutes after verification; resumes from the saved state."""
    if not env.watch_minutes:
        return Outcome(WatchState.OFF)
    w = ctx.svc.config.observability.watch
    state = dict(ctx.progress.get("watch") or {})
    if not state:
        start = ctx.svc.clock.now()
        count = measurement_count(env.watch_minutes, w.interval_seconds)
        state = {
            "state": WatchState.WATCHING, "started_at": start.isoformat(), "minutes": env.watch_minutes,
            "interval_seconds": w.interval_seconds, "count": count, "done": 0, "fails": 0, "errors": 0,
        }  # fmt: skip
        limits = {n: {"factor": lim.factor, "margin": lim.margin} for n, lim in w.metrics.items()}
        critical = {n: ctx.svc.config.observability.metrics[n].critical for n in w.metrics}
        ctx.record(
            "watch_started", minutes=env.watch_minutes, interval_seconds=w.interval_seconds, measurements=count,
            window=w.window, failure_limit=min(w.failure_limit, count), critical=critical, baseline_limits=limits,
            baseline=(ctx.progress.get("watch_baseline") or {}).get("values"), save={"watch": state},
        )  # fmt: skip
        ctx.step(_running_text(ctx, state), Progress.RUNNING)
    while state["state"] == WatchState.WATCHING:
        n = state["done"] + 1
        due = datetime.fromisoformat(state["started_at"]) + timedelta(seconds=n * state["interval_seconds"])
        wait = (due - ctx.svc.clock.now()).total_seconds()
        if wait > 0:  # measured at its time; after a restart the missed ones are measured at theirs
            ctx.heartbeat()
            ctx.svc.clock.sleep(min(wait, NAP_SECONDS))
            continue
        state = _measure_and_save(ctx, env, w, state, n, due)
    return _outcome(ctx, state)


def _measure_and_save(
    ctx: JobContext, env: Environment, w: WatchConfig, state: dict[str, Any], n: int, due: datetime
) -> dict[str, Any]:
    m = measure(ctx, env, w, due)
    count = state["count"]
    state = {**state, "done": n}
    if m.verdict != "error":  # the latest numbers Prometheus gave
        state.update(last=m.values, last_at=due.isoformat())
    if m.verdict == "failed":
        state["fails"] = state["fails"] + 1
    elif m.verdict == "ok":
        state["fails"] = 0
    state["errors"] = state["errors"] + 1 if m.verdict == "error" else 0
    reasons = [reason_text(ctx, r) for r in m.reasons]
    if m.reasons:
        state["reasons"] = [str(x) for x in reasons]
    if state["fails"] >= min(w.failure_limit, count):
        state["state"] = WatchState.BREACHED
        state["why"] = str(
            ctx.t(
                "watch.breach", reasons=Mrkdwn("; ").join(reasons), n=state["fails"],
                time=slack_time(due, "{time}"),
            )
        )  # fmt: skip
    elif state["errors"] >= min(w.error_limit, count):
        state["state"] = WatchState.UNWATCHED
        state["why"] = str(ctx.t("watch.could_not", error=trusted(m.error)))
    elif n >= count:
        state["state"] = WatchState.OK
    facts: dict[str, Any] = {
        "n": n, "of": count, "at": due.isoformat(), "window": w.window, "values": m.values,
        "reasons": [r.facts() for r in m.reasons], "failing_in_a_row": state["fails"],
    }  # fmt: skip
    ctx.record("watch_measurement", outcome=m.verdict, detail=_plain(m.error), save={"watch": state}, **facts)
    if state["state"] == WatchState.WATCHING:
        ctx.step(_running_text(ctx, state, m), Progress.RUNNING)
        return state
    # The verdict: its own audit row and the card's last step for the watch.
    done = {"state": state["state"], "measurements": n, "of": count, "minutes": state["minutes"]}
    if state["state"] == WatchState.OK:
        ctx.record("watch_completed", **done, last=m.values)
        ctx.step(_ok_text(ctx, state), Progress.DONE)
    elif state["state"] == WatchState.BREACHED:
        ctx.record("watch_breached", outcome="failed", **done, reasons=[r.facts() for r in m.reasons])
        ctx.step(ctx.t("watch.breached_step", n=n, of=count, why=trusted(state["why"])), Progress.FAILED)
    else:
        ctx.record("watch_completed", outcome="unwatched", detail=_plain(m.error), **done)
        ctx.step(ctx.t("watch.unwatched_step", why=trusted(state["why"])), Progress.WARNING)
    return state


def measure(ctx: JobContext, env: Environment, w: WatchConfig, at: datetime) -> Measurement:
    """One measurement at `at`: each watched metric over `window`, judged against its critical
    threshold and its baseline."""
    obs = ctx.svc.config.observability
    try:
        report = ctx.svc.observability.evaluate(env, list(w.metrics), at=at, window=w.window)
    except (MonitoringError, OpError) as e:
        return Measurement("error", error=_failure(e, ctx.lang))
    refused = [r for r in report.readings if r.status == "failed"]
    if refused:  # Prometheus refused a watched query: no verdict on numbers it did not give
        prom = env.observability.prometheus if env.observability else None
        url = prom.resolved_url() if prom else ""
        error = t("obs.refused", ctx.lang, what="Prometheus", url=shown_url(url), error=refused[0].error)
        return Measurement("error", error=str(error))
    base = (ctx.progress.get("watch_baseline") or {}).get("values") or {}
    values = {r.name: r.value for r in report.readings}
    judged = [
        judge(name, value, obs.metrics[name], w.metrics[name], base.get(name))
        for name, value in values.items()
    ]
    reasons = [r for r in judged if r is not None]
    stored_values = {n: _json(v) for n, v in values.items()}
    if reasons:
        return Measurement("failed", stored_values, reasons)
    if all(v is None for v in values.values()):
        return Measurement("no_data", stored_values)
    return Measurement("ok", stored_values)


def _plain(text: str) -> str:
    return to_plain(trusted(text)) if text else ""


def _running_text(ctx: JobContext, state: dict[str, Any], m: Measurement | None = None) -> Mrkdwn:
    head = ctx.t(
        "watch.running", minutes=f"{state['minutes']:g}", n=state["done"], of=state["count"],
        interval=state["interval_seconds"],
    )  # fmt: skip
    if m is None:
        return head
    if m.verdict == "error":
        return head + Mrkdwn(" — ") + ctx.t("watch.no_answer", error=trusted(m.error), k=state["errors"])
    line = head + Mrkdwn(" — ") + numbers(ctx, m.values)
    if state["fails"]:
        limit = min(ctx.svc.config.observability.watch.failure_limit, state["count"])
        line += Mrkdwn(" · ") + ctx.t("watch.failing", k=state["fails"], limit=limit)
    return line


def _ok_text(ctx: JobContext, state: dict[str, Any]) -> Mrkdwn:
    return ctx.t(
        "watch.ok",
        minutes=f"{state['minutes']:g}",
        n=state["done"],
        numbers=numbers(ctx, state.get("last") or {}),
    )


def _outcome(ctx: JobContext, state: dict[str, Any]) -> Outcome:
    if state["state"] == WatchState.OK:
        return Outcome(WatchState.OK, str(ctx.t("watch.ok_result", minutes=f"{state['minutes']:g}")))
    return Outcome(WatchState(state["state"]), str(state.get("why") or ""))


# --------------------------------------------------------------------------- the rollback it starts


def rollback_job_id(deploy_id: str) -> str:
    """The id of the rollback a deploy's watch starts: one per deploy, so a resumed job finds it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taisun:watch-rollback:{deploy_id}"))


def start_rollback(ctx: JobContext, env: Environment, target: str) -> str:
    """Request the rollback to `target` as a job of its own (the normal rollback: dispatch, follow,
    verify, its own watch) and hand it this deploy's lock in the same transaction, so nobody can
    deploy in between. Idempotent: a resumed deploy job finds the rollback it already started."""
    deploy = ctx.job
    rid = rollback_job_id(deploy.id)
    svc = ctx.svc
    now = datetime.now(UTC)
    with svc.sessions.begin() as s:
        if s.get(Job, rid) is not None:
            return rid
        job = Job(
            id=rid, operation="rollback", environment=env.name,
            params={"version": target, "auto_rollback_of": deploy.id},
            state=JobState.VALIDATING, requested_by=deploy.requested_by,
            requested_by_name=deploy.requested_by_name, channel=deploy.channel, created_at=now, updated_at=now,
        )  # fmt: skip
        s.add(job)
        lock = s.get(Lock, env.name, with_for_update=True)
        if lock is not None and lock.job_id == deploy.id:
            lock.job_id = rid
            lock.reason = REGISTRY["rollback"].describe(job, svc.config.language)
        audit.append(
            s, actor_id=SYSTEM_HOLDER, actor_name="TAISUN", action="rollback.requested", environment=env.name,
            channel=job.channel, params=job.params, outcome="ok", job_id=rid, lang=svc.config.language,
            detail=msg("watch.audit_rollback", job=deploy.id[:8]),
        )  # fmt: skip
    svc.runner.wake()
    return rid
