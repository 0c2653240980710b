"""Service restart: the guide's runbook "サービス再起動" — status → restart → /health.

backend ``ssm``: the running instances tagged ``env.restart.instance_tag`` are restarted
one at a time through SSM Run Command, /health is checked after each, and the roll
stops at the first failure, leaving the remaining instances untouched.
backend ``local``: ``systemctl`` on the bot's own host (``env.restart.systemctl``).

Resumable: the list of instances is saved before the first restart and every
instance is recorded once it is restarted and healthy, so a job resumed after a
crash goes on with the next instance instead of restarting a finished one again.

The helpers at the top (credentials, health checks, sizes) are shared by the other
operations of this family (cache clear, DB connection reset, backup).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bot.backends import aws, http
from bot.backends.restart import (
    InvocationResult,
    LocalRestarter,
    RestartError,
    SSMRestarter,
    check_service_name,
    rolling_restart,
)
from bot.core.commands import Command, Spec, UsageError, env_arg, no_more, pop_flag, reject_unknown_flags
from bot.core.config import Config, Environment
from bot.core.i18n import Msg, msg, t
from bot.core.ops import (
    JobContext,
    Operation,
    OpError,
    OpRefused,
    Request,
    flag_for,
    label_for,
    simulated_why,
)
from bot.core.states import Progress
from bot.core.store.models import Job

if TYPE_CHECKING:
    from bot.core.services import Services

# --- shared helpers ------------------------------------------------------------------------

_AWS_SOURCES = (
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def _mentions(path: Path, words: tuple[str, ...]) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return False
    return any(w in text for w in words)


def _on_ec2() -> bool:
    """An EC2 host (its instance role is then the credential), from local files only."""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return False
    probes = {
        "/sys/hypervisor/uuid": lambda t: t.lower().startswith("ec2"),
        "/sys/devices/virtual/dmi/id/board_asset_tag": lambda t: t.startswith("i-"),
        "/sys/devices/virtual/dmi/id/sys_vendor": lambda t: "amazon" in t.lower(),
    }
    for path, test in probes.items():
        try:
            if test(Path(path).read_text(errors="replace").strip()):
                return True
        except OSError:
            continue
    return False


def aws_credentials_problem() -> Msg | None:
    """Why AWS calls cannot work here, or None. Local checks only: this runs on the ack path,
    where asking the instance metadata service could take seconds off EC2."""
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return None
    if any(os.environ.get(name) for name in _AWS_SOURCES):
        return None
    try:
        home = Path.home() / ".aws"
    except RuntimeError:
        home = Path("/nonexistent")
    creds = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials")
    conf = Path(os.environ.get("AWS_CONFIG_FILE") or home / "config")
    if _mentions(creds, ("aws_access_key_id", "credential_process")):
        return None
    if _mentions(conf, ("aws_access_key_id", "credential_process", "role_arn", "sso_")):
        return None
    if _on_ec2():
        return None
    return msg("op.sim.no_aws")


def health_text(report: http.HealthReport, lang: str = "en") -> str:
    if report.version:
        return t("op.health.version", lang, health=report.text(lang), version=report.version)
    return report.text(lang)


def final_health_check(ctx: JobContext, env: Environment, failed_key: str, **fields: Any) -> str:
    """The guide's last step (curl /health), retried until defaults.verify_timeout_seconds.

    Returns what was seen; raises OpError(failed_key, url, health, seconds and `fields`: what
    was already done) when the service stays unhealthy."""
    if not env.url:
        ctx.record("health_checked", outcome="skipped", detail=msg("health.no_url"), url=None)
        ctx.step(ctx.t("op.health.no_url_step", env=env.name), Progress.INFO)
        return ctx.t("op.health.not_checked")
    d = ctx.svc.config.defaults
    lang = ctx.svc.config.language
    ctx.step(ctx.t("op.health.checking", url=env.url), Progress.RUNNING)
    deadline = time.monotonic() + d.verify_timeout_seconds
    attempts = 0
    while True:
        attempts += 1
        report = http.check(env.url, timeout=min(5.0, d.verify_timeout_seconds))
        seen = {
            "url": env.url,
            "health": report.health,
            "version": report.version or None,
            "attempts": attempts,
        }
        if report.healthy:
            ctx.record("health_checked", **seen)
            ctx.step(ctx.t("op.health.ok", health=health_text(report, lang)), Progress.DONE)
            return health_text(report, lang)
        if time.monotonic() >= deadline:
            ctx.record("health_checked", outcome="failed", **seen)
            ctx.step(ctx.t("op.health.failed", health=health_text(report, lang)), Progress.FAILED)
            raise OpError(
                key=failed_key,
                url=env.url,
                health=report.said,  # rendered in each reader's language (bot.core.i18n.user_message)
                seconds=f"{d.verify_timeout_seconds:g}",
                **fields,
            )
        ctx.heartbeat()
        time.sleep(d.verify_interval_seconds)


# --- restart building blocks (also used by db-connection-reset) ---------------------------


def checked_service(env: Environment, service: str | None) -> str:
    """The service to restart, re-checked against the environment's list (runbooks call this path too)."""
    if not env.services:
        raise OpError(key="op.restart.no_services", env=env.name)
    name = service or env.services[0]
    if name not in env.services:
        raise OpError(
            key="op.restart.unknown_service", name=name, env=env.name, services=", ".join(env.services)
        )
    try:
        check_service_name(name)
    except RestartError:
        raise OpError(key="op.restart.bad_name", name=name) from None
    return name


