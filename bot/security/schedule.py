"""When a periodic task is due: its next time after a moment, in the config's timezone. Pure functions."""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from bot.core.config import DAYS, SecurityTask
from bot.core.i18n import t
from bot.core.mrkdwn import Mrkdwn


def _months(task: SecurityTask) -> set[int]:
    if task.cadence == "monthly":
        return set(range(1, 13))
    if task.cadence == "quarterly":
        return {task.month + 3 * q for q in range(4)}
    return {task.month}


def next_after(task: SecurityTask, after: datetime, tz: ZoneInfo) -> datetime:
    """The first moment strictly after `after` when the task is due (UTC); a day past the month's end
    means its last day (day 31 in April is April 30)."""
    local = after.astimezone(tz)
    at = clock.fromisoformat(task.time)
    if task.cadence == "weekly":
        target = DAYS.index(task.weekday)
        for i in range(8):
            day = local.date() + timedelta(days=i)
            candidate = datetime.combine(day, at, tz)
            if day.weekday() == target and candidate > local:
                return candidate.astimezone(UTC)
        raise AssertionError("a week always has the day")  # pragma: no cover
    months = _months(task)
    for k in range(26):
        year, month = local.year + (local.month - 1 + k) // 12, (local.month - 1 + k) % 12 + 1
        if month not in months:
            continue
        day = min(task.day, monthrange(year, month)[1])
        candidate = datetime.combine(datetime(year, month, day).date(), at, tz)
        if candidate > local:
            return candidate.astimezone(UTC)
    raise AssertionError("a year always has the month")  # pragma: no cover


def schedule_key(task: SecurityTask, tz: ZoneInfo) -> str:
    """What a stored occurrence was computed from: a config that says otherwise now reschedules it."""
    when = task.weekday if task.cadence == "weekly" else f"{task.month}/{task.day}"
    return f"{task.cadence} {when} {task.time} {tz.key}"


def describe(task: SecurityTask, lang: str) -> Mrkdwn:
    """ "every Monday 09:00", "monthly on day 1, 10:00"… in `lang`."""
    if task.cadence == "weekly":
        return t("security.cadence.weekly", lang, day=t(f"day.{task.weekday}", lang), time=task.time)
    if task.cadence == "monthly":
        return t("security.cadence.monthly", lang, day=task.day, time=task.time)
    if task.cadence == "quarterly":
        months = "/".join(str(m) for m in sorted(_months(task)))
        return t("security.cadence.quarterly", lang, months=months, day=task.day, time=task.time)
    return t(
        "security.cadence.yearly",
        lang,
        month=t(f"security.month.{task.month}", lang),
        day=task.day,
        time=task.time,
    )
