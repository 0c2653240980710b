"""Cache clear: the guide's runbook "キャッシュクリア" (`redis-cli FLUSHALL`, `npm run cache:clear`), made safe.

Redis is cleared the way the environment's `cache` section says — only keys under a
prefix, only the URL's database (FLUSHDB), or FLUSHALL when explicitly allowed — and
the card shows the deleted count and memory before → after. The application's own
cache is cleared through its endpoint (Bearer token from `app_token_env`) or a
command. The job ends with the /health check.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from bot.backends.cache import CacheError, clear_app_cache, clear_redis, redis_location
from bot.core.commands import Command, Spec, UsageError, env_arg, no_more, pop_flag, reject_unknown_flags
from bot.core.config import CacheConfig, Config, Environment
from bot.core.i18n import Msg, msg, t
from bot.core.logs import redact
from bot.core.mrkdwn import Mrkdwn
from bot.core.ops import (
    JobContext,
    Operation,
    OpError,
    Request,
    Throttled,
    flag_for,
    human_bytes,
    label_for,
    simulated_why,
)
from bot.core.states import Progress
from bot.core.store.models import Job
from bot.operations.restart import final_health_check

if TYPE_CHECKING:
    from bot.core.services import Services

PARTS = ("redis", "app")


def _redis_what(cache: CacheConfig, lang: str = "en") -> str:
    if cache.mode == "prefix":
        return t("op.cache.redis_what_prefix", lang, prefix=cache.prefix)
    if cache.mode == "flushdb":
        return t("op.cache.redis_what_flushdb", lang)
    return t("op.cache.redis_what_flushall", lang)


def _app_what(cache: CacheConfig) -> str:
    if cache.app_endpoint:
        return f"POST {redact(cache.app_endpoint)}"
    return f"`{' '.join(cache.app_command)}`"


def parse_cache(tokens: list[str], config: Config, usage: str) -> Command:
    dry_run = bool(pop_flag(tokens, "--dry-run"))
    reject_unknown_flags(tokens, usage)
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    target = (tokens.pop(0) if tokens else "all").lower()
    no_more(tokens, usage)
    if target not in ("redis", "app", "all"):
        raise UsageError(key="err.unknown_cache", target=target)
    return Command("cache-clear", {"target": target, "dry_run": dry_run}, env)


CACHE_CLEAR_COMMAND = Spec(
    "cache-clear", "cache-clear <env> [redis|app|all]", "Clear caches", "キャッシュをクリア", "operator",
    parse=parse_cache, rank=50, aliases=("cache", "cacheclear"),
)  # fmt: skip


class CacheClear(Operation):
    command = CACHE_CLEAR_COMMAND
    name = "cache-clear"
    title: ClassVar[dict[str, str]] = {"en": "Cache clear", "ja": "キャッシュクリア"}
    destructive = True
    # Clearing again is harmless, and the parts already cleared are recorded and skipped.
    resumable = True

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Environment, version: str = ""
    ) -> dict[str, Any]:
        return {"target": str(params.get("target") or "all")}

    def check_request(self, svc: Services, req: Request) -> None:
        env = req.env
        if env is None:
            raise OpError(key="op.cache.which_env")
        target = str(req.params.get("target") or "all").lower()
        if target not in ("redis", "app", "all"):
            raise OpError(key="op.cache.unknown", target=target)
        cache = env.cache
        if cache is None:
            raise OpError(key="op.cache.none", env=env.name)
        has_redis = bool(cache.redis_url_env)
        has_app = bool(cache.app_endpoint or cache.app_command)
        if target == "redis" and not has_redis:
            raise OpError(key="op.cache.no_redis", env=env.name)
        if target == "app" and not has_app:
            raise OpError(key="op.cache.no_app", env=env.name)
        parts = [p for p in PARTS if target in (p, "all") and (has_redis if p == "redis" else has_app)]
        if not parts:
            raise OpError(key="op.cache.nothing", env=env.name)
        simulated: dict[str, Msg] = {}
        if "redis" in parts and not os.environ.get(cache.redis_url_env):
            simulated["redis"] = msg("op.sim.unset_redis", name=cache.redis_url_env)
        if (
            "app" in parts
            and cache.app_endpoint
            and cache.app_token_env
            and not os.environ.get(cache.app_token_env)
        ):
            simulated["app"] = msg("op.sim.unset_app", name=cache.app_token_env)
        req.params.update(target=target, parts=parts)
        req.params.pop("simulated", None)
        req.params.pop("simulated_parts", None)
        if simulated:
            req.params["simulated"] = list(simulated.values())
            req.params["simulated_parts"] = sorted(simulated)

    def describe(self, job: Job, lang: str = "en") -> str:
        target = job.params.get("target") or "all"
        which = {"redis": "Redis", "app": "app", "all": "Redis + app"}.get(target, target)
        if lang == "ja":
            return f"{job.environment} のキャッシュをクリア（{which}）"
        return f"Clear the {which} cache on {job.environment}"

    def prepare(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.cache is not None
        cache = env.cache
        lang = ctx.svc.config.language
        where_env = (
            ctx.t("op.deploy.env_value", env=env.name, url=env.url)
            if env.url
            else ctx.t("op.deploy.env_value_no_url", env=env.name)
        )
        fields: list[tuple[str, str]] = [(ctx.t("op.field.environment"), where_env)]
        parts = ctx.params.get("parts", [])
        if "redis" in parts:
            url = os.environ.get(cache.redis_url_env, "")
            where = redis_location(url) if url else ctx.t("op.cache.not_set", name=cache.redis_url_env)
            redis = ctx.t("op.cache.redis_field", where=where, mode=cache.mode, what=_redis_what(cache, lang))
            fields.append((ctx.t("op.field.redis"), redis))
        if "app" in parts:
            fields.append((ctx.t("op.field.app_cache"), _app_what(cache)))
        ctx.save(fields=fields, flag=flag_for(ctx.job, lang))

    def run(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.cache is not None
        cache = env.cache
        cleared: list[str] = list(ctx.progress.get("cleared", []))
        simulated_parts = set(ctx.params.get("simulated_parts", []))
        lang = ctx.svc.config.language
        label = label_for(ctx.job, lang)
        notes: list[Mrkdwn] = []
        for part in ctx.params.get("parts", []):
            if part in cleared:
                continue  # resumed: done before the bot stopped
            if ctx.dry_run or part in simulated_parts:
                if part == "redis":
                    ctx.step(ctx.t("op.cache.sim_redis", what=_redis_what(cache, lang)), Progress.INFO)
                else:
                    ctx.step(ctx.t("op.cache.sim_app", what=_app_what(cache)), Progress.INFO)
                continue
            # Each clear saves itself as done, with its audit row, before the next one starts.
            cleared.append(part)
            notes.append(
                self._redis(ctx, cache, cleared) if part == "redis" else self._app(ctx, cache, cleared)
            )
        if ctx.dry_run or (simulated_parts and not cleared):
            ctx.step(ctx.t("op.cache.sim_health", url=env.url or ctx.t("op.restart.no_url")), Progress.INFO)
            why = ctx.t("op.why.dry_run") if ctx.dry_run else simulated_why(ctx.job, ctx.lang)
            ctx.simulated(ctx.t("op.cache.sim_result", label=label, why=why))
            return
        joined = Mrkdwn("; ").join(notes)  # the notes are mrkdwn already: joined, not escaped again
        health = final_health_check(ctx, env, "op.cache.unhealthy_after", notes=joined)
        if simulated_parts:
            result = ctx.t(
                "op.cache.result_partial", env=env.name, notes=joined, health=health, label=label,
                why=simulated_why(ctx.job, ctx.lang),
            )  # fmt: skip
        else:
            result = ctx.t("op.cache.result", env=env.name, notes=joined, health=health)
        ctx.save(result=result)

    def _redis(self, ctx: JobContext, cache: CacheConfig, cleared: list[str]) -> str:
        url = os.environ.get(cache.redis_url_env, "")
        if not url:
            raise OpError(key="op.cache.redis_unset", name=cache.redis_url_env)
        where = redis_location(url)
        what = _redis_what(cache, ctx.svc.config.language)
        ctx.step(ctx.t("op.cache.redis_clearing", where=where, what=what), Progress.RUNNING)
        try:
            res = clear_redis(
                url, mode=cache.mode, prefix=cache.prefix, allow_flushall=cache.allow_flushall,
                progress=Throttled(ctx, f"Redis {where}"),
            )  # fmt: skip
        except CacheError as e:
            ctx.record("redis_cleared", outcome="error", detail=str(e), where=where, mode=cache.mode)
            ctx.step(f"Redis {where}: {e}", Progress.FAILED)
            raise OpError(key="op.cache.redis_failed", error=str(e)) from None
        deleted = (
            ctx.t("op.cache.every_key") if res.deleted is None else ctx.t("op.cache.keys", n=res.deleted)
        )
        memory = f"{human_bytes(res.memory_before)} → {human_bytes(res.memory_after)}"
        ctx.step(
            ctx.t("op.cache.redis_done", where=where, mode=res.mode, deleted=deleted, memory=memory),
            Progress.DONE,
        )
        fields = list(ctx.progress.get("fields", []))
        fields += [(ctx.t("op.field.deleted"), deleted), (ctx.t("op.field.redis_memory"), memory)]
        save = {
            "fields": fields, "redis_deleted": res.deleted, "memory_before": res.memory_before,
            "memory_after": res.memory_after, "cleared": list(cleared),
        }  # fmt: skip
        ctx.record(
            "redis_cleared", save=save, where=where, mode=res.mode, prefix=cache.prefix if cache.mode == "prefix" else None,
            keys_deleted=res.deleted, memory_before_bytes=res.memory_before, memory_after_bytes=res.memory_after,
        )  # fmt: skip
        return ctx.t("op.cache.redis_note", deleted=deleted, memory=memory)

    def _app(self, ctx: JobContext, cache: CacheConfig, cleared: list[str]) -> str:
        token = os.environ.get(cache.app_token_env, "") if cache.app_token_env else ""
        ctx.step(ctx.t("op.cache.app_running", what=_app_what(cache)), Progress.RUNNING)
        try:
            if cache.app_endpoint:
                summary = clear_app_cache(endpoint=cache.app_endpoint, token=token)
            else:
                summary = clear_app_cache(command=list(cache.app_command), token=token)
        except CacheError as e:
            ctx.record("app_cleared", outcome="error", detail=str(e), via=_app_what(cache))
            ctx.step(ctx.t("op.cache.app_step", text=e), Progress.FAILED)
            raise OpError(key="op.cache.app_failed", error=str(e)) from None
        ctx.record("app_cleared", save={"cleared": list(cleared)}, via=_app_what(cache), answer=summary)
        ctx.step(ctx.t("op.cache.app_step", text=summary), Progress.DONE)
        return ctx.t("op.cache.app_note", summary=summary)
