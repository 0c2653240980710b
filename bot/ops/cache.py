"""Cache clear: the guide's runbook "キャッシュクリア" (`redis-cli FLUSHALL`, `npm run cache:clear`), made safe.

Redis is cleared the way the environment's `cache` section says — only keys under a
prefix, only the URL's database (FLUSHDB), or FLUSHALL when explicitly allowed — and
the card shows the deleted count and memory before → after. The application's own
cache is cleared through its endpoint (Bearer token from `app_token_env`) or a
command. The job ends with the /health check.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

from bot.backends.cache import CacheError, clear_app_cache, clear_redis, redis_location
from bot.config import CacheConfig, Environment
from bot.logs import redact
from bot.ops.base import JobContext, Operation, OpError, Request, register
from bot.ops.restart import Throttled, final_health_check, flag_for, human_bytes, label_for
from bot.store.models import Job

if TYPE_CHECKING:
    from bot.services import Services

PARTS = ("redis", "app")


def _redis_what(cache: CacheConfig) -> str:
    if cache.mode == "prefix":
        return f"keys matching `{cache.prefix}*`"
    if cache.mode == "flushdb":
        return "every key of its database (FLUSHDB)"
    return "every database on the server (FLUSHALL)"


def _app_what(cache: CacheConfig) -> str:
    if cache.app_endpoint:
        return f"POST {redact(cache.app_endpoint)}"
    return f"`{' '.join(cache.app_command)}`"


class CacheClear(Operation):
    name = "cache-clear"
    title: ClassVar[dict[str, str]] = {"en": "Cache clear", "ja": "キャッシュクリア"}
    destructive = True
    # Clearing again is harmless, and the parts already cleared are recorded and skipped.
    resumable = True

    def check_request(self, svc: Services, req: Request) -> None:
        env = req.env
        if env is None:
            raise OpError("Which environment? Usage: `/taisun cache-clear <env> [redis|app|all]`.")
        target = str(req.params.get("target") or "all").lower()
        if target not in ("redis", "app", "all"):
            raise OpError(f"Unknown cache `{target}`. Choose `redis`, `app` or `all`.")
        cache = env.cache
        if cache is None:
            raise OpError(f"No cache is configured for {env.name} (environments.{env.name}.cache).")
        has_redis = bool(cache.redis_url_env)
        has_app = bool(cache.app_endpoint or cache.app_command)
        if target == "redis" and not has_redis:
            raise OpError(
                f"No Redis is configured for {env.name} (environments.{env.name}.cache.redis_url_env)."
            )
        if target == "app" and not has_app:
            raise OpError(
                f"No application cache is configured for {env.name}: set environments.{env.name}.cache.app_endpoint "
                "(with app_token_env) or app_command."
            )
        parts = [p for p in PARTS if target in (p, "all") and (has_redis if p == "redis" else has_app)]
        if not parts:
            raise OpError(
                f"Nothing to clear in {env.name}: its cache section names neither Redis nor an app cache."
            )
        simulated: dict[str, str] = {}
        if "redis" in parts and not os.environ.get(cache.redis_url_env):
            simulated["redis"] = f"{cache.redis_url_env} is not set: Redis is not touched"
        if (
            "app" in parts
            and cache.app_endpoint
            and cache.app_token_env
            and not os.environ.get(cache.app_token_env)
        ):
            simulated["app"] = f"{cache.app_token_env} is not set: the app's cache endpoint is not called"
        req.params.update(target=target, parts=parts)
        req.params.pop("simulated", None)
        req.params.pop("simulated_parts", None)
        if simulated:
            req.params["simulated"] = "; ".join(simulated.values())
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
        fields: list[tuple[str, str]] = [("Environment", f"{env.name} ({env.url or 'no URL'})")]
        parts = ctx.params.get("parts", [])
        if "redis" in parts:
            url = os.environ.get(cache.redis_url_env, "")
            where = redis_location(url) if url else f"${cache.redis_url_env} (not set)"
            fields.append(("Redis", f"{where} · mode `{cache.mode}`: {_redis_what(cache)}"))
        if "app" in parts:
            fields.append(("App cache", _app_what(cache)))
        ctx.save(fields=fields, flag=flag_for(ctx.job))

    def run(self, ctx: JobContext) -> None:
        env = ctx.env
        assert env is not None and env.cache is not None
        cache = env.cache
        cleared: list[str] = list(ctx.progress.get("cleared", []))
        simulated_parts = set(ctx.params.get("simulated_parts", []))
        label = label_for(ctx.job)
        notes: list[str] = []
        for part in ctx.params.get("parts", []):
            if part in cleared:
                continue  # resumed: done before the bot stopped
            if ctx.dry_run or part in simulated_parts:
                what = (
                    f"clear Redis: {_redis_what(cache)}"
                    if part == "redis"
                    else f"clear the app cache: {_app_what(cache)}"
                )
                ctx.step(f"{label}: would {what}", "info")
                continue
            notes.append(self._redis(ctx, env, cache) if part == "redis" else self._app(ctx, cache))
            cleared.append(part)
            ctx.save(cleared=cleared)
        if ctx.dry_run or (simulated_parts and not cleared):
            ctx.step(f"{label}: would check {env.url or '(no URL)'}/health", "info")
            why = "dry run" if ctx.dry_run else ctx.params.get("simulated", "")
            ctx.save(result=f"{label}: nothing was cleared ({why}).")
            return
        health = final_health_check(ctx, env, "The cache was cleared (" + "; ".join(notes) + ")")
        also = f" ({label}: {ctx.params['simulated']})" if simulated_parts else ""
        ctx.save(result=f"Cleared on {env.name}: {'; '.join(notes)}. /health {health}.{also}")

    def _redis(self, ctx: JobContext, env: Environment, cache: CacheConfig) -> str:
        url = os.environ.get(cache.redis_url_env, "")
        if not url:
            raise OpError(
                f"{cache.redis_url_env} is no longer set in the bot's environment: Redis was not touched."
            )
        where = redis_location(url)
        ctx.step(f"Redis {where}: clearing {_redis_what(cache)}…", "running")
        try:
            res = clear_redis(
                url, mode=cache.mode, prefix=cache.prefix, allow_flushall=cache.allow_flushall,
                progress=Throttled(ctx, f"Redis {where}"),
            )  # fmt: skip
        except CacheError as e:
            ctx.step(f"Redis {where}: {e}", "failed")
            raise OpError(f"The Redis cache was not cleared: {e}") from None
        deleted = "every key" if res.deleted is None else f"{res.deleted} key(s)"
        memory = f"{human_bytes(res.memory_before)} → {human_bytes(res.memory_after)}"
        ctx.step(f"Redis {where} ({res.mode}): {deleted} deleted · memory {memory}", "done")
        fields = list(ctx.progress.get("fields", []))
        fields += [("Deleted", deleted), ("Redis memory", memory)]
        ctx.save(
            fields=fields,
            redis_deleted=res.deleted,
            memory_before=res.memory_before,
            memory_after=res.memory_after,
        )
        return f"Redis {deleted} deleted, memory {memory}"

    def _app(self, ctx: JobContext, cache: CacheConfig) -> str:
        token = os.environ.get(cache.app_token_env, "") if cache.app_token_env else ""
        ctx.step(f"App cache: {_app_what(cache)}…", "running")
        try:
            if cache.app_endpoint:
                summary = clear_app_cache(endpoint=cache.app_endpoint, token=token)
            else:
                summary = clear_app_cache(command=list(cache.app_command), token=token)
        except CacheError as e:
            ctx.step(f"App cache: {e}", "failed")
            raise OpError(f"The application cache was not cleared: {e}") from None
        ctx.step(f"App cache: {summary}", "done")
        return f"app cache cleared ({summary})"


register(CacheClear())
