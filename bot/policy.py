"""Who may do what where: roles, user groups, approvals and freeze windows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

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
    """The user lacks the role; the message names the role and where it is configured."""

    key = "err.not_allowed"

    def __init__(self, role: str, env: Environment | None, action: str | Msg):
        self.role, self.env, self.action = role, env, action
        cfg = f"environments.{env.name}.roles.{role} or roles.{role}" if env else f"roles.{role}"
        self.fields = {
            "role": ROLE_LABELS.get(role, role),
            "where": f" in {env.name}" if env else "",
            "where_ja": f"{env.name} で" if env else "",
            "action": action,
            "config": cfg,
        }
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        return t(self.key, lang, **{**self.fields, "action": render(self.fields["action"], lang)})


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
    def __init__(self, config: Config, directory: Directory):
        self.config = config
        self.directory = directory

    def members_of(self, role: str, env: Environment | None = None) -> list[str]:
        if env is not None and role == "approver" and env.approvers:
            return env.approvers
        if env is not None and role in env.roles:
            return env.roles[role]
        return list(getattr(self.config.roles, role))

    def is_member(self, user_id: str, members: list[str]) -> bool:
        for m in members:
            if m == "*" or m == user_id:
                return True
            if m.startswith("@") and user_id in self.directory.members(m):
                return True
        return False

    def has_role(self, user_id: str, role: str, env: Environment | None = None) -> bool:
        return self.is_member(user_id, self.members_of(role, env))

    def require(self, user_id: str, role: str, env: Environment | None, action: str) -> None:
        if not self.has_role(user_id, role, env):
            raise NotAllowed(role, env, action)

    def freeze_window(self, env: Environment, when: datetime | None = None) -> FreezeWindow | None:
        when = when or datetime.now(UTC)
        for window in env.freeze_windows:
            if window.contains(when, self.config.tz):
                return window
        return None
