"""Claims: one replica at a time does a one-off side effect for a row (post its Slack message,
create its channel, start its runbook run, open its issue), and a replica that dies doing it
does not block it forever.

A claim lives in the row's own two columns, `<thing>_claimed_at` and `<thing>_claimed_by`,
never in the data column the side effect fills in (that stays empty until it is done). It is
taken by one conditional UPDATE: the row still needs the side effect (the caller's `where`) and
nobody holds the claim, or the claim is older than CLAIM_SECONDS (its replica died). Whoever
finishes writes the result and clears the claim in one UPDATE (`cleared()`); a failure lets go
(`cleared()` too) so the next try need not wait.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

CLAIM_SECONDS = 60
# This process, as its claims name it (host:pid:random, like a job lease's owner).
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """A pair of claim columns on one table."""

    at: InstrumentedAttribute[datetime | None]
    by: InstrumentedAttribute[str]
    seconds: int = CLAIM_SECONDS

    def take(self, s: Session, where: Any, *, by: str = PROCESS, at: datetime | None = None) -> bool:
        """Claim the row `where` picks (it must still need the side effect) for this process."""
        t = at or now()
        res = s.execute(
            update(self.at.class_)
            .where(where, or_(self.at.is_(None), self.at < t - timedelta(seconds=self.seconds)))
            .values({self.at.key: t, self.by.key: by})
        )
        return bool(res.rowcount == 1)

    def held(self, claimed_at: datetime | None, at: datetime | None = None) -> bool:
        """Whether a claim taken at `claimed_at` still holds (its replica may still be at it)."""
        if claimed_at is None:
            return False
        if claimed_at.tzinfo is None:
            claimed_at = claimed_at.replace(tzinfo=UTC)
        return claimed_at >= (at or now()) - timedelta(seconds=self.seconds)

    def cleared(self) -> dict[str, Any]:
        """Values for an UPDATE that ends the claim (with the side effect's result, or after a failure)."""
        return {self.at.key: None, self.by.key: ""}
