"""The monthly secret rotation: how old each watched secret is, by name only.

AWS Secrets Manager says when a secret was last rotated (DescribeSecret: LastRotatedDate, or
LastChangedDate for one it never rotated itself); GitHub says when each of the repository's Actions
secrets was last updated. Neither is ever asked for a value. A secret older than its max_age_days,
never rotated, or unreadable is flagged; a refusal names the permission that is missing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from bot.backends.github import GitHubBackend, GitHubError
from bot.backends.secrets import SecretsManagerError, describe_secret
from bot.core import audit
from bot.core.secrets import refresher
from bot.core.store.models import SecurityOccurrence
from bot.security.tasks import SYSTEM, SYSTEM_NAME, task_subject

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)


def check(svc: Services, at: datetime | None = None) -> list[dict[str, Any]]:
    """Each watched secret: name, source, last_rotated (ISO or None), age_days, max_age_days, overdue, error."""
    cfg = svc.config.security.secrets
    t_now = at or datetime.now(UTC)
    github: dict[str, datetime] | None = None
    github_error = ""
    if any(w.source == "github" for w in cfg.watch):
        if not svc.settings.github_token:
            github_error = "GITHUB_TOKEN is not set"
        else:
            gh = GitHubBackend(
                token=svc.settings.github_token, api_url=svc.settings.github_api_url,
                repository=svc.config.github.repository, workflow=svc.config.github.workflow,
                ref=svc.config.github.ref, tag_pattern=svc.config.github.tag_pattern,
                token_refresh=refresher(svc.settings, "github_token"),
            )  # fmt: skip
            try:
                github = gh.repository_secrets()
            except GitHubError as e:
                github_error = str(e)
            finally:
                gh.close()
    out = []
    for w in cfg.watch:
        limit = w.max_age_days or cfg.max_age_days
        item: dict[str, Any] = {"name": w.name, "source": w.source, "last_rotated": None, "age_days": None,
                                "max_age_days": limit, "overdue": True, "error": ""}  # fmt: skip
        rotated: datetime | None = None
        if w.source == "aws":
            try:
                rotated = describe_secret(w.name, region=w.region or None).last_rotation
            except SecretsManagerError as e:
                item["error"] = str(e)
        elif github is None:
            item["error"] = github_error
        elif w.name not in github:
            item["error"] = f"no Actions secret named {w.name} in {svc.config.github.repository}"
        else:
            rotated = github[w.name]
        if rotated is not None:
            age = (t_now - rotated).total_seconds() / 86400
            item |= {"last_rotated": rotated.isoformat(), "age_days": round(age, 1), "overdue": age > limit}
        out.append(item)
    return out


def audit_params(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What the audit row keeps: names, sources, ages and flags; never a value (there is none to keep)."""
    return {
        "secrets": [
            {"name": i["name"], "source": i["source"], "age_days": i["age_days"], "overdue": i["overdue"],
             **({"error": i["error"][:200]} if i["error"] else {})}
            for i in items
        ],
        "flagged": sum(1 for i in items if i["overdue"]),
    }  # fmt: skip


def record_check(svc: Services, occurrence_id: int) -> None:
    """The rotation task's snapshot of the secrets' ages, stored on its occurrence once (and audited)."""
    items = check(svc)
    t_now = datetime.now(UTC)
    with svc.sessions.begin() as s:
        occ = s.get(SecurityOccurrence, occurrence_id, with_for_update=True)
        if occ is None or "checked_at" in occ.details:
            return  # another replica was quicker
        s.execute(
            update(SecurityOccurrence)
            .where(SecurityOccurrence.id == occurrence_id)
            .values(
                details={**occ.details, "checked_at": t_now.isoformat(), "secrets": items}, updated_at=t_now
            )
        )
        audit.append(
            s, actor_id=SYSTEM, actor_name=SYSTEM_NAME, action="security.secrets_checked", channel=occ.channel,
            params={"task": occ.task, "occurrence": occ.id, **audit_params(items)},
            outcome="ok",
        )  # fmt: skip
    svc.outbox.mark(task_subject(occurrence_id))


def audit_check(
    svc: Services, items: list[dict[str, Any]], user_id: str, user_name: str, channel: str
) -> None:
    """A check someone asked for (`/taisun security secrets`): audited like the monthly one."""
    with svc.sessions.begin() as s:
        audit.append(
            s, actor_id=user_id, actor_name=user_name, action="security.secrets_checked", channel=channel,
            params=audit_params(items), outcome="ok",
        )  # fmt: skip
