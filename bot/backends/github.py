"""GitHub adapter for deploys: tags, compare, workflow_dispatch, runs, deployments (PyGithub).

Slack-free and stateless apart from one PyGithub client. Every failure surfaces as a
GitHubError (or its subclasses GitHubUnavailable / GitHubRateLimited) whose message is
short, says what to do, and never contains the token.

Retries: GET requests are retried twice on 5xx and connection errors (urllib3 Retry
limited to GET). POSTs are never re-sent: a dispatch answered 502 may have started a
run anyway, and a second one would be a second deploy. After a failed dispatch, look
for the run with find_run() before dispatching again.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import io
import itertools
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zipfile import BadZipFile, ZipFile

import httpx
import requests
import yaml
from github import Auth, Github, GithubException
from urllib3.util.retry import Retry

from bot.core.logs import register_secret
from bot.core.mrkdwn import without_github_mentions

__all__ = [
    "Artifact",
    "Comparison",
    "RunListing",
    "GitHubBackend",
    "GitHubError",
    "GitHubRateLimited",
    "GitHubUnavailable",
    "Tag",
    "WorkflowRun",
    "version_key",
    "workflow_run_from_json",
]

# A dispatched run is created by GitHub's clock; ours may be a little ahead.
CLOCK_SKEW = timedelta(seconds=10)
MAX_TAGS_SCANNED = 1000  # tags are not listed in version order, so we read them all (up to this many)
MAX_TITLES = 20
PER_PAGE = 100
DEPLOYMENT_STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})

# Only GETs are retried (twice: at once, then after 0.4 s). Connection errors that happen before
# a request is sent are retried for any method by urllib3, which is safe: nothing reached GitHub.
_GET_RETRY = Retry(
    total=2,
    connect=2,
    read=1,
    status=2,
    other=0,
    allowed_methods=frozenset({"GET", "HEAD"}),
    status_forcelist=(500, 502, 503, 504),
    backoff_factor=0.2,
    raise_on_status=False,  # hand the last 5xx to PyGithub so it raises with status and body
    respect_retry_after_header=False,  # never sleep minutes inside a worker; rate limits surface instead
)


class GitHubError(Exception):
    """A GitHub call failed; ``str(exc)`` is a message fit for the user."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class GitHubUnavailable(GitHubError):
    """GitHub answered 5xx, timed out, or could not be reached."""


class GitHubRateLimited(GitHubError):
    """GitHub's rate limit is exhausted; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, status: int | None = None, retry_after: int = 60) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Tag:
    name: str
    sha: str  # the commit (annotated tags dereferenced)


@dataclass(frozen=True)
class Comparison:
    total_commits: int
    titles: list[str]  # first line of each commit message, newest first, at most 20
    html_url: str


@dataclass(frozen=True)
class WorkflowRun:
    id: int
    status: str  # queued, in_progress, completed, waiting, ...
    conclusion: str | None  # success, failure, cancelled, ... once completed
    html_url: str
    created_at: datetime  # aware, UTC
    head_branch: str
    display_title: str = ""  # the workflow's run-name (or its name)
    run_number: int = 0
    event: str = ""  # push, workflow_dispatch, ...
    actor: str = ""  # the login of who triggered it (triggering_actor, else actor)
    head_sha: str = ""
    path: str = ""  # .github/workflows/cd.yml
    workflow_id: int = 0


@dataclass(frozen=True)
class RunListing:
    """One page of a workflow's runs, newest first; `runs` is None when GitHub answered 304 Not
    Modified to the ETag given (nothing changed, and the request cost no rate limit)."""

    runs: list[WorkflowRun] | None
    etag: str


def workflow_run_from_json(data: Mapping[str, Any]) -> WorkflowRun:
    """A run as GitHub's REST API and its `workflow_run` webhook payload both describe it."""
    actor = data.get("triggering_actor") or data.get("actor") or {}
    created = str(data.get("created_at") or "")
    try:
        when = _utc(datetime.fromisoformat(created.replace("Z", "+00:00"))) if created else datetime.now(UTC)
    except ValueError:
        when = datetime.now(UTC)
    return WorkflowRun(
        id=int(data.get("id") or 0),
        status=str(data.get("status") or ""),
        conclusion=str(data["conclusion"]) if data.get("conclusion") else None,
        html_url=str(data.get("html_url") or ""),
        created_at=when,
        head_branch=str(data.get("head_branch") or ""),
        display_title=str(data.get("display_title") or ""),
        run_number=int(data.get("run_number") or 0),
        event=str(data.get("event") or ""),
        actor=str(actor.get("login") or "") if isinstance(actor, Mapping) else "",
        head_sha=str(data.get("head_sha") or ""),
        path=str(data.get("path") or ""),
        workflow_id=int(data.get("workflow_id") or 0),
    )


