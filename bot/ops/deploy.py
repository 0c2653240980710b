"""Deploy and rollback: the guide's tag-based `cd.yml` flow, verified by /health and /version.

The flow a job follows, each step saved before the next side effect so a restarted
bot resumes it without ever dispatching twice:

    prepare: tag → commit SHA, live version, what changes (GitHub compare)
    run:     tag re-checked → dispatch marked → workflow dispatched → run found
             → run followed → /health and /version verified (→ auto rollback)
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import select

from bot.backends import http
from bot.backends.github import GitHubBackend, GitHubError, GitHubRateLimited, GitHubUnavailable, version_key
from bot.config import Config, Environment, Settings
from bot.i18n import msg, render, t
from bot.mrkdwn import Mrkdwn, mention, trusted
from bot.ops.base import JobContext, Operation, OpError, OpRefused, Request, register, simulated_why
from bot.policy import NotAllowed
from bot.store.models import Job

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

POLL_SECONDS = 3.0
# Stored in job.params; shown in the reader's language.
SIMULATED_NO_GITHUB = [msg("op.deploy.no_token")]


def github_backend(settings: Settings, config: Config) -> GitHubBackend:
    g = config.github
    return GitHubBackend(
        token=settings.github_token, api_url=settings.github_api_url, repository=g.repository,
        workflow=g.workflow, ref=g.ref, tag_pattern=g.tag_pattern, return_run_details=g.return_run_details,
    )  # fmt: skip


def latest_tag_names(svc: Services, limit: int = 20) -> list[str]:
    """Release tags for the deploy form, newest first ([] when GitHub is not configured)."""
    if not svc.settings.github_token:
        return []
    gh = github_backend(svc.settings, svc.config)
    try:
        return [t.name for t in gh.latest_tags(limit)]
    finally:
        gh.close()


def verified_history(svc: Services, environment: str, limit: int = 20) -> list[str]:
    """Versions verified live on the environment by this bot, newest first (no dry runs or simulations)."""
    with svc.sessions() as s:
        jobs = s.scalars(
            select(Job).where(
                Job.environment == environment, Job.operation.in_(("deploy", "rollback")),
                Job.state == "succeeded", Job.dry_run.is_(False),
            ).order_by(Job.finished_at.desc()).limit(limit * 2)
        )  # fmt: skip
        versions = [j.params.get("version", "") for j in jobs if not j.params.get("simulated")]
    return [v for v in versions if v][:limit]


def _claimed_run_ids(svc: Services, job_id: str) -> set[int]:
    """Runs already followed by other jobs: a new job must not adopt them."""
    since = datetime.now(UTC) - timedelta(days=1)
    with svc.sessions() as s:
        rows = s.scalars(
            select(Job).where(
                Job.operation.in_(("deploy", "rollback")), Job.created_at >= since, Job.id != job_id
            )
        )
        return {int(j.progress["run_id"]) for j in rows if j.progress.get("run_id")}


class Deploy(Operation):
    name = "deploy"
    title: ClassVar[dict[str, str]] = {"en": "Deploy", "ja": "デプロイ"}
    resumable = True
    rollback = False
    # At execution the tag must still point at the commit that was approved.
    checks_tag_again = True

    # -- ack path (no network) -------------------------------------------------------
    def check_request(self, svc: Services, req: Request) -> None:
        env = req.env
        assert env is not None
        if not svc.settings.github_token:
            req.params["simulated"] = SIMULATED_NO_GITHUB
        self._check_freeze(svc, req, env)

    def _check_freeze(self, svc: Services, req: Request, env: Environment) -> None:
        window = svc.policy.freeze_window(env)
        if window is None:
            req.params.pop("force", None)
            return
        span = msg(
            "op.deploy.freeze_span", start_day=msg(f"day.{window.start.day}"), start=window.start.time,
            end_day=msg(f"day.{window.end.day}"), end=window.end.time, tz=svc.config.timezone,
        )  # fmt: skip
        force = str(req.params.get("force") or "")
        if not force:
            raise OpError(
                key="op.deploy.freeze", env=env.name, window=window.name, span=span,
                version=req.params.get("version", "<version>"),
            )  # fmt: skip
        if not svc.policy.has_role(req.user_id, "break_glass", env):
            raise NotAllowed("break_glass", env, msg("act.freeze_deploy"))
        lang = svc.config.language
        req.params["freeze_override"] = t(
            "op.deploy.freeze_note", lang, window=window.name, span=render(span, lang), user=mention(req.user_id),
            reason=force,
        )  # fmt: skip

    def approval_required(self, svc: Services, job: Job, env: Environment | None) -> bool:
        if job.dry_run:
            return False
        return bool(env and env.approval_required) or bool(job.params.get("freeze_override"))

    def describe(self, job: Job, lang: str = "en") -> str:
        version = job.params.get("version") or "?"
        if lang == "ja":
            return f"{job.environment} に {version} をデプロイ"
        return f"Deploy {version} to {job.environment}"

    def inputs(
        self, svc: Services, job: Job, *, version: str = "", rollback: bool | None = None
    ) -> dict[str, str]:
        """The workflow inputs, from the config's templates (only what cd.yml declares)."""
        rollback = self.rollback if rollback is None else rollback
        values = {
            "environment": job.environment, "version": version or str(job.params.get("version", "")),
            "rollback": "true" if rollback else "false", "requested_by": job.requested_by_name or job.requested_by,
            "approved_by": job.approved_by, "job_id": job.id,
        }  # fmt: skip
        return {name: template.format(**values) for name, template in svc.config.github.inputs.items()}

    # -- prepare (worker) ------------------------------------------------------------
    def prepare(self, ctx: JobContext) -> None:
        svc, job, env = ctx.svc, ctx.job, ctx.env
        assert env is not None
        version = job.params["version"]
        live = http.check(env.url, timeout=3.0).version
        where = (
            ctx.t("op.deploy.env_value", env=env.name, url=env.url)
            if env.url
            else ctx.t("op.deploy.env_value_no_url", env=env.name)
        )
        fields: list[tuple[str, str]] = [(ctx.t("op.field.environment"), where)]
        fields.append((ctx.t("op.field.version"), f"{live} → *{version}*" if live else f"*{version}*"))
        previous = self._previous_version(svc, env, live, version)
        if job.params.get("simulated"):
            fields.append((ctx.t("op.field.commit"), ctx.t("op.deploy.commit_unchecked")))
            ctx.save(live_version=live, rollback_to=previous, fields=fields, flag=self._flag(ctx))
            return
        gh = github_backend(svc.settings, svc.config)
        try:
            sha = gh.resolve_tag(version)
            if sha is None:
                tags = ", ".join(f"`{tag.name}`" for tag in gh.latest_tags(5)) or ctx.t("op.none")
                raise OpRefused(
                    key="op.deploy.no_tag", version=version, repo=svc.config.github.repository, tags=tags
                )
            fields.append((ctx.t("op.field.commit"), f"`{sha[:10]}`"))
            if live and live != version and gh.resolve_tag(live):
                cmp = gh.compare(live, version)
                titles = "\n".join(f"• {title}" for title in cmp.titles[:8])
                changes = {"url": cmp.html_url, "n": cmp.total_commits, "live": live, "titles": titles}
                if cmp.total_commits > 8:
                    text = ctx.t("op.deploy.changes_more", more=cmp.total_commits - 8, **changes)
                else:
                    text = ctx.t("op.deploy.changes", **changes)
                fields.append((ctx.t("op.field.changes"), text))
        except GitHubError as e:
            raise OpRefused(key="op.deploy.github_check", version=version, error=str(e)) from None
        finally:
            gh.close()
        ctx.save(sha=sha, live_version=live, rollback_to=previous, fields=fields, flag=self._flag(ctx))

    def _flag(self, ctx: JobContext) -> str:
        job = ctx.job
        bits = []
        if job.params.get("freeze_override"):  # mrkdwn the bot rendered at request time (the reason escaped)
            bits.append(ctx.t("op.deploy.flag_freeze", why=trusted(job.params["freeze_override"])))
        if job.params.get("simulated"):
            bits.append(ctx.t("op.deploy.flag_simulated", why=simulated_why(job, ctx.lang)))
        return Mrkdwn(" · ").join(bits)

    def _previous_version(self, svc: Services, env: Environment, live: str, target: str) -> str:
        """What a rollback after this deploy returns to: the live version, else the last verified one."""
        if live and live != target:
            return live
        for v in verified_history(svc, env.name):
            if v != target:
                return v
        return ""

    # -- run (worker) ----------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        job, env = ctx.job, ctx.env
        assert env is not None
        version = job.params["version"]
        if job.dry_run or job.params.get("simulated"):
            self._simulate(ctx, env, version)
            return
        gh = github_backend(ctx.svc.settings, ctx.svc.config)
        try:
            self._dispatch_once(ctx, gh, version)
            run = self._follow(ctx, gh)
            if run.conclusion != "success":
                raise OpError(key="op.deploy.run_ended", conclusion=run.conclusion, url=run.html_url)
            ok, observed = self._verify(ctx, env, version)
            if not ok:
                self._after_failed_verification(ctx, gh, env, version, observed)
            self._set_deployment(ctx, gh, "success")
        finally:
            gh.close()
        ctx.save(result=ctx.t("op.deploy.live", version=version, env=env.name))

    def _simulate(self, ctx: JobContext, env: Environment, version: str) -> None:
        label = ctx.t("op.label.dry_run" if ctx.job.dry_run else "op.label.simulated")
        g = ctx.svc.config.github
        inputs = self.inputs(ctx.svc, ctx.job)
        ctx.step(
            ctx.t("op.deploy.sim_dispatch", label=label, workflow=g.workflow, ref=g.ref, repo=g.repository,
                  inputs=inputs),
            "info",
        )  # fmt: skip
        ctx.step(ctx.t("op.deploy.sim_follow", label=label), "info")
        ctx.step(ctx.t("op.deploy.sim_verify", label=label, url=env.url, version=version), "info")
        why = ctx.t("op.why.dry_run") if ctx.job.dry_run else simulated_why(ctx.job, ctx.lang)
        ctx.save(result=ctx.t("op.deploy.sim_result", label=label, why=why))

    def _dispatch_once(self, ctx: JobContext, gh: GitHubBackend, version: str) -> None:
        if ctx.progress.get("dispatch_started_at"):
            return  # resumed: the dispatch may have gone out; find its run, never send it again
        if self.checks_tag_again and ctx.progress.get("sha"):
            sha_now = gh.resolve_tag(version)
            if sha_now != ctx.progress["sha"]:
                raise OpError(
                    key="op.deploy.tag_moved", version=version,
                    sha=(sha_now or ctx.t("op.nothing"))[:10], approved=ctx.progress["sha"][:10],
                )  # fmt: skip
        started = datetime.now(UTC)
        ctx.save(dispatch_started_at=started.isoformat())
        ctx.step(ctx.t("op.deploy.dispatching"), "running")
        if ctx.svc.config.github.create_deployment:
            self._github_deployment(ctx, gh, version)
        try:
            run_id = gh.dispatch(self.inputs(ctx.svc, ctx.job))
            if run_id:
                ctx.save(dispatched_run_id=int(run_id))
        except GitHubUnavailable as e:
            # A 5xx may still have started a run: look for it instead of sending again.
            ctx.save(dispatch_error=str(e))
            ctx.step(ctx.t("op.deploy.dispatch_error", error=e), "info")
            return
        except GitHubError as e:
            raise OpError(key="op.deploy.dispatch_refused", error=str(e)) from None
        ctx.step(ctx.t("op.deploy.dispatched", workflow=ctx.svc.config.github.workflow), "done")

    def _github_deployment(self, ctx: JobContext, gh: GitHubBackend, version: str) -> None:
        try:
            dep = gh.create_deployment(version, ctx.job.environment, self.describe(ctx.job))
            ctx.save(deployment_id=dep)
        except GitHubError as e:
            ctx.step(ctx.t("op.deploy.no_deployment", error=e), "info")

    def _set_deployment(self, ctx: JobContext, gh: GitHubBackend, state: str) -> None:
        dep = ctx.progress.get("deployment_id")
        if dep:
            try:
                gh.set_deployment_status(
                    int(dep),
                    state,
                    environment_url=ctx.env.url if ctx.env else "",
                    log_url=ctx.progress.get("run_url", ""),
                )
            except GitHubError:
                log.warning("could not update a GitHub deployment status", extra={"job_id": ctx.job.id})

    def _follow(self, ctx: JobContext, gh: GitHubBackend) -> Any:
        run_id = ctx.progress.get("run_id")
        if not run_id:
            started = datetime.fromisoformat(ctx.progress["dispatch_started_at"])
            find_timeout = ctx.svc.config.defaults.find_run_timeout_seconds
            deadline = time.monotonic() + find_timeout
            title = ctx.svc.config.github.run_title.format(job_id=ctx.job.id) or None
            run = None
            while run is None and time.monotonic() < deadline:
                try:
                    if ctx.progress.get("dispatched_run_id"):
                        run = gh.get_run(int(ctx.progress["dispatched_run_id"]))
                    else:
                        run = gh.find_run(
                            started, exclude_ids=_claimed_run_ids(ctx.svc, ctx.job.id), title_contains=title
                        )
                except (GitHubUnavailable, GitHubRateLimited) as e:
                    ctx.step(ctx.t("op.deploy.github_slow", error=e), "running")
                    run = None
                if run is None:
                    ctx.heartbeat()
                    time.sleep(min(POLL_SECONDS, 1.0))
            if run is None:
                seconds = f"{find_timeout:g}"
                if ctx.progress.get("dispatch_error"):
                    raise OpError(
                        key="op.deploy.no_run_why", seconds=seconds, error=ctx.progress["dispatch_error"]
                    )
                raise OpError(key="op.deploy.no_run", seconds=seconds)
            ctx.save(run_id=run.id, run_url=run.html_url, links=[(ctx.t("op.deploy.link_run"), run.html_url)])
            self._set_deployment(ctx, gh, "in_progress")
            ctx.step(ctx.t("op.deploy.run_found", url=run.html_url, id=run.id), "done")
            run_id = run.id
        deadline = time.monotonic() + ctx.svc.config.defaults.workflow_timeout_minutes * 60
        last_status = ""
        while time.monotonic() < deadline:
            try:
                run = gh.get_run(int(run_id))
            except (GitHubUnavailable, GitHubRateLimited) as e:
                ctx.heartbeat()
                wait = min(getattr(e, "retry_after", POLL_SECONDS), 60)
                time.sleep(max(POLL_SECONDS, wait))
                continue
            if run.status != last_status:
                last_status = run.status
                if run.status != "completed":
                    ctx.step(
                        ctx.t("op.deploy.workflow_status", status=run.status.replace("_", " ")), "running"
                    )
            if run.status == "completed":
                ctx.step(
                    ctx.t("op.deploy.workflow_done", conclusion=run.conclusion),
                    "done" if run.conclusion == "success" else "failed",
                )
                if run.conclusion != "success":
                    self._set_deployment(ctx, gh, "failure")
                return run
            ctx.heartbeat()
            time.sleep(self.poll_seconds(ctx))
        raise OpError(
            key="op.deploy.timeout", minutes=f"{ctx.svc.config.defaults.workflow_timeout_minutes:g}"
        )

    def poll_seconds(self, ctx: JobContext) -> float:
        return min(POLL_SECONDS, ctx.svc.config.defaults.verify_interval_seconds * 5)

    def _verify(self, ctx: JobContext, env: Environment, version: str) -> tuple[bool, str]:
        """The guide's check: /health is 200 and /version is the one deployed, until a deadline."""
        d = ctx.svc.config.defaults
        ctx.step(ctx.t("op.deploy.verifying", url=env.url), "running")
        deadline = time.monotonic() + d.verify_timeout_seconds
        observed = ""
        while True:
            report = http.check(env.url, timeout=min(5.0, d.verify_timeout_seconds))
            observed = ctx.t(
                "op.deploy.observed", health=report.health, version=report.version or ctx.t("op.unknown")
            )
            if report.healthy and report.version == version:
                ctx.step(ctx.t("op.deploy.verified", version=version), "done")
                return True, observed
            if time.monotonic() >= deadline:
                ctx.step(
                    ctx.t("op.deploy.verify_failed_step", seconds=f"{d.verify_timeout_seconds:g}", observed=observed,
                          version=version),
                    "failed",
                )  # fmt: skip
                return False, observed
            ctx.heartbeat()
            time.sleep(d.verify_interval_seconds)

    def _after_failed_verification(
        self, ctx: JobContext, gh: GitHubBackend, env: Environment, version: str, observed: str
    ) -> None:
        self._set_deployment(ctx, gh, "failure")
        target = ctx.progress.get("rollback_to", "")
        if env.auto_rollback and target and not self.rollback:
            ctx.step(ctx.t("op.deploy.auto_rollback", target=target, env=env.name), "running")
            try:
                gh.dispatch(self.inputs(ctx.svc, ctx.job, version=target, rollback=True))
            except GitHubError as e:
                raise OpError(key="op.deploy.auto_rollback_failed", observed=observed, error=str(e)) from None
            raise OpError(key="op.deploy.auto_rolled_back", observed=observed, target=target)
        if target:
            raise OpError(
                key="op.deploy.verify_failed_offer", observed=observed, version=version, target=target
            )
        raise OpError(key="op.deploy.verify_failed", observed=observed, version=version)