def restart_problem(env: Environment) -> Msg | None:
    """Why a restart in `env` can only be simulated here, or None."""
    cfg = env.restart
    if cfg.backend == "ssm":
        problem = aws_credentials_problem()
        return msg("op.sim.ssm", problem=problem) if problem else None
    exe = cfg.systemctl[0]
    if shutil.which(exe) is None:
        return msg("op.sim.no_exe", exe=exe)
    # The real systemctl (a bare name, maybe behind sudo) needs a running systemd.
    if "systemctl" in cfg.systemctl and not os.path.isdir("/run/systemd/system"):
        return msg("op.sim.no_systemd")
    return None


def where_text(env: Environment, lang: str = "en") -> str:
    cfg = env.restart
    if cfg.backend == "ssm" and cfg.instance_tag:
        return t("op.restart.where_ssm", lang, tag=cfg.instance_tag.key, value=cfg.instance_tag.value)
    return t("op.restart.where_local", lang, host=socket.gethostname(), command=" ".join(cfg.systemctl))


def list_targets(env: Environment, ssm: SSMRestarter | None = None) -> list[str]:
    """Instances (ssm) or this host (local), in the order the roll goes."""
    cfg = env.restart
    if cfg.backend == "ssm":
        assert cfg.instance_tag is not None
        # Listing needs EC2 only; a boto3 client costs a few hundred ms to build.
        ssm = ssm or SSMRestarter(None, aws.client("ec2"))
        try:
            return ssm.instances(cfg.instance_tag.key, cfg.instance_tag.value)
        except RestartError as e:
            raise OpError(key="op.restart.list_failed", error=str(e)) from None
    return [socket.gethostname()]


def restart_fields(
    env: Environment, service: str, targets: list[str] | None, lang: str = "en"
) -> list[tuple[str, str]]:
    where_env = (
        t("op.deploy.env_value", lang, env=env.name, url=env.url)
        if env.url
        else t("op.deploy.env_value_no_url", lang, env=env.name)
    )
    fields = [(t("op.field.environment", lang), where_env), (t("op.field.service", lang), f"`{service}`")]
    if targets is None:
        fields.append((t("op.field.where", lang), where_text(env, lang)))
    else:
        shown = ", ".join(f"`{x}`" for x in targets[:10]) + (" …" if len(targets) > 10 else "")
        fields.append((t("op.field.where", lang), f"{where_text(env, lang)}: {len(targets)} — {shown}"))
    return fields


def plan_restart(ctx: JobContext, env: Environment, service: str) -> list[tuple[str, str]]:
    """Fields for the card; lists the instances when it can (a read-only call)."""
    lang = ctx.svc.config.language
    if ctx.job.params.get("simulated") or env.restart.backend != "ssm":
        return restart_fields(env, service, None, lang)
    targets = list_targets(env)
    if not targets:
        tag = env.restart.instance_tag
        assert tag is not None
        raise OpRefused(key="op.restart.no_instances_tagged", tag=tag.key, value=tag.value, env=env.name)
    return restart_fields(env, service, targets, lang)


def simulate_restart(ctx: JobContext, env: Environment, service: str) -> None:
    lang = ctx.svc.config.language
    targets = None
    if env.restart.backend == "ssm" and not ctx.job.params.get("simulated"):
        targets = list_targets(env)  # a dry run with credentials names the real instances
    what = ", ".join(f"`{x}`" for x in targets) if targets else where_text(env, lang)
    ctx.step(ctx.t("op.restart.sim_status", service=service, what=what), Progress.INFO)
    url = env.url or ctx.t("op.restart.no_url")
    ctx.step(ctx.t("op.restart.sim_restart", service=service, what=what, url=url), Progress.INFO)


