"""FakeGitHub: a loopback server speaking enough of the GitHub REST API for PyGithub.

Tests point the bot at ``fake.url`` (as GITHUB_API_URL) and drive the fake through a
small Python API: commits, tags, workflows, scripted workflow runs, deployments,
fault injection, and a record of every request.

    with FakeGitHub("taisun/taisun-v2") as gh:
        gh.declare_workflow("cd.yml", inputs=["environment", "version", "rollback"])
        gh.add_tag("v1.2.3")
        ...  # GitHubBackend(api_url=gh.url, ...)
        assert len(gh.dispatches) == 1

History is linear: every ``add_commit`` advances the default branch. Responses use
GitHub's JSON shapes (absolute ``url`` fields on ``fake.url``, since PyGithub follows
them) and GitHub's real error messages where the bot depends on them.

Knobs for deploy tests:
- ``run_script``: steps a dispatched run goes through, one per GET of that run
  (default ``["queued", "in_progress", ("completed", "success")]``); each GET shows the
  current step, then moves on. ``complete_run``/``set_run``/``script_run`` override one run.
- ``run_list_lag``: a new run is left out of this many run listings (GitHub's delay).
- ``clock``: the fake's notion of now (created_at of runs), to simulate clock skew.
- ``fail_next`` / ``rate_limit_next`` / ``stall_next``: faults for the next matching
  request(s); ``after_effect=True`` carries the request out before failing it.
- ``requests``, ``requests_to()``, ``dispatches``, ``runs``, ``deployments``: what happened.
- ``errors``: exceptions inside the fake (a test fixture should assert it stays empty).
- ``workflow_scripts``: a run script per workflow file (e.g. a failing ``smoke.yml``).

Runs started outside the bot: ``add_branch`` and ``push(ref, actor=...)`` start a push-event run
of the deploy workflow as GitHub does after a merge or a pushed tag (``inputs`` here are only the
fake's record of what it deploys; GitHub never shows a run's inputs).

Webhooks, signed as GitHub signs them: ``add_webhook(target, secret)`` subscribes a target (a
callable ``(headers, body) -> status`` or an http URL) and sends it a ``ping``; from then on every
run's lifecycle (``workflow_run`` requested / in_progress / completed) and every deployment and
deployment status is delivered from a sender thread, each with its own ``X-GitHub-Delivery`` and
``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>``. ``deliveries`` records them with the
status each target answered; ``redeliver(id)`` sends one again with the same delivery id (GitHub's
Redeliver button), to any targets, at once when there are several; ``flush_webhooks()`` waits.

Run listings answer with an ``ETag`` and ``304 Not Modified`` to a matching ``If-None-Match``;
``rate_limit_used`` counts the requests that cost rate limit (a 304 does not).

Security operations (#18): ``run_artifacts[workflow] = {name: {file: bytes}}`` gives every run of
that workflow those artifacts (listed at /actions/runs/{id}/artifacts; the zip download answers 302
to ``http://localhost:<port>/_blobs/…``, another origin, like GitHub's storage, and records in
``blob_requests`` whether a token reached it); ``add_secret`` adds an Actions secret (name and
dates only); ``issues`` lists the issues created (POST /issues), which GET /issues lists by label.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import operator
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit
from zipfile import ZipFile

import httpx

__all__ = ["FakeGitHub", "RecordedRequest"]

DOCS = "https://docs.github.com/rest"
RUN_STATUSES = {"queued", "in_progress", "completed", "waiting", "requested", "pending"}
DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
DEFAULT_RUN_SCRIPT: list[str | tuple[str, str | None]] = ["queued", "in_progress", ("completed", "success")]

Json = Any
Reply = tuple[int, Json, dict[str, str]]


class RecordedRequest(NamedTuple):
    """One request as received: ``path`` includes the query string; ``body`` is parsed JSON or None."""

    method: str
    path: str
    body: Any


class _NotFound(Exception):
    """Raised by route handlers: answer 404 like GitHub does."""


@dataclass
class _Fault:
    path_substring: str
    status: int | None  # None: answer normally (a stall)
    times: int
    body: Json
    headers: dict[str, str]
    after_effect: bool
    method: str | None
    delay: float = 0.0


@dataclass
class _Tag:
    sha: str  # the commit
    tag_sha: str | None  # the annotated tag object, None for a lightweight tag
    message: str


@dataclass
class _Workflow:
    id: int
    file: str
    name: str
    inputs: list[str]
    required: set[str]
    state: str
    dispatchable: bool
    run_name: str | None
    source: str | None
    created_at: datetime


@dataclass
class _Run:
    id: int
    workflow: str
    event: str
    head_branch: str
    head_sha: str
    created_at: datetime
    updated_at: datetime
    inputs: dict[str, Any]
    script: list[tuple[str, str | None]]
    run_number: int
    display_title: str
    hidden_lists: int
    step: int = 0
    actor: str = "taisun-bot"  # who triggered it (the token's user for dispatches)

    @property
    def status(self) -> str:
        return self.script[self.step][0]

    @property
    def conclusion(self) -> str | None:
        return self.script[self.step][1]


@dataclass
class _Deployment:
    id: int
    sha: str
    ref: str
    task: str
    environment: str
    description: str
    payload: Any
    created_at: datetime
    body: dict[str, Any]
    statuses: list[dict[str, Any]] = field(default_factory=list)
    creator: str = "taisun-bot"
    run_id: int | None = None


@dataclass
class Delivery:
    """One webhook delivery as GitHub sends it: its id, event, headers and exact body, and the status
    each send was answered with."""

    id: str
    event: str
    headers: dict[str, str]
    body: bytes
    hook_id: int
    answers: list[int] = field(default_factory=list)

    @property
    def payload(self) -> Any:
        text = self.body.decode()
        if text.startswith("payload="):
            return json.loads(dict(parse_qsl(text))["payload"])
        return json.loads(text)


@dataclass
class _Hook:
    id: int
    target: Any  # a callable (headers, body) -> status, or an http(s) URL
    secret: str
    events: tuple[str, ...]
    content_type: str  # json or form


def _iso(dt: datetime) -> str:
    # GitHub timestamps have second precision and a Z suffix.
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _normalise_script(script: Iterable[str | tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    steps: list[tuple[str, str | None]] = []
    for step in script:
        status, conclusion = (step, None) if isinstance(step, str) else step
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if status == "completed" and not conclusion:
            conclusion = "success"
        steps.append((status, conclusion if status == "completed" else None))
    if not steps:
        raise ValueError("a run script needs at least one step")
    return steps


def _bounded(test: Callable[[datetime, datetime], bool], bound: datetime) -> Callable[[datetime], bool]:
    return lambda t: test(t, bound)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler must not hold up stop()
    fake: FakeGitHub


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive like the real API; every reply carries Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY each keep-alive reply
    # waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output quiet

    def _dispatch(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch


class FakeGitHub:
    """A fake GitHub REST API on 127.0.0.1 for one repository; thread-safe."""

    def __init__(
        self,
        repository: str = "taisun/taisun-v2",
        *,
        token: str | None = None,
        default_branch: str = "main",
        html_base: str = "https://github.com",
    ) -> None:
        self.owner, _, self.name = repository.partition("/")
        if not self.owner or not self.name:
            raise ValueError("repository should look like owner/name")
        self.repository = repository
        self.token = token
        self.default_branch = default_branch
        self.html_base = html_base
        # Test knobs (read under the lock when used).
        self.run_script: list[str | tuple[str, str | None]] = list(DEFAULT_RUN_SCRIPT)
        self.run_list_lag = 0  # a new run stays out of run listings for this many list requests
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._run_ids = itertools.count(9_000_000_001)
        self._commits: list[dict[str, Any]] = []
        self._commit_index: dict[str, int] = {}
        self._tags: dict[str, _Tag] = {}
        self._tag_objects: dict[str, dict[str, Any]] = {}
        self._workflows: dict[str, _Workflow] = {}
        self._runs: dict[int, _Run] = {}
        self._deployments: dict[int, _Deployment] = {}
        # Security operations: artifacts per workflow file, run artifacts, issues, Actions secrets.
        self.run_artifacts: dict[str, dict[str, dict[str, bytes]]] = {}
        self._artifacts: dict[int, dict[str, Any]] = {}
        self._blobs: dict[str, bytes] = {}
        self.blob_requests: list[dict[str, Any]] = []
        self._issues: list[dict[str, Any]] = []
        self._secrets: dict[str, dict[str, str]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._branches: dict[str, str] = {}
        self.workflow_scripts: dict[str, list[str | tuple[str, str | None]]] = {}
        self.rate_limit_used = 0  # requests that cost rate limit (a 304 does not)
        self.not_modified = 0  # 304 answers given
        self._hooks: list[_Hook] = []
        self._deliveries: list[Delivery] = []
        self._outbox: queue.Queue[tuple[Delivery, list[Any]] | None] = queue.Queue()
        self._sending = 0
        self._sender: threading.Thread | None = None
        self.errors: list[str] = []  # exceptions raised inside the fake's handlers (should stay empty)
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.add_commit("Initial commit")

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL to use as GITHUB_API_URL (no trailing slash)."""
        if not self._port:
            raise RuntimeError("FakeGitHub is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeGitHub:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.name = f"fake-github:{self._port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout=5)
            self._sender = None
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise linger in their handler threads.
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # ------------------------------------------------------------------ test API: git

    def add_commit(self, message: str) -> str:
        """Append a commit to the (linear) default branch; returns its sha."""
        with self._lock:
            n = len(self._commits)
            sha = hashlib.sha1(f"{n}:{message}".encode(), usedforsecurity=False).hexdigest()
            parent = self._commits[-1]["sha"] if self._commits else None
            self._commits.append(
                {
                    "sha": sha,
                    "message": message,
                    "parent": parent,
                    "date": self.clock() - timedelta(hours=1) + timedelta(seconds=n),
                }
            )
            self._commit_index[sha] = n
            return sha

    @property
    def head(self) -> str:
        """Sha of the default branch's head commit."""
        with self._lock:
            return str(self._commits[-1]["sha"])

    def add_tag(self, name: str, sha: str | None = None, annotated: bool = False, message: str = "") -> str:
        """Create a tag (on a new commit when sha is None); returns the commit sha it points to."""
        with self._lock:
            if name in self._tags:
                raise ValueError(f"tag {name} already exists")
            commit = sha or self.add_commit(message or f"Release {name}")
            if commit not in self._commit_index:
                raise ValueError(f"no commit {commit}")
            tag_sha = None
            if annotated:
                tag_sha = hashlib.sha1(f"tag:{name}:{commit}".encode(), usedforsecurity=False).hexdigest()
                self._tag_objects[tag_sha] = {
                    "name": name,
                    "sha": commit,
                    "message": message or f"Release {name}\n",
                }
            self._tags[name] = _Tag(commit, tag_sha, message)
            return commit

    def move_tag(self, name: str, sha: str) -> None:
        """Point an existing tag at another commit (a force-pushed tag)."""
        with self._lock:
            if sha not in self._commit_index:
                raise ValueError(f"no commit {sha}")
            tag = self._tags[name]
            tag.sha = sha
            if tag.tag_sha is not None:
                self._tag_objects[tag.tag_sha]["sha"] = sha

    def delete_tag(self, name: str) -> None:
        with self._lock:
            self._tags.pop(name)

    def add_branch(self, name: str, sha: str | None = None) -> str:
        """A branch besides the default one (develop), at `sha` (default: the head); returns its sha."""
        with self._lock:
            self._branches[name] = sha or self.head
            return self._branches[name]

    def push(
        self,
        ref: str,
        *,
        actor: str = "octocat",
        workflow: str = "cd.yml",
        inputs: dict[str, Any] | None = None,
        script: Iterable[str | tuple[str, str | None]] | None = None,
        event: str = "push",
        created_at: datetime | None = None,
    ) -> int:
        """A push of `ref` (a branch or a tag) that runs the deploy workflow, as GitHub does after a
        merge to develop or `git push origin v1.2.3`; returns the run id. The run then goes through
        `script` (default run_script) one step per GET, like a dispatched one."""
        with self._lock:
            run = self._create_run(
                self._workflows[workflow], ref=ref, inputs=inputs or {}, event=event, created_at=created_at,
                script=script or self.workflow_scripts.get(workflow) or self.run_script, display_title=None,
                lag=0, actor=actor,
            )  # fmt: skip
            return run.id

    # ------------------------------------------------------------------ test API: actions

    def add_releases(self) -> FakeGitHub:
        """The repository the tests and benchmarks deploy from: four release tags (v1.0.0 … v1.2.3),
        a commit each, and cd.yml taking environment, version and rollback."""
        for i, tag in enumerate(["v1.0.0", "v1.1.0", "v1.2.2", "v1.2.3"]):
            self.add_commit(f"feat: change {i}")
            self.add_tag(tag)
        self.declare_workflow("cd.yml", inputs=["environment", "version", "rollback"])
        return self

    def declare_workflow(
        self,
        file: str,
        inputs: Iterable[str] = (),
        *,
        required: Iterable[str] = (),
        name: str | None = None,
        state: str = "active",
        dispatchable: bool = True,
        run_name: str | None = None,
        source: str | None = None,
    ) -> int:
        """Declare .github/workflows/<file>; returns its numeric id.

        ``run_name`` is a display-title template with ``{input}`` placeholders (like
        ``run-name:`` in the YAML); ``source`` overrides the generated YAML served by the
        contents API. ``state`` may be "disabled_manually" to test a disabled workflow.
        """
        with self._lock:
            wf = _Workflow(
                id=next(self._ids),
                file=file,
                name=name or file.rsplit(".", 1)[0].upper(),
                inputs=list(inputs),
                required=set(required),
                state=state,
                dispatchable=dispatchable,
                run_name=run_name,
                source=source,
                created_at=self.clock(),
            )
            self._workflows[file] = wf
            return wf.id

    def add_run(
        self,
        workflow: str = "cd.yml",
        *,
        created_at: datetime | None = None,
        event: str = "workflow_dispatch",
        branch: str | None = None,
        status: str = "completed",
        conclusion: str | None = "success",
        inputs: dict[str, Any] | None = None,
        display_title: str | None = None,
        actor: str = "octocat",
    ) -> int:
        """Add a run directly (e.g. an older run, or one started by someone else); returns its id."""
        with self._lock:
            step = (status, conclusion) if status == "completed" else status
            return self._create_run(
                self._workflows[workflow],
                ref=branch or self.default_branch,
                inputs=inputs or {},
                event=event,
                created_at=created_at,
                script=[step],
                display_title=display_title,
                lag=0,
                actor=actor,
            ).id

    def complete_run(self, run_id: int, conclusion: str = "success") -> None:
        """Finish a run now with this conclusion (success, failure, cancelled, ...)."""
        self.set_run(run_id, "completed", conclusion)

    def set_run(self, run_id: int, status: str, conclusion: str | None = None) -> None:
        """Put a run in this state and stop its script there."""
        with self._lock:
            run = self._runs[run_id]
            before = run.status
            run.script = _normalise_script([(status, conclusion)])
            run.step = 0
            run.updated_at = self.clock()
            if run.status != before:
                self._run_event(run)

    def script_run(self, run_id: int, script: Iterable[str | tuple[str, str | None]]) -> None:
        """Replace one run's remaining script (it restarts at the script's first step)."""
        with self._lock:
            run = self._runs[run_id]
            run.script = _normalise_script(script)
            run.step = 0

    def show_run(self, run_id: int) -> None:
        """GitHub's run listings catch up: the run appears in them from now on (see run_list_lag)."""
        with self._lock:
            self._runs[run_id].hidden_lists = 0

    def run(self, run_id: int) -> dict[str, Any]:
        """The run as GitHub would return it (does not advance its script)."""
        with self._lock:
            return self._run_json(self._runs[run_id])

    @property
    def runs(self) -> list[dict[str, Any]]:
        """All runs, newest first, with their recorded ``inputs`` (which GitHub never returns)."""
        with self._lock:
            out = []
            for run in sorted(self._runs.values(), key=lambda r: (r.created_at, r.id), reverse=True):
                data = self._run_json(run)
                data["inputs"] = dict(run.inputs)
                out.append(data)
            return out

    # ------------------------------------------------------------------ test API: deployments

    @property
    def deployments(self) -> list[dict[str, Any]]:
        """Deployments in creation order, each with the request body and its ``statuses``."""
        with self._lock:
            out = []
            for d in self._deployments.values():
                data = self._deployment_json(d)
                data["request"] = dict(d.body)
                data["statuses"] = [dict(s) for s in d.statuses]
                out.append(data)
            return out

    def add_deployment(
        self,
        ref: str,
        environment: str,
        *,
        actor: str = "octocat",
        run_id: int | None = None,
        payload: Any = None,
    ) -> int:
        """A deployment created outside the bot (by a job's `environment:` in Actions when `run_id`
        is given, else by another tool); its `deployment` webhook names the run. Returns its id."""
        with self._lock:
            sha = self._resolve(ref)
            if sha is None:
                raise ValueError(f"no ref {ref}")
            d = _Deployment(
                id=next(self._ids), sha=sha, ref=ref, task="deploy", environment=environment, description="",
                payload=payload or {}, created_at=self.clock(), body={"ref": ref, "environment": environment},
                creator=actor, run_id=run_id,
            )  # fmt: skip
            self._deployments[d.id] = d
            self._deployment_event("deployment", d)
            return d.id

    def add_deployment_status(self, deployment_id: int, state: str) -> None:
        """A status on a deployment (as its tool reports progress); its webhook is delivered."""
        with self._lock:
            self._create_status(dep_id=str(deployment_id), body={"state": state})

    # ------------------------------------------------------------------ test API: webhooks

    def add_webhook(
        self,
        target: Any,
        secret: str,
        *,
        events: Iterable[str] = ("workflow_run", "deployment", "deployment_status"),
        content_type: str = "json",
    ) -> int:
        """Subscribe `target` (a callable (headers, body) -> status, or an http URL) to these events,
        signed with `secret`, and send it a ping as GitHub does when a webhook is created."""
        with self._lock:
            hook = _Hook(next(self._ids), target, secret, tuple(events), content_type)
            self._hooks.append(hook)
            ping = {
                "zen": "Keep it logically awesome.", "hook_id": hook.id,
                "hook": {"type": "Repository", "id": hook.id, "name": "web", "active": True, "events": list(hook.events),
                         "config": {"content_type": content_type, "insecure_ssl": "0", "url": str(target)}},
                "repository": self._repo_json(), "sender": self._user(self.owner),
            }  # fmt: skip
            self._queue(self._delivery(hook, "ping", ping), [hook.target])
            return hook.id

    def send_event(self, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """Deliver any event (e.g. one the bot ignores) to the hooks subscribed to it."""
        with self._lock:
            return self._emit(event, payload)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def delivery(self, delivery_id: str) -> Delivery:
        with self._lock:
            return next(d for d in self._deliveries if d.id == delivery_id)

    def redeliver(self, delivery_id: str, targets: Iterable[Any] | None = None) -> Delivery:
        """Send a delivery again with the same id and body (GitHub's Redeliver), to `targets` (default:
        its hook's); several targets get it at the same moment (two replicas behind a load balancer)."""
        with self._lock:
            d = next(d for d in self._deliveries if d.id == delivery_id)
            hook = next(h for h in self._hooks if h.id == d.hook_id)
            self._queue(d, list(targets) if targets is not None else [hook.target])
            return d

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery has been sent and answered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._outbox.empty() and not self._sending:
                    return True
            time.sleep(0.01)
        return False

    def _queue(self, d: Delivery, targets: list[Any]) -> None:
        """Called with the lock held: hand a delivery to the sender thread."""
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_loop, name="fake-github-hooks", daemon=True)
            self._sender.start()
        self._sending += 1
        self._outbox.put((d, targets))

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            d, targets = item
            try:
                answers = self._post_all(targets, d)
                with self._lock:
                    d.answers.extend(answers)
            except Exception as exc:
                with self._lock:
                    self.errors.append(f"webhook {d.event} {d.id}: {exc!r}")
            finally:
                with self._lock:
                    self._sending -= 1

    def _post_all(self, targets: list[Any], d: Delivery) -> list[int]:
        """Send a delivery to each target; several at the same moment (two replicas behind a load balancer)."""
        if len(targets) == 1:
            return [self._post(targets[0], d)]
        answers = [0] * len(targets)
        go = threading.Barrier(len(targets))

        def send(i: int, target: Any) -> None:
            go.wait()
            answers[i] = self._post(target, d)

        threads = [threading.Thread(target=send, args=(i, t)) for i, t in enumerate(targets)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return answers

    @staticmethod
    def _post(target: Any, d: Delivery) -> int:
        if callable(target):
            return int(target(dict(d.headers), d.body))
        return httpx.post(str(target), content=d.body, headers=d.headers, timeout=10).status_code

    def _delivery(self, hook: _Hook, event: str, payload: dict[str, Any]) -> Delivery:
        """A delivery as GitHub builds it: the body, its HMAC signatures, and GitHub's headers."""
        raw = json.dumps(payload).encode()
        if hook.content_type == "form":
            body = urlencode({"payload": raw.decode()}).encode()
            ctype = "application/x-www-form-urlencoded"
        else:
            body, ctype = raw, "application/json"
        delivery_id = str(uuid.uuid4())
        sha256 = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
        sha1 = hmac.new(hook.secret.encode(), body, hashlib.sha1).hexdigest()
        headers = {
            "Content-Type": ctype, "User-Agent": "GitHub-Hookshot/f4a2c9e", "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Event": event, "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-ID": "4242", "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-Hub-Signature": f"sha1={sha1}", "X-Hub-Signature-256": f"sha256={sha256}",
        }  # fmt: skip
        d = Delivery(delivery_id, event, headers, body, hook.id)
        self._deliveries.append(d)
        return d

    def _emit(self, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """Called with the lock held: deliver an event to every hook subscribed to it."""
        out = []
        for hook in self._hooks:
            if event in hook.events or "*" in hook.events:
                d = self._delivery(hook, event, payload)
                self._queue(d, [hook.target])
                out.append(d)
        return out

    def _run_event(self, run: _Run) -> None:
        """Called with the lock held: the workflow_run webhook for a run's new status."""
        if not self._hooks:
            return
        action = {"completed": "completed", "in_progress": "in_progress"}.get(run.status, "requested")
        self._emit("workflow_run", {
            "action": action, "workflow_run": self._run_json(run),
            "workflow": self._workflow_json(self._workflows[run.workflow]),
            "repository": self._repo_json(), "sender": self._user(run.actor),
        })  # fmt: skip

    def _deployment_event(self, event: str, d: _Deployment, status: dict[str, Any] | None = None) -> None:
        """Called with the lock held: the deployment (or deployment_status) webhook."""
        if not self._hooks:
            return
        run = self._runs.get(d.run_id) if d.run_id else None
        payload: dict[str, Any] = {
            "action": "created", "deployment": self._deployment_json(d),
            "workflow": self._workflow_json(self._workflows[run.workflow]) if run else None,
            "workflow_run": self._run_json(run) if run else None,
            "repository": self._repo_json(), "sender": self._user(d.creator),
        }  # fmt: skip
        if status is not None:
            payload["deployment_status"] = status
        self._emit(event, payload)

    # ------------------------------------------------------------------ test API: faults

    def fail_next(
        self,
        path_substring: str,
        status: int,
        times: int = 1,
        body: Json = None,
        headers: dict[str, str] | None = None,
        after_effect: bool = False,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path (with query) contains path_substring with ``status``.

        With after_effect=True the request is carried out first (a dispatch that starts a
        run, then answers 502). ``body`` defaults to GitHub's message for the status.
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    path_substring,
                    status,
                    times,
                    body,
                    dict(headers or {}),
                    after_effect,
                    method and method.upper(),
                )
            )

    def rate_limit_next(
        self,
        path_substring: str = "",
        *,
        retry_after: int = 60,
        status: int = 429,
        times: int = 1,
        method: str | None = None,
        secondary: bool = False,
    ) -> None:
        """Answer like GitHub's primary (or secondary) rate limit, with Retry-After and x-ratelimit-* headers."""
        reset = int(time.time()) + retry_after
        message = (
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            if secondary
            else "API rate limit exceeded for user ID 1."
        )
        headers = {
            "Retry-After": str(retry_after),
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(reset),
        }
        self.fail_next(
            path_substring,
            status,
            times,
            {"message": message, "documentation_url": DOCS},
            headers,
            method=method,
        )

    def stall_next(
        self, path_substring: str, seconds: float, *, times: int = 1, method: str | None = None
    ) -> None:
        """Carry out the next matching request(s), then hold the answer back ``seconds`` (client timeouts)."""
        with self._lock:
            self._faults.append(
                _Fault(path_substring, None, times, None, {}, True, method and method.upper(), delay=seconds)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------------ test API: request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far: (method, path with query, JSON body)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_substring: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if path_substring in r.path and (method is None or r.method == method.upper())
        ]

    @property
    def dispatches(self) -> list[Any]:
        """Bodies of every workflow dispatch received, whatever the answer was."""
        return [
            r.body
            for r in self.requests
            if r.method == "POST" and urlsplit(r.path).path.endswith("/dispatches")
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle(self, h: _Handler) -> None:
        method = h.command.upper()
        raw_path = h.path
        if raw_path.startswith("/_blobs/"):
            self._serve_blob(h, raw_path)
            return
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body, bad_json = raw.decode("utf-8", "replace"), True
        with self._lock:
            self._requests.append(RecordedRequest(method, raw_path, body))
            fault = self._take_fault(method, raw_path)

        if fault is not None and fault.status is not None and not fault.after_effect:
            self._send(h, *self._fault_reply(fault))
            return
        if self.token is not None and h.headers.get("Authorization") not in (
            f"token {self.token}",
            f"Bearer {self.token}",
        ):
            reply: Reply = (
                401,
                {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                {},
            )
        elif bad_json:
            reply = (
                400,
                {"message": "Problems parsing JSON", "documentation_url": DOCS, "status": "400"},
                {},
            )
        else:
            try:
                with self._lock:
                    reply = self._route(method, raw_path, body, dict(h.headers))
            except _NotFound:
                reply = (404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {})
            except Exception as exc:  # a bug in the fake: make it loud, not a dropped connection
                with self._lock:
                    self.errors.append(f"{method} {raw_path}: {exc!r}")
                reply = (500, {"message": f"FakeGitHub error: {exc!r}", "status": "500"}, {})
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                reply = self._fault_reply(fault)
        self._send(h, *reply)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path_substring in path and (fault.method is None or fault.method == method):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_reply(fault: _Fault) -> Reply:
        assert fault.status is not None
        body = fault.body
        if body is None:
            phrase = {
                401: "Bad credentials",
                422: "Validation Failed",
                429: "API rate limit exceeded for user ID 1.",
            }.get(fault.status)
            if phrase is None:
                phrase = "Server Error" if fault.status >= 500 else HTTPStatus(fault.status).phrase
            body = {"message": phrase, "documentation_url": DOCS, "status": str(fault.status)}
        return fault.status, body, dict(fault.headers)

    def _send(self, h: _Handler, status: int, payload: Json, headers: dict[str, str]) -> None:
        try:
            h.send_response(status)
            h.send_header("X-GitHub-Request-Id", f"FAKE:{next(self._ids):X}")
            lower = {k.lower() for k in headers}
            with self._lock:
                if status != 304:  # GitHub: a conditional request answered 304 costs no rate limit
                    self.rate_limit_used += 1
                used = self.rate_limit_used
            defaults = {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": str(max(0, 5000 - used)),
                "x-ratelimit-used": str(used),
                "x-ratelimit-resource": "core",
                "x-ratelimit-reset": str(int(time.time()) + 3600),
            }
            for k, v in defaults.items():
                if k not in lower:
                    h.send_header(k, v)
            for k, v in headers.items():
                h.send_header(k, v)
            if status in (204, 304) or (payload is None and status < 300):
                if status not in (204, 304):
                    h.send_header("Content-Length", "0")
                h.end_headers()
                return
            data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
            if "content-type" not in lower:
                h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            # The client gave up (timeout test) or the fake is stopping.
            h.close_connection = True

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, raw_path: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        prefix = f"/repos/{self.repository}"
        if path.lower() != prefix.lower() and not path.lower().startswith(prefix.lower() + "/"):
            raise _NotFound
        sub = path[len(prefix) :]
        for route_method, pattern, handler in self._routes():
            m = re.fullmatch(pattern, sub)
            if m and route_method == method:
                groups = {k: unquote(v) for k, v in m.groupdict().items()}
                return handler(query=query, body=body, path=path, headers_in=headers or {}, **groups)
        raise _NotFound

    def _routes(self) -> list[tuple[str, str, Callable[..., Reply]]]:
        return [
            ("GET", r"", self._get_repo),
            ("GET", r"/tags", self._list_tags),
            ("GET", r"/git/ref/tags/(?P<name>.+)", self._get_ref),
            ("GET", r"/git/refs/tags/(?P<name>.+)", self._get_refs),
            ("GET", r"/git/matching-refs/tags/(?P<name>.*)", self._matching_refs),
            ("GET", r"/git/tags/(?P<sha>[0-9a-f]{40})", self._get_tag_object),
            ("GET", r"/git/commits/(?P<sha>[0-9a-f]{40})", self._get_git_commit),
            ("GET", r"/commits/(?P<ref>.+)", self._get_commit),
            ("GET", r"/compare/(?P<basehead>.+)", self._compare),
            ("GET", r"/contents/(?P<file>.+)", self._get_contents),
            ("GET", r"/actions/workflows", self._list_workflows),
            ("GET", r"/actions/workflows/(?P<wf>[^/]+)", self._get_workflow),
            ("POST", r"/actions/workflows/(?P<wf>[^/]+)/dispatches", self._dispatch),
            ("GET", r"/actions/workflows/(?P<wf>[^/]+)/runs", self._list_runs),
            ("GET", r"/actions/runs", self._list_runs),
            ("GET", r"/actions/runs/(?P<run_id>\d+)", self._get_run),
            ("POST", r"/actions/runs/(?P<run_id>\d+)/cancel", self._cancel_run),
            ("POST", r"/deployments", self._create_deployment),
            ("GET", r"/deployments", self._list_deployments),
            ("GET", r"/deployments/(?P<dep_id>\d+)", self._get_deployment),
            ("POST", r"/deployments/(?P<dep_id>\d+)/statuses", self._create_status),
            ("GET", r"/deployments/(?P<dep_id>\d+)/statuses", self._list_statuses),
            ("GET", r"/actions/runs/(?P<run_id>\d+)/artifacts", self._list_artifacts),
            ("GET", r"/actions/artifacts/(?P<art_id>\d+)/zip", self._download_artifact),
            ("GET", r"/actions/secrets", self._list_secrets),
            ("POST", r"/issues", self._create_issue),
            ("GET", r"/issues", self._list_issues),
        ]

    # ------------------------------------------------------------------ security operations (#18)

    def _add_artifact(self, run_id: int, name: str, files: dict[str, bytes]) -> int:
        buf = io.BytesIO()
        with ZipFile(buf, "w") as zf:
            for file_name, data in files.items():
                zf.writestr(file_name, data)
        art_id = next(self._ids)
        blob = hashlib.sha1(f"{art_id}:{name}".encode(), usedforsecurity=False).hexdigest()
        self._blobs[blob] = buf.getvalue()
        now = self.clock()
        self._artifacts[art_id] = {
            "id": art_id, "node_id": f"MDg6QXJ0aWZhY3Q{art_id}", "name": name, "size_in_bytes": len(buf.getvalue()),
            "url": f"{self._api}/actions/artifacts/{art_id}",
            "archive_download_url": f"{self._api}/actions/artifacts/{art_id}/zip", "expired": False,
            "created_at": _iso(now), "updated_at": _iso(now), "expires_at": _iso(now + timedelta(days=90)),
            "workflow_run": {"id": run_id, "head_branch": self.default_branch}, "_blob": blob,
        }  # fmt: skip
        return art_id

    def expire_artifacts(self) -> None:
        with self._lock:
            for art in self._artifacts.values():
                art["expired"] = True

    def add_secret(self, name: str, updated_at: datetime) -> None:
        """An Actions secret of the repository: GitHub shows its name and dates, never its value."""
        with self._lock:
            self._secrets[name] = {
                "name": name,
                "created_at": _iso(updated_at),
                "updated_at": _iso(updated_at),
            }

    @property
    def issues(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(i) for i in self._issues]

    def _list_artifacts(self, *, run_id: str, query: dict[str, str], path: str, **_: Any) -> Reply:
        if int(run_id) not in self._runs:
            raise _NotFound
        items = [
            {k: v for k, v in a.items() if k != "_blob"}
            for a in self._artifacts.values()
            if a["workflow_run"]["id"] == int(run_id)
        ]
        page, headers = self._paginate(items, query, path)
        return 200, {"total_count": len(items), "artifacts": page}, headers

    def _download_artifact(self, *, art_id: str, **_: Any) -> Reply:
        art = self._artifacts.get(int(art_id))
        if art is None:
            raise _NotFound
        if art["expired"]:
            return 410, {"message": "Artifact has expired", "documentation_url": DOCS, "status": "410"}, {}
        # GitHub's answer: a redirect to short-lived storage on another host (here: another origin).
        location = f"http://localhost:{self._port}/_blobs/{art['_blob']}?sig=fake"
        return 302, b"", {"Location": location, "Content-Type": "text/plain"}

    def _serve_blob(self, h: _Handler, raw_path: str) -> None:
        blob = urlsplit(raw_path).path.removeprefix("/_blobs/")
        with self._lock:
            self.blob_requests.append({"path": raw_path, "authorization": h.headers.get("Authorization")})
            data = self._blobs.get(blob)
        if data is None:
            self._send(
                h, 404, b"<Error><Code>BlobNotFound</Code></Error>", {"Content-Type": "application/xml"}
            )
            return
        self._send(h, 200, data, {"Content-Type": "application/zip"})

    def _list_secrets(self, *, query: dict[str, str], path: str, **_: Any) -> Reply:
        items = [dict(v) for _, v in sorted(self._secrets.items())]
        page, headers = self._paginate(items, query, path)
        return 200, {"total_count": len(items), "secrets": page}, headers

    def _create_issue(self, *, body: Any, **_: Any) -> Reply:
        if not isinstance(body, dict) or not str(body.get("title") or "").strip():
            return 422, {"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "missing_field",
                                                                      "field": "title"}], "documentation_url": DOCS}, {}  # fmt: skip
        number = len(self._issues) + 1
        issue = {
            "id": next(self._ids), "number": number, "title": body["title"], "body": body.get("body") or "",
            "labels": [{"name": str(n)} for n in body.get("labels") or []], "state": "open",
            "url": f"{self._api}/issues/{number}", "html_url": f"{self._html}/issues/{number}",
            "created_at": _iso(self.clock()), "user": self._user(),
        }  # fmt: skip
        self._issues.append(issue)
        return 201, issue, {}

    def _list_issues(self, *, query: dict[str, str], path: str, **_: Any) -> Reply:
        wanted = {n for n in (query.get("labels") or "").split(",") if n}
        state = query.get("state", "open")
        items = [
            i for i in reversed(self._issues)
            if wanted <= {lab["name"] for lab in i["labels"]} and (state == "all" or i["state"] == state)
        ]  # fmt: skip
        page, headers = self._paginate(items, query, path)
        return 200, page, headers

    # ------------------------------------------------------------------ JSON shapes

    @property
    def _api(self) -> str:
        return f"{self.url}/repos/{self.repository}"

    @property
    def _html(self) -> str:
        return f"{self.html_base}/{self.repository}"

    def _user(self, login: str = "taisun-bot") -> dict[str, Any]:
        return {
            "login": login,
            "id": 1,
            "node_id": "MDQ6VXNlcjE=",
            "avatar_url": f"{self.html_base}/{login}.png",
            "url": f"{self.url}/users/{login}",
            "html_url": f"{self.html_base}/{login}",
            "type": "Bot",
            "site_admin": False,
        }

    def _repo_json(self, full: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": 4242,
            "node_id": "R_kgDOFake",
            "name": self.name,
            "full_name": self.repository,
            "private": True,
            "owner": self._user(self.owner) | {"type": "Organization"},
            "html_url": self._html,
            "description": "Fake repository served by FakeGitHub",
            "fork": False,
            "url": self._api,
            "tags_url": f"{self._api}/tags",
            "deployments_url": f"{self._api}/deployments",
        }
        if full:
            data |= {
                "default_branch": self.default_branch,
                "visibility": "private",
                "archived": False,
                "disabled": False,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": _iso(self.clock()),
                "pushed_at": _iso(self.clock()),
                "permissions": {
                    "admin": False,
                    "maintain": False,
                    "push": True,
                    "triage": True,
                    "pull": True,
                },
            }
        return data

    def _commit_json(self, sha: str, *, detail: bool = False) -> dict[str, Any]:
        c = self._commits[self._commit_index[sha]]
        person = {"name": "Taisun Dev", "email": "dev@example.com", "date": _iso(c["date"])}
        parents = [] if c["parent"] is None else [c["parent"]]
        data: dict[str, Any] = {
            "sha": sha,
            "node_id": f"C_{sha[:12]}",
            "url": f"{self._api}/commits/{sha}",
            "html_url": f"{self._html}/commit/{sha}",
            "comments_url": f"{self._api}/commits/{sha}/comments",
            "commit": {
                "url": f"{self._api}/git/commits/{sha}",
                "author": person,
                "committer": person,
                "message": c["message"],
                "tree": {
                    "sha": hashlib.sha1(sha.encode(), usedforsecurity=False).hexdigest(),
                    "url": f"{self._api}/git/trees/{sha}",
                },
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            "author": self._user("taisun-dev"),
            "committer": self._user("taisun-dev"),
            "parents": [
                {"sha": p, "url": f"{self._api}/commits/{p}", "html_url": f"{self._html}/commit/{p}"}
                for p in parents
            ],
        }
        if detail:
            data["stats"] = {"total": 0, "additions": 0, "deletions": 0}
            data["files"] = []
        return data

    def _ref_json(self, name: str) -> dict[str, Any]:
        tag = self._tags[name]
        if tag.tag_sha is not None:
            obj = {"sha": tag.tag_sha, "type": "tag", "url": f"{self._api}/git/tags/{tag.tag_sha}"}
        else:
            obj = {"sha": tag.sha, "type": "commit", "url": f"{self._api}/git/commits/{tag.sha}"}
        ref = f"refs/tags/{name}"
        return {
            "ref": ref,
            "node_id": f"REF_{quote(name)}",
            "url": f"{self._api}/git/{quote(ref)}",
            "object": obj,
        }

    def _workflow_json(self, wf: _Workflow) -> dict[str, Any]:
        return {
            "id": wf.id,
            "node_id": f"W_{wf.id}",
            "name": wf.name,
            "path": f".github/workflows/{wf.file}",
            "state": wf.state,
            "created_at": _iso(wf.created_at),
            "updated_at": _iso(wf.created_at),
            "url": f"{self._api}/actions/workflows/{wf.id}",
            "html_url": f"{self._html}/blob/{self.default_branch}/.github/workflows/{wf.file}",
            "badge_url": f"{self._html}/workflows/{quote(wf.name)}/badge.svg",
        }

    def _run_json(self, run: _Run) -> dict[str, Any]:
        wf = self._workflows[run.workflow]
        url = f"{self._api}/actions/runs/{run.id}"
        started = run.created_at if run.status != "queued" else None
        return {
            "id": run.id,
            "name": wf.name,
            "node_id": f"WFR_{run.id}",
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": f".github/workflows/{wf.file}",
            "display_title": run.display_title,
            "run_number": run.run_number,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": wf.id,
            "check_suite_id": run.id + 1,
            "check_suite_node_id": f"CS_{run.id + 1}",
            "url": url,
            "html_url": f"{self._html}/actions/runs/{run.id}",
            "pull_requests": [],
            "created_at": _iso(run.created_at),
            "updated_at": _iso(run.updated_at),
            "actor": self._user(run.actor),
            "triggering_actor": self._user(run.actor),
            "run_attempt": 1,
            "referenced_workflows": [],
            "run_started_at": _iso(started) if started else None,
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "check_suite_url": f"{self._api}/check-suites/{run.id + 1}",
            "artifacts_url": f"{url}/artifacts",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{self._api}/actions/workflows/{wf.id}",
            "head_commit": {
                "id": run.head_sha,
                "tree_id": hashlib.sha1(run.head_sha.encode(), usedforsecurity=False).hexdigest(),
                "message": self._commits[self._commit_index[run.head_sha]]["message"],
                "timestamp": _iso(run.created_at),
                "author": {"name": "Taisun Dev", "email": "dev@example.com"},
                "committer": {"name": "Taisun Dev", "email": "dev@example.com"},
            },
            "repository": self._repo_json(full=False),
            "head_repository": self._repo_json(full=False),
        }

    def _deployment_json(self, d: _Deployment) -> dict[str, Any]:
        url = f"{self._api}/deployments/{d.id}"
        return {
            "url": url,
            "id": d.id,
            "node_id": f"DE_{d.id}",
            "sha": d.sha,
            "ref": d.ref,
            "task": d.task,
            "payload": d.payload,
            "original_environment": d.environment,
            "environment": d.environment,
            "description": d.description,
            "creator": self._user(d.creator),
            "created_at": _iso(d.created_at),
            "updated_at": _iso(d.created_at),
            "statuses_url": f"{url}/statuses",
            "repository_url": self._api,
            "transient_environment": bool(d.body.get("transient_environment", False)),
            "production_environment": bool(
                d.body.get("production_environment", d.environment == "production")
            ),
        }

    # ------------------------------------------------------------------ helpers

    def _resolve(self, ref: str) -> str | None:
        """Commit sha for a sha, branch, tag or refs/... name."""
        ref = ref.removeprefix("refs/heads/")
        if ref.startswith("refs/tags/"):
            tag = self._tags.get(ref.removeprefix("refs/tags/"))
            return tag.sha if tag else None
        if ref in (self.default_branch, "HEAD"):
            return str(self._commits[-1]["sha"])
        if ref in self._branches:
            return self._branches[ref]
        if ref in self._tags:
            return self._tags[ref].sha
        if ref in self._commit_index:
            return ref
        if re.fullmatch(r"[0-9a-f]{7,39}", ref):
            found = [s for s in self._commit_index if s.startswith(ref)]
            if len(found) == 1:
                return found[0]
        return None

    def _paginate(
        self, items: list[Any], query: dict[str, str], path: str, *, default: int = 30, maximum: int = 100
    ) -> tuple[list[Any], dict[str, str]]:
        """One page of items and its Link header, like GitHub's page/per_page pagination."""
        try:
            per_page = max(1, min(maximum, int(query.get("per_page", default))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            per_page, page = default, 1
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(p: int) -> str:
            return f"{self.url}{path}?{urlencode(query | {'per_page': str(per_page), 'page': str(p)})}"

        rels = []
        if page < last:
            rels += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        if page > 1:
            rels = [f'<{link(page - 1)}>; rel="prev"', f'<{link(1)}>; rel="first"', *rels]
        return chunk, ({"Link": ", ".join(rels)} if rels else {})

    def _workflow(self, key: str) -> _Workflow:
        for wf in self._workflows.values():
            if key in (wf.file, str(wf.id)):
                return wf
        raise _NotFound

    def _create_run(
        self,
        wf: _Workflow,
        *,
        ref: str,
        inputs: dict[str, Any],
        event: str,
        created_at: datetime | None,
        script: Iterable[str | tuple[str, str | None]],
        display_title: str | None,
        lag: int,
        actor: str = "taisun-bot",
    ) -> _Run:
        sha = self._resolve(ref)
        if sha is None:
            raise ValueError(f"no ref {ref}")
        if display_title is None:
            display_title = wf.name
            if wf.run_name:
                values = {name: "" for name in wf.inputs} | {k: str(v) for k, v in inputs.items()}
                display_title = wf.run_name.format_map(values)
        created = created_at or self.clock()
        run = _Run(
            id=next(self._run_ids),
            workflow=wf.file,
            event=event,
            head_branch=ref.removeprefix("refs/heads/").removeprefix("refs/tags/"),
            head_sha=sha,
            created_at=created,
            updated_at=created,
            inputs=dict(inputs),
            script=_normalise_script(script),
            run_number=1 + sum(1 for r in self._runs.values() if r.workflow == wf.file),
            display_title=display_title,
            hidden_lists=lag,
            actor=actor,
        )
        self._runs[run.id] = run
        for name, files in self.run_artifacts.get(wf.file, {}).items():
            self._add_artifact(run.id, name, files)
        self._run_event(run)
        return run

    @staticmethod
    def _created_filter(expr: str) -> Callable[[datetime], bool]:
        """GitHub's search-style date filter: >=X, >X, <=X, <X, X..Y (with * wildcards) or X."""

        def parse(value: str, *, end: bool = False) -> datetime:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                d = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
                return d + timedelta(days=1) - timedelta(microseconds=1) if end else d
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

        ops: list[tuple[str, Callable[[datetime, datetime], bool]]] = [
            (">=", operator.ge),
            ("<=", operator.le),
            (">", operator.gt),
            ("<", operator.lt),
        ]
        for op, test in ops:
            if expr.startswith(op):
                return _bounded(test, parse(expr[len(op) :], end=op in ("<=", ">")))
        if ".." in expr:
            lo_s, hi_s = expr.split("..", 1)
            lo = None if lo_s in ("", "*") else parse(lo_s)
            hi = None if hi_s in ("", "*") else parse(hi_s, end=True)
            return lambda t: (lo is None or t >= lo) and (hi is None or t <= hi)
        lo, hi = parse(expr), parse(expr, end=True)
        return lambda t: lo <= t <= hi

    # ------------------------------------------------------------------ handlers: repo and git

    def _get_repo(self, **_: Any) -> Reply:
        return 200, self._repo_json(), {}

    def _list_tags(self, *, query: dict[str, str], path: str, **_: Any) -> Reply:
        # GitHub does not list tags in version order; name order makes v1.10.0 sort before v1.9.0.
        names = sorted(self._tags, reverse=True)
        items = [
            {
                "name": n,
                "commit": {"sha": self._tags[n].sha, "url": f"{self._api}/commits/{self._tags[n].sha}"},
                "zipball_url": f"{self._api}/zipball/refs/tags/{quote(n)}",
                "tarball_url": f"{self._api}/tarball/refs/tags/{quote(n)}",
                "node_id": f"REF_{quote(n)}",
            }
            for n in names
        ]
        page, headers = self._paginate(items, query, path)
        return 200, page, headers

    def _get_ref(self, *, name: str, **_: Any) -> Reply:
        if name not in self._tags:
            raise _NotFound
        return 200, self._ref_json(name), {}

    def _get_refs(self, *, name: str, **_: Any) -> Reply:
        # The legacy plural endpoint: an exact match is an object, a prefix match a list.
        if name in self._tags:
            return 200, self._ref_json(name), {}
        matches = [self._ref_json(n) for n in sorted(self._tags) if n.startswith(name)]
        if not matches:
            raise _NotFound
        return 200, matches, {}

    def _matching_refs(self, *, name: str, query: dict[str, str], path: str, **_: Any) -> Reply:
        items = [self._ref_json(n) for n in sorted(self._tags) if n.startswith(name)]
        page, headers = self._paginate(items, query, path)
        return 200, page, headers

    def _get_tag_object(self, *, sha: str, **_: Any) -> Reply:
        obj = self._tag_objects.get(sha)
        if obj is None:
            raise _NotFound
        tagger = {"name": "Taisun Dev", "email": "dev@example.com", "date": _iso(self.clock())}
        return (
            200,
            {
                "node_id": f"TAG_{sha[:12]}",
                "sha": sha,
                "url": f"{self._api}/git/tags/{sha}",
                "tag": obj["name"],
                "message": obj["message"],
                "tagger": tagger,
                "object": {
                    "sha": obj["sha"],
                    "type": "commit",
                    "url": f"{self._api}/git/commits/{obj['sha']}",
                },
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            {},
        )

    def _get_git_commit(self, *, sha: str, **_: Any) -> Reply:
        if sha not in self._commit_index:
            raise _NotFound
        data = self._commit_json(sha)
        git = dict(data["commit"])
        git |= {
            "sha": sha,
            "node_id": data["node_id"],
            "html_url": data["html_url"],
            "parents": data["parents"],
        }
        return 200, git, {}

    def _get_commit(self, *, ref: str, **_: Any) -> Reply:
        sha = self._resolve(ref)
        if sha is None:
            return (
                422,
                {"message": f"No commit found for SHA: {ref}", "documentation_url": DOCS, "status": "422"},
                {},
            )
        return 200, self._commit_json(sha, detail=True), {}

    def _compare(self, *, basehead: str, query: dict[str, str], path: str, **_: Any) -> Reply:
        base, sep, head = basehead.partition("...")
        if not sep:
            raise _NotFound
        b, h = self._resolve(base), self._resolve(head)
        if b is None or h is None:
            raise _NotFound
        bi, hi = self._commit_index[b], self._commit_index[h]
        ahead, behind = max(0, hi - bi), max(0, bi - hi)
        status = "identical" if bi == hi else ("ahead" if hi > bi else "behind")
        # Commits reachable from head but not base, oldest first; paginated (default 250 a page).
        shas = [c["sha"] for c in self._commits[bi + 1 : hi + 1]]
        chunk, headers = self._paginate(shas, query, path, default=250, maximum=1000)
        merge_base = b if hi >= bi else h
        data = {
            "url": f"{self._api}/compare/{quote(base)}...{quote(head)}",
            "html_url": f"{self._html}/compare/{quote(base)}...{quote(head)}",
            "permalink_url": f"{self._html}/compare/{self.owner}:{b[:7]}...{self.owner}:{h[:7]}",
            "diff_url": f"{self._html}/compare/{quote(base)}...{quote(head)}.diff",
            "patch_url": f"{self._html}/compare/{quote(base)}...{quote(head)}.patch",
            "base_commit": self._commit_json(b),
            "merge_base_commit": self._commit_json(merge_base),
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": len(shas),
            "commits": [self._commit_json(s) for s in chunk],
            "files": [],
        }
        return 200, data, headers

    def _get_contents(self, *, file: str, query: dict[str, str], **_: Any) -> Reply:
        ref = query.get("ref") or self.default_branch
        if self._resolve(ref) is None:
            return (
                404,
                {"message": f"No commit found for the ref {ref}", "documentation_url": DOCS, "status": "404"},
                {},
            )
        wf = next((w for w in self._workflows.values() if f".github/workflows/{w.file}" == file), None)
        if wf is None:
            raise _NotFound
        text = wf.source if wf.source is not None else self._workflow_yaml(wf)
        raw = text.encode()
        sha = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        url = f"{self._api}/contents/{file}?ref={quote(ref)}"
        return (
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(raw),
                "name": wf.file,
                "path": file,
                "content": base64.encodebytes(raw).decode(),
                "sha": sha,
                "url": url,
                "git_url": f"{self._api}/git/blobs/{sha}",
                "html_url": f"{self._html}/blob/{quote(ref)}/{file}",
                "download_url": f"{self.url}/raw/{self.repository}/{quote(ref)}/{file}",
                "_links": {
                    "self": url,
                    "git": f"{self._api}/git/blobs/{sha}",
                    "html": f"{self._html}/blob/{ref}/{file}",
                },
            },
            {},
        )

    @staticmethod
    def _workflow_yaml(wf: _Workflow) -> str:
        lines = [f"name: {wf.name}"]
        if wf.run_name:
            lines.append("run-name: " + re.sub(r"\{(\w+)\}", r"${{ inputs.\1 }}", wf.run_name))
        if not wf.dispatchable:
            lines += ["on:", "  push:", "    tags: ['v*']"]
        elif not wf.inputs:
            lines += ["on:", "  workflow_dispatch:"]
        else:
            lines += ["on:", "  workflow_dispatch:", "    inputs:"]
            for name in wf.inputs:
                lines += [
                    f"      {name}:",
                    f"        description: {name}",
                    f"        required: {'true' if name in wf.required else 'false'}",
                    "        type: string",
                ]
        lines += [
            "jobs:",
            "  deploy:",
            "    runs-on: ubuntu-latest",
            "    steps:",
            "      - run: echo deploy",
        ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ handlers: actions

    def _list_workflows(self, *, query: dict[str, str], path: str, **_: Any) -> Reply:
        items = [self._workflow_json(w) for w in self._workflows.values()]
        page, headers = self._paginate(items, query, path)
        return 200, {"total_count": len(items), "workflows": page}, headers

    def _get_workflow(self, *, wf: str, **_: Any) -> Reply:
        return 200, self._workflow_json(self._workflow(wf)), {}

    def _dispatch(self, *, wf: str, body: Any, **_: Any) -> Reply:
        workflow = self._workflow(wf)

        def invalid(message: str) -> Reply:
            return 422, {"message": message, "documentation_url": DOCS, "status": "422"}, {}

        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            return invalid('Invalid request.\n\n"ref" wasn\'t supplied.')
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            return invalid("Invalid request.\n\nFor 'properties/inputs', \"not an object\" is not an object.")
        if not workflow.dispatchable:
            return invalid("Workflow does not have 'workflow_dispatch' trigger")
        if workflow.state != "active":
            return invalid("Cannot trigger a 'workflow_dispatch' on a disabled workflow")
        ref = body["ref"]
        if self._resolve(ref) is None:
            return invalid(f"No ref found for: {ref}")
        unexpected = [k for k in inputs if k not in workflow.inputs]
        if unexpected:
            return invalid(f"Unexpected inputs provided: {json.dumps(unexpected)}")
        for name in workflow.inputs:
            if name in workflow.required and inputs.get(name) in (None, ""):
                return invalid(f"Required input '{name}' not provided")
        run = self._create_run(
            workflow,
            ref=ref,
            inputs=inputs,
            event="workflow_dispatch",
            created_at=None,
            script=self.workflow_scripts.get(workflow.file) or self.run_script,
            display_title=None,
            lag=self.run_list_lag,
        )
        if body.get("return_run_details"):
            return (
                200,
                {
                    "workflow_run_id": run.id,
                    "run_url": f"{self._api}/actions/runs/{run.id}",
                    "html_url": f"{self._html}/actions/runs/{run.id}",
                },
                {},
            )
        return 204, None, {}

    def _list_runs(
        self,
        *,
        query: dict[str, str],
        path: str,
        wf: str | None = None,
        headers_in: dict[str, str] | None = None,
        **_: Any,
    ) -> Reply:
        runs = sorted(self._runs.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        if wf is not None:
            file = self._workflow(wf).file
            runs = [r for r in runs if r.workflow == file]
        visible = []
        for r in runs:
            # A fresh run takes a moment to show up in listings on the real API.
            if r.hidden_lists > 0:
                r.hidden_lists -= 1
                continue
            visible.append(r)
        if "event" in query:
            visible = [r for r in visible if r.event == query["event"]]
        if "branch" in query:
            visible = [r for r in visible if r.head_branch == query["branch"]]
        if "head_sha" in query:
            visible = [r for r in visible if r.head_sha == query["head_sha"]]
        if "status" in query:
            visible = [r for r in visible if query["status"] in (r.status, r.conclusion)]
        if "created" in query:
            try:
                keep = self._created_filter(query["created"])
            except ValueError:
                return 422, {"message": "Validation Failed", "documentation_url": DOCS, "status": "422"}, {}
            visible = [r for r in visible if keep(r.created_at.replace(microsecond=0))]
        page, headers = self._paginate([self._run_json(r) for r in visible], query, path)
        data = {"total_count": len(visible), "workflow_runs": page}
        etag = 'W/"' + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest() + '"'
        if etag in [t.strip() for t in (headers_in or {}).get("If-None-Match", "").split(",")]:
            self.not_modified += 1
            return 304, None, {"ETag": etag}
        return 200, data, headers | {"ETag": etag}

    def _get_run(self, *, run_id: str, **_: Any) -> Reply:
        run = self._runs.get(int(run_id))
        if run is None:
            raise _NotFound
        data = self._run_json(run)
        # Each GET shows the current step, then the script moves on one step.
        if run.step < len(run.script) - 1:
            before = run.status
            run.step += 1
            run.updated_at = self.clock()
            if run.status != before:
                self._run_event(run)
        return 200, data, {}

    def _cancel_run(self, *, run_id: str, **_: Any) -> Reply:
        run = self._runs.get(int(run_id))
        if run is None:
            raise _NotFound
        if run.status == "completed":
            return (
                409,
                {
                    "message": "Cannot cancel a workflow run that is completed.",
                    "documentation_url": DOCS,
                    "status": "409",
                },
                {},
            )
        run.script, run.step = [("completed", "cancelled")], 0
        return 202, {}, {}

    # ------------------------------------------------------------------ handlers: deployments

    def _create_deployment(self, *, body: Any, **_: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            return (
                422,
                {
                    "message": 'Invalid request.\n\n"ref" wasn\'t supplied.',
                    "documentation_url": DOCS,
                    "status": "422",
                },
                {},
            )
        sha = self._resolve(body["ref"])
        if sha is None:
            return (
                422,
                {"message": f"No ref found for: {body['ref']}", "documentation_url": DOCS, "status": "422"},
                {},
            )
        d = _Deployment(
            id=next(self._ids),
            sha=sha,
            ref=body["ref"],
            task=body.get("task", "deploy"),
            environment=body.get("environment", "production"),
            description=body.get("description") or "",
            payload=body.get("payload", {}),
            created_at=self.clock(),
            body=dict(body),
        )
        self._deployments[d.id] = d
        self._deployment_event("deployment", d)
        return 201, self._deployment_json(d), {}

    def _list_deployments(self, *, query: dict[str, str], path: str, **_: Any) -> Reply:
        items = [self._deployment_json(d) for d in reversed(list(self._deployments.values()))]
        if "environment" in query:
            items = [d for d in items if d["environment"] == query["environment"]]
        page, headers = self._paginate(items, query, path)
        return 200, page, headers

    def _get_deployment(self, *, dep_id: str, **_: Any) -> Reply:
        d = self._deployments.get(int(dep_id))
        if d is None:
            raise _NotFound
        return 200, self._deployment_json(d), {}

    def _create_status(self, *, dep_id: str, body: Any, **_: Any) -> Reply:
        d = self._deployments.get(int(dep_id))
        if d is None:
            raise _NotFound
        state = body.get("state") if isinstance(body, dict) else None
        if state not in DEPLOYMENT_STATES:
            return (
                422,
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "DeploymentStatus",
                            "code": "custom",
                            "field": "state",
                            "message": "state is not included in the list",
                        }
                    ],
                    "documentation_url": DOCS,
                    "status": "422",
                },
                {},
            )
        assert isinstance(body, dict)
        status_id = next(self._ids)
        log_url = body.get("log_url") or body.get("target_url") or ""
        now = _iso(self.clock())
        status = {
            "url": f"{self._api}/deployments/{d.id}/statuses/{status_id}",
            "id": status_id,
            "node_id": f"DES_{status_id}",
            "state": state,
            "creator": self._user(),
            "description": body.get("description", ""),
            "environment": body.get("environment", d.environment),
            "target_url": log_url,
            "log_url": log_url,
            "environment_url": body.get("environment_url", ""),
            "created_at": now,
            "updated_at": now,
            "deployment_url": f"{self._api}/deployments/{d.id}",
            "repository_url": self._api,
        }
        d.statuses.append(status)
        self._deployment_event("deployment_status", d, status)
        return 201, status, {}

    def _list_statuses(self, *, dep_id: str, query: dict[str, str], path: str, **_: Any) -> Reply:
        d = self._deployments.get(int(dep_id))
        if d is None:
            raise _NotFound
        page, headers = self._paginate(list(reversed(d.statuses)), query, path)
        return 200, page, headers
