"""The smoke test after a verified deploy (the guide's `npm run test:smoke -- --env=production`).

Configured per environment (`environments.<name>.smoke`), it is either a workflow the bot dispatches
and follows to its conclusion within a timeout, or a list of HTTP checks (path, expected status,
a JSON subset). Each step is saved before its side effect, so a resumed job never dispatches the
smoke workflow twice; every check and the verdict are audited and shown on the card.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.backends import http
from bot.backends.github import GitHubBackend, GitHubError, GitHubRateLimited, GitHubUnavailable, WorkflowRun
from bot.core.config import Environment, SmokeConfig
from bot.core.ops import JobContext
from bot.core.states import Progress
from bot.deploys.service import claimed_run_ids, github_backend

FIND_POLL_SECONDS = 1.0


def run_smoke(ctx: JobContext, env: Environment, version: str, poll_seconds: float) -> tuple[bool, str]:
    """(passed, why it failed). Passes at once where the environment has no smoke test."""
    smoke = env.smoke
    if smoke is None:
        return True, ""
    done = ctx.progress.get("smoke")
    if done == "passed":  # resumed after it passed
        return True, ""
    if done == "failed":
        return False, str(ctx.progress.get("smoke_why") or "")
    if smoke.checks:
        ok, why = _checks(ctx, env, smoke)
    else:
        ok, why = _workflow(ctx, env, smoke, version, poll_seconds)
    ctx.save(smoke="passed" if ok else "failed", smoke_why=why)
    return ok, why


def _failed(ctx: JobContext, detail: str) -> tuple[bool, str]:
    """The smoke test failed: a step on the card, and the reason the deploy fails with."""
    ctx.step(ctx.t("smoke.step_failed", why=detail), Progress.FAILED)
    return False, ctx.t("smoke.failed", why=detail)


def _checks(ctx: JobContext, env: Environment, smoke: SmokeConfig) -> tuple[bool, str]:
    ctx.step(ctx.t("smoke.checking", n=len(smoke.checks), url=env.url), Progress.RUNNING)
    failed: list[str] = []
    for check in smoke.checks:
        found = http.probe(
            env.url,
            check.path,
            status=check.status,
            json_subset=check.json_subset,
            timeout=smoke.timeout_seconds,
        )
        ctx.record(
            "smoke_check", outcome="ok" if found.ok else "failed", detail=found.said, url=found.url,
            path=check.path, status=found.status, expected_status=check.status, json_subset=check.json_subset,
        )  # fmt: skip
        if not found.ok:
            failed.append(found.text(ctx.lang))
        ctx.heartbeat()
    if failed:
        ctx.record(
            "smoke_completed", outcome="failed", kind="checks", checks=len(smoke.checks), failed=len(failed)
        )
        return _failed(ctx, "; ".join(failed))
    ctx.record("smoke_completed", kind="checks", checks=len(smoke.checks), failed=0)
    ctx.step(ctx.t("smoke.checks_passed", n=len(smoke.checks)), Progress.DONE)
    return True, ""


def _workflow(
    ctx: JobContext, env: Environment, smoke: SmokeConfig, version: str, poll_seconds: float
) -> tuple[bool, str]:
    svc, job = ctx.svc, ctx.job
    ref = smoke.ref or svc.config.github.ref
    values = {"environment": env.name, "version": version, "job_id": job.id}
    inputs = {name: template.format(**values) for name, template in smoke.inputs.items()}
    what = {"workflow": smoke.workflow, "ref": ref, "inputs": inputs}
    gh = github_backend(svc.settings, svc.config, workflow=smoke.workflow, ref=ref)
    try:
        if not ctx.progress.get("smoke_dispatch_started_at"):
            # Saved before the request: a resumed job looks for this run, never dispatches it again.
            ctx.record(
                "smoke_dispatch", outcome="pending", save={"smoke_dispatch_started_at": datetime.now(UTC).isoformat()},
                **what,
            )  # fmt: skip
            ctx.step(ctx.t("smoke.dispatching", workflow=smoke.workflow), Progress.RUNNING)
            try:
                run_id = gh.dispatch(inputs)
            except GitHubUnavailable as e:
                ctx.record("smoke_dispatched", outcome="unknown", detail=str(e), **what)
            except GitHubError as e:
                ctx.record("smoke_dispatched", outcome="refused", detail=str(e), **what)
                return _failed(ctx, ctx.t("smoke.dispatch_refused", workflow=smoke.workflow, error=str(e)))
            else:
                save = {"smoke_dispatched_run_id": int(run_id)} if run_id else {}
                ctx.record("smoke_dispatched", save=save, run_id=run_id, **what)
        started = datetime.fromisoformat(ctx.progress["smoke_dispatch_started_at"])
        deadline = started + timedelta(minutes=smoke.timeout_minutes)
        run = _find(ctx, gh, started) if not ctx.progress.get("smoke_run_id") else None
        if run is None and not ctx.progress.get("smoke_run_id"):
            ctx.record("smoke_completed", outcome="failed", kind="workflow", workflow=smoke.workflow, conclusion=None,
                       why="no run found")  # fmt: skip
            seconds = f"{svc.config.defaults.find_run_timeout_seconds:g}"
            return _failed(ctx, ctx.t("smoke.no_run", workflow=smoke.workflow, seconds=seconds))
        if run is not None:
            links = [
                *ctx.progress.get("links", []),
                (ctx.t("smoke.link", workflow=smoke.workflow), run.html_url),
            ]
            ctx.record("smoke_run_found", run_id=run.id, run_url=run.html_url,
                       save={"smoke_run_id": run.id, "smoke_run_url": run.html_url, "links": links})  # fmt: skip
            ctx.step(
                ctx.t("smoke.running", workflow=smoke.workflow, url=run.html_url, id=run.id), Progress.RUNNING
            )
        run_id = int(ctx.progress["smoke_run_id"])
        while datetime.now(UTC) < deadline:
            try:
                run = gh.get_run(run_id)
            except (GitHubUnavailable, GitHubRateLimited):
                run = None
            if run is not None and run.status == "completed":
                ok = run.conclusion == "success"
                ctx.record("smoke_completed", outcome="ok" if ok else "failed", kind="workflow",
                           workflow=smoke.workflow, run_id=run.id, run_url=run.html_url, conclusion=run.conclusion)  # fmt: skip
                if ok:
                    ctx.step(ctx.t("smoke.workflow_passed", workflow=smoke.workflow), Progress.DONE)
                    return True, ""
                return _failed(ctx, ctx.t("smoke.workflow_failed", workflow=smoke.workflow,
                                          conclusion=run.conclusion or "?", url=run.html_url))  # fmt: skip
            ctx.heartbeat()
            time.sleep(poll_seconds)
        ctx.record("smoke_completed", outcome="failed", kind="workflow", workflow=smoke.workflow, run_id=run_id,
                   conclusion=None, why="timed out")  # fmt: skip
        return _failed(
            ctx, ctx.t("smoke.timeout", workflow=smoke.workflow, minutes=f"{smoke.timeout_minutes:g}")
        )
    finally:
        gh.close()


def _find(ctx: JobContext, gh: GitHubBackend, started: datetime) -> WorkflowRun | None:
    """The smoke run this job dispatched: named by the dispatch answer, else found by listing."""
    deadline = time.monotonic() + ctx.svc.config.defaults.find_run_timeout_seconds
    dispatched = ctx.progress.get("smoke_dispatched_run_id")
    find: Callable[[], WorkflowRun | None]
    if dispatched:
        find = lambda: gh.get_run(int(dispatched))  # noqa: E731
    else:
        find = lambda: gh.find_run(started, exclude_ids=claimed_run_ids(ctx.svc, ctx.job.id, "smoke_run_id"))  # noqa: E731
    while time.monotonic() < deadline:
        try:
            run = find()
        except (GitHubUnavailable, GitHubRateLimited):
            run = None
        if run is not None:
            return run
        ctx.heartbeat()
        time.sleep(FIND_POLL_SECONDS)
    return None
