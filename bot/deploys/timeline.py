"""One deploy timeline: deploys GitHub ran without the bot join the ones the bot started.

The guide deploys mostly outside Slack: a merge to develop deploys staging, a pushed tag deploys
production, `gh workflow run cd.yml` is the manual path. Each such run reaches the bot as a
*sighting* — a `workflow_run` or `deployment` webhook (bot.deploys.webhook), or the poller below —
and every sighting goes through `ingest()`:

    sighting → attributed to an environment (triggers, run-name, a GitHub deployment's environment)
             → one `deploy_runs` row per (repository, run): a run seen twice is seen once
             → adopted: a deploy job of an outside origin (never dispatched, only followed and
               verified by the job runner, exactly like the bot's own) and its `deploy.seen` audit row

A run the bot dispatched itself is owned by the bot's job (`claim_run`), so it is never adopted; a
`workflow_dispatch` run that may still turn out to be the bot's waits until the bot's jobs that are
looking for their runs have found them.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.backends.github import CLOCK_SKEW, GitHubError, WorkflowRun
from bot.core import audit, metrics
from bot.core.commands import Command, Spec, UsageError, env_arg
from bot.core.config import Config, Environment
from bot.core.states import JobState
from bot.core.store.models import DeployRun, GithubPoll, Job
from bot.deploys.service import github_backend

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

# How long an unowned run is considered for adoption, and the bot's dispatches looked at.
WINDOW = timedelta(days=1)
# The first poll of an environment announces only runs still going or this recent, never old history.
FIRST_LOOK = timedelta(minutes=15)
MAX_PAGES = 3  # a poll reads at most this many pages of runs newer than the last one seen
# Origins: how a deploy was started. "slack" is the bot's own (requested in Slack, a runbook, the CLI).
BOT = "slack"


def is_outside(job: Job) -> bool:
    """A deploy started on GitHub (a push, a tag, `gh workflow run`, a deployment), not by the bot."""
    return str((job.params or {}).get("origin") or BOT) != BOT


def origin_of(job: Job) -> str:
    return str((job.params or {}).get("origin") or BOT)


def github_facts(job: Job) -> dict[str, Any]:
    """What GitHub said about an outside deploy's run: run_id, run_number, run_url, ref, actor, ..."""
    facts = (job.params or {}).get("github")
    return facts if isinstance(facts, dict) else {}


# --------------------------------------------------------------------------- sightings


@dataclass(frozen=True)
class Sighting:
    """A deploy workflow run (or a GitHub deployment without one) as a webhook or the poller saw it."""

    run_id: int | None
    deployment_id: int | None = None
    event: str = ""  # the run's event: push, workflow_dispatch, ...; "deployment" without a run
    ref: str = ""  # the branch or tag it ran on
    sha: str = ""
    actor: str = ""  # GitHub login
    html_url: str = ""
    created_at: datetime | None = None
    status: str = ""
    conclusion: str | None = None
    run_number: int | None = None
    title: str = ""  # the run's display title (its run-name)
    environment: str = ""  # named by GitHub (a deployment's environment)
    version: str = ""
    via: str = "webhook"  # webhook or poller

    @property
    def key(self) -> str:
        return f"run:{self.run_id}" if self.run_id else f"deployment:{self.deployment_id}"

    @classmethod
    def of_run(cls, run: WorkflowRun, *, via: str, environment: str = "", version: str = "") -> Sighting:
        return cls(
            run_id=run.id, event=run.event, ref=run.head_branch, sha=run.head_sha, actor=run.actor,
            html_url=run.html_url, created_at=run.created_at, status=run.status, conclusion=run.conclusion,
            run_number=run.run_number or None, title=run.display_title, environment=environment,
            version=version, via=via,
        )  # fmt: skip


@dataclass(frozen=True)
class Attribution:
    environment: str
    origin: str
    version: str  # "" when the run does not say: verification learns it from /version


def is_tag(config: Config, ref: str) -> bool:
    return bool(ref) and re.fullmatch(config.github.tag_pattern, ref) is not None


