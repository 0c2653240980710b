"""Alertmanager in: POST /alerts/alertmanager → stored alerts → one Slack message per alertname.

The webhook only checks the bearer token, validates the payload (version 4) and upserts
the alerts by fingerprint (a unique constraint, so replays and several replicas posting
at once never duplicate), then marks the touched groups dirty. The sender thread
(bot.slack.outbox) renders each group at most once a second, so a storm of thousands of
alerts becomes one message per alertname and a bounded number of edits.

While rendering, a group with a critical alert firing declares an incident
(`alerts.auto_declare_severity`) or joins the newest open incident's timeline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot.alerts.messages import AlertGroupView, alert_group_blocks, alert_group_text
from bot.core import audit, i18n, metrics, secrets
from bot.core.claims import PROCESS, Claim
from bot.core.ops import OpError
from bot.core.outbox import Managed, Syncer, claim_message
from bot.core.states import IncidentState
from bot.core.store.models import Alert, AlertGroup, Incident, RunbookRun
from bot.incidents import runs as runbook_runs
from bot.incidents import service as incidents
from bot.incidents.runbooks import runbook_id_from_url

if TYPE_CHECKING:
    from bot.core.config import Environment
    from bot.core.services import Services

log = logging.getLogger(__name__)

ROUTE = ("POST", "/alerts/alertmanager")
MAX_BODY = 4 * 1024 * 1024
UPSERT_CHUNK = 200
# A group quiet (all resolved) for this long gets a new message when it fires again.
QUIET = timedelta(minutes=10)
SEVERITY_RANK = {
    "critical": 4,
    "page": 4,
    "error": 3,
    "high": 3,
    "warning": 2,
    "medium": 2,
    "info": 1,
    "low": 1,
}
INSTANCES_SHOWN = 5
# Posting a group's message, and starting its runbook run, are claimed in the group's own columns.
MESSAGE_CLAIM = Claim(AlertGroup.message_claimed_at, AlertGroup.message_claimed_by)
RUN_CLAIM = Claim(AlertGroup.run_claimed_at, AlertGroup.run_claimed_by)

StartResponse = Callable[..., Any]


class AlertError(OpError):
    pass


# --------------------------------------------------------------------------- payload


class AmAlert(BaseModel):
    """One alert of an Alertmanager webhook (version 4)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 (Alertmanager's field names)
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _alertname(cls, v: dict[str, str]) -> dict[str, str]:
        if not v.get("alertname", "").strip():
            raise ValueError("labels.alertname is missing")
        return v

    def key(self) -> str:
        """Alertmanager's fingerprint, or a hash of the labels when it is absent."""
        if self.fingerprint:
            return self.fingerprint[:64]
        raw = json.dumps(self.labels, sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


class AmWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: str = ""
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    alerts: list[AmAlert]


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return None if t.year < 1971 else t  # Alertmanager's zero time 0001-01-01 means "not set"


def parse(body: bytes) -> AmWebhook:
    """The payload, or ValueError with a short reason (it becomes the 400's error)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body should be a JSON object (an Alertmanager webhook)")
    try:
        return AmWebhook.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if where == "version":
            msg = f"unsupported webhook version {data.get('version')!r}; this receiver speaks version 4"
        raise ValueError(f"{where}: {msg}") from None


# --------------------------------------------------------------------------- storing


def _insert(s: Session) -> Any:
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def ingest(svc: Services, hook: AmWebhook) -> dict[str, int]:
    """Upsert the alerts (newest occurrence per fingerprint wins) and mark their groups dirty."""
    latest: dict[str, AmAlert] = {}
    for a in hook.alerts:
        latest[a.key()] = a  # a payload may repeat a fingerprint; the last one counts
    alerts = sorted(latest.items())  # one lock order for every writer
    names = sorted({a.labels["alertname"][:255] for _, a in alerts})
    group_ids: dict[str, int] = {}
    for attempt in range(5):
        try:
            group_ids = _ingest_once(svc, alerts, names)
            break
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))  # a deadlock between concurrent storms: try again
        except IntegrityError:
            if attempt == 4:
                raise
    for _, a in alerts:
        metrics.ALERTS.labels(a.status).inc()
    svc.outbox.mark(*(subject(gid) for gid in sorted(set(group_ids.values()))))
    firing = sum(1 for _, a in alerts if a.status == "firing")
    return {"alerts": len(alerts), "firing": firing, "resolved": len(alerts) - firing, "groups": len(names)}


def _ingest_once(svc: Services, alerts: list[tuple[str, AmAlert]], names: list[str]) -> dict[str, int]:
    t = datetime.now(UTC)
    channel = svc.config.alerts.channel
    with svc.sessions.begin() as s:
        insert = _insert(s)
        s.execute(
            insert(AlertGroup)
            .values(
                [
                    {
                        "alertname": n,
                        "channel": channel,
                        "message_ts": "",
                        "episode_started_at": t,
                        "version": 0,
                        "sent_version": 0,
                        "incident_id": None,
                        "run_id": "",
                        "updated_at": t,
                    }
                    for n in names
                ]
            )  # fmt: skip
            .on_conflict_do_nothing(index_elements=["alertname"])
        )
        group_ids = dict(
            s.execute(
                select(AlertGroup.alertname, AlertGroup.id).where(AlertGroup.alertname.in_(names))
            ).all()
        )
        _new_episodes(s, alerts, group_ids, t)
        rows = []
        for fingerprint, a in alerts:
            rows.append(
                {
                    "fingerprint": fingerprint,
                    "group_id": group_ids[a.labels["alertname"][:255]],
                    "alertname": a.labels["alertname"][:255],
                    "status": a.status,
                    "severity": a.labels.get("severity", "")[:32],
                    "starts_at": _aware(a.startsAt) or t,
                    "ends_at": _aware(a.endsAt) if a.status == "resolved" else None,
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "generator_url": a.generatorURL[:2000],
                    "first_seen_at": t,
                    "updated_at": t,
                }
            )
        for i in range(0, len(rows), UPSERT_CHUNK):
            stmt = insert(Alert).values(rows[i : i + UPSERT_CHUNK])
            ex = stmt.excluded
            # Newer occurrence, or the same one moving forward (firing → resolved); a late
            # replay of "firing" after "resolved" for the same start is ignored.
            fresher = or_(
                ex.starts_at > Alert.starts_at,
                and_(ex.starts_at == Alert.starts_at, or_(Alert.status == "firing", ex.status == "resolved")),
            )
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["fingerprint"],
                    set_={
                        "group_id": ex.group_id, "status": ex.status, "severity": ex.severity,
                        "starts_at": ex.starts_at, "ends_at": ex.ends_at, "labels": ex.labels,
                        "annotations": ex.annotations, "generator_url": ex.generator_url, "updated_at": ex.updated_at,
                    },
                    where=fresher,
                )
            )  # fmt: skip
        s.execute(
            update(AlertGroup)
            .where(AlertGroup.id.in_(sorted(set(group_ids.values()))))
            .values(version=AlertGroup.version + 1, updated_at=t)
        )
    return group_ids


def _new_episodes(
    s: Session, alerts: list[tuple[str, AmAlert]], group_ids: dict[str, int], t: datetime
) -> None:
    """A group that was quiet for a while and fires again gets a fresh message (not an edit far up)."""
    firing_names = {a.labels["alertname"][:255] for _, a in alerts if a.status == "firing"}
    ids = [group_ids[n] for n in firing_names]
    if not ids:
        return
    still_firing = set(
        s.scalars(select(Alert.group_id).where(Alert.group_id.in_(ids), Alert.status == "firing").distinct())
    )
    quiet = [gid for gid in ids if gid not in still_firing]
    if quiet:
        s.execute(
            update(AlertGroup)
            .where(AlertGroup.id.in_(quiet), AlertGroup.message_ts != "", AlertGroup.updated_at < t - QUIET)
            .values(message_ts="", episode_started_at=t, incident_id=None, run_id="", **RUN_CLAIM.cleared())
        )


# --------------------------------------------------------------------------- the webhook


def _json(
    start_response: StartResponse, status: str, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers]
    )
    return [data]


def _token_matches(svc: Services, given: str, token: str) -> bool:
    """The bearer token is TAISUN_ALERT_TOKEN; one from Secrets Manager is read again on a mismatch
    (a rotation), at most once a minute (anyone can send a wrong one)."""
    if hmac.compare_digest(given.encode(), token.encode()):
        return True
    if not given or not secrets.refresh(svc.settings, "taisun_alert_token", secrets.INBOUND_REFRESH_SECONDS):
        return False
    return hmac.compare_digest(given.encode(), svc.settings.taisun_alert_token.encode())


def make_route(svc: Services) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI handler for POST /alerts/alertmanager. It never answers 500."""

    def refuse(
        start_response: StartResponse,
        status: str,
        error: str,
        why: str,
        environ: dict[str, Any],
        headers: Iterable[tuple[str, str]] = (),
    ) -> list[bytes]:
        log.warning(
            "alertmanager webhook refused",
            extra={"status": status.split()[0], "reason": why, "remote": environ.get("REMOTE_ADDR", "")},
        )
        return _json(start_response, status, {"error": error}, headers)

    def handler(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        token = svc.settings.taisun_alert_token
        if not token:
            log.error(
                "alertmanager webhook refused: TAISUN_ALERT_TOKEN is not set, so no request can be authenticated; "
                "set it and configure Alertmanager's http_config.authorization with the same token"
            )
            return _json(
                start_response, "503 Service Unavailable", {"error": "alert receiver not configured"}
            )
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() != "bearer" or not _token_matches(svc, given.strip(), token):
            return refuse(start_response, "401 Unauthorized", "invalid or missing bearer token",
                          "bad token" if given else "no bearer token", environ, [("WWW-Authenticate", "Bearer")])  # fmt: skip
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return refuse(
                start_response, "413 Payload Too Large", "payload too large", f"length {length}", environ
            )
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            hook = parse(body)
        except ValueError as e:
            return refuse(start_response, "400 Bad Request", str(e)[:300], str(e)[:300], environ)
        try:
            counts = ingest(svc, hook)
        except SQLAlchemyError:
            log.exception("alertmanager webhook: database error; Alertmanager will retry")
            return _json(
                start_response, "503 Service Unavailable", {"error": "database unavailable, retry later"}
            )
        except Exception:
            log.exception("alertmanager webhook failed")
            return _json(
                start_response,
                "503 Service Unavailable",
                {"error": "could not store the alerts, retry later"},
            )
        return _json(start_response, "200 OK", {"status": "ok", **counts})

    return handler


# --------------------------------------------------------------------------- Slack messages


def subject(group_id: int) -> str:
    return f"alert:{group_id}"


def _group_view(svc: Services, s: Session, group: AlertGroup) -> AlertGroupView:
    counts = dict(
        s.execute(
            select(Alert.status, func.count())
            .where(
                Alert.group_id == group.id,
                or_(Alert.status == "firing", Alert.updated_at >= group.episode_started_at),
            )
            .group_by(Alert.status)
        ).all()
    )
    firing = s.scalars(
        select(Alert)
        .where(Alert.group_id == group.id, Alert.status == "firing")
        .order_by(Alert.starts_at.desc())
        .limit(INSTANCES_SHOWN)
    ).all()
    latest = (
        firing[0]
        if firing
        else s.scalars(
            select(Alert).where(Alert.group_id == group.id).order_by(Alert.updated_at.desc()).limit(1)
        ).first()
    )
    severities = [a.severity for a in firing] or ([latest.severity] if latest else [])
    severity = max(severities, key=lambda x: SEVERITY_RANK.get(x, 0), default="")
    annotations = latest.annotations if latest else {}
    lang = svc.config.language
    summary = (annotations.get("summary_ja") if lang == "ja" else None) or annotations.get("summary", "")
    description = (annotations.get("description_ja") if lang == "ja" else None) or annotations.get(
        "description", ""
    )
    if description and description != summary:
        summary = f"{summary}\n{description}".strip()
    runbook_id = runbook_for(svc, group.alertname, annotations)
    catalog = runbook_runs.load_catalog()
    book = catalog.runbooks.get(runbook_id) if runbook_id else None
    since = s.scalar(
        select(func.min(Alert.starts_at)).where(Alert.group_id == group.id, Alert.status == "firing")
    )
    incident = s.get(Incident, group.incident_id) if group.incident_id else None
    return AlertGroupView(
        id=group.id, alertname=group.alertname, firing=int(counts.get("firing", 0)),
        resolved=int(counts.get("resolved", 0)), severity=severity, summary=summary,
        instances=[_instance(a.labels) for a in firing], runbook_id=runbook_id if book else "",
        runbook_title=book.title_for(lang) if book else "", incident_ref=incident.ref if incident else "",
        run_started=bool(group.run_id) or RUN_CLAIM.held(group.run_claimed_at), generator_url=latest.generator_url if latest else "", since=since,
    )  # fmt: skip


def _instance(labels: dict[str, Any]) -> str:
    skip = {"alertname", "severity"}
    shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip]
    return " ".join(shown[:4]) or "(no labels)"


def runbook_for(svc: Services, alertname: str, annotations: dict[str, Any]) -> str:
    """The alert's runbook: its runbook_url (taisun://runbook/<id>), else alerts.runbooks in the config."""
    return runbook_id_from_url(str(annotations.get("runbook_url", ""))) or svc.config.alerts.runbooks.get(
        alertname, ""
    )


def _maybe_link_incident(svc: Services, group: AlertGroup, view: AlertGroupView) -> None:
    """Critical and firing: declare an incident (auto_declare_severity) or join the newest open one."""
    if group.incident_id:
        if view.firing == 0:
            _record_on_incident(
                svc,
                group,
                "resolved",
                i18n.msg("inc.ev.alert_resolved", alertname=group.alertname, n=view.resolved),
            )
        return
    if view.firing == 0 or SEVERITY_RANK.get(view.severity, 0) < SEVERITY_RANK["critical"]:
        return
    cfg = svc.config.alerts
    if cfg.auto_declare_severity and cfg.auto_declare_severity in svc.config.incidents.severities:
        title = f"{group.alertname}: {view.summary.splitlines()[0]}" if view.summary else group.alertname
        first = view.since or datetime.now(UTC)
        text = _firing_event(group, view)
        env = environment_of(svc, _latest_labels(svc, group.id))
        inc = incidents.declare(
            svc, severity=cfg.auto_declare_severity, title=title, user_id="alertmanager", user_name="Alertmanager",
            channel=group.channel or cfg.channel, detected_at=first, source=f"alert:{group.id}",
            alert_group_id=group.id, first_events=[("alert", text, "alertmanager", first)],
            environment=env.name if env else "",
        )  # fmt: skip
        if inc is not None:
            log.info(
                "incident declared from an alert", extra={"incident": inc.ref, "alertname": group.alertname}
            )
        return
    with svc.sessions() as s:
        newest = s.scalars(
            select(Incident).where(Incident.state == IncidentState.OPEN).order_by(Incident.number.desc())
        ).first()
    if newest is None:
        return
    with svc.sessions.begin() as s:
        res = s.execute(
            update(AlertGroup)
            .where(AlertGroup.id == group.id, AlertGroup.incident_id.is_(None))
            .values(incident_id=newest.id)
        )
        if res.rowcount != 1:
            return
    group.incident_id = newest.id
    _record_on_incident(svc, group, "firing", _firing_event(group, view), at=view.since)


def environment_of(svc: Services, labels: dict[str, Any]) -> Environment | None:
    """The configured environment an alert's `environment` (or `env`) label names, if any."""
    for key in ("environment", "env"):
        if labels.get(key):
            env = svc.config.resolve_env(str(labels[key]))
            if env:
                return env
    return None


def _latest_labels(svc: Services, group_id: int) -> dict[str, Any]:
    with svc.read_sessions() as s:
        latest = s.scalars(
            select(Alert).where(Alert.group_id == group_id).order_by(Alert.updated_at.desc()).limit(1)
        ).first()
    return dict(latest.labels) if latest else {}


def _firing_event(group: AlertGroup, view: AlertGroupView) -> i18n.Msg:
    if view.summary:
        return i18n.msg(
            "inc.ev.alert_firing",
            alertname=group.alertname,
            n=view.firing,
            summary=view.summary.splitlines()[0],
        )
    return i18n.msg("inc.ev.alert_firing_bare", alertname=group.alertname, n=view.firing)


def _record_on_incident(
    svc: Services, group: AlertGroup, what: str, text: i18n.Msg, at: datetime | None = None
) -> None:
    assert group.incident_id is not None
    key = f"alert-{what}:{group.id}:{group.episode_started_at.strftime('%Y%m%dT%H%M%S')}"
    try:
        with svc.sessions.begin() as s:
            inc = s.get(Incident, group.incident_id)
            if inc is None:
                return
            incidents.add_event(
                s, inc.id, "alert", text, "alertmanager", at=at, key=key, data={"group": group.id}
            )
            s.flush()
            audit.append(
                s, actor_id="alertmanager", actor_name="Alertmanager", action=f"incident.alert_{what}",
                environment=inc.environment, channel=group.channel, params={"incident": inc.ref, "alertname": group.alertname},
                outcome="ok",
            )  # fmt: skip
    except IntegrityError:
        return  # already on the timeline
    svc.outbox.mark(incidents.subject(group.incident_id))


def _make_syncer(svc: Services) -> Syncer:
    rendered: dict[str, int] = {}

    def messages(key: str) -> list[Managed] | None:
        gid = int(key.split(":", 1)[1])
        with svc.sessions() as s:
            group = s.get(AlertGroup, gid)
            if group is None:
                return None
            view = _group_view(svc, s, group)
        try:
            _maybe_link_incident(svc, group, view)
        except Exception:
            log.exception(
                "could not link an alert group to an incident", extra={"alertname": group.alertname}
            )
        with svc.sessions() as s:
            group = s.get(AlertGroup, gid)
            assert group is not None
            view = _group_view(svc, s, group)
        rendered[key] = group.version
        return [
            Managed(
                slot="group",
                channel=group.channel or svc.config.alerts.channel,
                ts=group.message_ts,
                text=alert_group_text(view, svc.config.language),
                blocks=alert_group_blocks(view, svc.config.language),
            )
        ]

    def store(key: str, slot: str, channel: str, ts: str) -> None:
        with svc.sessions.begin() as s:
            values: dict[str, Any] = {"message_ts": ts, **MESSAGE_CLAIM.cleared()}
            if ts:
                values["channel"] = channel
            s.execute(update(AlertGroup).where(AlertGroup.id == int(key.split(":", 1)[1])).values(**values))

    def thread(key: str) -> tuple[str, str] | None:
        with svc.sessions() as s:
            group = s.get(AlertGroup, int(key.split(":", 1)[1]))
        if group is None or not group.message_ts:
            return None
        return group.channel, group.message_ts

    def synced(key: str) -> None:
        version = rendered.pop(key, None)
        if version is None:
            return
        with svc.sessions.begin() as s:
            s.execute(
                update(AlertGroup)
                .where(AlertGroup.id == int(key.split(":", 1)[1]), AlertGroup.sent_version < version)
                .values(sent_version=version)
            )

    return Syncer(
        prefix="alert",
        messages=messages,
        claim=lambda key, slot: claim_message(
            svc.sessions, AlertGroup.message_ts, MESSAGE_CLAIM, AlertGroup.id == int(key.split(":", 1)[1])
        ),
        store=store,
        thread=thread,
        synced=synced,
        min_interval=1.0,
    )


# --------------------------------------------------------------------------- runbook from an alert


def start_runbook(svc: Services, group_id: int, user_id: str, user_name: str = "") -> runbook_runs.RunbookRun:
    """The "Start runbook" button: the alert's runbook as a checklist in the group message's thread."""
    with svc.sessions() as s:
        group = s.get(AlertGroup, group_id)
        if group is None:
            raise AlertError(key="alert.err.gone")
        latest = s.scalars(
            select(Alert).where(Alert.group_id == group_id).order_by(Alert.updated_at.desc()).limit(1)
        ).first()
    annotations = latest.annotations if latest else {}
    runbook_id = runbook_for(svc, group.alertname, annotations)
    if not runbook_id:
        raise AlertError(key="alert.err.no_runbook", name=group.alertname)
    book = runbook_runs.find_runbook(runbook_id)
    env = environment_of(svc, latest.labels if latest else {}) or runbook_runs.default_environment(svc.config)
    if not group.message_ts:
        raise AlertError(key="alert.err.posting")
    with svc.sessions.begin() as s:
        if not RUN_CLAIM.take(s, and_(AlertGroup.id == group_id, AlertGroup.run_id == "")):
            raise AlertError(key="alert.err.running", name=group.alertname)
        # A run of this episode with no run_id on the group was started by a replica that died
        # before it could say so (its claim has just expired): it is this group's run, not a reason
        # for a second one.
        orphan = s.scalar(
            select(RunbookRun.id)
            .where(RunbookRun.alert_group_id == group_id, RunbookRun.created_at >= group.episode_started_at)
            .order_by(RunbookRun.created_at.desc())
            .limit(1)
        )
        if orphan:
            s.execute(
                update(AlertGroup)
                .where(AlertGroup.id == group_id)
                .values(run_id=orphan, **RUN_CLAIM.cleared())
            )
    if orphan:
        svc.outbox.mark(subject(group_id))
        raise AlertError(key="alert.err.running", name=group.alertname)
    try:
        run = runbook_runs.start_run(
            svc, book, env, user_id=user_id, user_name=user_name, channel=group.channel, thread_ts=group.message_ts,
            incident_id=group.incident_id, alert_group_id=group_id,
        )  # fmt: skip
    except Exception:
        with svc.sessions.begin() as s:
            s.execute(
                update(AlertGroup)
                .where(
                    AlertGroup.id == group_id, AlertGroup.run_id == "", AlertGroup.run_claimed_by == PROCESS
                )
                .values(RUN_CLAIM.cleared())
            )
        raise
    with svc.sessions.begin() as s:
        s.execute(
            update(AlertGroup).where(AlertGroup.id == group_id).values(run_id=run.id, **RUN_CLAIM.cleared())
        )
    svc.outbox.mark(subject(group_id))
    return run


# --------------------------------------------------------------------------- install


def sweep(svc: Services) -> None:
    """Groups whose newest state never reached Slack (a replica died mid-storm): render them."""
    with svc.sessions() as s:
        behind = list(
            s.scalars(select(AlertGroup.id).where(AlertGroup.version > AlertGroup.sent_version).limit(500))
        )
    if behind:
        svc.outbox.mark(*(subject(g) for g in behind))


def install(svc: Services) -> None:
    """Installed by the composition root (bot.wiring): the webhook route and the alert-group sender."""
    sync = svc.outbox
    if "alert" not in sync.syncers:
        sync.register(_make_syncer(svc))
        svc.sweep_hooks.append(lambda: sweep(svc))
    svc.http_routes[ROUTE] = make_route(svc)