class Rollback(Deploy):
    name = "rollback"
    title: ClassVar[dict[str, str]] = {"en": "Rollback", "ja": "ロールバック"}
    rollback = True

    def check_request(self, svc: Services, req: Request) -> None:
        # A rollback is how you get out of trouble: freeze windows do not apply to it.
        if not svc.settings.github_token:
            req.params["simulated"] = SIMULATED_NO_GITHUB

    def approval_required(self, svc: Services, job: Job, env: Environment | None) -> bool:
        return bool(env and env.approval_required) and not job.dry_run

    def describe(self, job: Job, lang: str = "en") -> str:
        target = job.params.get("version") or t("op.rollback.previous", lang)
        if lang == "ja":
            return f"{job.environment} を {target} にロールバック"
        return f"Roll back {job.environment} to {target}"

    def prepare(self, ctx: JobContext) -> None:
        svc, job, env = ctx.svc, ctx.job, ctx.env
        assert env is not None
        live = http.check(env.url, timeout=3.0).version
        target = job.params.get("version") or self._choose_target(ctx, env, live)
        job.params = {**job.params, "version": target, "from_version": live}
        with svc.sessions.begin() as s:
            s.get(Job, job.id).params = job.params  # type: ignore[union-attr]
        super().prepare(ctx)
        version_label = ctx.t("op.field.version")
        fields = [f for f in ctx.progress.get("fields", []) if f[0] != version_label]
        fields.insert(1, (ctx.t("op.field.rollback"), f"{live or ctx.t('op.unknown')} → *{target}*"))
        ctx.save(fields=fields)

    def _choose_target(self, ctx: JobContext, env: Environment, live: str) -> str:
        current = live or (verified_history(ctx.svc, env.name)[:1] or [""])[0]
        for v in verified_history(ctx.svc, env.name):
            if v != current:
                return v
        if ctx.svc.settings.github_token and current:
            gh = github_backend(ctx.svc.settings, ctx.svc.config)
            try:
                older = [
                    tag.name for tag in gh.latest_tags(50) if version_key(tag.name) < version_key(current)
                ]
            except GitHubError as e:
                raise OpRefused(key="op.rollback.no_tags", error=str(e)) from None
            finally:
                gh.close()
            if older:
                return older[0]
        raise OpRefused(
            key="op.rollback.unknown_target", env=env.name, current=current or ctx.t("op.rollback.live_one")
        )

    def keep_lock_after(self, job: Job, lang: str = "en") -> str | None:
        if job.dry_run:
            return None
        previous = job.params.get("from_version") or t("op.unknown", lang)
        return t("op.rollback.lock_reason", lang, previous=previous, version=job.params.get("version"))


register(Deploy())
register(Rollback())
