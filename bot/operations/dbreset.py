"""DB connection reset: the guide's runbook "データベース接続リセット".

    1. SELECT count(*) FROM pg_stat_activity         → counts before, on the card
    2. pg_terminate_backend(idle connections older than the limit)
    3. systemctl restart taisun                       → the restart operation's rolling restart

Only the environment's application database is touched, through the variable named by
`environments.<env>.database.dsn_env` — never the bot's own DATABASE_URL. Only plain
idle client sessions older than `idle_age_minutes` are ended (see bot/backends/pgconn.py
for why "idle since" is measured from state_change). Reachable from runbooks (the
`db-connection-reset` action) and through the job engine.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from bot.backends.pgconn import ConnCounts, PgConnError, connection_counts, reset_idle_connections, safe_dsn
from bot.core.config import Environment
from bot.core.i18n import minutes_text, msg, t
from bot.core.ops import JobContext, Operation, OpError, Request, flag_for, label_for, simulated_why
from bot.core.states import Progress
from bot.core.store.models import Job
from bot.operations.restart import (
    checked_service,
    plan_restart,
    restart_problem,
    rolling_restart_job,
    simulate_restart,
)

if TYPE_CHECKING:
    from bot.core.services import Services


def counts_text(c: ConnCounts, age: float, lang: str = "en") -> str:
    fields = {"total": c.total, "idle": c.idle, "older": c.idle_older, "age": minutes_text(age, lang)}
    if c.idle_in_transaction:
        return t("op.db.counts_txn", lang, txn=c.idle_in_transaction, **fields)
    return t("op.db.counts", lang, **fields)


def _dsn(env: Environment, svc: Services) -> str:
    assert env.database is not None
    dsn = os.environ.get(env.database.dsn_env, "")
    if not dsn:
        raise OpError(key="op.db.dsn_unset", name=env.database.dsn_env)
    return dsn


class DbConnectionReset(Operation):
    name = "db-connection-reset"
    title: ClassVar[dict[str, str]] = {"en": "DB connection reset", "ja": "DB 接続リセット"}
    destructive = True
    # The reset is recorded once done; the restart that follows is itself resumable.
    resumable = True

    def check_request(self, svc: Services, req: Request) -> None:
        env = req.env
        if env is None:
            raise OpError(key="op.db.which_env")
        db = env.database
        if db is None:
            raise OpError(key="op.db.none", env=env.name)
        if db.dsn_env.upper() == "DATABASE_URL":
            raise OpError(key="op.db.own_db", env=env.name)
        age = req.params.get("idle_age_minutes") or db.idle_age_minutes
        try:
            age = float(age)
        except (TypeError, ValueError):
            raise OpError(key="op.db.bad_age", value=repr(age)) from None
        if age <= 0:
            raise OpError(key="op.db.age_positive")
        req.params["idle_age_minutes"] = age
        restart = req.params.get("restart", True) is not False
        req.params["restart"] = restart
        if restart:
            req.params["service"] = checked_service(env, req.params.get("service"))
        dsn = os.environ.get(db.dsn_env, "")
        if dsn and dsn == svc.settings.database_url:
            raise OpError(key="op.db.same_dsn", name=db.dsn_env)
        problems = [] if dsn else [msg("op.sim.unset_db", name=db.dsn_env)]
        if restart and (problem := restart_problem(env)):
            problems.append(problem)
        req.params.pop("simulated", None)
        if problems:
            req.params["simulated"] = problems

    def describe(self, job: Job, lang: str = "en") -> str:
        then = " and restart" if job.params.get("restart", True) else ""
        if lang == "ja":
            return f"{job.environment} の DB 接続をリセット" + ("して再起動" if then else "")
        return f"Reset idle DB connections{then} on {job.environment}"

    def prepare(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.database is not None
        age = float(ctx.params["idle_age_minutes"])
        lang = ctx.svc.config.language
        where_env = (
            ctx.t("op.deploy.env_value", env=env.name, url=env.url)
            if env.url
            else ctx.t("op.deploy.env_value_no_url", env=env.name)
        )
        env_label = ctx.t("op.field.environment")
        fields: list[tuple[str, str]] = [(env_label, where_env)]
        dsn = os.environ.get(env.database.dsn_env, "")
        target = safe_dsn(dsn) if dsn else ctx.t("op.cache.not_set", name=env.database.dsn_env)
        fields.append((ctx.t("op.field.database"), target))
        fields.append(
            (ctx.t("op.field.terminates"), ctx.t("op.db.terminates", age=minutes_text(age, ctx.lang)))
        )
        extra: dict[str, Any] = {}
        if dsn and not ctx.params.get("simulated"):
            try:
                now = connection_counts(dsn, older_than_minutes=age)
            except PgConnError as e:
                raise OpError(key="op.db.pg_stat_failed", error=str(e)) from None
            fields.append((ctx.t("op.field.connections_now"), counts_text(now, age, lang)))
            extra["counts_at_request"] = now.__dict__
        if ctx.params.get("restart"):
            fields += [f for f in plan_restart(ctx, env, ctx.params["service"]) if f[0] != env_label]
        ctx.save(fields=fields, flag=flag_for(ctx.job, lang), **extra)

    def run(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.database is not None
        age = float(ctx.params["idle_age_minutes"])
        restart = bool(ctx.params.get("restart"))
        if ctx.dry_run or ctx.params.get("simulated"):
            self._simulate(ctx, env, age, restart)
            return
        dsn = _dsn(env, ctx.svc)
        lang = ctx.svc.config.language
        if not ctx.progress.get("reset_done"):
            ctx.step(
                ctx.t("op.db.terminating", age=minutes_text(age, ctx.lang), dsn=safe_dsn(dsn)),
                Progress.RUNNING,
            )
            try:
                res = reset_idle_connections(dsn, older_than_minutes=age)
            except PgConnError as e:
                ctx.record("connections_terminated", outcome="error", detail=str(e), database=safe_dsn(dsn))
                ctx.step(ctx.t("op.db.reset_failed_step", error=e), Progress.FAILED)
                raise OpError(key="op.db.reset_failed", error=str(e)) from None
            failed = ctx.t("op.db.not_ended", n=len(res.failed), pids=res.failed) if res.failed else ""
            pids = (
                ctx.t("op.db.pids", pids=", ".join(map(str, res.terminated[:20]))) if res.terminated else ""
            )
            before, after = counts_text(res.before, age, lang), counts_text(res.after, age, lang)
            ctx.step(ctx.t("op.db.before", counts=before), Progress.DONE)
            ctx.step(
                ctx.t("op.db.terminated", n=len(res.terminated), pids=pids, failed=failed), Progress.DONE
            )
            ctx.step(ctx.t("op.db.after", counts=after), Progress.DONE)
            now_label = ctx.t("op.field.connections_now")
            fields = [f for f in ctx.progress.get("fields", []) if f[0] != now_label]
            fields += [
                (ctx.t("op.field.before"), before),
                (ctx.t("op.field.terminated"), str(len(res.terminated))),
                (ctx.t("op.field.after"), after),
            ]
            save = {
                "reset_done": True, "terminated": res.terminated, "failed_pids": res.failed, "fields": fields,
                "before": res.before.__dict__, "after": res.after.__dict__,
            }  # fmt: skip
            ctx.record(
                "connections_terminated", save=save, database=safe_dsn(dsn), idle_age_minutes=age,
                terminated=len(res.terminated), pids=res.terminated, not_ended=res.failed,
                before=res.before.__dict__, after=res.after.__dict__,
            )  # fmt: skip
        terminated = len(ctx.progress.get("terminated", []))
        summary = ctx.t("op.db.summary", n=terminated, env=env.name)
        if restart:
            summary += "; " + rolling_restart_job(ctx, env, ctx.params["service"])
        else:
            ctx.step(ctx.t("op.db.restart_skipped"), Progress.SKIPPED)
        ctx.save(result=ctx.t("op.restart.result", summary=summary))

    def _simulate(self, ctx: JobContext, env: Environment, age: float, restart: bool) -> None:
        lang = ctx.svc.config.language
        label = label_for(ctx.job, lang)
        assert env.database is not None
        dsn = os.environ.get(env.database.dsn_env, "")
        if ctx.dry_run and dsn:
            try:
                res = reset_idle_connections(dsn, older_than_minutes=age, dry_run=True)
            except PgConnError as e:
                raise OpError(key="op.db.pg_stat_failed", error=str(e)) from None
            ctx.step(ctx.t("op.db.now", counts=counts_text(res.before, age, lang)), Progress.DONE)
            pids = (
                ctx.t("op.db.pids", pids=", ".join(map(str, res.terminated[:20]))) if res.terminated else ""
            )
            ctx.step(ctx.t("op.db.sim_terminate", n=len(res.terminated), pids=pids), Progress.INFO)
        else:
            ctx.step(ctx.t("op.db.sim_count"), Progress.INFO)
            ctx.step(ctx.t("op.db.sim_terminate_age", age=minutes_text(age, ctx.lang)), Progress.INFO)
        if restart:
            simulate_restart(ctx, env, ctx.params["service"])
        why = ctx.t("op.why.dry_run") if ctx.dry_run else simulated_why(ctx.job, ctx.lang)
        ctx.simulated(ctx.t("op.db.sim_result", label=label, why=why))
