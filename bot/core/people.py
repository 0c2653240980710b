"""Each person's language and display name, learned once for every worker and replica.

Slash commands and clicks do not say which language the person reads: Slack's documented
interaction payloads name the user (id, username, team) but carry no locale, and slash commands
only an id and a name. users.info with include_locale does say. What Slack says is kept in the
`people` table, so every gunicorn worker and every replica answers a person in one language, and
Slack is asked once per person: the process that claims the row asks, the others read its answer.
It is asked again after REFRESH (a changed locale is picked up), and a locale that arrives in a
payload (a user_change event) is used and stored at once.

A person's very first request waits up to `first_wait` for Slack, as far as the request's own
answer deadline allows; Slack normally answers in a fraction of that, so the first answer is
already in the person's language. When Slack is slower, that answer is in the workspace language,
and whoever registered a hook (the Home tab) hears when the person's language becomes known.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.core.i18n import lang_of_locale
from bot.core.store.models import Person

log = logging.getLogger(__name__)
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")

REFRESH = timedelta(hours=24)  # ask Slack again after this: someone may have switched their Slack language
RETRY = timedelta(minutes=10)  # ... or after this, when Slack could not say (an error, no locale)
CLAIM = timedelta(seconds=20)  # one process asks at a time; the claim of a process that died expires
MEMO_SECONDS = 60.0  # this process trusts what it read from the database for this long
FIRST_WAIT = 1.0  # how long someone's first request may wait for Slack's answer


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Known:
    """What the database (or a payload) said about a person, and when this process read it."""

    locale: str
    name: str
    asked_at: datetime | None  # when Slack last answered or failed to; None: nobody has yet
    asking_until: datetime | None  # a process is asking Slack until then
    read_at: float  # time.monotonic() of the read

    @property
    def answered(self) -> bool:
        return self.asked_at is not None

    def stale(self, now: datetime) -> bool:
        """Time to ask Slack again (sooner when Slack did not say last time)."""
        return self.asked_at is None or now - self.asked_at > (REFRESH if self.locale else RETRY)

    def being_asked(self, now: datetime) -> bool:
        return self.asking_until is not None and self.asking_until > now


def is_person(user_id: str) -> bool:
    """A Slack user ID (U…/W…): the bot, Alertmanager and the CLI act under other names, never looked up."""
    return bool(_SLACK_USER.fullmatch(user_id or ""))


def display_name(user: dict[str, Any]) -> str:
    """The name people see in Slack: the profile's display name, else the real name, else the handle."""
    profile = user.get("profile") or {}
    return str(profile.get("display_name") or user.get("real_name") or user.get("name") or "")