def rolling_restart_job(ctx: JobContext, env: Environment, service: str) -> str:
    """Status → rolling restart → /health after each; progress saved per instance. Returns a summary."""
    cfg = env.restart
    targets: list[str] | None = ctx.progress.get("restart_targets")
    local = LocalRestarter(cfg.systemctl, timeout_s=cfg.invocation_timeout_seconds)
    ssm = SSMRestarter(aws.client("ssm"), aws.client("ec2")) if cfg.backend == "ssm" else None
    if targets is None:
        targets = list_targets(env, ssm)
        if not targets:
            raise OpError(
                key="op.restart.none_running", env=env.name, where=where_text(env, ctx.svc.config.language)
            )
        _status(ctx, env, service, local, targets)
        ctx.save(restart_targets=targets, restart_done=[], restart_current="")
    done: list[str] = list(ctx.progress.get("restart_done", []))
    interrupted = ctx.progress.get("restart_current") or ""
    if interrupted and interrupted not in done:
        ctx.step(ctx.t("op.restart.resumed_current", target=interrupted), Progress.INFO)
    elif done:
        ctx.step(ctx.t("op.restart.resumed_done", n=len(done)), Progress.INFO)
    remaining = [x for x in targets if x not in done]
    if not remaining:  # resumed after the last instance was done: only the check is left
        health = final_health_check(ctx, env, "op.restart.unhealthy_after")
        return ctx.t(
            "op.restart.summary",
            service=service,
            n=len(targets),
            total=len(targets),
            env=env.name,
            health=health,
        )
    if cfg.backend == "local" and remaining[0] != socket.gethostname():
        raise OpError(
            key="op.restart.other_host", host=remaining[0], me=socket.gethostname(), service=service
        )
    state: dict[str, Any] = {"target": "", "result": None, "health": ""}

    def restart_one(target: str) -> InvocationResult:
        state.update(target=target, result=None, health="")
        ctx.save(restart_current=target)  # before the side effect: a resumed job knows where it was
        ctx.step(ctx.t("op.restart.restarting", target=target, service=service), Progress.RUNNING)
        if ssm is not None:
            result = ssm.restart(
                target, service, timeout_s=cfg.invocation_timeout_seconds, poll_s=cfg.poll_seconds
            )
        else:
            result = local.restart_one(service)
        state["result"] = result
        if result.ok:
            ctx.step(
                ctx.t("op.restart.restarted_checking", target=target, status=result.status), Progress.RUNNING
            )
        return result

    def health() -> tuple[bool, str]:
        ctx.heartbeat()
        if not env.url:
            ok, detail = True, ctx.t("op.restart.no_url_detail")
        else:
            report = http.check(env.url, timeout=5.0)
            ok, detail = bool(report.healthy), health_text(report, ctx.svc.config.language)
        state["health"] = detail
        if ok:
            target = state["target"]
            done.append(target)
            result: InvocationResult = state["result"]
            ctx.record(
                "instance_restarted", save={"restart_done": list(done), "restart_current": ""},
                instance=target, service=service, backend=cfg.backend, command_id=result.command_id or None,
                status=result.status, health=detail,
            )  # fmt: skip
            ctx.step(ctx.t("op.restart.restarted", target=target, detail=detail), Progress.DONE)
        return ok, detail

    def sleep(seconds: float) -> None:
        ctx.heartbeat()
        time.sleep(seconds)

    outcome = rolling_restart(
        remaining,
        restart_one,
        health,
        health_attempts=cfg.health_attempts,
        health_interval_s=cfg.health_interval_seconds,
        sleep=sleep,
    )
    if not outcome.ok:
        stopped = outcome.stopped_at or state["target"]
        result = outcome.results[-1] if outcome.results else None
        untouched = [x for x in remaining if x not in done and x != stopped]
        failed = {
            "instance": stopped, "service": service, "backend": cfg.backend,
            "command_id": (result.command_id if result else "") or None, "status": result.status if result else None,
            "health": state["health"] or None, "untouched": untouched,
        }  # fmt: skip
        if result is not None and not result.ok:
            lines = (result.stderr or result.stdout).strip().splitlines()
            why = lines[-1] if lines else ctx.t("op.restart.no_output")
            ctx.record(
                "instance_failed", outcome="failed", detail=why, save={"restart_current": ""}, **failed
            )
            ctx.step(
                ctx.t("op.restart.step_failed", target=stopped, status=result.status, why=why),
                Progress.FAILED,
            )
        else:
            ctx.record(
                "instance_failed",
                outcome="failed",
                detail=outcome.said,
                save={"restart_current": ""},
                **failed,
            )
            ctx.step(ctx.t("op.restart.unhealthy", target=stopped, health=state["health"]), Progress.FAILED)
        for x in untouched:
            ctx.step(ctx.t("op.restart.not_restarted", target=x), Progress.SKIPPED)
        stop = {"service": service, "env": env.name, "stopped": stopped, "reason": outcome.said}
        if untouched:
            raise OpError(
                key="op.restart.stopped_untouched", n=len(done), total=len(targets), untouched=", ".join(untouched),
                **stop,
            )  # fmt: skip
        raise OpError(key="op.restart.stopped", n=len(done), total=len(targets), **stop)
    return ctx.t(
        "op.restart.summary", service=service, n=len(targets), total=len(targets), env=env.name,
        health=state["health"] or "ok",
    )  # fmt: skip


