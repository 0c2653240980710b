"""The App Home tab: environments, locks, pending approvals, incidents and the viewer's own actions.

Publishing is off the ack path. Live health comes from a short-lived cache refreshed in the
background, so opening Home never waits on a slow environment; a refresh is republished
when the checks come back, and after each job change for people who looked recently.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.backends import http
from bot.core import audit, blocks, i18n, locks
from bot.core.blocks import Action
from bot.core.i18n import t
from bot.core.states import JobState
from bot.core.store.models import Job
from bot.deploys.messages import started_by
from bot.deploys.service import last_changes
from bot.incidents import service as incidents
from bot.incidents.messages import phase_name
from bot.observability.messages import slo_compact
from bot.operations.pitr import home_lines as backup_home_lines
from bot.security import tasks as security_tasks

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

HEALTH_TTL = 30.0  # seconds a live check stays fresh
VIEWER_TTL = 15 * 60.0  # people who opened Home this recently get refreshes after changes
MIN_REFRESH = 5.0  # views.publish per viewer at most this often (Slack allows far more, but it adds nothing)
# Someone's first Home tab waits this long for Slack to say their language. The event is acked already,
# so nothing holds it to a request's answer deadline: a tab that appears a moment later in the reader's
# language beats one drawn in the workspace's and redrawn (a busy host can take over a second).
FIRST_DRAW_WAIT = 4.0


class Home:
    def __init__(self, svc: Services):
        self.svc = svc
        self._health: dict[str, tuple[float, http.HealthReport]] = {}
        self._viewers: dict[str, float] = {}
        self._published: dict[str, float] = {}
        self._published_lang: dict[str, str] = {}  # the language each viewer's tab was last drawn in
        self._lock = threading.Lock()
        self._checking = False
        self._scheduled: dict[str, threading.Timer] = {}
        self._drawing: dict[str, threading.Lock] = {}  # one publish at a time per viewer
        self.first_draw_wait = FIRST_DRAW_WAIT

    # -- entry points ----------------------------------------------------------------
    def opened(self, user_id: str) -> None:
        """app_home_opened: publish now from what we know, then again when the live checks return.

        Someone opening it for the first time is drawn in their language: Slack is asked for their
        locale first (up to `first_draw_wait`; the event is acked already). If Slack is slower still,
        `relearned` redraws it.
        """
        with self._lock:
            self._viewers[user_id] = time.monotonic()
        self.svc.people.language(user_id, wait=self.first_draw_wait)
        self.publish(user_id)
        if self._stale():
            self.svc.later(lambda: self._refresh_health_then_publish())

    def changed(self) -> None:
        """Something changed (a job moved): refresh recent viewers, at most every MIN_REFRESH seconds.

        Debounced on the trailing edge: a burst of changes ends with one publish of the final state.
        """
        now = time.monotonic()
        with self._lock:
            viewers = [u for u, seen in self._viewers.items() if now - seen < VIEWER_TTL]
            for user in viewers:
                if user in self._scheduled:
                    continue
                delay = max(0.0, MIN_REFRESH - (now - self._published.get(user, 0.0)))
                timer = threading.Timer(delay, self._scheduled_publish, args=(user,))
                timer.daemon = True
                self._scheduled[user] = timer
                timer.start()

    def relearned(self, user_id: str) -> None:
        """This person's language became known (or changed): redraw their tab if it shows another one."""
        with self._lock:
            drawn = self._published_lang.get(user_id)
        if drawn is not None and drawn != self.svc.lang_for(user_id):
            self.svc.later(lambda: self.publish(user_id))

    def _scheduled_publish(self, user_id: str) -> None:
        with self._lock:
            self._scheduled.pop(user_id, None)
        self.svc.later(lambda: self.publish(user_id))

    def publish(self, user_id: str) -> None:
        """Draw and publish this person's tab. One at a time per person, the language read inside:
        two publishes in flight could reach Slack in either order, and the tab would end on the older
        one (drawn in the workspace language just before Slack said theirs)."""
        with self._lock:
            drawing = self._drawing.setdefault(user_id, threading.Lock())
        with drawing:
            lang = self.svc.lang_for(user_id)
            with self._lock:
                self._published[user_id] = time.monotonic()
                self._published_lang[user_id] = lang
            try:
                self.svc.slack.views_publish(user_id=user_id, view=self.view(user_id, lang))
            except Exception as e:
                log.warning("could not publish the Home tab", extra={"error": repr(e)})

    # -- data ------------------------------------------------------------------------
    def _stale(self) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(
                now - self._health.get(e, (0.0, None))[0] > HEALTH_TTL for e in self.svc.config.environments
            )

    def _refresh_health_then_publish(self) -> None:
        with self._lock:
            if self._checking:
                return
            self._checking = True
        try:
            envs = self.svc.config.environments.values()
            obs = self.svc.observability  # SLO states beside the health checks; the view reads the cache
            slo = obs.slo_states_soon(envs) if any(obs.configured(e) for e in envs) else None
            reports = http.check_many(
                {e.name: e.url for e in envs}, timeout=3.0, recent=self.svc.recent_checks
            )
            if slo is not None:
                slo.result()
            now = time.monotonic()
            with self._lock:
                for name, report in reports.items():
                    self._health[name] = (now, report)
                viewers = [u for u, seen in self._viewers.items() if now - seen < VIEWER_TTL]
        finally:
            with self._lock:
                self._checking = False
        for user in viewers:
            self.publish(user)

    def view(self, user_id: str, lang: str | None = None) -> dict[str, Any]:
        """The Home view for one viewer, in their language (pure reads; no network)."""
        svc = self.svc
        lang = lang or svc.lang_for(user_id)
        out: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": "TAISUN ChatOps"}},
            blocks.context(t("home.updated", lang, time=blocks.slack_time(datetime.now(UTC)))),
            {"type": "divider"},
            blocks.section(t("home.environments", lang)),
        ]
        with svc.read_sessions() as s:
            held = {e: locks.current(s, e) for e in svc.config.environments}
            last = last_changes(s)  # verified deploys only: a simulation changed nothing
            pending = list(
                s.scalars(select(Job).where(Job.state == JobState.PENDING_APPROVAL).order_by(Job.created_at))
            )
            mine = audit.recent_by_actor(s, user_id, limit=5)
        with self._lock:
            health = {name: rep for name, (_, rep) in self._health.items()}
        slo_states = svc.observability.cached_slo_states()
        for env in svc.config.environments.values():
            rep = health.get(env.name)
            icon = "⚪" if rep is None or rep.healthy is None else ("🟢" if rep.healthy else "🔴")
            state = t("home.checking", lang) if rep is None else rep.text(lang)
            # The version and health come from the environment itself: outside text, escaped.
            version = blocks.escape((rep.version if rep else "") or "—")
            lines = [f"{icon} *{env.name}* · `{version}` · {blocks.escape(state)}"]
            lock = held.get(env.name)
            if lock is not None:
                lines.append(f"🔒 {locks.LockInfo.of(lock).describe(lang)}")
            if svc.observability.configured(env) and self._may_view(user_id, env):  # as last asked of it
                lines.append(slo_compact(slo_states.get(env.name), lang))
            job = last.get(env.name)
            if job is not None:
                lines.append(
                    t("home.last", lang, operation=job.operation, version=job.params.get("version", ""),
                      user=started_by(job, lang), time=blocks.slack_time(job.finished_at))
                )  # fmt: skip
            out.append(blocks.section("\n".join(lines)))
        # The guide's RPO and RTO at a glance (#17): from the status the sweep keeps, no network here.
        out.append(blocks.section("\n".join(backup_home_lines(svc, lang))))
        actionable = [j for j in pending if self._may_approve(user_id, j)]
        out += [{"type": "divider"}, blocks.section(t("home.waiting", lang, n=len(actionable)))]
        if not actionable:
            out.append(blocks.context(t("home.nothing_waits", lang)))
        for job in actionable[:10]:
            what = blocks.escape(svc.describe(job, lang))
            out.append(
                blocks.section(t("home.asked_by", lang, what=what, user=blocks.mention(job.requested_by)))
            )
            out.append(
                {
                    "type": "actions",
                    "block_id": f"home-job:{job.id}",
                    "elements": [
                        blocks.button(t("home.approve", lang), Action.APPROVE, job.id, style="primary",
                                      confirm=blocks.confirm_dialog(t("home.confirm_title", lang),
                                                                    t("home.confirm_text", lang, what=what),
                                                                    lang=lang, yes=t("home.approve", lang))),
                        blocks.button(t("home.reject", lang), Action.REJECT, job.id, style="danger"),
                    ],
                }
            )  # fmt: skip
        out += [{"type": "divider"}, blocks.section(t("home.open_incidents", lang))]
        incidents = _open_incidents(svc, lang)
        out.append(
            blocks.section("\n".join(incidents))
            if incidents
            else blocks.context(t("home.no_incidents", lang))
        )
        security = security_tasks.home_lines(svc, lang)  # security operations (#18): due and overdue tasks
        if security:
            out += [
                {"type": "divider"},
                blocks.section(t("security.home.title", lang)),
                blocks.section("\n".join(security)),
            ]
        out += [{"type": "divider"}, blocks.section(t("home.recent", lang))]
        if mine:
            out.append(
                blocks.section(
                    "\n".join(
                        f"{blocks.slack_time(e.ts)} *{e.action}* {('`' + e.environment + '`') if e.environment else ''} _{i18n.outcome(e.outcome, lang)}_"
                        for e in mine
                    )
                )
            )
        else:
            out.append(blocks.context(t("home.nothing_yet", lang)))
        return {"type": "home", "blocks": out[:100]}

    def _may_view(self, user_id: str, env: Any) -> bool:
        """The viewer role, for the SLO line. `*` admits whoever opens Home (only the installed
        workspace's members can), even before a command of theirs has named their workspace."""
        members = self.svc.policy.members_of("viewer", env)
        return "*" in members or self.svc.policy.is_member(user_id, members)

    def _may_approve(self, user_id: str, job: Job) -> bool:
        env = self.svc.config.environments.get(job.environment)
        return user_id != job.requested_by and self.svc.policy.has_role(user_id, "approver", env)


def _open_incidents(svc: Services, lang: str = "en") -> list[str]:
    now = datetime.now(UTC)
    return [
        t(
            "home.incident" if inc.commander else "home.incident_no_commander",
            lang,
            ref=inc.ref,
            severity=inc.severity,
            title=blocks.escape(inc.title),
            phase=phase_name(inc.phase, lang),
            elapsed=i18n.duration((now - inc.declared_at).total_seconds(), lang),
            commander=blocks.mention(inc.commander),
        )  # fmt: skip
        for inc in incidents.open_incidents(svc)[:10]
    ]
