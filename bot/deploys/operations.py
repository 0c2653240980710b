"""Deploy and rollback: the guide's tag-based `cd.yml` flow, verified by /health and /version.

The flow a job follows, each step saved before the next side effect so a restarted
bot resumes it without ever dispatching twice:

    prepare: tag → commit SHA, live version, what changes (GitHub compare)
    run:     tag re-checked → baseline measured → dispatch marked → workflow dispatched → run found
             → run followed → /health and /version verified (→ auto rollback) → smoke test
             → watched for watch_minutes (bot/deploys/watch.py; a breach → Roll back or a rollback job)
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from bot.backends import http
from bot.backends.github import GitHubBackend, GitHubError, GitHubRateLimited, GitHubUnavailable, version_key
from bot.core.commands import Command, Spec, UsageError, env_arg, no_more, pop_flag, reject_unknown_flags
from bot.core.config import Config, Environment
from bot.core.i18n import msg, render, t, t_plain
from bot.core.mrkdwn import Mrkdwn, key_values, mention, trusted
from bot.core.ops import JobContext, NeedsVersion, Operation, OpError, OpRefused, Request, simulated_why
from bot.core.states import Progress, WatchState
from bot.core.store.models import Job
from bot.deploys import watch
from bot.deploys.service import (
    claimed_run_ids,
    github_backend,
    rollback_button_target,
    rollback_target_inferable,
    verified_history,
)
from bot.deploys.smoke import run_smoke
from bot.deploys.timeline import adopt_pending, claim_run, github_facts, is_outside

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

POLL_SECONDS = 3.0
# Stored in job.params; shown in the reader's language.
SIMULATED_NO_GITHUB = [msg("op.deploy.no_token")]


# --- the subcommands ---------------------------------------------------------------------------


def parse_deploy(tokens: list[str], config: Config, usage: str) -> Command:
    dry_run = bool(pop_flag(tokens, "--dry-run"))
    force = pop_flag(tokens, "--force", takes_value=True)
    reject_unknown_flags(tokens, usage)
    if not tokens:
        return Command("deploy", {"modal": True, "dry_run": dry_run})
    env = env_arg(config, tokens.pop(0), usage)
    if not tokens:
        raise UsageError(key="err.which_version", usage=usage, env=env.name)
    version = tokens.pop(0)
    no_more(tokens, usage)
    if not re.fullmatch(config.github.tag_pattern, version):
        raise UsageError(key="err.not_a_tag", version=version)
    return Command("deploy", {"version": version, "dry_run": dry_run, "force": force or ""}, env)


def parse_rollback(tokens: list[str], config: Config, usage: str) -> Command:
    dry_run = bool(pop_flag(tokens, "--dry-run"))
    reject_unknown_flags(tokens, usage)
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    version = tokens.pop(0) if tokens else ""
    no_more(tokens, usage)
    if version and not re.fullmatch(config.github.tag_pattern, version):
        raise UsageError(key="err.not_a_tag", version=version)
    return Command("rollback", {"version": version, "dry_run": dry_run}, env)


DEPLOY_COMMAND = Spec(
    "deploy", "deploy <env> <version> [--dry-run] [--force <reason>]",
    "Deploy a release tag (no arguments opens a form)", "リリースタグをデプロイ（引数なしでフォーム）", "operator",
    parse=parse_deploy, rank=20,
)  # fmt: skip
ROLLBACK_COMMAND = Spec(
    "rollback", "rollback <env> [version] [--dry-run]",
    "Roll back to the previous verified version", "直前の検証済みバージョンへロールバック", "operator",
    parse=parse_rollback, rank=30,
)  # fmt: skip


class Deploy(Operation):
    name = "deploy"
    title: ClassVar[dict[str, str]] = {"en": "Deploy", "ja": "デプロイ"}
    resumable = True
    rollback = False
    # At execution the tag must still point at the commit that was approved.
    checks_tag_again = True
    offers_rollback = True
    command = DEPLOY_COMMAND

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Environment, version: str = ""
    ) -> dict[str, Any]:
        chosen = str(params.get("version") or version)
        if not chosen:
            raise NeedsVersion(key="rb.err.needs_version")
        return {"version": chosen, "force": ""}

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
        svc.policy.require(req.user_id, "break_glass", env, msg("act.freeze_deploy"), req.attempt())
        lang = svc.config.language
        req.params["freeze_override"] = t(
            "op.deploy.freeze_note", lang, window=window.name, span=render(span, lang), user=mention(req.user_id),
            reason=force,
        )  # fmt: skip

    def approval_required(self, svc: Services, job: Job, env: Environment | None) -> bool:
        if job.dry_run or is_outside(job):  # started on GitHub: it runs whatever the bot says
            return False
        return bool(env and env.approval_required) or bool(job.params.get("freeze_override"))

    def takes_lock(self, job: Job) -> bool:
        # A deploy started on GitHub happens whoever holds the lock: the bot follows it all the same.
        return super().takes_lock(job) and not is_outside(job)

    def describe(self, job: Job, lang: str = "en") -> str:
        if is_outside(job):
            gh = github_facts(job)
            actor = str(gh.get("actor") or job.requested_by_name or "GitHub")
            if job.params.get("version"):
                return t_plain(
                    "timeline.describe", lang, actor=actor, version=job.params["version"], env=job.environment
                )
            ref = str(gh.get("ref") or "?") + (f"@{str(gh.get('sha'))[:7]}" if gh.get("sha") else "")
            return t_plain("timeline.describe_ref", lang, actor=actor, ref=ref, env=job.environment)
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
        if is_outside(job):
            self._prepare_outside(ctx, env)
            return
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
        checked = {"version": version, "live_version": live or None, "rollback_to": previous or None}
        if job.params.get("simulated"):
            fields.append((ctx.t("op.field.commit"), ctx.t("op.deploy.commit_unchecked")))
            save = {"live_version": live, "rollback_to": previous, "fields": fields, "flag": self._flag(ctx)}
            ctx.record("checked", save=save, sha=None, **checked)
            return
        gh = github_backend(svc.settings, svc.config)
        try:
            # The tag → commit check is the only one that may refuse the request.
            try:
                sha = gh.resolve_tag(version)
                if sha is None:
                    tags = ", ".join(f"`{tag.name}`" for tag in gh.latest_tags(5)) or ctx.t("op.none")
                    raise OpRefused(
                        key="op.deploy.no_tag", version=version, repo=svc.config.github.repository, tags=tags
                    )
            except GitHubError as e:
                raise OpRefused(key="op.deploy.github_check", version=version, error=str(e)) from None
            fields.append((ctx.t("op.field.commit"), f"`{sha[:10]}`"))
            changes, facts = self._changes(ctx, gh, env, live, version)
        finally:
            gh.close()
        if changes:
            fields.append((ctx.t("op.field.changes"), changes))
        save = {
            "sha": sha,
            "live_version": live,
            "rollback_to": previous,
            "fields": fields,
            "flag": self._flag(ctx),
        }
        ctx.record("checked", save=save, sha=sha, **checked, **facts)

    def _changes(
        self, ctx: JobContext, gh: GitHubBackend, env: Environment, live: str, version: str
    ) -> tuple[str, dict[str, Any]]:
        """What the deploy changes (GitHub compare), for the card and the audit row.

        Only information: when it cannot be found, the card says why and the deploy goes on.
        """
        if live == version:
            return ctx.t("op.deploy.changes_none", version=version), {"changes": "none"}
        cmp = None
        if not live:
            why = ctx.t("op.deploy.why_no_live", env=env.name) if env.url else ctx.t("op.deploy.why_no_url")
        else:
            try:
                if gh.resolve_tag(live):
                    cmp = gh.compare(live, version)
                else:
                    why = ctx.t("op.deploy.why_not_a_tag", live=live, repo=ctx.svc.config.github.repository)
            except GitHubError as e:  # 404, 5xx, a timeout on a huge range
                why = str(e)
        if cmp is None:
            unknown = {"changes": "unknown", "changes_unknown_why": why}
            return ctx.t("op.deploy.changes_unknown", why=why), unknown
        titles = "\n".join(f"• {title}" for title in cmp.titles[:8])
        commits = ctx.t("unit.commit_one" if cmp.total_commits == 1 else "unit.commits", n=cmp.total_commits)
        changes = {"url": cmp.html_url, "commits": commits, "live": live, "titles": titles}
        if cmp.total_commits > 8:
            text = ctx.t("op.deploy.changes_more", more=cmp.total_commits - 8, **changes)
        else:
            text = ctx.t("op.deploy.changes", **changes)
        return text, {"changes": "known", "commits": cmp.total_commits, "compare_url": cmp.html_url}

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

    # -- a deploy started on GitHub (worker) --------------------------------------------
    def _prepare_outside(self, ctx: JobContext, env: Environment) -> None:
        """What the card shows of a deploy someone started on GitHub, and what a rollback returns to.

        Nothing here may refuse it: it runs whatever the bot thinks."""
        job, gh = ctx.job, github_facts(ctx.job)
        version = str(job.params.get("version") or "")
        live = http.check(env.url, timeout=3.0).version
        where = (
            ctx.t("op.deploy.env_value", env=env.name, url=env.url)
            if env.url
            else ctx.t("op.deploy.env_value_no_url", env=env.name)
        )
        fields: list[tuple[str, str]] = [(ctx.t("op.field.environment"), where)]
        shown = version or ctx.t("timeline.version_from_service")
        fields.append((ctx.t("op.field.version"), f"{live} → *{shown}*" if live else f"*{shown}*"))
        if gh.get("sha"):
            fields.append((ctx.t("op.field.commit"), f"`{str(gh['sha'])[:10]}`"))
        # What a rollback after it returns to: the version live before it when known, else the last
        # one verified on the timeline (the run may have finished before the bot saw it).
        history = verified_history(ctx.svc, env.name)
        if version:
            previous = self._previous_version(ctx.svc, env, live, version)
        else:
            previous = history[0] if history else live
        links = [(ctx.t("op.deploy.link_run"), str(gh["run_url"]))] if gh.get("run_url") else []
        save = {"live_version": live, "rollback_to": previous, "fields": fields, "links": links}
        ctx.record(
            "checked", save=save, version=version or None, live_version=live or None,
            rollback_to=previous or None, origin=job.params.get("origin"), run_id=gh.get("run_id"),
        )  # fmt: skip

    def _run_outside(self, ctx: JobContext, env: Environment) -> None:
        """Follow a deploy someone started on GitHub to its conclusion and verify it like the bot's own:
        never dispatch it, only read its run (or deployment), then /health, /version and the smoke test."""
        job, facts = ctx.job, github_facts(ctx.job)
        gh = github_backend(ctx.svc.settings, ctx.svc.config)
        if not ctx.progress.get("run_id"):  # as soon as the bot follows it (it did not dispatch it)
            watch.measure_baseline(ctx, env)
        try:
            if facts.get("run_id"):
                if not ctx.progress.get("run_id"):
                    url = str(facts.get("run_url") or "")
                    ctx.record(
                        "run_found", run_id=facts["run_id"], run_url=url, found_by=str(facts.get("seen_via") or ""),
                        save={"run_id": int(facts["run_id"]), "run_url": url},
                    )  # fmt: skip
                    ctx.step(ctx.t("op.deploy.run_found", url=url, id=facts["run_id"]), Progress.DONE)
                run = self._follow(ctx, gh)
                if run.conclusion != "success":
                    raise OpError(key="op.deploy.run_ended", conclusion=run.conclusion, url=run.html_url)
            elif facts.get("deployment_id"):
                self._follow_deployment(ctx, gh, int(facts["deployment_id"]))
            version = str(job.params.get("version") or "")
            ok, failed = self._verify(ctx, env, version)
            if not version:  # now known: what /version answers after the deploy
                version = str(ctx.progress.get("verified_version") or "")
                if version:
                    job.params = {**job.params, "version": version}
                    with ctx.svc.sessions.begin() as s:
                        s.get(Job, job.id).params = job.params  # type: ignore[union-attr]
            if not ok:
                self._after_failed_verification(ctx, gh, env, version, failed)
            ok, failed = run_smoke(ctx, env, version, self.poll_seconds(ctx))
            if not ok:
                self._after_failed_verification(ctx, gh, env, version, failed)
            watched = self._watch(ctx, gh, env)
        finally:
            gh.close()
        ctx.save(result=self._live(ctx, env, version, watched))

    def _follow_deployment(self, ctx: JobContext, gh: GitHubBackend, deployment_id: int) -> None:
        """A GitHub deployment without a workflow run: its newest status, until it succeeds or fails."""
        minutes = ctx.svc.config.defaults.workflow_timeout_minutes
        deadline = time.monotonic() + minutes * 60
        last = ""
        while time.monotonic() < deadline:
            try:
                state = gh.deployment_state(deployment_id) or "pending"
            except (GitHubUnavailable, GitHubRateLimited):
                state = last or "pending"
            if state != last:
                last = state
                if state not in ("success", "failure", "error", "inactive"):
                    ctx.step(
                        ctx.t("timeline.deployment_state", state=state.replace("_", " ")), Progress.RUNNING
                    )
            if state in ("success", "failure", "error", "inactive"):
                ok = state == "success"
                ctx.record("deployment_completed", outcome="ok" if ok else "failed", deployment_id=deployment_id,
                           state=state)  # fmt: skip
                ctx.step(
                    ctx.t("timeline.deployment_state", state=state), Progress.DONE if ok else Progress.FAILED
                )
                if not ok:
                    raise OpError(key="timeline.deployment_ended", state=state)
                return
            ctx.heartbeat()
            time.sleep(self.poll_seconds(ctx))
        raise OpError(key="op.deploy.timeout", minutes=f"{minutes:g}")

    # -- run (worker) ----------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        job, env = ctx.job, ctx.env
        assert env is not None
        if is_outside(job):
            self._run_outside(ctx, env)
            return
        version = job.params["version"]
        if job.dry_run or job.params.get("simulated"):
            self._simulate(ctx, env, version)
            return
        gh = github_backend(ctx.svc.settings, ctx.svc.config)
        try:
            if not ctx.progress.get("dispatch_started_at"):  # what the watch compares with, before any change
                watch.measure_baseline(ctx, env)
            self._dispatch_once(ctx, gh, version)
            run = self._follow(ctx, gh)
            if run.conclusion != "success":
                raise OpError(key="op.deploy.run_ended", conclusion=run.conclusion, url=run.html_url)
            ok, failed = self._verify(ctx, env, version)
            if not ok:
                self._after_failed_verification(ctx, gh, env, version, failed)
            ok, failed = run_smoke(ctx, env, version, self.poll_seconds(ctx))
            if not ok:
                self._after_failed_verification(ctx, gh, env, version, failed)
            watched = self._watch(ctx, gh, env)
            self._set_deployment(ctx, gh, "success")
        finally:
            gh.close()
        ctx.save(result=self._live(ctx, env, version, watched))

    # -- the watch after verification (bot/deploys/watch.py) ---------------------------
    def _watch(self, ctx: JobContext, gh: GitHubBackend, env: Environment) -> watch.Outcome:
        """Watch error rate and p99 for the environment's watch_minutes; a breach fails the job
        (or rolls back, where auto_rollback is on)."""
        outcome = watch.watch(ctx, env)
        if outcome.state == WatchState.BREACHED:
            self._after_watch_breach(ctx, gh, env, outcome.text)
        return outcome

    def _live(self, ctx: JobContext, env: Environment, version: str, watched: watch.Outcome) -> Mrkdwn:
        live = ctx.t("op.deploy.live", version=version, env=env.name)
        if watched.state == WatchState.OK:
            return live + Mrkdwn(" ") + trusted(watched.text)
        if watched.state == WatchState.UNWATCHED:
            return ctx.t("watch.unwatched_result", live=live, why=trusted(watched.text))
        return live

    def _after_watch_breach(self, ctx: JobContext, gh: GitHubBackend, env: Environment, why: str) -> None:
        self._set_deployment(ctx, gh, "failure")
        target = str(ctx.progress.get("rollback_to") or "")
        what = {"op": ctx.t(f"watch.op.{self.name}"), "why": trusted(why)}
        if self.rollback or not target:
            raise OpError(key="watch.failed", **what)
        if not env.auto_rollback:
            raise OpError(key="watch.failed_offer", target=target, **what)
        rid = str(ctx.progress.get("watch_rollback_job") or "")
        if not rid:  # saved (and audited) before the rollback is requested: a resumed job requests it once
            rid = watch.rollback_job_id(ctx.job.id)
            ctx.record(
                "watch_rollback", target=target, rollback_job=rid,
                save={"watch_rollback_job": rid, "auto_rollback_started_at": datetime.now(UTC).isoformat()},
            )  # fmt: skip
        watch.start_rollback(ctx, env, target)
        ctx.step(ctx.t("watch.rolling_back", target=target, job=rid[:8], env=env.name), Progress.INFO)
        raise OpError(key="watch.rolled_back", target=target, job=rid[:8], env=env.name, **what)

    def _simulate(self, ctx: JobContext, env: Environment, version: str) -> None:
        g = ctx.svc.config.github
        inputs = key_values(self.inputs(ctx.svc, ctx.job))
        ctx.step(
            ctx.t("op.deploy.sim_dispatch", workflow=g.workflow, ref=g.ref, repo=g.repository, inputs=inputs),
            Progress.INFO,
        )
        ctx.step(ctx.t("op.deploy.sim_follow"), Progress.INFO)
        ctx.step(ctx.t("op.deploy.sim_verify", url=env.url, version=version), Progress.INFO)
        if env.watch_minutes:
            ctx.step(ctx.t("watch.sim", minutes=f"{env.watch_minutes:g}"), Progress.INFO)
        label = ctx.t("op.label.dry_run" if ctx.job.dry_run else "op.label.simulated")
        why = ctx.t("op.why.dry_run") if ctx.job.dry_run else simulated_why(ctx.job, ctx.lang)
        ctx.simulated(ctx.t("op.deploy.sim_result", label=label, why=why))

    def _dispatch_once(self, ctx: JobContext, gh: GitHubBackend, version: str) -> None:
        if ctx.progress.get("dispatch_started_at"):
            return  # resumed: the dispatch may have gone out; find its run, never send it again
        sha_now = ""
        if self.checks_tag_again and ctx.progress.get("sha"):
            sha_now = gh.resolve_tag(version) or ""
            if sha_now != ctx.progress["sha"]:
                raise OpError(
                    key="op.deploy.tag_moved", version=version,
                    sha=(sha_now or ctx.t("op.nothing"))[:10], approved=ctx.progress["sha"][:10],
                )  # fmt: skip
        if ctx.svc.config.github.create_deployment:
            self._github_deployment(ctx, gh, version)
        g = ctx.svc.config.github
        inputs = self.inputs(ctx.svc, ctx.job)
        what = {"repository": g.repository, "workflow": g.workflow, "ref": g.ref, "inputs": inputs}
        # Written before the request goes out: if the bot dies meanwhile, the log still shows a
        # dispatch that may have started a run (and the resumed job looks for it, never re-sends).
        ctx.record(
            "dispatch", outcome="pending", save={"dispatch_started_at": datetime.now(UTC).isoformat()},
            tag=version, sha=sha_now or ctx.progress.get("sha"), **what,
        )  # fmt: skip
        ctx.step(ctx.t("op.deploy.dispatching"), Progress.RUNNING)
        try:
            run_id = gh.dispatch(inputs)
        except GitHubUnavailable as e:
            # A 5xx may still have started a run: look for it instead of sending again.
            ctx.record(
                "dispatched", outcome="unknown", detail=str(e), save={"dispatch_error": str(e)}, **what
            )
            ctx.step(ctx.t("op.deploy.dispatch_error", error=e), Progress.INFO)
            return
        except GitHubError as e:
            ctx.record("dispatched", outcome="refused", detail=str(e), **what)
            raise OpError(key="op.deploy.dispatch_refused", error=str(e)) from None
        save = {"dispatched_run_id": int(run_id)} if run_id else {}
        ctx.record("dispatched", save=save, run_id=int(run_id) if run_id else None, **what)
        ctx.step(ctx.t("op.deploy.dispatched", workflow=g.workflow), Progress.DONE)

    def _github_deployment(self, ctx: JobContext, gh: GitHubBackend, version: str) -> None:
        try:
            # Marked as the bot's own, so its webhooks are not taken for a deploy someone else started.
            dep = gh.create_deployment(
                version, ctx.job.environment, self.describe(ctx.job), payload={"taisun_job_id": ctx.job.id}
            )
        except GitHubError as e:
            ctx.record("deployment_created", outcome="error", detail=str(e), ref=version)
            ctx.step(ctx.t("op.deploy.no_deployment", error=e), Progress.INFO)
            return
        ctx.record("deployment_created", save={"deployment_id": dep}, deployment_id=dep, ref=version)

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
            except GitHubError as e:
                log.warning("could not update a GitHub deployment status", extra={"job_id": ctx.job.id})
                ctx.record(
                    "deployment_status", outcome="error", detail=str(e), deployment_id=dep, state=state
                )
                return
            ctx.record("deployment_status", deployment_id=dep, state=state)

    def _follow(self, ctx: JobContext, gh: GitHubBackend) -> Any:
        run_id = ctx.progress.get("run_id")
        if not run_id:
            started = datetime.fromisoformat(ctx.progress["dispatch_started_at"])
            find_timeout = ctx.svc.config.defaults.find_run_timeout_seconds
            deadline = time.monotonic() + find_timeout
            title = ctx.svc.config.github.run_title.format(job_id=ctx.job.id) or None
            run = None
            not_ours: set[int] = set()
            while run is None and time.monotonic() < deadline:
                named = bool(ctx.progress.get("dispatched_run_id"))
                try:
                    if named:
                        run = gh.get_run(int(ctx.progress["dispatched_run_id"]))
                    else:
                        run = gh.find_run(
                            started, exclude_ids=claimed_run_ids(ctx.svc, ctx.job.id) | not_ours,
                            title_contains=title,
                        )  # fmt: skip
                except (GitHubUnavailable, GitHubRateLimited) as e:
                    ctx.step(ctx.t("op.deploy.github_slow", error=e), Progress.RUNNING)
                    run = None
                # The run is this job's on the timeline from now on: never announced as someone else's.
                if run is not None and not claim_run(ctx.svc, ctx.job, run, force=named):
                    not_ours.add(run.id)  # a deploy someone started on GitHub, followed by its own job
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
            found_by = "dispatch response" if ctx.progress.get("dispatched_run_id") else "run listing"
            ctx.record(
                "run_found", run_id=run.id, run_url=run.html_url, found_by=found_by,
                save={"run_id": run.id, "run_url": run.html_url, "links": [(ctx.t("op.deploy.link_run"), run.html_url)]},
            )  # fmt: skip
            self._set_deployment(ctx, gh, "in_progress")
            ctx.step(ctx.t("op.deploy.run_found", url=run.html_url, id=run.id), Progress.DONE)
            run_id = run.id
            # Runs someone else dispatched meanwhile waited for this job to find its own: they go on now.
            adopt_pending(ctx.svc)
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
                        ctx.t("op.deploy.workflow_status", status=run.status.replace("_", " ")),
                        Progress.RUNNING,
                    )
            if run.status == "completed":
                ctx.record(
                    "run_completed", outcome="ok" if run.conclusion == "success" else "failed",
                    run_id=run.id, run_url=run.html_url, conclusion=run.conclusion,
                )  # fmt: skip
                ctx.step(
                    ctx.t("op.deploy.workflow_done", conclusion=run.conclusion),
                    Progress.DONE if run.conclusion == "success" else Progress.FAILED,
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
        """The guide's check: /health is 200 and /version is the one deployed, until a deadline.

        Returns (ok, which check failed and what was seen); every attempt and the verdict are audited.
        With no version (a deploy started on GitHub from a branch), /version must answer one, which
        is then the version deployed (progress["verified_version"])."""
        d = ctx.svc.config.defaults
        ctx.step(ctx.t("op.deploy.verifying", url=env.url), Progress.RUNNING)
        deadline = time.monotonic() + d.verify_timeout_seconds
        attempt = 0
        while True:
            attempt += 1
            report = http.check(env.url, timeout=min(5.0, d.verify_timeout_seconds))
            health_ok = bool(report.healthy)
            version_ok = report.version == version if version else bool(report.version)
            seen = {
                "url": env.url, "health": report.health, "health_ok": health_ok, "version": report.version or None,
                "expected_version": version or None, "version_ok": version_ok,
            }  # fmt: skip
            ok = health_ok and version_ok
            ctx.record("verify_attempt", outcome="ok" if ok else "failed", attempt=attempt, **seen)
            if ok:
                ctx.record(
                    "verified", attempts=attempt, failed_checks=[], **seen,
                    save={"verified": True, "verified_version": report.version},
                )  # fmt: skip
                ctx.step(ctx.t("op.deploy.verified", version=report.version), Progress.DONE)
                return True, ""
            if time.monotonic() >= deadline:
                failed = [name for name, good in (("health", health_ok), ("version", version_ok)) if not good]
                ctx.record(
                    "verified", outcome="failed", attempts=attempt, failed_checks=failed, **seen,
                    save={"verified": False},
                )  # fmt: skip
                why = self._failed_checks(ctx, report, version)
                ctx.step(
                    ctx.t(
                        "op.deploy.verify_failed_step", seconds=f"{d.verify_timeout_seconds:g}", failed=why
                    ),
                    Progress.FAILED,
                )
                return False, why
            ctx.heartbeat()
            time.sleep(d.verify_interval_seconds)

    def _failed_checks(self, ctx: JobContext, report: http.HealthReport, version: str) -> str:
        """Which check failed (health, version or both) and what each answered."""
        seen = report.version or ctx.t("op.unknown")
        health = report.text(ctx.lang)
        if report.healthy is None:
            return ctx.t("op.deploy.failed_unreachable", health=health)
        if not version:
            return ctx.t(
                "timeline.failed_no_version", health=health, seen=report.version or ctx.t("op.unknown")
            )
        if not report.healthy and report.version == version:
            return ctx.t("op.deploy.failed_health", health=health, version=version)
        if report.healthy:
            return ctx.t("op.deploy.failed_version", seen=seen, version=version, health=health)
        return ctx.t("op.deploy.failed_both", health=health, seen=seen, version=version)

    def _after_failed_verification(
        self, ctx: JobContext, gh: GitHubBackend, env: Environment, version: str, failed: str
    ) -> None:
        self._set_deployment(ctx, gh, "failure")
        target = ctx.progress.get("rollback_to", "")
        if env.auto_rollback and target and not self.rollback:
            if ctx.progress.get("auto_rollback_started_at"):  # resumed: never dispatch it twice
                raise OpError(key="op.deploy.auto_rolled_back", failed=failed, target=target)
            g = ctx.svc.config.github
            inputs = self.inputs(ctx.svc, ctx.job, version=target, rollback=True)
            what = {"repository": g.repository, "workflow": g.workflow, "ref": g.ref, "inputs": inputs}
            ctx.record(
                "auto_rollback_dispatch", outcome="pending", target=target, **what,
                save={"auto_rollback_started_at": datetime.now(UTC).isoformat()},
            )  # fmt: skip
            ctx.step(ctx.t("op.deploy.auto_rollback", target=target, env=env.name), Progress.RUNNING)
            try:
                run_id = gh.dispatch(inputs)
            except GitHubError as e:
                ctx.record("auto_rollback_dispatched", outcome="error", detail=str(e), target=target, **what)
                raise OpError(key="op.deploy.auto_rollback_failed", failed=failed, error=str(e)) from None
            ctx.record("auto_rollback_dispatched", target=target, run_id=run_id, **what)
            raise OpError(key="op.deploy.auto_rolled_back", failed=failed, target=target)
        if target:
            raise OpError(key="op.deploy.verify_failed_offer", failed=failed, target=target)
        raise OpError(key="op.deploy.verify_failed", failed=failed)


class Rollback(Deploy):
    name = "rollback"
    title: ClassVar[dict[str, str]] = {"en": "Rollback", "ja": "ロールバック"}
    rollback = True
    offers_rollback = False
    command = ROLLBACK_COMMAND

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Environment, version: str = ""
    ) -> dict[str, Any]:
        chosen = str(params.get("version") or version or "")
        if not chosen and not rollback_target_inferable(svc, env.name):
            raise NeedsVersion(key="rb.err.rollback_needs_version", env=env.name)
        return {"version": chosen}

    def check_request(self, svc: Services, req: Request) -> None:
        # A rollback is how you get out of trouble: freeze windows do not apply to it.
        if not svc.settings.github_token:
            req.params["simulated"] = SIMULATED_NO_GITHUB
        if req.params.get("after_failed_job"):
            req.params["version"] = rollback_button_target(svc, str(req.params["after_failed_job"]))

    def approval_required(self, svc: Services, job: Job, env: Environment | None) -> bool:
        # One the watch of a deploy started (auto_rollback: true) was approved by that setting.
        auto = bool(job.params.get("auto_rollback_of"))
        return bool(env and env.approval_required) and not job.dry_run and not auto

    def describe(self, job: Job, lang: str = "en") -> str:
        target = job.params.get("version") or t("op.rollback.previous", lang)
        if lang == "ja":
            return f"{job.environment} を {target} にロールバック"
        return f"Roll back {job.environment} to {target}"

    def prepare(self, ctx: JobContext) -> None:
        svc, job, env = ctx.svc, ctx.job, ctx.env
        assert env is not None
        live = http.check(env.url, timeout=3.0).version
        # A simulated rollback may go back along simulated deploys (so the demo can show one); a
        # real rollback only along deploys this bot verified live.
        simulated = bool(job.params.get("simulated"))
        history = verified_history(svc, env.name, include_simulated=simulated)
        # A simulation pretends its deploys happened: it rolls back from the last one it made.
        current = (history[0] if history else live) if simulated else (live or (history[:1] or [""])[0])
        target = job.params.get("version") or self._choose_target(ctx, env, current, history)
        job.params = {**job.params, "version": target, "from_version": current}
        with svc.sessions.begin() as s:
            s.get(Job, job.id).params = job.params  # type: ignore[union-attr]
        super().prepare(ctx)
        version_label = ctx.t("op.field.version")
        fields = [f for f in ctx.progress.get("fields", []) if f[0] != version_label]
        if not current:
            shown = ctx.t("op.unknown")
        elif current == live:
            shown = Mrkdwn.escape(current)
        else:  # not what /version answered: say where it comes from
            shown = ctx.t(
                "op.rollback.from_simulated" if simulated else "op.rollback.from_verified", version=current
            )
        fields.insert(1, (ctx.t("op.field.rollback"), shown + Mrkdwn(" → *") + target + Mrkdwn("*")))
        ctx.save(fields=fields)

    def _choose_target(self, ctx: JobContext, env: Environment, current: str, history: list[str]) -> str:
        for v in history:
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
