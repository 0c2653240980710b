"""POST /github/webhook: GitHub tells the bot about deploys it ran without the bot.

Every delivery is checked against `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with
GITHUB_WEBHOOK_SECRET) before anything is read from it; a missing or wrong signature is 401 and
changes nothing. A delivery is taken once across replicas (its `X-GitHub-Delivery` in the shared
dedupe table), and a run once however many deliveries or polls describe it (bot.deploys.timeline).
The handler only records: following and verifying the deploy is the job runner's work, so the
answer goes back at once.

Events: `ping` (answered), `workflow_run` of the deploy workflow, `deployment` and
`deployment_status`; anything else is answered 202, ignored, and counted in /metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import posixpath
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from bot.backends.github import workflow_run_from_json
from bot.core import dedupe, metrics
from bot.core.config import Config
from bot.core.store.models import DedupeKey
from bot.deploys import timeline
from bot.deploys.timeline import Sighting

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

ROUTE = ("POST", "/github/webhook")
# GitHub caps a delivery at 25 MB; a workflow_run or deployment payload is a few tens of KB.
MAX_BODY = 5 * 1024 * 1024
EVENTS = ("workflow_run", "deployment", "deployment_status")
StartResponse = Callable[..., Any]


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    """Whether `header` is GitHub's `sha256=<hex HMAC-SHA256 of body>` with this secret (constant time)."""
    scheme, _, given = (header or "").partition("=")
    if scheme != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _payload(body: bytes, content_type: str) -> dict[str, Any]:
    """The delivery's JSON: application/json, or the form GitHub sends with content type x-www-form-urlencoded."""
    raw: bytes | str = body
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        raw = (parse_qs(body.decode("utf-8", "replace")).get("payload") or [""])[0]
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the payload should be a JSON object")
    return data


def _same_repository(config: Config, payload: Mapping[str, Any]) -> bool:
    repo = payload.get("repository")
    name = str(repo.get("full_name") or "") if isinstance(repo, Mapping) else ""
    return name.lower() == config.github.repository.lower()


def is_deploy_workflow(
    config: Config, run: Mapping[str, Any], workflow: Mapping[str, Any] | None = None
) -> bool:
    """Whether a run (or its workflow) is github.workflow: its file name, or its numeric id."""
    wanted = config.github.workflow
    paths = [str(run.get("path") or "")]
    if isinstance(workflow, Mapping):
        paths.append(str(workflow.get("path") or ""))
    for path in paths:
        if path and posixpath.basename(path.split("@", 1)[0]) == wanted:
            return True
    return wanted.isdigit() and str(run.get("workflow_id") or "") == wanted


