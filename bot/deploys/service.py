"""Deploy history and GitHub access: the one place that says what was deployed where.

"Last verified deploy" is asked by status, the Home tab and rollback; they all ask here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.backends.github import GitHubBackend
from bot.core.config import Config, Settings
from bot.core.ops import OpError
from bot.core.secrets import refresher
from bot.core.states import JobState
from bot.core.store.models import DeployRun, Job

if TYPE_CHECKING:
    from bot.core.services import Services


def github_backend(settings: Settings, config: Config, *, workflow: str = "", ref: str = "") -> GitHubBackend:
    """GitHub for the deploy workflow (or another one of the repository's, e.g. a smoke test's)."""
    g = config.github
    return GitHubBackend(
        token=settings.github_token, api_url=settings.github_api_url, repository=g.repository,
        workflow=workflow or g.workflow, ref=ref or g.ref, tag_pattern=g.tag_pattern,
        return_run_details=g.return_run_details, token_refresh=refresher(settings, "github_token"),
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


def was_simulated(job: Job) -> bool:
    """The deploy or rollback only simulated (rows from before the `simulated` state ended
    `succeeded` with the reason in their params)."""
    return job.state == JobState.SIMULATED or bool(job.params.get("simulated"))


def finished_changes(
    s: Session, environment: str | None = None, *, simulated: bool = False, limit: int = 50
) -> list[Job]:
    """Deploys and rollbacks that ran to their end, newest first: verified ones, or with
    simulated=True simulated ones too. Never dry runs, which are not deploys at all."""
    q = select(Job).where(
        Job.operation.in_(("deploy", "rollback")), Job.dry_run.is_(False),
        Job.state.in_((JobState.SUCCEEDED, JobState.SIMULATED) if simulated else (JobState.SUCCEEDED,)),
    )  # fmt: skip
    if environment is not None:
        q = q.where(Job.environment == environment)
    jobs = s.scalars(q.order_by(Job.finished_at.desc()).limit(limit))
    return [j for j in jobs if simulated or not was_simulated(j)]


def last_changes(s: Session, *, simulated: bool = False) -> dict[str, Job]:
    """The newest finished deploy or rollback per environment: verified, or only simulated ones."""
    last: dict[str, Job] = {}
    for job in finished_changes(s, simulated=simulated):
        if not simulated or was_simulated(job):
            last.setdefault(job.environment, job)
    return last


def verified_history(
    svc: Services, environment: str, limit: int = 20, *, include_simulated: bool = False
) -> list[str]:
    """Versions verified live on the environment by this bot, newest first. A simulated rollback
    (include_simulated) may go back along simulated deploys too; a real one never does."""
    with svc.sessions() as s:
        jobs = finished_changes(s, environment, simulated=include_simulated, limit=limit * 2)
        versions = [str(j.params.get("version") or "") for j in jobs]
    return [v for v in versions if v][:limit]


def rollback_target_inferable(svc: Services, environment: str) -> bool:
    """Whether `/taisun rollback <env>` without a version can find one, judged from the database alone
    (no network: a button's ack path). Two versions in the history name one to go back to; with
    GitHub, older release tags may; otherwise the person has to name it."""
    simulated = not svc.settings.github_token  # as Rollback.check_request decides
    history = verified_history(svc, environment, include_simulated=simulated)
    return len(set(history)) >= 2 or not simulated


def newer_change(svc: Services, job: Job) -> Job | None:
    """The newest deploy or rollback of job's environment requested after it that has started or
    is under way (dry runs and requests that never started do not count)."""
    with svc.sessions() as s:
        return s.scalars(
            select(Job).where(
                Job.environment == job.environment, Job.operation.in_(("deploy", "rollback")),
                Job.created_at > job.created_at, Job.id != job.id, Job.dry_run.is_(False),
                or_(Job.started_at.is_not(None), Job.state.in_(JobState.ACTIVE)),
            ).order_by(Job.created_at.desc()).limit(1)
        ).first()  # fmt: skip


def rollback_button_target(svc: Services, failed_id: str) -> str:
    """The version a failed deploy card's Roll back button returns to — the one its confirm dialog
    names — or OpError when the button no longer applies (the environment has moved on since)."""
    with svc.sessions() as s:
        failed = s.get(Job, failed_id)
    target = str(failed.progress.get("rollback_to") or "") if failed else ""
    if failed is None or failed.operation != "deploy" or failed.state != JobState.FAILED or not target:
        raise OpError(key="err.rollback.not_offered")
    env = failed.environment
    if failed.progress.get("auto_rollback_started_at"):
        raise OpError(key="err.rollback.auto_done", env=env, target=target)
    newer = newer_change(svc, failed)
    if newer is not None:
        version = str(newer.params.get("version") or "?")
        if newer.state in JobState.ACTIVE:
            raise OpError(key="err.rollback.newer_active", env=env, version=version, job=newer.id[:8])
        raise OpError(key="err.rollback.moved_on", env=env, version=version, job=newer.id[:8])
    return target


def claimed_run_ids(svc: Services, job_id: str, key: str = "run_id") -> set[int]:
    """Runs already followed by other jobs (progress[key]: run_id, or smoke_run_id for smoke
    workflows): a new job must not adopt them. Deploy runs also count when the timeline gave them
    to another job (a deploy started on GitHub)."""
    since = datetime.now(UTC) - timedelta(days=1)
    with svc.sessions() as s:
        # Only the ids, read out of the JSON by the database, of the jobs that can have a run: every
        # follow step asks, and a busy day leaves thousands of requests that never ran (awaiting
        # approval, expired, refused). Loading those whole made each step cost O(requests).
        run_id = Job.progress[key].as_string()
        rows = s.scalars(
            select(run_id).where(
                Job.operation.in_(("deploy", "rollback")), Job.state.in_(JobState.MAY_HAVE_RUN),
                Job.created_at >= since, Job.id != job_id, run_id.is_not(None),
            )
        )  # fmt: skip
        ids = {int(r) for r in rows if r}
        if key == "run_id":
            owned = s.scalars(
                select(DeployRun.run_id).where(
                    DeployRun.repository == svc.config.github.repository, DeployRun.seen_at >= since,
                    DeployRun.job_id.not_in(("", job_id)), DeployRun.run_id.is_not(None),
                )
            )  # fmt: skip
            ids |= {int(r) for r in owned if r is not None}
        return ids


def newer_simulation(simulation: Job | None, verified: Job | None) -> Job | None:
    """A simulation newer than the last verified deploy (the demo's history), else None."""
    if simulation is None or simulation.finished_at is None:
        return None
    if verified is not None and verified.finished_at and verified.finished_at >= simulation.finished_at:
        return None
    return simulation
