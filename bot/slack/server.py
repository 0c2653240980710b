"""The bot's WSGI apps, served by gunicorn: `taisun serve` (HTTP mode and Socket Mode) and `taisun worker`.

Routing is werkzeug's (a Map of Rules: 404 for an unknown path, 405 with `Allow` for a known one
asked with another method); status lines come from http.HTTPStatus.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackApiError
from sqlalchemy import text
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule

from bot.core import metrics, priority, secrets
from bot.core.services import Services
from bot.core.store.db import pool_counts
from bot.slack import inbound

log = logging.getLogger(__name__)
RECEIVED_HEADER = "x-taisun-received"  # time.monotonic() when the HTTP request reached this process

MAX_BODY = 1024 * 1024  # Slack payloads are a few KB; anything near this is not Slack
StartResponse = Callable[..., Any]
Handler = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
FATAL_AUTH_ERRORS = {"invalid_auth", "token_revoked", "account_inactive", "not_authed", "token_expired"}


def arrived_at(request: BoltRequest) -> float | None:
    """time.monotonic() when the HTTP request reached this process (Socket Mode and the shell: None)."""
    raw = (request.headers.get(RECEIVED_HEADER) or [""])[0]
    try:
        return float(raw)
    except ValueError:
        return None


class SlackAuthWatch:
    """Calls auth.test now and then so a revoked token is loud at once, not a silently dead bot."""

    def __init__(self, svc: Services, interval: float = 60.0):
        self.svc = svc
        self.interval = interval
        self.status = "unknown"
        self.team = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._asked = 0  # tickets handed to checks as they start
        self._answered = 0  # the latest-started check whose answer stands

    def check(self) -> str:
        """Ask Slack now. Checks overlap (the watch's loop, /health's callers): an answer applies only when
        no check that started later has answered, so a slow "ok" never hides a revocation seen after it."""
        with self._lock:
            self._asked += 1
            ticket = self._asked
        status, team, resp = self._ask()
        with self._lock:
            if ticket < self._answered:
                return self.status
            self._answered = ticket
            self.status, self.team = status, team or self.team
        if resp is not None:
            # `*` in a role means members of this workspace: the policy needs to know which it is.
            self.svc.policy.workspaces.installed_in(
                str(resp.get("team_id") or ""), str(resp.get("enterprise_id") or ""),
                bool(resp.get("is_enterprise_install")),
            )  # fmt: skip
        return status

    def _ask(self) -> tuple[str, str, Any]:
        """auth.test's verdict: (status, team, the response when the token is good)."""
        if not self.svc.settings.slack_bot_token:
            return "not configured", "", None
        try:
            resp = self.svc.slack.auth_test()
        except SlackApiError as e:
            err = str(e.response.get("error", "error")) if e.response is not None else "error"
            if err in FATAL_AUTH_ERRORS:
                log.error("SLACK TOKEN REJECTED: the bot cannot post anything until SLACK_BOT_TOKEN is replaced",
                          extra={"slack_error": err})  # fmt: skip
            return err, "", None
        except Exception as e:
            log.warning("slack auth.test failed", extra={"error": repr(e)})
            return "unreachable", "", None
        return "ok", str(resp.get("team", "")), resp

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="taisun-slack-auth", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self.check()
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()

    @property
    def fatal(self) -> bool:
        return self.status in FATAL_AUTH_ERRORS


def status_line(code: int | HTTPStatus) -> str:
    """A WSGI status line ("404 Not Found") for any code, one HTTPStatus does not know included."""
    try:
        return f"{int(code)} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{int(code)} Unknown"


def _json(
    start_response: StartResponse,
    status: HTTPStatus,
    body: dict[str, Any],
    headers: Iterable[tuple[str, str]] = (),
) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status_line(status),
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers],
    )
    return [data]


