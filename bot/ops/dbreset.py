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
from bot.config import Environment
from bot.ops.base import JobContext, Operation, OpError, Request, register
from bot.ops.restart import (
    checked_service,
    flag_for,
    label_for,
    minutes_text,
    plan_restart,
    restart_problem,
    rolling_restart_job,
    simulate_restart,
)
from bot.store.models import Job

if TYPE_CHECKING:
    from bot.services import Services


def counts_text(c: ConnCounts, age: float) -> str:
    txn = f", {c.idle_in_transaction} idle in transaction (left alone)" if c.idle_in_transaction else ""
    return f"{c.total} connection(s): {c.idle} idle, {c.idle_older} idle > {minutes_text(age)}{txn}"


def _dsn(env: Environment, svc: Services) -> str:
    assert env.database is not None
    dsn = os.environ.get(env.database.dsn_env, "")
    if not dsn:
        raise OpError(
            f"{env.database.dsn_env} is no longer set in the bot's environment: nothing was changed."
        )
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
            raise OpError("Which environment? The DB connection reset works on one environment's database.")
        db = env.database
        if db is None:
            raise OpError(
                f"No database is configured for {env.name} (environments.{env.name}.database.dsn_env)."
            )
        if db.dsn_env.upper() == "DATABASE_URL":
            raise OpError(
                f"environments.{env.name}.database.dsn_env is DATABASE_URL, the bot's own database. "
                "Name the variable that holds the application's database DSN instead."
            )
        age = req.params.get("idle_age_minutes") or db.idle_age_minutes
        try:
            age = float(age)
        except (TypeError, ValueError):
            raise OpError(f"idle_age_minutes should be a number of minutes, got {age!r}.") from None
        if age <= 0:
            raise OpError("idle_age_minutes should be more than 0.")
        req.params["idle_age_minutes"] = age
        restart = req.params.get("restart", True) is not False
        req.params["restart"] = restart
        if restart:
            req.params["service"] = checked_service(env, req.params.get("service"))
        dsn = os.environ.get(db.dsn_env, "")
        if dsn and dsn == svc.settings.database_url:
            raise OpError(
                f"{db.dsn_env} holds the same DSN as the bot's own DATABASE_URL; refusing to end the bot's connections."
            )
        problems = [] if dsn else [f"{db.dsn_env} is not set: no connection is terminated"]
        if restart and (problem := restart_problem(env)):
            problems.append(problem)
        req.params.pop("simulated", None)
        if problems:
            req.params["simulated"] = "; ".join(problems)

    def describe(self, job: Job, lang: str = "en") -> str:
        then = " and restart" if job.params.get("restart", True) else ""
        if lang == "ja":
            return f"{job.environment} の DB 接続をリセット" + ("して再起動" if then else "")
        return f"Reset idle DB connections{then} on {job.environment}"

    def prepare(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.database is not None
        age = float(ctx.params["idle_age_minutes"])
        fields: list[tuple[str, str]] = [("Environment", f"{env.name} ({env.url or 'no URL'})")]
        dsn = os.environ.get(env.database.dsn_env, "")
        target = safe_dsn(dsn) if dsn else f"${env.database.dsn_env} (not set)"
        fields.append(("Database", target))
        fields.append(("Terminates", f"connections idle for more than {minutes_text(age)}"))
        extra: dict[str, Any] = {}
        if dsn and not ctx.params.get("simulated"):
            try:
                now = connection_counts(dsn, older_than_minutes=age)
            except PgConnError as e:
                raise OpError(f"Could not read pg_stat_activity: {e}") from None
            fields.append(("Connections now", counts_text(now, age)))
            extra["counts_at_request"] = now.__dict__
        if ctx.params.get("restart"):
            fields += [f for f in plan_restart(ctx, env, ctx.params["service"]) if f[0] != "Environment"]
        ctx.save(fields=fields, flag=flag_for(ctx.job), **extra)

    def run(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.database is not None
        age = float(ctx.params["idle_age_minutes"])
        restart = bool(ctx.params.get("restart"))
        if ctx.dry_run or ctx.params.get("simulated"):
            self._simulate(ctx, env, age, restart)
            return
        dsn = _dsn(env, ctx.svc)
        if not ctx.progress.get("reset_done"):
            ctx.step(f"Terminating connections idle > {minutes_text(age)} on {safe_dsn(dsn)}…", "running")
            try:
                res = reset_idle_connections(dsn, older_than_minutes=age)
            except PgConnError as e:
                ctx.step(f"Reset failed: {e}", "failed")
                raise OpError(f"No connection was reset: {e}") from None
            failed = f"; {len(res.failed)} could not be ended (pids {res.failed})" if res.failed else ""
            pids = f" (pids {', '.join(map(str, res.terminated[:20]))})" if res.terminated else ""
            ctx.step(f"Before: {counts_text(res.before, age)}", "done")
            ctx.step(f"Terminated {len(res.terminated)} idle connection(s){pids}{failed}", "done")
            ctx.step(f"After: {counts_text(res.after, age)}", "done")
            fields = [f for f in ctx.progress.get("fields", []) if f[0] != "Connections now"]
            fields += [
                ("Before", counts_text(res.before, age)),
                ("Terminated", str(len(res.terminated))),
                ("After", counts_text(res.after, age)),
            ]
            ctx.save(
                reset_done=True, terminated=res.terminated, failed_pids=res.failed, fields=fields,
                before=res.before.__dict__, after=res.after.__dict__,
            )  # fmt: skip
        terminated = len(ctx.progress.get("terminated", []))
        summary = f"Terminated {terminated} idle connection(s) on {env.name}"
        if restart:
            summary += "; " + rolling_restart_job(ctx, env, ctx.params["service"])
        else:
            ctx.step("Restart skipped (restart: false)", "skipped")
        ctx.save(result=summary + ".")

    def _simulate(self, ctx: JobContext, env: Environment, age: float, restart: bool) -> None:
        label = label_for(ctx.job)
        assert env.database is not None
        dsn = os.environ.get(env.database.dsn_env, "")
        if ctx.dry_run and dsn:
            try:
                res = reset_idle_connections(dsn, older_than_minutes=age, dry_run=True)
            except PgConnError as e:
                raise OpError(f"Could not read pg_stat_activity: {e}") from None
            ctx.step(f"Now: {counts_text(res.before, age)}", "done")
            pids = f" (pids {', '.join(map(str, res.terminated[:20]))})" if res.terminated else ""
            ctx.step(f"{label}: would terminate {len(res.terminated)} idle connection(s){pids}", "info")
        else:
            ctx.step(f"{label}: would count connections in pg_stat_activity", "info")
            ctx.step(f"{label}: would terminate connections idle for more than {minutes_text(age)}", "info")
        if restart:
            simulate_restart(ctx, env, ctx.params["service"])
        why = "dry run" if ctx.dry_run else ctx.params["simulated"]
        ctx.save(result=f"{label}: nothing was changed ({why}).")


register(DbConnectionReset())