def attribute(config: Config, seen: Sighting) -> Attribution | None:
    """Which environment a run deploys, how it was started and which version, or None when the
    config does not say (such a run is not a deploy the bot knows of)."""
    env: Environment | None = None
    version = seen.version
    if seen.environment:
        env = config.resolve_env(seen.environment)
        if env is None:
            return None  # a GitHub environment the bot does not manage
    pattern = config.github.run_name_pattern
    if env is None and pattern and seen.title:
        m = re.search(pattern, seen.title)
        if m and m["environment"]:
            env = config.resolve_env(m["environment"])
            version = version or str(m.groupdict().get("version") or "")
    tag = is_tag(config, seen.ref)
    if env is None and seen.event == "push":
        env = next(
            (
                e
                for e in config.environments.values()
                if (e.triggers.tags if tag else e.triggers.matches_branch(seen.ref))
            ),
            None,
        )
    if env is None:
        return None
    if not version and tag:
        version = seen.ref
    if version and not is_tag(config, version):
        version = ""  # not a release tag: what /version answers after the deploy names it
    if seen.run_id is None:
        origin = "deployment"
    elif seen.event == "push":
        origin = "tag" if tag else "push"
    else:
        origin = seen.event or "github"
    return Attribution(env.name, origin[:32], version)


def ingest(svc: Services, seen: Sighting) -> str:
    """Record a sighting once and adopt its run when it is a deploy nobody follows yet.

    Returns what happened: recorded, known (seen before, by any replica or path), unattributed.
    Database work only: safe on a webhook's request path."""
    where = attribute(svc.config, seen)
    repo = svc.config.github.repository
    with svc.sessions() as s:
        known = s.scalar(
            select(DeployRun.id).where(DeployRun.repository == repo, DeployRun.run_key == seen.key)
        )
    if known is not None:
        return "known"
    if where is None:
        return "unattributed"
    row = DeployRun(
        repository=repo, run_key=seen.key, run_id=seen.run_id, deployment_id=seen.deployment_id,
        run_number=seen.run_number, environment=where.environment, origin=where.origin, event=seen.event[:64],
        ref=seen.ref[:255], sha=seen.sha[:64], actor=seen.actor[:64], version=where.version[:255],
        html_url=seen.html_url, run_created_at=seen.created_at, seen_at=datetime.now(UTC), seen_via=seen.via,
        job_id="",
    )  # fmt: skip
    try:
        with svc.sessions.begin() as s:
            s.add(row)
    except IntegrityError:
        return "known"  # another delivery, replica or the poller recorded it a moment ago
    adopt_pending(svc)
    return "recorded"


# --------------------------------------------------------------------------- the bot's own runs


def claim_run(svc: Services, job: Job, run: WorkflowRun, *, force: bool = False) -> bool:
    """The bot's job takes a run it dispatched: it is then never announced as someone else's.

    False when another job owns the run already (a listing found someone else's run); `force`
    (GitHub named the run in the dispatch answer) takes it whoever had it."""
    repo, key = svc.config.github.repository, f"run:{run.id}"
    owners = (DeployRun.job_id.in_(("", job.id))) if not force else DeployRun.job_id.is_not(None)
    for _ in range(2):
        try:
            with svc.sessions.begin() as s:
                res = s.execute(
                    update(DeployRun)
                    .where(DeployRun.repository == repo, DeployRun.run_key == key, owners)
                    .values(job_id=job.id, origin=BOT)
                )
                if res.rowcount == 1:
                    return True
                owner = s.scalar(
                    select(DeployRun.job_id).where(DeployRun.repository == repo, DeployRun.run_key == key)
                )
                if owner is not None:
                    if owner != job.id:  # the job looks on for another run: say whose this one was
                        log.warning("a run the bot's job found belongs to another job",
                                    extra={"job_id": job.id, "run_id": run.id, "owner": owner})  # fmt: skip
                    return owner == job.id
                s.add(
                    DeployRun(
                        repository=repo, run_key=key, run_id=run.id, run_number=run.run_number or None,
                        environment=job.environment, origin=BOT, event=run.event[:64], ref=run.head_branch[:255],
                        sha=run.head_sha[:64], actor=run.actor[:64], version=str(job.params.get("version") or "")[:255],
                        html_url=run.html_url, run_created_at=run.created_at, seen_at=datetime.now(UTC),
                        seen_via="bot", job_id=job.id,
                    )
                )  # fmt: skip
            return True
        except IntegrityError:
            continue  # a webhook recorded it at the same moment: take it as above
    log.warning("could not take a run the bot's job found (recorded elsewhere twice at once)",
                extra={"job_id": job.id, "run_id": run.id})  # fmt: skip
    return False