def _status(
    ctx: JobContext, env: Environment, service: str, local: LocalRestarter, targets: list[str]
) -> None:
    """The runbook's first step: `systemctl status` (local) or the instances and live /health (ssm)."""
    lang = ctx.svc.config.language
    live = http.check(env.url, timeout=3.0) if env.url else None
    now = ctx.t("op.restart.health_now", health=health_text(live, lang)) if live else ""
    if env.restart.backend == "local":
        try:
            text = local.status(service)
        except RestartError as e:
            raise OpError(key="op.restart.status_failed", error=str(e)) from None
        active = next((ln.strip() for ln in text.splitlines() if ln.strip().startswith("Active:")), "")
        active = active or ctx.t("op.restart.no_active")
        ctx.step(
            ctx.t("op.restart.status_local", service=service, target=targets[0], active=active, now=now),
            Progress.DONE,
        )
        return
    ctx.step(
        ctx.t("op.restart.status_ssm", n=len(targets), where=where_text(env, lang), now=now), Progress.DONE
    )


# --- the operation ----------------------------------------------------------------------------


def parse_restart(tokens: list[str], config: Config, usage: str) -> Command:
    dry_run = bool(pop_flag(tokens, "--dry-run"))
    reject_unknown_flags(tokens, usage)
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    if not env.services:
        raise UsageError(key="err.no_services", env=env.name)
    service = tokens.pop(0) if tokens else env.services[0]
    no_more(tokens, usage)
    if service not in env.services:
        raise UsageError(
            key="err.unknown_service", service=service, env=env.name, services=", ".join(env.services)
        )
    return Command("restart", {"service": service, "dry_run": dry_run}, env)


RESTART_COMMAND = Spec(
    "restart", "restart <env> [service]", "Rolling restart of a service", "サービスをローリング再起動", "operator",
    parse=parse_restart, rank=40,
)  # fmt: skip


class Restart(Operation):
    command = RESTART_COMMAND
    name = "restart"
    title: ClassVar[dict[str, str]] = {"en": "Restart", "ja": "再起動"}
    resumable = True

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Environment, version: str = ""
    ) -> dict[str, Any]:
        return {"service": str(params.get("service") or (env.services[0] if env.services else ""))}

    def check_request(self, svc: Services, req: Request) -> None:
        env = req.env
        if env is None:
            raise OpError(key="op.restart.which_env")
        req.params["service"] = checked_service(env, req.params.get("service"))
        problem = restart_problem(env)
        if problem:
            req.params["simulated"] = [problem]
        else:
            req.params.pop("simulated", None)

    def describe(self, job: Job, lang: str = "en") -> str:
        service = job.params.get("service") or "?"
        if lang == "ja":
            return f"{job.environment} の {service} を再起動"
        return f"Restart {service} on {job.environment}"

    def prepare(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None
        fields = plan_restart(ctx, env, ctx.params["service"])
        ctx.save(fields=fields, flag=flag_for(ctx.job, ctx.svc.config.language))

    def run(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None
        service = ctx.params["service"]
        if ctx.dry_run or ctx.params.get("simulated"):
            simulate_restart(ctx, env, service)
            why = ctx.t("op.why.dry_run") if ctx.dry_run else simulated_why(ctx.job, ctx.lang)
            label = label_for(ctx.job, ctx.svc.config.language)
            ctx.simulated(ctx.t("op.restart.sim_result", label=label, why=why))
            return
        summary = rolling_restart_job(ctx, env, service)
        ctx.save(result=ctx.t("op.restart.result", summary=summary))