_SEMVER = re.compile(
    r"^[^\d]*(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def version_key(name: str) -> tuple[Any, ...]:
    """Sort key in semantic-version order (v1.10.0 > v1.9.0 > v1.9.0-rc.2 > v1.9.0-rc.1).

    Names that are not semantic versions sort below all that are, by name.
    """
    m = _SEMVER.match(name)
    if m is None:
        return (0, name)
    pre = m["pre"]
    # Semver precedence: a pre-release sorts below its release; numeric identifiers compare
    # as numbers and below alphanumeric ones; more identifiers win when the rest are equal.
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (1, int(m["major"]), int(m["minor"]), int(m["patch"]), 0 if pre else 1, pre_key, name)


def _utc(dt: datetime) -> datetime:
    # PyGithub 2.x returns aware datetimes; treat a naive one as UTC rather than local time.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _first_line(message: str) -> str:
    return (message or "").strip().splitlines()[0] if (message or "").strip() else ""


def _short_ref(ref: str) -> str:
    return ref.removeprefix("refs/heads/").removeprefix("refs/tags/")


@dataclass(frozen=True)
class Artifact:
    """A workflow run's artifact (its zip is downloaded through archive_download_url)."""

    id: int
    name: str
    size_in_bytes: int
    expired: bool
    archive_download_url: str


class _CurrentToken(Auth.Token):
    """The backend's token as it is now: a token re-read after a rotation is used from the next request."""

    def __init__(self, backend: GitHubBackend) -> None:
        self._backend = backend

    @property
    def token(self) -> str:
        return self._backend._token


_F = TypeVar("_F", bound=Callable[..., Any])


def _renews_token(method: _F) -> _F:
    """Call again once, with a re-read token, when GitHub answered 401 and the token has changed since
    (a rotation). A 401 means GitHub did nothing, so even a POST is safe to send again."""

    @functools.wraps(method)
    def wrapper(self: GitHubBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except GitHubError as e:
            if e.status != 401 or not self._renew_token():
                raise
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class GitHubBackend:
    """What the deploy feature needs from GitHub, for one repository and workflow."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        repository: str,
        workflow: str,
        ref: str,
        tag_pattern: str,
        timeout: float = 10.0,
        return_run_details: bool = False,
        token_refresh: Callable[[], str] | None = None,
    ) -> None:
        """``return_run_details`` asks GitHub for the run id in the dispatch answer (github.com
        supports it; older GitHub Enterprise Server may answer 422 to the unknown key).
        ``token_refresh`` reads the token again (GITHUB_TOKEN_SECRET_ID) when GitHub answers 401."""
        try:
            self._tag_re = re.compile(tag_pattern)
        except re.error as exc:
            raise ValueError(f"github.tag_pattern {tag_pattern!r} is not a valid regex: {exc}") from exc
        self._token = token
        self._token_refresh = token_refresh
        self._api_url = api_url.rstrip("/") or "https://api.github.com"
        self.repository = repository
        self.workflow = workflow
        self.ref = ref
        self.timeout = timeout
        self.return_run_details = return_run_details
        self._gh = Github(
            base_url=self._api_url,
            auth=_CurrentToken(self) if token else None,
            # PyGithub only accepts an int timeout (seconds) for connect and read alike.
            timeout=max(1, math.ceil(timeout)),
            user_agent="taisun-chatops (PyGithub)",
            per_page=PER_PAGE,
            retry=_GET_RETRY,
            # PyGithub sleeps 0.25 s between requests and 1 s between writes by default; a
            # deploy makes a handful of calls, so only keep a small gap between writes.
            seconds_between_requests=0,
            seconds_between_writes=0.1,
            # Objects are fetched when first read, so building URLs costs no requests.
            lazy=True,
        )
        self._repo = self._gh.get_repo(repository)

    def __repr__(self) -> str:  # never show the token
        return f"GitHubBackend(repository={self.repository!r}, workflow={self.workflow!r}, ref={self.ref!r})"

    def close(self) -> None:
        self._gh.close()

    # ------------------------------------------------------------------ tags

    @_renews_token
    def latest_tags(self, limit: int = 10) -> list[Tag]:
        """Tags matching tag_pattern, newest semantic version first."""
        with self._errors("listing tags"):
            found = [
                Tag(t.name, t.commit.sha)
                for t in itertools.islice(self._repo.get_tags(), MAX_TAGS_SCANNED)
                if self._tag_re.fullmatch(t.name)
            ]
        found.sort(key=lambda t: version_key(t.name), reverse=True)
        return found[: max(0, limit)]

    @_renews_token
    def resolve_tag(self, name: str) -> str | None:
        """The commit sha a tag points to, or None when there is no such tag."""
        if not name:
            return None
        with self._errors(f"looking up tag {name}"):
            try:
                obj = self._repo.get_git_ref(f"tags/{name}").object
                kind, sha = obj.type, obj.sha
            except GithubException as exc:
                if exc.status != 404:
                    raise
                # GitHub says 404 for a missing repository too: tell "no such tag" from
                # "wrong repository or token" so a config error is not reported as a typo.
                self._gh.requester.requestJsonAndCheck("GET", self._repo.url)
                return None
            # An annotated tag points at a tag object (possibly a chain of them) that names the commit.
            for _ in range(5):
                if kind == "commit":
                    return str(sha)
                if kind != "tag":
                    raise GitHubError(f"tag {name} points to a {kind}, not a commit")
                target = self._repo.get_git_tag(sha).object
                kind, sha = target.type, target.sha
        raise GitHubError(f"tag {name} is nested too deeply to resolve")

    # ------------------------------------------------------------------ compare

    @_renews_token
    def compare(self, base: str, head: str) -> Comparison:
        """Commits in head but not in base: how many, the newest titles, and the GitHub page."""
        url = f"{self._repo.url}/compare/{urllib.parse.quote(base)}...{urllib.parse.quote(head)}"
        # The requester is used directly so paging is explicit: commits come oldest first,
        # so for long ranges the newest titles are on the last page.
        with self._errors(
            f"comparing {base}...{head}", not_found=f"{base} or {head} does not exist in {self.repository}"
        ):
            data = self._get_json(url, {"per_page": PER_PAGE, "page": 1})
            total = int(data.get("total_commits") or 0)
            pages: dict[int, list[Any]] = {1: list(data.get("commits") or [])}
            last = math.ceil(total / PER_PAGE)
            if last > 1:
                pages[last] = self._get_json(url, {"per_page": PER_PAGE, "page": last}).get("commits") or []
                if len(pages[last]) < MAX_TITLES and last - 1 not in pages:
                    pages[last - 1] = (
                        self._get_json(url, {"per_page": PER_PAGE, "page": last - 1}).get("commits") or []
                    )
        commits = [c for page in sorted(pages) for c in pages[page]]
        titles = [_first_line(str((c.get("commit") or {}).get("message") or "")) for c in reversed(commits)]
        return Comparison(
            total_commits=total, titles=titles[:MAX_TITLES], html_url=str(data.get("html_url") or "")
        )

    # ------------------------------------------------------------------ workflow runs

    @_renews_token
    def dispatch(self, inputs: Mapping[str, str]) -> int | None:
        """Start the workflow on ``ref`` with these inputs. Sent once; never retried.

        Returns the run id when GitHub gives it (return_run_details), else None: then
        find_run() locates the run. Raises GitHubUnavailable when the outcome is unknown
        (5xx, timeout): the run may exist anyway, so call find_run() before dispatching again.
        """
        for key, value in inputs.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"workflow inputs must be strings, got {key!r}: {value!r}")
        url = f"{self._workflow_url()}/dispatches"
        body: dict[str, Any] = {"ref": self.ref, "inputs": dict(inputs)}
        if self.return_run_details:
            body["return_run_details"] = True
        # Workflow.create_dispatch returns False (or raises, depending on version and
        # arguments) without the status; call the requester so errors carry status and body.
        with self._errors(f"the dispatch of {self.workflow} on {self.ref}", dispatch=True):
            _, data = self._gh.requester.requestJsonAndCheck("POST", url, input=body)
        run_id = data.get("workflow_run_id") if isinstance(data, dict) else None
        return int(run_id) if isinstance(run_id, int) else None

    @_renews_token
    def find_run(
        self,
        dispatched_after: datetime,
        exclude_ids: Collection[int] = frozenset(),
        *,
        title_contains: str | None = None,
    ) -> WorkflowRun | None:
        """The newest workflow_dispatch run of the workflow on ``ref`` created at/after dispatched_after.

        Allows CLOCK_SKEW (10 s) of difference between our clock and GitHub's. Runs in
        exclude_ids (already claimed by other jobs) are skipped; title_contains, if given,
        must appear in the run's display title (a workflow ``run-name`` that includes a
        job id makes concurrent dispatches unambiguous). Returns None when no run is listed
        yet: GitHub takes a few seconds to list a new run, so poll.
        """
        cutoff = _utc(dispatched_after) - CLOCK_SKEW
        created = f">={cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        with self._errors(
            f"listing runs of {self.workflow}",
            not_found=f"workflow {self.workflow} not found in {self.repository}, or the token cannot see it",
        ):
            runs = self._repo.get_workflow(self.workflow).get_runs(
                event="workflow_dispatch", branch=_short_ref(self.ref), created=created
            )
            # Newest first; a few pages at most even on a busy repository.
            for run in itertools.islice(runs, 3 * PER_PAGE):
                found = self._run(run)
                if found.id in exclude_ids or found.created_at < cutoff.replace(microsecond=0):
                    continue
                if title_contains and title_contains not in found.display_title:
                    continue
                return found
        return None

    @_renews_token
    def list_runs(
        self, *, branch: str = "", event: str = "", per_page: int = 30, page: int = 1, etag: str = ""
    ) -> RunListing:
        """One page of the workflow's runs, newest first, as a conditional request: with the `etag` of
        the last answer GitHub says 304 when nothing changed, which costs no rate limit."""
        params: dict[str, Any] = {"per_page": max(1, min(PER_PAGE, per_page)), "page": max(1, page)}
        if branch:
            params["branch"] = branch
        if event:
            params["event"] = event
        headers = {"If-None-Match": etag} if etag else None
        with self._errors(
            f"listing runs of {self.workflow}",
            not_found=f"workflow {self.workflow} not found in {self.repository}, or the token cannot see it",
        ):
            answer, data = self._gh.requester.requestJsonAndCheck(
                "GET", f"{self._workflow_url()}/runs", parameters=params, headers=headers
            )
        new_etag = str(answer.get("etag") or "")
        if data is None:  # 304 Not Modified: an empty body
            return RunListing(None, new_etag or etag)
        runs = data.get("workflow_runs") if isinstance(data, dict) else None
        return RunListing([workflow_run_from_json(r) for r in runs or [] if isinstance(r, dict)], new_etag)

    @_renews_token
    def get_run(self, run_id: int) -> WorkflowRun:
        """The run's current state (one GET)."""
        with self._errors(
            f"reading run {run_id}", not_found=f"run {run_id} does not exist in {self.repository}"
        ):
            return self._run(self._repo.get_workflow_run(int(run_id)))

    # ------------------------------------------------------------------ deployments

    @_renews_token
    def create_deployment(
        self, ref: str, environment: str, description: str, payload: dict[str, Any] | None = None
    ) -> int:
        """Record a GitHub Deployment of ``ref`` to ``environment``; returns its id. ``payload`` is
        kept with it (the bot marks its own, so their webhooks are not taken for someone else's)."""
        extra: dict[str, Any] = {"payload": payload} if payload else {}
        with self._errors(f"creating a deployment of {ref} to {environment}"):
            deployment = self._repo.create_deployment(
                ref,
                **extra,
                environment=environment,
                # GitHub's limit; people's words in it never @-mention a GitHub user or team.
                description=without_github_mentions(description)[:140],
                # Defaults would merge the default branch into ref (auto_merge) and refuse
                # when commit checks are not green; the bot records, it does not gate.
                auto_merge=False,
                required_contexts=[],
            )
            return int(deployment.id)

    @_renews_token
    def set_deployment_status(
        self, deployment_id: int, state: str, environment_url: str = "", log_url: str = ""
    ) -> None:
        """Add a status (queued, in_progress, success, failure, error, inactive, pending) to a deployment."""
        if state not in DEPLOYMENT_STATES:
            raise ValueError(f"deployment state must be one of {sorted(DEPLOYMENT_STATES)}, not {state!r}")
        body: dict[str, Any] = {"state": state}
        if environment_url:
            body["environment_url"] = environment_url
        if log_url:
            body["log_url"] = log_url
        url = f"{self._repo.url}/deployments/{int(deployment_id)}/statuses"
        # Direct call: PyGithub's create_status has no log_url (it predates it) and would
        # first GET the deployment.
        with self._errors(
            f"setting deployment {deployment_id} to {state}",
            not_found=f"deployment {deployment_id} does not exist in {self.repository}",
        ):
            self._gh.requester.requestJsonAndCheck("POST", url, input=body)

    @_renews_token
    def deployment_state(self, deployment_id: int) -> str | None:
        """The newest status of a deployment (success, failure, in_progress, ...), None when it has none."""
        url = f"{self._repo.url}/deployments/{int(deployment_id)}/statuses"
        with self._errors(
            f"reading deployment {deployment_id}",
            not_found=f"deployment {deployment_id} does not exist in {self.repository}",
        ):
            _, data = self._gh.requester.requestJsonAndCheck("GET", url, parameters={"per_page": 1})
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return str(data[0].get("state") or "") or None
        return None

    # ------------------------------------------------------------------ issues

    @_renews_token
    def create_issue(self, title: str, body: str, labels: Collection[str] = ()) -> str:
        """Open an issue (incident follow-ups); returns its html_url. Sent once, never retried.

        Titles and bodies carry what people typed in Slack: an @login or @org/team in them is kept
        as text but never notifies or subscribes anyone on GitHub.
        """
        payload: dict[str, Any] = {
            "title": without_github_mentions(title)[:256],
            "body": without_github_mentions(body)[:65000],
        }
        if labels:
            payload["labels"] = list(labels)
        with self._errors(
            f"creating an issue in {self.repository}", need="the Issues: write permission (issues:write)"
        ):
            _, data = self._gh.requester.requestJsonAndCheck(
                "POST", f"{self._repo.url}/issues", input=payload
            )
        return str(data.get("html_url", "")) if isinstance(data, dict) else ""

    # ------------------------------------------------------------------ check

    @_renews_token
    def check(self, inputs: Collection[str] = ()) -> str:
        """Connectivity check for ``taisun check``: the repository and the workflow are reachable.

        With ``inputs`` (the names the bot will send), also read the workflow file on ``ref``
        and fail if it does not declare one of them or requires one the bot does not send.
        """
        with self._errors(f"reading repository {self.repository}"):
            # A fresh object, so every check really reaches GitHub (default_branch needs a GET).
            repo = self._gh.get_repo(self.repository)
            default_branch = repo.default_branch
            full_name = repo.full_name
        with self._errors(
            f"reading workflow {self.workflow}",
            not_found=f"workflow {self.workflow} not found in {self.repository} (github.workflow in the config)",
        ):
            wf = repo.get_workflow(self.workflow)
            state, path = wf.state, wf.path
        if state != "active":
            raise GitHubError(
                f"workflow {self.workflow} in {full_name} is {state}; enable it in the Actions tab"
            )
        summary = (
            f"repo {full_name} reachable (default branch {default_branch}), workflow {self.workflow} active"
        )
        if not inputs:
            return summary
        declared = self._declared_inputs(path)
        if declared is None:
            return f"{summary} (could not read {path} to verify inputs)"
        names, required = declared
        unexpected = sorted(set(inputs) - set(names))
        if unexpected:
            raise GitHubError(
                f"workflow {self.workflow} does not declare input(s) {', '.join(unexpected)}; GitHub would "
                f"answer 422 to every dispatch: remove them from github.inputs in the config"
            )
        missing = sorted(required - set(inputs))
        if missing:
            raise GitHubError(
                f"workflow {self.workflow} requires input(s) {', '.join(missing)}; add them to github.inputs"
            )
        return f"{summary}, inputs {', '.join(sorted(inputs))} declared"

    # ------------------------------------------------------------------ security operations (#18)

    @_renews_token
    def list_artifacts(self, run_id: int) -> list[Artifact]:
        """The artifacts a workflow run uploaded (needs Actions: read)."""
        url = f"{self._repo.url}/actions/runs/{int(run_id)}/artifacts"
        found: list[Artifact] = []
        with self._errors(
            f"listing the artifacts of run {run_id}",
            not_found=f"run {run_id} does not exist in {self.repository}, or the token cannot see it",
            need="the Actions: read permission (actions:read) to read workflow runs and their artifacts",
        ):
            for page in range(1, 11):
                data = self._get_json(url, {"per_page": PER_PAGE, "page": page})
                items = data.get("artifacts") or []
                for a in items:
                    found.append(
                        Artifact(
                            id=int(a["id"]), name=str(a.get("name") or ""), size_in_bytes=int(a.get("size_in_bytes") or 0),
                            expired=bool(a.get("expired")), archive_download_url=str(a.get("archive_download_url") or ""),
                        )
                    )  # fmt: skip
                if len(items) < PER_PAGE:
                    break
        return found

    @_renews_token
    def read_artifact_file(self, artifact: Artifact, file_name: str, *, max_bytes: int = 50 * 2**20) -> bytes:
        """One file of an artifact's zip. GitHub answers the download with a 302 to short-lived storage
        elsewhere; the token is sent to GitHub only, never to where it redirects."""
        if artifact.expired:
            raise GitHubError(
                f"artifact {artifact.name} has expired (GitHub keeps artifacts for a limited time)"
            )
        if artifact.size_in_bytes > max_bytes:
            raise GitHubError(f"artifact {artifact.name} is {artifact.size_in_bytes} bytes, over {max_bytes}")
        action = f"downloading artifact {artifact.name}"
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "taisun-chatops"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            # httpx drops the Authorization header when a redirect leaves GitHub's origin.
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=True, max_redirects=3) as http,
                http.stream("GET", artifact.archive_download_url, headers=headers) as resp,
            ):
                if resp.status_code >= 400:
                    resp.read()
                    raise self._http_error(resp, action)
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise GitHubError(f"artifact {artifact.name} is larger than {max_bytes} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise GitHubUnavailable(
                self._scrub(f"could not download artifact {artifact.name}: {type(exc).__name__}")
            ) from exc
        try:
            with ZipFile(io.BytesIO(b"".join(chunks))) as zf:
                names = zf.namelist()
                member = next((n for n in names if n == file_name or n.rsplit("/", 1)[-1] == file_name), None)
                if member is None:
                    listed = ", ".join(names[:10]) or "nothing"
                    raise GitHubError(f"artifact {artifact.name} has no {file_name} (it holds {listed})")
                if zf.getinfo(member).file_size > max_bytes:  # a zip bomb stays a zip
                    raise GitHubError(
                        f"{file_name} in artifact {artifact.name} is larger than {max_bytes} bytes"
                    )
                return zf.read(member)
        except BadZipFile:
            raise GitHubError(f"artifact {artifact.name} is not a zip archive") from None

    def _http_error(self, resp: httpx.Response, action: str) -> GitHubError:
        try:
            detail = str((resp.json() or {}).get("message") or "")[:300]
        except ValueError:
            detail = ""
        status = resp.status_code
        if status == 401:
            return GitHubError(
                f"GitHub rejected GITHUB_TOKEN (401 {detail or 'Bad credentials'}): check the token", 401
            )
        if status == 403:
            return GitHubError(
                self._scrub(
                    f"GitHub refused {action} (403 {detail or 'Forbidden'}): the token needs the Actions: read "
                    "permission (actions:read)"
                ),
                403,
            )
        if status == 410:
            return GitHubError(f"GitHub answered 410 to {action}: the artifact has expired", 410)
        if status >= 500:
            return GitHubUnavailable(f"GitHub answered {status} to {action}", status)
        return GitHubError(
            self._scrub(f"GitHub answered {status} to {action}: {detail or 'no details'}"), status
        )

    @_renews_token
    def issues_with_label(self, label: str, *, max_pages: int = 10) -> list[dict[str, Any]]:
        """Issues (open and closed) carrying `label`, newest first: number, html_url, title, body."""
        url = f"{self._repo.url}/issues"
        out: list[dict[str, Any]] = []
        with self._errors(
            f"listing issues labelled {label} in {self.repository}",
            need="the Issues: read permission (issues:read)",
        ):
            for page in range(1, max_pages + 1):
                _, data = self._gh.requester.requestJsonAndCheck(
                    "GET",
                    url,
                    parameters={"labels": label, "state": "all", "per_page": PER_PAGE, "page": page},
                )
                items = data if isinstance(data, list) else []
                out += [
                    {k: i.get(k) for k in ("number", "html_url", "title", "body")}
                    for i in items
                    if isinstance(i, dict) and "pull_request" not in i
                ]
                if len(items) < PER_PAGE:
                    break
        return out

    @_renews_token
    def repository_secrets(self) -> dict[str, datetime]:
        """The repository's Actions secrets by name, with when each was last updated (never a value;
        needs the Secrets: read permission, or the repo scope of a classic token)."""
        url = f"{self._repo.url}/actions/secrets"
        out: dict[str, datetime] = {}
        with self._errors(
            f"listing the Actions secrets of {self.repository}",
            need="the Secrets: read repository permission (a classic token: the repo scope)",
        ):
            for page in range(1, 11):
                data = self._get_json(url, {"per_page": PER_PAGE, "page": page})
                items = data.get("secrets") or []
                for item in items:
                    when = str(item.get("updated_at") or item.get("created_at") or "")
                    if item.get("name") and when:
                        out[str(item["name"])] = _utc(datetime.fromisoformat(when.replace("Z", "+00:00")))
                if len(items) < PER_PAGE:
                    break
        return out

    def _renew_token(self) -> bool:
        """Read the token again (a rotation); True when it changed, so the failed call is worth one more try."""
        if self._token_refresh is None:
            return False
        try:
            fresh = self._token_refresh()
        except Exception:
            return False
        if not fresh or fresh == self._token:
            return False
        register_secret(fresh)
        self._token = fresh
        return True

    # ------------------------------------------------------------------ internals

    def _workflow_url(self) -> str:
        return f"{self._repo.url}/actions/workflows/{urllib.parse.quote(self.workflow, safe='')}"

    def _get_json(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        _, data = self._gh.requester.requestJsonAndCheck("GET", url, parameters=params)
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _run(run: Any) -> WorkflowRun:
        # Attributes, not raw_data: reading raw_data of a listed run fetches it again.
        actor = run.triggering_actor or run.actor
        return WorkflowRun(
            id=int(run.id),
            status=str(run.status),
            conclusion=run.conclusion or None,
            html_url=str(run.html_url),
            created_at=_utc(run.created_at),
            head_branch=str(run.head_branch or ""),
            display_title=str(run.display_title or ""),
            run_number=int(run.run_number or 0),
            event=str(run.event or ""),
            actor=str(actor.login or "") if actor is not None else "",
            head_sha=str(run.head_sha or ""),
            path=str(run.path or ""),
            workflow_id=int(run.workflow_id or 0),
        )

    def _declared_inputs(self, path: str) -> tuple[list[str], set[str]] | None:
        """(input names, required names) of workflow_dispatch in the workflow file, or None if unreadable."""
        try:
            with self._errors(f"reading {path}"):
                _, data = self._gh.requester.requestJsonAndCheck(
                    "GET",
                    f"{self._repo.url}/contents/{urllib.parse.quote(path)}",
                    parameters={"ref": self.ref},
                )
            text = base64.b64decode(str(data.get("content") or "")).decode("utf-8")
            doc = yaml.safe_load(text)
        except (GitHubError, binascii.Error, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            # Reading the file needs contents:read, which a deploy token may lack; the check
            # then only says it could not verify.
            return None
        if not isinstance(doc, dict):
            return None
        # YAML 1.1 reads the bare key `on` as True.
        on = doc.get("on", doc.get(True))
        if isinstance(on, str):
            on = {on: None}
        elif isinstance(on, list):
            on = dict.fromkeys(on)
        if not isinstance(on, dict) or "workflow_dispatch" not in on:
            raise GitHubError(
                f"workflow {self.workflow} has no workflow_dispatch trigger; add `on: workflow_dispatch` to {path}"
            )
        trigger = on.get("workflow_dispatch")
        inputs = (trigger.get("inputs") if isinstance(trigger, dict) else None) or {}
        if not isinstance(inputs, dict):
            return None
        required = {str(k) for k, v in inputs.items() if isinstance(v, dict) and v.get("required") is True}
        return [str(k) for k in inputs], required

    @contextmanager
    def _errors(
        self, action: str, *, not_found: str = "", dispatch: bool = False, need: str = ""
    ) -> Iterator[None]:
        """Turn PyGithub and requests exceptions into GitHubError with a message for the user."""
        try:
            yield
        except GitHubError:
            raise
        except GithubException as exc:
            raise self._translate(exc, action, not_found=not_found, dispatch=dispatch, need=need) from exc
        except requests.exceptions.RequestException as exc:
            what = " (the run may have started anyway: check before dispatching again)" if dispatch else ""
            # Retried GETs that time out surface as ConnectionError("... Read timed out").
            if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower():
                raise GitHubUnavailable(
                    self._scrub(f"GitHub did not answer {action} within {self.timeout:g} s{what}")
                ) from exc
            raise GitHubUnavailable(
                self._scrub(
                    f"could not reach GitHub at {self._api_url} for {action}: {type(exc).__name__}{what}"
                )
            ) from exc
        except RuntimeError as exc:
            # PyGithub raises RuntimeError when the server redirects elsewhere (a wrong GITHUB_API_URL).
            if "base_url" not in str(exc):
                raise
            raise GitHubError(self._scrub(f"GITHUB_API_URL looks wrong ({self._api_url}): {exc}")) from exc

    def _translate(
        self, exc: GithubException, action: str, *, not_found: str, dispatch: bool, need: str = ""
    ) -> GitHubError:
        status = int(exc.status) if exc.status is not None else None
        data = exc.data if isinstance(exc.data, dict) else {}
        headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
        detail = str(data.get("message") or exc.message or "").strip()
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            extra = (first.get("message") or first.get("code")) if isinstance(first, dict) else str(first)
            if extra:
                detail = f"{detail} ({extra})" if detail else str(extra)
        detail = detail[:300]
        lc = detail.lower()

        if status == 429 or (
            status == 403 and (headers.get("x-ratelimit-remaining") == "0" or "rate limit" in lc)
        ):
            wait = self._retry_after(headers)
            return GitHubRateLimited(
                self._scrub(f"GitHub rate limit reached ({action}); try again in {wait} s"), status, wait
            )
        if status is not None and status >= 500:
            msg = f"GitHub answered {status} to {action}"
            if dispatch:
                msg += (
                    "; it was not re-sent because the run may have started anyway: "
                    "look for the run before dispatching again"
                )
            return GitHubUnavailable(self._scrub(msg), status)
        if status == 401:
            if not self._token:
                return GitHubError(f"GitHub answered 401 to {action}: GITHUB_TOKEN is not set", status)
            return GitHubError(
                f"GitHub rejected GITHUB_TOKEN (401 {detail or 'Bad credentials'}): check the token", status
            )
        if status == 403:
            need = need or (
                "actions:write"
                if dispatch
                else "read access to the repository (contents:read, actions:read; deployments:write to record deployments)"
            )
            return GitHubError(
                self._scrub(f"GitHub refused {action} (403 {detail or 'Forbidden'}): the token needs {need}"),
                status,
            )
        if status == 404:
            if dispatch:
                hint = f"workflow {self.workflow} not found in {self.repository}, or the token cannot see it"
            elif not_found:
                hint = not_found
            else:
                hint = f"repository {self.repository} not found, or the token cannot see it"
            if detail and detail.lower() != "not found":  # e.g. "No common ancestor between ..."
                hint = f"{detail} ({hint})"
            return GitHubError(self._scrub(f"GitHub answered 404 to {action}: {hint}"), status)
        if status == 422 and dispatch:
            return GitHubError(self._scrub(self._dispatch_422(detail)), status)
        return GitHubError(
            self._scrub(f"GitHub answered {status} to {action}: {detail or 'no details'}"), status
        )

    def _dispatch_422(self, detail: str) -> str:
        msg = f"GitHub answered 422 to the dispatch: {detail}"
        m = re.search(r"Unexpected inputs provided: (\[.*?\])", detail)
        if m:
            try:
                names = [str(n) for n in json.loads(m.group(1))]
            except ValueError:
                names = []
            those = "that input" if len(names) == 1 else "those inputs"
            it = "it" if len(names) == 1 else "them"
            return f"{msg} — the workflow {self.workflow} does not declare {those}; remove {it} from github.inputs in the config"
        if "Required input" in detail:
            return f"{msg} — add it to github.inputs in the config"
        if detail.startswith("No ref found"):
            return (
                f"{msg} — the ref {self.ref!r} (github.ref in the config) does not exist in {self.repository}"
            )
        if "workflow_dispatch" in detail and "trigger" in detail:
            return f"{msg} — add `on: workflow_dispatch` to {self.workflow}"
        if "disabled" in detail:
            return f"{msg} — enable {self.workflow} in the repository's Actions tab"
        return msg

    @staticmethod
    def _retry_after(headers: Mapping[str, str]) -> int:
        value = headers.get("retry-after", "").strip()
        if value.isdigit():
            return max(1, int(value))
        if value:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return max(1, math.ceil(when.timestamp() - time.time()))
            except (TypeError, ValueError):
                pass
        reset = headers.get("x-ratelimit-reset", "").strip()
        if reset.isdigit():
            return max(1, math.ceil(int(reset) - time.time()))
        return 60

    def _scrub(self, message: str) -> str:
        # Belt and braces: no message may ever carry the token, whatever GitHub echoed back.
        return message.replace(self._token, "***") if self._token else message
