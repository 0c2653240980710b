"""HTTP mode (a WSGI app for gunicorn) and Socket Mode."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackApiError
from sqlalchemy import text

from bot.core import metrics, secrets
from bot.core.services import Services
from bot.slack import inbound

log = logging.getLogger(__name__)
RECEIVED_HEADER = "x-taisun-received"  # time.monotonic() when the HTTP request reached this process

MAX_BODY = 1024 * 1024  # Slack payloads are a few KB; anything near this is not Slack
StartResponse = Callable[..., Any]
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

    def check(self) -> str:
        if not self.svc.settings.slack_bot_token:
            self.status = "not configured"
            return self.status
        try:
            resp = self.svc.slack.auth_test()
            self.status, self.team = "ok", str(resp.get("team", ""))
            # `*` in a role means members of this workspace: the policy needs to know which it is.
            self.svc.policy.workspaces.installed_in(
                str(resp.get("team_id") or ""), str(resp.get("enterprise_id") or ""),
                bool(resp.get("is_enterprise_install")),
            )  # fmt: skip
        except SlackApiError as e:
            err = str(e.response.get("error", "error")) if e.response is not None else "error"
            self.status = err
            if err in FATAL_AUTH_ERRORS:
                log.error("SLACK TOKEN REJECTED: the bot cannot post anything until SLACK_BOT_TOKEN is replaced",
                          extra={"slack_error": err})  # fmt: skip
        except Exception as e:
            self.status = "unreachable"
            log.warning("slack auth.test failed", extra={"error": repr(e)})
        return self.status

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


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class WsgiApp:
    """Routes: POST /slack/events, GET /health, GET /metrics, POST /alerts/alertmanager."""

    def __init__(self, bolt: App | None, svc: Services, auth_watch: SlackAuthWatch):
        self.bolt = bolt
        self.svc = svc
        self.auth = auth_watch
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
            ("POST", "/slack/events"): self.slack_events,
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): self.metrics,
        }
        for route, handler in svc.http_routes.items():
            self.routes[route] = handler

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        handler = self.routes.get((method, path))
        if handler is None:
            known = any(p == path for _, p in self.routes)
            return _json(
                start_response, "405 Method Not Allowed" if known else "404 Not Found", {"error": "not found"}
            )
        try:
            return handler(environ, start_response)
        except Exception:
            log.exception("request failed", extra={"path": path})
            return _json(start_response, "500 Internal Server Error", {"error": "internal error"})

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
            return _json(start_response, "413 Payload Too Large", {"error": "request too large"})
        if self.bolt is None:
            return _json(
                start_response, "404 Not Found", {"error": "Socket Mode is on; events do not come over HTTP"}
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
            return _json(start_response, "401 Unauthorized", {"error": "invalid signature"})
        except inbound.Malformed as e:
            log.warning("malformed Slack request refused", extra={"why": str(e)[:300]})
            return _json(start_response, "400 Bad Request", {"error": f"malformed request: {e}"[:300]})
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
        start_response(f"{resp.status} {_REASONS.get(resp.status, '')}".strip(), out)
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
        db = "ok"
        try:
            with self.svc.read_sessions() as s:
                s.execute(text("SELECT 1"))
        except Exception as e:
            db = f"unreachable: {type(e).__name__}"
        runner = self.svc.runner
        # Requests are still taken when every worker thread is gone, but nothing would run them.
        workers = {"alive": runner.alive, "configured": runner.threads}
        no_workers = runner.threads > 0 and workers["alive"] == 0
        body = {
            "status": "ok" if db == "ok" and not self.auth.fatal and not no_workers else "unhealthy",
            "database": db,
            "slack": self.auth.status,
            "jobs_running": runner.busy,
            "job_workers": workers,
        }
        return _json(start_response, "200 OK" if body["status"] == "ok" else "503 Service Unavailable", body)

    def metrics(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        data, ctype = metrics.render()
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(data)))])
        return [data]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    500: "Internal Server Error",
}
