"""Who may do what where: roles, user groups, approvals and freeze windows.

Every refusal of a role check is written to the audit log by the check itself
(`Policy.require`), so a new listener cannot refuse someone without a trace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.core.config import Config, Environment, FreezeWindow
from bot.core.i18n import Msg, msg, render, t
from bot.core.replies import Refusal

log = logging.getLogger(__name__)

ROLE_LABELS = {
    "operator": "operator",
    "approver": "approver",
    "responder": "responder",
    "break_glass": "break-glass",
    "admin": "admin",
    "viewer": "viewer",
}


# Why a role check said no: the user is not listed; or only `*` would admit them and they come from
# another organisation, or their request did not say which workspace they belong to, or the bot
# does not know yet which workspace it is installed in.
NOT_LISTED, EXTERNAL, TEAM_UNKNOWN, HOME_UNKNOWN = "not_listed", "external", "team_unknown", "home_unknown"
REFUSAL_KEYS = {
    NOT_LISTED: "err.not_allowed",
    EXTERNAL: "err.not_allowed_external",
    TEAM_UNKNOWN: "err.not_allowed_team_unknown",
    HOME_UNKNOWN: "err.not_allowed_home_unknown",
}


class NotAllowed(Refusal):
    """The user lacks the role; the message names the role and the config field that decides it."""

    def __init__(
        self, role: str, env: Environment | None, action: str | Msg, *, config: str, why: str = NOT_LISTED,
        user_id: str = "",
    ):  # fmt: skip
        self.role, self.env, self.action, self.config, self.why = role, env, action, config, why
        self.key = REFUSAL_KEYS[why]
        self.audited = False  # set once the refusal's audit row is written
        self.fields = {
            "role": ROLE_LABELS.get(role, role),
            "where": f" in {env.name}" if env else "",
            "where_ja": f"{env.name} で" if env else "",
            "action": action,
            "config": config,
            "user": user_id,
        }
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        return t(self.key, lang, **{**self.fields, "action": render(self.fields["action"], lang)})

    def stored(self) -> Msg:
        """The refusal as a catalogue message, for the audit log: each reader sees it in their language."""
        return msg(self.key, **self.fields)


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


@dataclass(frozen=True)
class Workspace:
    """A Slack workspace (team) and its Enterprise Grid organisation, when it has one."""

    team_id: str = ""
    enterprise_id: str = ""
    org_wide: bool = False  # the app is installed for the whole organisation: all its workspaces count


class Workspaces:
    """Which workspace the bot is installed in, and which one each person acting comes from.

    `*` in a role means members of the installed workspace. A channel shared with another
    organisation (Slack Connect) also carries that organisation's people, whose signed requests name
    their own team; they act only where the config names them. Until the bot knows its own workspace
    (config `slack.team_id`, or Slack's auth.test) `*` admits no one.
    """

    MAX_REMEMBERED = 50_000

    def __init__(self, configured: Workspace | None = None):
        self.configured = configured
        self._learned: Workspace | None = None
        self._teams: OrderedDict[str, Workspace] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def home(self) -> Workspace | None:
        """The installed workspace: the config's when it names one, else what auth.test said."""
        return self.configured or self._learned

    def installed_in(self, team_id: str, enterprise_id: str = "", org_wide: bool = False) -> None:
        """What Slack's auth.test says about the bot's token (the config, when it names one, wins)."""
        learned = Workspace(team_id, enterprise_id, org_wide)
        configured = self.configured
        if configured and learned.team_id and configured.team_id and configured.team_id != learned.team_id:
            log.error(
                "slack.team_id is not the workspace SLACK_BOT_TOKEN belongs to; the config wins",
                extra={"configured": configured.team_id, "token_team": learned.team_id},
            )
        if team_id or enterprise_id:
            self._learned = learned

    def saw(self, user_id: str, team_id: str, enterprise_id: str = "") -> None:
        """A signed request from `user_id` named their workspace (Slack user IDs are unique across Slack)."""
        if not user_id or not (team_id or enterprise_id):
            return
        with self._lock:
            self._teams[user_id] = Workspace(team_id, enterprise_id)
            self._teams.move_to_end(user_id)
            while len(self._teams) > self.MAX_REMEMBERED:
                self._teams.popitem(last=False)

    def team_of(self, user_id: str) -> Workspace | None:
        with self._lock:
            return self._teams.get(user_id)

    def standing(self, user_id: str) -> str:
        """'' for a member of the installed workspace; otherwise why `*` does not cover them."""
        home, theirs = self.home, self.team_of(user_id)
        if home is None:
            return HOME_UNKNOWN
        if theirs is None:
            return TEAM_UNKNOWN
        if home.team_id and theirs.team_id == home.team_id:
            return ""
        if home.org_wide and home.enterprise_id and theirs.enterprise_id == home.enterprise_id:
            return ""
        return EXTERNAL


# (actor_id, attempt, environment, reason (a catalogue message), params) -> written?
RefusalRecorder = Callable[[str, Attempt, str, str | Msg, dict[str, Any]], bool]
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

    def fresh(self, handle: str) -> set[str]:
        """The group's members as Slack says them now, not cached (an access review must not show a stale
        or empty-on-error answer); raises when Slack cannot say."""
        handle = handle.lstrip("@")
        members = self._fetch(handle)
        if members is None:
            raise LookupError(f"Slack did not say who is in @{handle}")
        with self._lock:
            self._cache[handle] = (time.monotonic(), members)
        return members

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()


class Policy:
    def __init__(self, config: Config, directory: Directory, record: RefusalRecorder | None = None):
        self.config = config
        self.directory = directory
        self.record = record
        named = config.slack.team_id or config.slack.enterprise_id
        self.workspaces = Workspaces(
            Workspace(config.slack.team_id, config.slack.enterprise_id, bool(config.slack.enterprise_id))
            if named
            else None
        )

    def decided_by(self, role: str, env: Environment | None = None) -> tuple[list[str], str]:
        """The members who hold `role` in `env`, and the config field that lists them."""
        if env is not None and role == "approver" and env.approvers:
            return list(env.approvers), f"environments.{env.name}.approvers"
        if env is not None and role in env.roles:
            return list(env.roles[role]), f"environments.{env.name}.roles.{role}"
        return list(getattr(self.config.roles, role)), f"roles.{role}"

    def members_of(self, role: str, env: Environment | None = None) -> list[str]:
        return self.decided_by(role, env)[0]

    def why_not(self, user_id: str, members: list[str]) -> str:
        """'' when one of `members` is this user; otherwise why not (NOT_LISTED, EXTERNAL...).

        A user ID or a user group names a person wherever they come from; `*` covers members of
        the installed workspace only.
        """
        if user_id in members:
            return ""
        standing = self.workspaces.standing(user_id) if "*" in members else NOT_LISTED
        if standing == "":
            return ""
        for m in members:
            if m.startswith("@") and user_id in self.directory.members(m):
                return ""
        return standing

    def is_member(self, user_id: str, members: list[str]) -> bool:
        return self.why_not(user_id, members) == ""

    def has_role(self, user_id: str, role: str, env: Environment | None = None) -> bool:
        return self.is_member(user_id, self.members_of(role, env))

    def require(
        self, user_id: str, role: str, env: Environment | None, action: str | Msg, attempt: Attempt
    ) -> None:
        """Raise NotAllowed unless the user has the role here; a refusal is audited before it is raised."""
        members, source = self.decided_by(role, env)
        why = self.why_not(user_id, members)
        if not why:
            return
        refusal = NotAllowed(role, env, action, config=source, why=why, user_id=user_id)
        environment = attempt.environment if attempt.environment is not None else (env.name if env else "")
        params = {**attempt.params, "role": role, "decided_by": source}
        if why != NOT_LISTED:  # `*` did not cover them: say which workspace they came from
            theirs = self.workspaces.team_of(user_id)
            params |= {"why": why, "team_id": theirs.team_id if theirs else ""}
        if self.record is not None:
            refusal.audited = self.record(user_id, attempt, environment, refusal.stored(), params)
        raise refusal

    def freeze_window(self, env: Environment, when: datetime | None = None) -> FreezeWindow | None:
        when = when or datetime.now(UTC)
        for window in env.freeze_windows:
            if window.contains(when, self.config.tz):
                return window
        return None