class People:
    """Each person's language (from their Slack locale) and display name, shared through the database.

    Never waits on Slack unless asked to (`language(..., wait=)`); an unknown person is read from
    Slack in the background and meanwhile gets the workspace language.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        fetch_user: Callable[[str], dict[str, Any] | None],
        *,
        default: str,
        use_locale: bool,
        later: Callable[[Callable[[], None]], None],
    ):
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._fetch = fetch_user
        self.default = default
        self.use_locale = use_locale
        self._later = later
        self.first_wait = FIRST_WAIT
        self.memo_seconds = MEMO_SECONDS
        # Called with a user id when this process learns that person's language is other than it was.
        self.learned_hooks: list[Callable[[str], None]] = []
        self._memo: dict[str, Known] = {}
        self._asking: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # -- what the rest of the bot asks --------------------------------------------------------
    def language(self, user_id: str, wait: float = 0.0) -> str:
        """The language to answer this person in; for someone Slack has not told us about yet,
        wait up to `wait` seconds for its answer, then use the workspace language."""
        if not self.use_locale or not is_person(user_id):
            return self.default
        known = self._known(user_id)
        if (known is None or not known.answered) and wait > 0:
            self._ask_soon(user_id).wait(wait)
            known = self._memo_of(user_id)
        return self._lang(known)

    def name(self, user_id: str) -> str:
        """The person's Slack display name, or "" while it is not known yet."""
        if not is_person(user_id):
            return ""
        known = self._known(user_id)
        return known.name if known else ""

    def heard(self, user_id: str, locale: str, name: str = "", *, only_known: bool = False) -> None:
        """A payload carried this person's locale: answer in it from now on, and store it for every process.

        only_known: store it only for people the bot has met (user_change events come for everyone).
        """
        if not is_person(user_id) or not locale:
            return
        before = self._memo_of(user_id)
        if before is not None and before.locale == locale and (not name or before.name == name):
            return
        if only_known and before is None:  # not met here: the database row, if any, is enough
            self._later(lambda: self._store(user_id, locale=locale, name=name, insert=False))
            return
        with self._lock:
            self._memo[user_id] = Known(
                locale, name or (before.name if before else ""), _now(), None, time.monotonic()
            )
        self._later(lambda: self._store(user_id, locale=locale, name=name, insert=not only_known))
        if self._lang(before) != self._lang(self._memo_of(user_id)):
            self._tell(user_id)

    # -- reading ------------------------------------------------------------------------------
    def _lang(self, known: Known | None) -> str:
        return lang_of_locale(known.locale, self.default) if known and known.locale else self.default

    def _memo_of(self, user_id: str) -> Known | None:
        with self._lock:
            return self._memo.get(user_id)

    def _known(self, user_id: str) -> Known | None:
        """What is known (possibly stale); starts asking Slack when nothing or only something old is."""
        hit = self._memo_of(user_id)
        if hit is None or not hit.answered or time.monotonic() - hit.read_at > self.memo_seconds:
            read = self._read(user_id)
            if read is not None and (hit is None or not hit.answered or read.answered):
                with self._lock:
                    self._memo[user_id] = read
                hit = read
        if hit is None or hit.stale(_now()):
            self._ask_soon(user_id)
        return hit

    def _read(self, user_id: str) -> Known | None:
        """The person's row; None when there is none or the database cannot say."""
        try:
            with self._read_sessions() as s:
                row = s.get(Person, user_id)
                if row is None:
                    return None
                return Known(row.locale, row.name, row.asked_at, row.asking_until, time.monotonic())
        except SQLAlchemyError as e:
            log.warning("could not read a person's language", extra={"error": repr(e)[:200]})
            return None

    # -- asking Slack, once for all processes ---------------------------------------------------
    def _ask_soon(self, user_id: str) -> threading.Event:
        """Ask (or wait for another process asking) in the background; the event is set when done."""
        with self._lock:
            done = self._asking.get(user_id)
            if done is not None:
                return done
            done = self._asking[user_id] = threading.Event()

        def run() -> None:
            try:
                self._ask(user_id)
            finally:
                with self._lock:
                    self._asking.pop(user_id, None)
                done.set()

        self._later(run)
        return done

    def _ask(self, user_id: str) -> None:
        before = self._memo_of(user_id)
        try:
            mine = self._claim(user_id)
        except SQLAlchemyError as e:
            log.warning("could not claim a person's locale lookup", extra={"error": repr(e)[:200]})
            return
        if mine:
            try:
                user = self._fetch(user_id) or {}
                known = self._store(user_id, locale=str(user.get("locale") or ""), name=display_name(user))
            except Exception as e:  # Slack down, user_not_found...: keep what we had, ask again later
                log.info("could not read a person's locale from Slack", extra={"error": repr(e)[:200]})
                known = self._store(user_id, locale=None, name="")
        else:
            known = self._read_answer(user_id)
        if known is None:
            return
        with self._lock:
            self._memo[user_id] = known
        if self._lang(before) != self._lang(known):
            self._tell(user_id)

    def _claim(self, user_id: str) -> bool:
        """True when this process is the one to ask Slack now (no fresh answer, nobody else asking)."""
        now = _now()
        try:
            with self._sessions.begin() as s:
                row = s.get(Person, user_id, with_for_update=True)
                if row is None:
                    s.add(
                        Person(user_id=user_id, locale="", name="", asked_at=None, asking_until=now + CLAIM)
                    )
                    return True
                known = Known(row.locale, row.name, row.asked_at, row.asking_until, 0.0)
                if not known.stale(now) or known.being_asked(now):
                    return False
                row.asking_until = now + CLAIM
                return True
        except IntegrityError:  # another process inserted the row first: it asks
            return False

    def _read_answer(self, user_id: str) -> Known | None:
        """Another process is asking Slack: read its answer from the database once it is there."""
        started = time.monotonic()
        give_up = started + CLAIM.total_seconds()
        pause = 0.02
        while True:
            known = self._read(user_id)
            now = _now()
            if known is None or not known.stale(now) or not known.being_asked(now):
                return known  # answered, or the other process gave up (the next request asks again)
            if time.monotonic() + pause > give_up:
                return known
            time.sleep(pause)
            # A person's first answer waits on this for up to first_wait: look often while it may, then
            # back off. (Doubling to 0.5 s from the start read at 0.62 s and 1.12 s: an answer Slack gave
            # in 0.7 s reached the first request only in the workspace language.)
            soon = time.monotonic() - started < 2 * self.first_wait
            pause = min(pause * 2, 0.05 if soon else 0.5)

    def _store(self, user_id: str, *, locale: str | None, name: str, insert: bool = True) -> Known | None:
        """Write what Slack said (locale None: it could not say; keep the old one) and end the claim."""
        for _ in range(2):
            try:
                with self._sessions.begin() as s:
                    row = s.get(Person, user_id, with_for_update=True)
                    if row is None:
                        if not insert:
                            return None
                        row = Person(user_id=user_id, locale="", name="")
                        s.add(row)
                    if locale is not None:
                        row.locale = locale[:32]
                    if name:
                        row.name = name[:255]
                    row.asked_at, row.asking_until = _now(), None
                    return Known(row.locale, row.name, row.asked_at, None, time.monotonic())
            except IntegrityError:
                continue  # inserted by another process meanwhile: update that row
            except SQLAlchemyError as e:
                log.warning("could not store a person's language", extra={"error": repr(e)[:200]})
                return None
        return None

    def _tell(self, user_id: str) -> None:
        for hook in list(self.learned_hooks):
            try:
                hook(user_id)
            except Exception:
                log.exception("a hook on a person's language failed")