class _Router:
    """The routes of one app, as werkzeug rules: (method, path) -> handler."""

    def __init__(self, routes: dict[tuple[str, str], Handler]):
        self.routes = dict(routes)
        # No redirects to a canonical form: a path that is not a route is a 404, not a 308 to follow.
        self.map = Map(
            [Rule(path, endpoint=(method, path), methods=[method]) for method, path in self.routes],
            merge_slashes=False,
            redirect_defaults=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        try:
            endpoint, _ = self.map.bind("taisun").match(path, environ.get("REQUEST_METHOD", "GET"))
        except MethodNotAllowed as e:
            allow = ", ".join(sorted(e.valid_methods or ()))
            return _json(
                start_response, HTTPStatus.METHOD_NOT_ALLOWED, {"error": "not found"}, [("Allow", allow)]
            )
        except HTTPException:
            return _json(start_response, HTTPStatus.NOT_FOUND, {"error": "not found"})
        try:
            return self.routes[endpoint](environ, start_response)
        except Exception:
            log.exception("request failed", extra={"path": path})
            return _json(start_response, HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})


def _database_status(svc: Services) -> str:
    try:
        with svc.read_sessions() as s:
            s.execute(text("SELECT 1"))
    except Exception as e:
        return f"unreachable: {type(e).__name__}"
    return "ok"