@dataclass(frozen=True)
class _Dispatch:
    """A workflow dispatch the bot sent: a deploy or rollback looking for its run, or an auto rollback."""

    job_id: str
    environment: str
    at: datetime
    kind: str  # run or auto_rollback
    searching: bool  # a deploy or rollback still looking for its run
    claimed: bool  # an auto rollback whose run is already known


def _iso(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _bot_dispatches(svc: Services, since: datetime) -> tuple[list[_Dispatch], dict[int, str]]:
    """The bot's recent dispatches, and the runs its jobs have found (run id → job id)."""
    out: list[_Dispatch] = []
    found: dict[int, str] = {}
    with svc.read_sessions() as s:
        jobs = list(
            s.scalars(
                select(Job).where(  # requests that never started have dispatched nothing
                    Job.operation.in_(("deploy", "rollback")),
                    Job.created_at >= since,
                    Job.dry_run.is_(False),
                    Job.state.in_(JobState.MAY_HAVE_RUN),
                )
            )
        )
        auto_claimed = set(
            s.scalars(
                select(DeployRun.job_id).where(
                    DeployRun.origin == "auto_rollback", DeployRun.seen_at >= since
                )
            )
        )
    for job in jobs:
        if is_outside(job):
            continue
        p = job.progress or {}
        for run_id in (p.get("run_id"), p.get("dispatched_run_id")):
            if run_id:
                found[int(run_id)] = job.id
        at = _iso(p.get("dispatch_started_at"))
        if at is not None:
            searching = job.state == JobState.RUNNING and not p.get("run_id")
            out.append(_Dispatch(job.id, job.environment, at, "run", searching, bool(p.get("run_id"))))
        auto = _iso(p.get("auto_rollback_started_at"))
        if auto is not None:
            claimed = job.id in auto_claimed
            out.append(_Dispatch(job.id, job.environment, auto, "auto_rollback", False, claimed))
    return out, found


def adopt_pending(svc: Services) -> int:
    """Give every recorded run nobody owns a job that follows it, unless it may be the bot's own.

    Runs the bot dispatched are claimed by their jobs; a `workflow_dispatch` run created while a job of
    the bot's was still looking for its run waits for it; one that matches an automatic rollback the
    bot dispatched is that rollback's. Safe on every replica at once (a conditional UPDATE decides)."""
    repo = svc.config.github.repository
    since = datetime.now(UTC) - WINDOW
    with svc.read_sessions() as s:
        rows = list(
            s.scalars(
                select(DeployRun)
                .where(DeployRun.repository == repo, DeployRun.job_id == "", DeployRun.seen_at >= since)
                .order_by(DeployRun.run_created_at, DeployRun.id)
            )
        )
    if not rows:
        return 0
    dispatches, found = _bot_dispatches(svc, since)
    find_window = timedelta(seconds=svc.config.defaults.find_run_timeout_seconds)
    adopted = 0
    for row in rows:
        if row.run_id is not None and row.run_id in found:
            _take(svc, row, found[row.run_id], BOT)
            continue
        if row.event == "workflow_dispatch":
            created = row.run_created_at or row.seen_at
            near = [
                d for d in dispatches
                if d.environment == row.environment and d.at - CLOCK_SKEW <= created <= d.at + find_window + CLOCK_SKEW
            ]  # fmt: skip
            if any(d.kind == "run" and d.searching for d in near):
                continue  # maybe the run a deploy of the bot's is looking for: wait until it has found its own
            auto = sorted(
                (d for d in near if d.kind == "auto_rollback" and not d.claimed), key=lambda d: d.at
            )
            if auto:
                if _take(svc, row, auto[0].job_id, "auto_rollback"):
                    dispatches = [d for d in dispatches if d is not auto[0]]
                continue
        if _adopt(svc, row):
            adopted += 1
    return adopted


def _take(svc: Services, row: DeployRun, job_id: str, origin: str) -> bool:
    """Mark a run as the bot's own (its job's): never announced."""
    with svc.sessions.begin() as s:
        res = s.execute(
            update(DeployRun)
            .where(DeployRun.id == row.id, DeployRun.job_id == "")
            .values(job_id=job_id, origin=origin)
        )
    return bool(res.rowcount == 1)


def outside_requester(config: Config, login: str) -> str:
    """Who an outside deploy is recorded as: the Slack user github.users maps the login to, else github:<login>."""
    return config.github.slack_user(login) or (f"github:{login}" if login else "github")


def _adopt(svc: Services, row: DeployRun) -> str | None:
    """An outside deploy job for the run (its `deploy.seen` audit row in the same transaction)."""
    t = datetime.now(UTC)
    facts = {
        "run_id": row.run_id, "run_number": row.run_number, "run_url": row.html_url,
        "deployment_id": row.deployment_id, "event": row.event, "ref": row.ref, "sha": row.sha,
        "actor": row.actor, "seen_via": row.seen_via,
    }  # fmt: skip
    job = Job(
        id=str(uuid.uuid4()), operation="deploy", environment=row.environment,
        params={"version": row.version, "origin": row.origin, "github": facts}, state=JobState.VALIDATING,
        requested_by=outside_requester(svc.config, row.actor), requested_by_name=row.actor,
        channel=svc.config.slack.ops_channel, created_at=t, updated_at=t,
    )  # fmt: skip
    with svc.sessions.begin() as s:
        res = s.execute(
            update(DeployRun).where(DeployRun.id == row.id, DeployRun.job_id == "").values(job_id=job.id)
        )
        if res.rowcount != 1:
            s.rollback()
            return None  # another replica adopted it
        s.add(job)
        audit.append(
            s, actor_id=job.requested_by, actor_name=row.actor or "GitHub", action="deploy.seen",
            environment=row.environment, channel=job.channel, params=job.params, outcome="ok", job_id=job.id,
        )  # fmt: skip
    metrics.OUTSIDE_DEPLOYS.labels(row.origin).inc()
    log.info("outside deploy seen", extra={"job_id": job.id, "environment": row.environment, "origin": row.origin,
                                           "run_id": row.run_id, "via": row.seen_via})  # fmt: skip
    svc.runner.wake()
    return job.id


# --------------------------------------------------------------------------- the poller


def _listing_for(config: Config, env: Environment) -> dict[str, str] | None:
    """How to list the runs that may deploy `env`, narrowed as GitHub's filters allow; None: nothing to list."""
    triggers = config.environments[env.name].triggers
    if not triggers.branches and not triggers.tags and not config.github.run_name_pattern:
        return None
    if config.github.run_name_pattern:
        return {}
    if triggers.tags and not triggers.branches:
        return {"event": "push"}
    if not triggers.tags and len(triggers.branches) == 1 and not re.search(r"[*?\[]", triggers.branches[0]):
        return {"branch": triggers.branches[0]}
    return {}


def _due(svc: Services, key: str, every: float, force: bool) -> GithubPoll | None:
    """Take this environment's turn to poll (one replica per interval), or None when it is not due."""
    t = datetime.now(UTC)
    nxt = t + timedelta(seconds=every)
    try:
        with svc.sessions.begin() as s:
            row = s.get(GithubPoll, key)
            if row is None:
                row = GithubPoll(key=key, etag="", last_run_id=None, next_poll_at=nxt, result="")
                s.add(row)
                s.flush()
                return GithubPoll(key=key, etag="", last_run_id=None)
            if not force and row.next_poll_at is not None and row.next_poll_at > t:
                return None
            res = s.execute(
                update(GithubPoll)
                .where(
                    GithubPoll.key == key,
                    or_(GithubPoll.next_poll_at.is_(None), GithubPoll.next_poll_at == row.next_poll_at),
                )
                .values(next_poll_at=nxt)
            )
            if res.rowcount != 1:
                return None
            return GithubPoll(key=key, etag=row.etag, last_run_id=row.last_run_id)
    except IntegrityError:
        return None  # another replica made the row and polls now


def poll(svc: Services, *, force: bool = False) -> dict[str, str]:
    """List the deploy workflow's runs per environment since the last one seen, with conditional
    requests (an unchanged listing is a 304, which costs no rate limit); new runs go to ingest().

    Runs every `github.poll_seconds` (force: now); one replica polls an environment per interval.
    Returns what each environment's poll found: changed, not_modified or error."""
    every = svc.config.github.poll_seconds
    if not svc.settings.github_token or (not every and not force):
        return {}
    results: dict[str, str] = {}
    for env in svc.config.environments.values():
        listing = _listing_for(svc.config, env)
        if listing is None:
            continue
        state = _due(svc, env.name, every or 60.0, force)
        if state is None:
            continue
        results[env.name] = _poll_env(svc, env, listing, state)
        metrics.GITHUB_POLLS.labels(results[env.name]).inc()
    return results


def _poll_env(svc: Services, env: Environment, listing: dict[str, str], state: GithubPoll) -> str:
    gh = github_backend(svc.settings, svc.config)
    last = state.last_run_id
    try:
        page = gh.list_runs(etag=state.etag, **listing)
        etag = page.etag
        if page.runs is None:
            result = "not_modified"
            runs: list[WorkflowRun] = []
        else:
            result, runs = "changed", list(page.runs)
            n = 1
            # Newer runs than the last one seen may fill more than a page: read on until one is old.
            while (
                page.runs
                and len(page.runs) >= 30
                and last is not None
                and min(r.id for r in page.runs) > last
            ):
                n += 1
                if n > MAX_PAGES:
                    break
                page = gh.list_runs(page=n, **listing)
                runs += page.runs or []
    except GitHubError as e:
        log.warning("github poll failed", extra={"environment": env.name, "error": str(e)[:300]})
        _save_poll(svc, env.name, state.etag, last, "error")
        return "error"
    finally:
        gh.close()
    now = datetime.now(UTC)
    fresh = [r for r in runs if last is None or r.id > last]
    if last is None:  # the first look: what is going on now, not the history
        fresh = [r for r in fresh if r.status != "completed" or r.created_at >= now - FIRST_LOOK]
    for run in sorted(fresh, key=lambda r: r.id):
        seen = Sighting.of_run(run, via="poller")
        where = attribute(svc.config, seen)
        if where is not None and where.environment == env.name:
            ingest(svc, seen)
    newest = max([r.id for r in runs] + [last or 0]) or None
    _save_poll(svc, env.name, etag, newest, result)
    return result


def _save_poll(svc: Services, key: str, etag: str, last: int | None, result: str) -> None:
    with svc.sessions.begin() as s:
        s.execute(
            update(GithubPoll)
            .where(GithubPoll.key == key)
            .values(etag=etag, last_run_id=last, polled_at=datetime.now(UTC), result=result)
        )


def sweep(svc: Services) -> None:
    """Periodic work (every replica's job workers, bot.core.jobs.JobRunner.sweep): poll when due and
    adopt runs that were waiting for the bot's own dispatches to find theirs."""
    try:
        poll(svc)
    except Exception:
        log.exception("github poll failed")
    adopt_pending(svc)


# --------------------------------------------------------------------------- `/taisun deploys`


def parse_deploys(tokens: list[str], config: Config, usage: str) -> Command:
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    n = 10
    if tokens:
        word = tokens.pop(0)
        if not word.isdigit() or not 1 <= int(word) <= 50:
            raise UsageError(key="deploys.err.n", usage=usage)
        n = int(word)
    if tokens:
        raise UsageError(key="err.unexpected", words=" ".join(tokens), usage=usage)
    return Command("deploys", {"n": n}, env)


DEPLOYS_COMMAND = Spec(
    "deploys", "deploys <env> [n]", "The deploy timeline: who deployed what, how it started, verified or not",
    "デプロイの履歴（誰が・何を・どう始めたか・検証結果）", parse=parse_deploys, rank=25,
)  # fmt: skip


def entries(svc: Services, environment: str, limit: int = 10) -> list[Job]:
    """The environment's deploys and rollbacks, newest first, whoever started them: those that ran or
    are under way (never dry runs, nor requests that never started)."""
    with svc.read_sessions() as s:
        return list(
            s.scalars(
                select(Job)
                .where(
                    Job.environment == environment, Job.operation.in_(("deploy", "rollback")),
                    Job.dry_run.is_(False),
                    or_(Job.started_at.is_not(None), Job.state.in_((JobState.PENDING_APPROVAL, JobState.QUEUED, JobState.RUNNING))),
                )
                .order_by(Job.created_at.desc())
                .limit(limit)
            )
        )  # fmt: skip
