"""One language per person: a locale learned once serves every process, and the first answer is already right.

Two bots share one database here as two replicas (or two gunicorn workers) do; each has its own
memory, so only what is in the database can make them agree. The local Slack counts users.info calls.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bot.core.people import FIRST_WAIT
from bot.core.store.models import Person
from bot.slack import signing
from tests.harness import ALICE, BOB, text_of

JAPANESE_HELP = "コマンド一覧"
ENGLISH_HELP = "commands"


def _english_workspace(cfg):  # type: ignore[no-untyped-def]
    cfg["language"] = "en"


def _open_home(bot, user: str, n: int = 0) -> None:  # type: ignore[no-untyped-def]
    body, ctype = signing.event_callback(
        {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"},
        event_id=f"Ev-home-{user}-{n}",
    )
    assert bot.post(body, ctype)[0] == 200


def _home_text(slack, user: str) -> str:  # type: ignore[no-untyped-def]
    return text_of({"blocks": slack.home.get(user, {}).get("blocks", [])})


def _first_helps(a, b) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Bob's first `help`, sent to replicas a and b at the same moment: each one's answer text."""
    first: dict[str, str] = {}
    start = threading.Barrier(2)

    def ask(name: str, bot) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        first[name] = text_of(bot.command("help", user=BOB))

    threads = [threading.Thread(target=ask, args=(n, bot)) for n, bot in (("a", a), ("b", b))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return first


def test_a_japanese_reader_hears_japanese_from_every_replica_and_slack_is_asked_once(db_url, make_bot, slack):
    """Bob (ja-JP) in an English workspace: his very first command, sent to two replicas at once, and every one
    after, alternating between them, is answered in Japanese; users.info is called once for him in all."""
    slack.add_user(BOB, "bob", locale="ja-JP")
    a = make_bot(db_url, config_mutate=_english_workspace)
    b = make_bot(db_url, settings=a.settings)
    first = _first_helps(a, b)
    assert JAPANESE_HELP in first["a"] and JAPANESE_HELP in first["b"], first
    for bot in (a, b, a, b):
        assert JAPANESE_HELP in text_of(bot.command("help", user=BOB))
        assert "という環境はありません" in bot.command("status prd", user=BOB)["text"]
    # alice is not in the directory: the workspace language
    assert ENGLISH_HELP in text_of(b.command("help", user=ALICE))
    assert slack.count("users.info") == 2  # bob once, alice once, whichever replica asked


def test_the_replica_that_did_not_ask_slack_sees_its_answer_within_the_first_wait(db_url, make_bot, slack):
    """Slack answers users.info in 0.65 s, inside the 1 s a first request waits: the replica that lost the
    claim reads the other's answer in time too, so both first answers are Japanese. (Its reads backed off
    to 0.62 s and 1.12 s after it began, past the wait, and answered in the workspace language.)"""
    slack.add_user(BOB, "bob", locale="ja-JP")
    slack.delay("users.info", 0.65)
    a = make_bot(db_url, config_mutate=_english_workspace)
    b = make_bot(db_url, settings=a.settings)
    for bot in (a, b):
        bot.svc.people.first_wait = FIRST_WAIT
    first = _first_helps(a, b)
    assert JAPANESE_HELP in first["a"] and JAPANESE_HELP in first["b"], first
    assert slack.count("users.info") == 1


def test_a_first_time_persons_home_tab_is_in_their_language(db_url, make_bot, slack):
    """The first Home tab someone opens is drawn in their language, not the workspace's: it waits for Slack
    longer than a command's first answer can (the event is acked already); CI's busy host once took over
    a second to ask Slack and store the answer."""
    slack.add_user(BOB, "bob", locale="ja-JP")
    slack.delay("users.info", 1.5)
    bot = make_bot(db_url, config_mutate=_english_workspace)
    bot.svc.people.first_wait = FIRST_WAIT  # the product's, which the harness relaxes for other tests
    assert bot.svc.people.first_wait < 1.5 < bot.svc.home.first_draw_wait
    _open_home(bot, BOB)
    bot.settle()
    first = slack.wait_for(lambda: slack.home.get(BOB))
    assert "環境" in text_of({"blocks": first["blocks"]}), first
    assert all("Environments" not in text_of({"blocks": v}) for v in _published_views(slack, BOB))


def _published_views(slack, user: str) -> list:  # type: ignore[no-untyped-def]
    return [
        p["view"]["blocks"] for m, p in list(slack.calls) if m == "views.publish" and p.get("user_id") == user
    ]


def test_when_slack_is_slow_the_first_answer_is_in_the_workspace_language_and_home_is_redrawn(
    db_url, make_bot, slack
):
    """users.info slower than the first request can wait: that answer is in the workspace language (the bot
    cannot know better), the Home tab drawn meanwhile is drawn again in Bob's language once Slack answers,
    and everything after is Japanese."""
    slack.add_user(BOB, "bob", locale="ja-JP")
    # Slack answers only once the test lets it: on a loaded host a fixed delay could end before the
    # first Home tab was drawn (CI saw the first tab in Japanese with a 0.6 s delay).
    answer = slack.hold("users.info")
    bot = make_bot(db_url, config_mutate=_english_workspace)
    bot.svc.people.first_wait = 0.1  # Slack is slower than this here (a real one rarely is)
    bot.svc.home.first_draw_wait = 0.1  # ... and than the first Home tab's longer wait
    _open_home(bot, BOB)
    assert ENGLISH_HELP in text_of(bot.command("help", user=BOB))
    first = slack.wait_for(lambda: _published_views(slack, BOB))
    assert "Environments" in text_of({"blocks": first[0]})
    answer.set()
    slack.wait_for(lambda: "環境" in _home_text(slack, BOB))
    assert JAPANESE_HELP in text_of(bot.command("help", user=BOB))
    assert slack.count("users.info") == 1


def test_a_locale_slack_sends_in_a_payload_is_used_without_asking(db_url, make_bot, slack):
    """Slack sends a user_change event when someone changes their profile; its user carries the locale."""
    slack.add_user(BOB, "bob", locale="en-US")
    bot = make_bot(db_url, config_mutate=_english_workspace)
    assert ENGLISH_HELP in text_of(bot.command("help", user=BOB))
    slack.users[BOB]["locale"] = "ja-JP"
    body, ctype = signing.event_callback(
        {"type": "user_change", "user": dict(slack.users[BOB], profile={"display_name": "bob"})},
        event_id="Ev-user-change-bob",
    )
    assert bot.post(body, ctype)[0] == 200
    bot.settle()
    assert JAPANESE_HELP in text_of(bot.command("help", user=BOB))
    other = _replica(bot, make_bot, db_url)  # stored for every replica, not just the one that heard it
    assert JAPANESE_HELP in text_of(other.command("help", user=BOB))
    assert slack.count("users.info") == 1


def _replica(bot, make_bot, db_url):  # type: ignore[no-untyped-def]
    return make_bot(db_url, settings=bot.settings)


def test_a_changed_locale_is_picked_up_when_the_stored_one_is_a_day_old(db_url, make_bot, slack):
    """A locale is asked again after a day: meanwhile the old one is used, never the workspace default."""
    slack.add_user(BOB, "bob", locale="en-US")
    bot = make_bot(db_url, config_mutate=_english_workspace)
    assert ENGLISH_HELP in text_of(bot.command("help", user=BOB))
    bot.settle()
    slack.users[BOB]["locale"] = "ja-JP"
    assert ENGLISH_HELP in text_of(bot.command("help", user=BOB))  # still fresh: Slack is not asked
    with bot.svc.sessions.begin() as s:
        s.execute(
            update(Person).where(Person.user_id == BOB).values(asked_at=datetime.now(UTC) - timedelta(days=2))
        )
    later = _replica(bot, make_bot, db_url)  # a process that reads the aged row
    assert ENGLISH_HELP in text_of(later.command("help", user=BOB))  # the stale one, while Slack is asked
    later.settle()
    assert JAPANESE_HELP in text_of(later.command("help", user=BOB))
    assert slack.count("users.info") == 2


def test_a_tab_drawn_before_the_language_changed_never_lands_after_the_one_drawn_in_it(
    db_url, make_bot, slack
):
    """Found by the suite on a loaded host: the first tab (workspace language) was still on its way to
    Slack when Bob's language became known; the redraw in Japanese reached Slack first and the older,
    English tab landed last. Publishes for one person now go one at a time, the language read inside."""
    slack.add_user(BOB, "bob", locale="en-US")
    bot = make_bot(db_url, config_mutate=_english_workspace)
    assert ENGLISH_HELP in text_of(bot.command("help", user=BOB))  # Bob is known: English
    home = bot.svc.home

    def publishes() -> int:
        return sum(1 for m, p in list(slack.calls) if m == "views.publish" and p.get("user_id") == BOB)

    first_gate = slack.hold("views.publish")
    before = publishes()
    drawn_in_english = threading.Thread(target=home.publish, args=(BOB,), daemon=True)
    drawn_in_english.start()
    slack.wait_for(lambda: publishes() > before)  # on its way: Slack has it and has not answered yet
    later_gate = slack.hold("views.publish")  # calls from now on wait on this one
    bot.svc.people.heard(BOB, "ja-JP")  # Bob switched his Slack to Japanese (this redraws his tab too)
    drawn_in_japanese = threading.Thread(target=home.publish, args=(BOB,), daemon=True)
    drawn_in_japanese.start()
    later_gate.set()  # Slack answers the later publishes first, if any reached it
    drawn_in_japanese.join(2)
    first_gate.set()
    drawn_in_english.join(10)
    drawn_in_japanese.join(10)
    bot.settle()
    slack.wait_for(lambda: "環境" in _home_text(slack, BOB))
    assert JAPANESE_HELP in text_of(bot.command("help", user=BOB))