def _metrics(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    data, ctype = metrics.render()
    start_response(status_line(HTTPStatus.OK), [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


class WsgiApp:
    """`taisun serve`: POST /slack/events, GET /health, GET /metrics, POST /alerts/alertmanager."""

    def __init__(
        self, bolt: App | None, svc: Services, auth_watch: SlackAuthWatch, grace_seconds: float = 20.0
    ):
        self.bolt = bolt
        self.svc = svc
        self.auth = auth_watch
        self.grace_seconds = grace_seconds  # SIGTERM: how long running jobs may take to end
        self.routes: dict[tuple[str, str], Handler] = {
            ("POST", "/slack/events"): self.slack_events,
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): self.metrics,
        }
        for route, handler in svc.http_routes.items():
            self.routes[route] = handler
        self._router = _Router(self.routes)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._router(environ, start_response)

    def stop(self) -> list[str]:
        """The process is stopping (gunicorn's worker_exit, after the last request was answered). Where
        this process runs jobs (the embedded default, Socket Mode): claim nothing more, let running jobs
        end for up to grace_seconds and hand the rest back, so another replica (or this one restarted)
        resumes them at once instead of after their lease; then send what waits for Slack."""
        handed = self.svc.runner.drain(self.grace_seconds) if self.svc.runner.threads else []
        self.auth.stop()
        self.svc.stop(runner_timeout=1.0)
        return handed

    @staticmethod
    def read_body(environ: dict[str, Any]) -> bytes | None:
        """The request body, or None when it is larger than MAX_BODY (refused before parsing)."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if length > MAX_BODY:
            return None
        return environ["wsgi.input"].read(length) if length else b""

    def slack_events(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = time.monotonic()
        body = self.read_body(environ)
        if body is None:
            return _json(start_response, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
        if self.bolt is None:
            return _json(
                start_response,
                HTTPStatus.NOT_FOUND,
                {"error": "Socket Mode is on; events do not come over HTTP"},
            )
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        headers[RECEIVED_HEADER] = f"{start:.6f}"  # set here, never taken from the client
        text_body = body.decode("utf-8", "replace")
        # Checked here, before Bolt: it answers 500 to a timestamp that is not a number and to a
        # signed payload whose `actions`, `view`, `user` or `event` has the wrong type.
        secret = self.svc.settings.slack_signing_secret
        try:
            if secret:
                self._verify(secret, text_body, headers)
            inbound.parse_payload(text_body, inbound.content_type_of(headers))
            req = BoltRequest(
                body=text_body, query=parse_qs(environ.get("QUERY_STRING", "")), headers=headers
            )
        except inbound.Unsigned as e:
            # Anyone can send these; a stranger's garbage is not an error of ours.
            log.info("unsigned Slack request refused", extra={"why": str(e)})
            return _json(start_response, HTTPStatus.UNAUTHORIZED, {"error": "invalid signature"})
        except inbound.Malformed as e:
            log.warning("malformed Slack request refused", extra={"why": str(e)[:300]})
            return _json(start_response, HTTPStatus.BAD_REQUEST, {"error": f"malformed request: {e}"[:300]})
        resp = self.bolt.dispatch(req)
        kind = (
            "command"
            if b"command=" in body[:2000]
            else "interaction"
            if body.startswith(b"payload=")
            else "event"
        )
        metrics.ACK_SECONDS.labels(kind).observe(time.monotonic() - start)
        data = resp.body.encode() if isinstance(resp.body, str) else resp.body
        out = [(k, v) for k, vs in resp.headers.items() for v in vs if k.lower() != "content-length"]
        out.append(("Content-Length", str(len(data))))
        start_response(status_line(resp.status), out)
        return [data]

    def _verify(self, secret: str, body: str, headers: dict[str, str]) -> None:
        """The request's signature, checked against the signing secret; with one from Secrets Manager,
        a mismatch reads the secret again (at most once a minute: anyone can send a bad signature)."""
        try:
            inbound.verify_signature(secret, body, headers)
        except inbound.Unsigned:
            settings = self.svc.settings
            if not secrets.refresh(settings, "slack_signing_secret", secrets.INBOUND_REFRESH_SECONDS):
                raise
            inbound.verify_signature(settings.slack_signing_secret, body, headers)

    def health(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        db = _database_status(self.svc)
        runner = self.svc.runner
        if self.svc.settings.taisun_jobs == "worker" and runner.threads == 0:
            # Jobs run in `taisun worker`, which answers for its own health. Here: what waits for one,
            # so a worker that is down or behind shows, without taking this replica out of the balancer.
            waiting, oldest = self.svc.jobs.waiting()
            age = (datetime.now(UTC) - _aware(oldest)).total_seconds() if oldest else 0.0
            workers: dict[str, Any] = {
                "in": "taisun worker", "wake": runner.signal.kind,
                "waiting": waiting, "oldest_waiting_seconds": round(max(age, 0.0), 1),
            }  # fmt: skip
            no_workers = False
        else:
            # Requests are still taken when every worker thread is gone, but nothing would run them.
            workers = {"alive": runner.alive, "configured": runner.threads}
            no_workers = runner.threads > 0 and workers["alive"] == 0
        body = {
            "status": "ok" if db == "ok" and not self.auth.fatal and not no_workers else "unhealthy",
            "database": db,
            "slack": self.auth.status,
            "jobs_running": runner.busy,
            "job_workers": workers,
            **_connections(self.svc),
        }
        return _json(
            start_response, HTTPStatus.OK if body["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE, body
        )

    def metrics(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return _metrics(environ, start_response)


def _connections(svc: Services) -> dict[str, Any]:
    """PostgreSQL: this process's pool against TAISUN_DB_CONNECTIONS (the gunicorn worker that answered)."""
    if svc.engine.dialect.name != "postgresql":
        return {}
    in_use, opened = pool_counts(svc.engine)
    return {"db_connections": {"in_use": in_use, "open": opened, "limit": svc.settings.taisun_db_connections}}


def _aware(t: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they are UTC."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class WorkerApp:
    """`taisun worker`'s HTTP side: GET /health (503 when no job thread is left, the database is away or
    Slack refuses the token) and GET /metrics (the jobs' metrics are counted in this process)."""

    def __init__(self, svc: Services, auth_watch: SlackAuthWatch, grace_seconds: float = 20.0):
        self.svc = svc
        self.auth = auth_watch
        self.grace_seconds = grace_seconds  # SIGTERM: how long running jobs may take to end
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): _metrics,
        }
        self._router = _Router(self.routes)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._router(environ, start_response)

    def health(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        db = _database_status(self.svc)
        runner = self.svc.runner
        workers = {"alive": runner.alive, "configured": runner.threads, "wake": runner.signal.kind}
        ok = db == "ok" and not self.auth.fatal and runner.alive > 0
        body = {
            "status": "ok" if ok else "unhealthy",
            "role": "worker",
            "database": db,
            "slack": self.auth.status,
            "jobs_running": runner.busy,
            "job_workers": workers,
            "priority": dataclasses.asdict(priority.current()),  # behind serve's acks (TAISUN_WORKER_NICE)
            **_connections(self.svc),
        }
        return _json(start_response, HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)

    def stop(self) -> list[str]:
        """SIGTERM: claim nothing more, let running jobs end for up to grace_seconds, hand the rest
        back (another worker resumes them at once), send what is waiting to Slack, stop the threads."""
        handed = self.svc.runner.drain(self.grace_seconds)
        self.auth.stop()
        self.svc.stop(runner_timeout=1.0)
        return handed