def _time(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def sightings_of(config: Config, event: str, payload: Mapping[str, Any]) -> tuple[list[Sighting], str]:
    """The deploys a delivery reports, or ([], why it reports none)."""
    if not _same_repository(config, payload):
        return [], "another repository"
    if event == "workflow_run":
        run = payload.get("workflow_run")
        if not isinstance(run, Mapping):
            raise ValueError("workflow_run: the run is missing")
        if not is_deploy_workflow(config, run, payload.get("workflow")):
            return [], "not the deploy workflow"
        return [Sighting.of_run(workflow_run_from_json(run), via="webhook")], ""
    # deployment, deployment_status: the deployment names its environment
    dep = payload.get("deployment")
    if not isinstance(dep, Mapping):
        raise ValueError(f"{event}: the deployment is missing")
    environment = str(dep.get("environment") or "")
    ref = str(dep.get("ref") or "")
    version = ref if timeline.is_tag(config, ref) else ""
    run = payload.get("workflow_run")
    if isinstance(run, Mapping):
        if not is_deploy_workflow(config, run, payload.get("workflow")):
            return [], "not the deploy workflow"
        seen = Sighting.of_run(
            workflow_run_from_json(run), via="webhook", environment=environment, version=version
        )
        return [seen], ""
    marker = dep.get("payload")
    if isinstance(marker, str):
        try:
            marker = json.loads(marker) if marker else {}
        except ValueError:
            marker = {}
    if isinstance(marker, Mapping) and marker.get("taisun_job_id"):
        return [], "the bot's own deployment"
    creator = dep.get("creator") or payload.get("sender") or {}
    repo = payload.get("repository") or {}
    html = f"{repo.get('html_url')}/deployments" if isinstance(repo, Mapping) and repo.get("html_url") else ""
    seen = Sighting(
        run_id=None, deployment_id=int(dep.get("id") or 0) or None, event="deployment", ref=ref,
        sha=str(dep.get("sha") or ""), actor=str(creator.get("login") or "") if isinstance(creator, Mapping) else "",
        html_url=html, created_at=_time(dep.get("created_at")), environment=environment, version=version,
        via="webhook",
    )  # fmt: skip
    if seen.deployment_id is None:
        raise ValueError(f"{event}: the deployment has no id")
    return [seen], ""


def make_route(svc: Services) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI handler for POST /github/webhook. Records and answers; never runs a deploy itself."""

    def done(
        start_response: StartResponse, status: str, event: str, result: str, **extra: Any
    ) -> list[bytes]:
        metrics.GITHUB_WEBHOOKS.labels(event or "-", result).inc()
        return _json(start_response, status, {"status": result, **extra})

    def handler(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        secret = svc.settings.github_webhook_secret
        event = str(environ.get("HTTP_X_GITHUB_EVENT") or "")[:64]
        delivery = str(environ.get("HTTP_X_GITHUB_DELIVERY") or "")[:128]
        where = {"event": event, "delivery": delivery, "remote": environ.get("REMOTE_ADDR", "")}
        if not secret:
            log.error(
                "github webhook refused: GITHUB_WEBHOOK_SECRET is not set, so no delivery can be verified; set it "
                "to the webhook's secret (docs/github-webhooks.md)", extra=where,
            )  # fmt: skip
            return done(start_response, "503 Service Unavailable", event, "not_configured",
                        error="github webhook receiver not configured")  # fmt: skip
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            log.warning("github webhook refused: too large", extra=where | {"length": length})
            return done(
                start_response, "413 Payload Too Large", event, "too_large", error="payload too large"
            )
        body = environ["wsgi.input"].read(length) if length else b""
        if not signature_ok(secret, body, str(environ.get("HTTP_X_HUB_SIGNATURE_256") or "")):
            # Anyone can send these; the secret and the signature are never logged.
            log.info("github webhook refused: missing or wrong signature", extra=where)
            return done(start_response, "401 Unauthorized", event, "unauthorized", error="invalid signature")
        if not event or not delivery:
            return done(start_response, "400 Bad Request", event, "malformed",
                        error="X-GitHub-Event and X-GitHub-Delivery are required")  # fmt: skip
        try:
            payload = _payload(body, str(environ.get("CONTENT_TYPE") or "application/json"))
        except (ValueError, UnicodeDecodeError) as e:
            log.warning("github webhook: malformed payload", extra=where | {"why": str(e)[:200]})
            return done(
                start_response, "400 Bad Request", event, "malformed", error="the payload is not JSON"
            )
        if event == "ping":
            hook = payload.get("hook") if isinstance(payload.get("hook"), dict) else {}
            subscribed = [str(e) for e in hook.get("events") or []]
            missing = [e for e in EVENTS if e not in subscribed and "*" not in subscribed]
            if missing:
                log.warning("github webhook subscribes to too few events", extra=where | {"missing": missing})
            return done(start_response, "200 OK", event, "pong", missing_events=missing)
        if event not in EVENTS:
            return done(start_response, "202 Accepted", event, "ignored", why="not an event the bot uses")
        key = f"github:{delivery}"
        try:
            if not dedupe.first_time(svc.sessions, key):
                svc.metrics.duplicate("github")
                return done(start_response, "200 OK", event, "duplicate")
        except SQLAlchemyError:
            log.exception("github webhook: database error; GitHub can redeliver", extra=where)
            return done(
                start_response, "503 Service Unavailable", event, "error", error="database unavailable"
            )
        try:
            seen, why = sightings_of(svc.config, event, payload)
            results = [timeline.ingest(svc, s) for s in seen]
        except ValueError as e:
            return done(start_response, "400 Bad Request", event, "malformed", error=str(e)[:200])
        except Exception:
            log.exception("github webhook: could not record the delivery; GitHub can redeliver", extra=where)
            _forget(svc, key)  # a redelivery must be taken, not dropped as a duplicate
            return done(
                start_response, "503 Service Unavailable", event, "error", error="could not record it"
            )
        result = results[0] if results else "ignored"
        log.info("github webhook", extra=where | {"result": result, "why": why})
        return done(start_response, "202 Accepted", event, result, **({"why": why} if why else {}))

    return handler


def _forget(svc: Services, key: str) -> None:
    try:
        with svc.sessions.begin() as s:
            s.execute(delete(DedupeKey).where(DedupeKey.key == key))
    except SQLAlchemyError:
        log.warning("could not forget a github delivery key", extra={"key": key})


def install(svc: Services) -> None:
    """Installed by the composition root (bot.wiring): the webhook route and the periodic poll/adoption."""
    svc.http_routes[ROUTE] = make_route(svc)
    svc.sweep_hooks.append(lambda: timeline.sweep(svc))
