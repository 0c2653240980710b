"""Who may do what where: roles, user groups, approvals and freeze windows.

Every refusal of a role check is written to the audit log by the check itself
(`Policy.require`), so a new listener cannot refuse someone without a trace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.config import Config, Environment, FreezeWindow
from bot.i18n import Msg, render, t

log = logging.getLogger(__name__)

ROLE_LABELS = {
    "operator": "operator",
    "approver": "approver",
    "responder": "responder",
    "break_glass": "break-glass",
    "admin": "admin",
}


class NotAllowed(Exception):
    """The user lacks the role; the message names the role and the config field that decides it."""

    key = "err.not_allowed"

    def __init__(self, role: str, env: Environment | None, action: str | Msg, *, config: str):
        self.role, self.env, self.action, self.config = role, env, action, config
        self.audited = False  # set once the refusal's audit row is written
        self.fields = {
            "role": ROLE_LABELS.get(role, role),
            "where": f" in {env.name}" if env else "",
            "where_ja": f"{env.name} で" if env else "",
            "action": action,
            "config": config,
        }
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        return t(self.key, lang, **{**self.fields, "action": render(self.fields["action"], lang)})


@dataclass(frozen=True)
class Attempt:
    """What someone tried: the audit row its refusal writes (action `<thing>.<event>`)."""

    thing: str  # deploy, incident, runbook, lock...: what the row's action starts with
    user_name: str = ""
    channel: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    job_id: str = ""
    environment: str | None = None  # None: the environment the role was checked in
    event: str = "refused"


# (actor_id, attempt, environment, reason in the workspace language, params) -> written?
RefusalRecorder = Callable[[str, Attempt, str, str, dict[str, Any]], bool]
GroupFetcher = Callable[[str], set[str] | None]


class Directory:
    """Resolves @group handles to members, cached; fails closed when Slack cannot say."""

    def __init__(self, fetch_group: GroupFetcher, ttl_seconds: float = 300.0):
        self._fetch = fetch_group
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def members(self, handle: str) -> set[str]:
        handle = handle.lstrip("@")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(handle)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        try:
            fresh = self._fetch(handle)
        except Exception as e:  # a Slack outage must not grant or crash
            log.warning("user group lookup failed", extra={"group": handle, "error": str(e)})
            fresh = None
        if fresh is None:
            return hit[1] if hit else set()  # stale is better than nothing; nothing grants nothing
        with self._lock:
            self._cache[handle] = (now, fresh)
        return fresh

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()


class Policy:
    def __init__(self, config: Config, directory: Directory, record: RefusalRecorder | None = None):
        self.config = config
        self.directory = directory
        self.record = record

    def decided_by(self, role: str, env: Environment | None = None) -> tuple[list[str], str]:
        """The members who hold `role` in `env`, and the config field that lists them."""
        if env is not None and role == "approver" and env.approvers:
            return list(env.approvers), f"environments.{env.name}.approvers"
        if env is not None and role in env.roles:
            return list(env.roles[role]), f"environments.{env.name}.roles.{role}"
        return list(getattr(self.config.roles, role)), f"roles.{role}"

    def members_of(self, role: str, env: Environment | None = None) -> list[str]:
        return self.decided_by(role, env)[0]

    def is_member(self, user_id: str, members: list[str]) -> bool:
        for m in members:
            if m == "*" or m == user_id:
                return True
            if m.startswith("@") and user_id in self.directory.members(m):
                return True
        return False

    def has_role(self, user_id: str, role: str, env: Environment | None = None) -> bool:
        return self.is_member(user_id, self.members_of(role, env))

    def require(
        self, user_id: str, role: str, env: Environment | None, action: str | Msg, attempt: Attempt
    ) -> None:
        """Raise NotAllowed unless the user has the role here; a refusal is audited before it is raised."""
        members, source = self.decided_by(role, env)
        if self.is_member(user_id, members):
            return
        refusal = NotAllowed(role, env, action, config=source)
        environment = attempt.environment if attempt.environment is not None else (env.name if env else "")
        params = {**attempt.params, "role": role, "decided_by": source}
        if self.record is not None:
            refusal.audited = self.record(
                user_id, attempt, environment, refusal.message(self.config.language), params
            )
        raise refusal

    def freeze_window(self, env: Environment, when: datetime | None = None) -> FreezeWindow | None:
        when = when or datetime.now(UTC)
        for window in env.freeze_windows:
            if window.contains(when, self.config.tz):
                return window
        return None
