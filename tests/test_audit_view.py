"""`/taisun audit` shows each row rendered once: people as mentions, the bot by its name, times by
Slack, and a long detail cut at a word boundary with "…" — no markup shown as text."""

from __future__ import annotations

from tests.audit_helpers import exported_audit
from tests.harness import ALICE, BOB, CAROL, last_card, text_of, the_job

REASON = " ".join(f"word{n:02d}" for n in range(1, 40))  # a lock reason far longer than a line


def _audit_view(bot, user: str, args: str = "30") -> list[str]:  # type: ignore[no-untyped-def]
    """The audit view's lines, as Slack gets them (mrkdwn)."""
    reply = bot.command(f"audit {args}", user=user)
    return [
        line for b in reply["blocks"] if b["type"] == "section" for line in b["text"]["text"].splitlines()
    ]


def _row(lines: list[str], action: str) -> str:
    return next(line for line in lines if f"*{action}*" in line)


def test_the_audit_view_renders_people_the_bot_times_and_long_details_once(db_url, make_bot, slack, service):
    app_output = "12 entries & <3> keys"

    def app_cache(cfg):  # type: ignore[no-untyped-def]
        cfg["environments"]["development"]["cache"] = {
            "redis_url_env": "TAISUN_TEST_UNSET_REDIS_URL",
            "app_command": ["echo", app_output],
        }

    bot = make_bot(db_url, config_mutate=app_cache)
    bot.command("deploy prod v1.2.3", user=ALICE)  # waits for approval…
    bot.settle()
    job = the_job(bot)
    assert "Cancelled" in bot.command(f"jobs cancel {job.id[:8]}", user=CAROL)["text"]  # …an admin cancels it
    bot.command(f"lock stg {REASON}", user=BOB)
    bot.command("unlock stg", user=ALICE)  # refused: the detail names BOB, the lock's time and the reason
    bot.command("cache-clear dev app", user=ALICE)  # a real clear whose result quotes the app's output
    bot.settle()
    assert the_job(bot).state == "succeeded", the_job(bot).result

    lines = _audit_view(bot, CAROL)
    shown = "\n".join(lines)
    # Nothing is escaped twice: no markup or entity reaches the reader as text.
    for literal in ("&lt;!date", "&lt;@", "&amp;amp;", "&amp;lt;", "&amp;gt;", "<@taisun>"):
        assert literal not in shown, literal
    # People as mentions, the bot as TAISUN; every time is a Slack date token.
    assert _row(lines, "deploy.cancelled").endswith(
        "  <@U0CAROL>  *deploy.cancelled* `production`  _cancelled_"
    )
    assert "TAISUN  *deploy.awaiting_approval*" in shown and "  taisun  " not in shown
    assert all(line.startswith("<!date^") for line in lines[1:]), lines
    # The app's own words, escaped once (Slack shows "& <3>").
    assert "12 entries &amp; &lt;3&gt; keys" in _row(lines, "cache-clear.succeeded")
    card = text_of(last_card(slack))  # (the card had it escaped twice too)
    assert "12 entries &amp; &lt;3&gt; keys" in card and "&amp;amp;" not in card
    # A long detail ends at a whole word with "…"; it is text (BOB's ID in it is no mention: a
    # person could have typed it).
    refused = _row(lines, "unlock.refused")
    assert refused.startswith("<!date^") and "<@U0ALICE>  *unlock.refused*" in refused
    assert "is locked by @U0BOB since" in refused and refused.endswith("…"), refused
    last_word = refused.removesuffix("…").split()[-1]
    (stored,) = [r["detail"] for r in exported_audit(bot.settings) if r["action"] == "unlock.refused"]
    assert last_word in stored.split(), (last_word, stored)  # a whole word of what was stored
    assert len(refused.split(" — ", 1)[1]) <= 120, refused
