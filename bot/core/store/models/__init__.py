"""Database tables, one module per capability on one metadata. All shared state lives here so
several replicas behave as one; Alembic sees every table through this package."""

from bot.core.store.models.alerts import Alert, AlertGroup
from bot.core.store.models.base import Base, UTCDateTime, utcnow
from bot.core.store.models.core import AuditEvent, AuditHead, BotMeta, DedupeKey, Job, Lock, Person
from bot.core.store.models.deploys import DeployRun, GithubPoll
from bot.core.store.models.incidents import (
    Incident,
    IncidentCounter,
    IncidentEvent,
    IncidentFollowup,
    Nudge,
    RunbookRun,
    RunbookStep,
)
from bot.core.store.models.outbox import Outbox
from bot.core.store.models.security import (
    AccessReview,
    AccessReviewItem,
    SecurityFinding,
    SecurityMessage,
    SecurityOccurrence,
)

__all__ = [
    "Alert", "AlertGroup", "AuditEvent", "AuditHead", "Base", "BotMeta", "DedupeKey", "DeployRun",
    "GithubPoll", "Incident",
    "IncidentCounter", "IncidentEvent", "IncidentFollowup", "Job", "Lock", "Nudge", "Outbox", "Person",
    "RunbookRun", "RunbookStep", "UTCDateTime", "utcnow",
    "AccessReview", "AccessReviewItem", "SecurityFinding", "SecurityMessage", "SecurityOccurrence",
]  # fmt: skip
