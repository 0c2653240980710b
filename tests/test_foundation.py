"""Foundation scenarios through the real signed-request path (in-process WSGI + Bolt)."""

from __future__ import annotations

import json
import time

from bot.slack import signing
from tests.harness import ALICE, BOB, CHANNEL, text_of


def test_help_lists_every_command_and_marks_what_the_user_may_not_run(db_url, make_bot):
    bot = make_bot(db_url)
    reply = bot.command("help", user="U0NOBODY")
    text = text_of(reply)
    for word in (
        "deploy",
        "rollback",
        "restart",
        "cache-clear",
        "backup",
        "lock",
        "audit",
        "incident",
        "runbook",
    ):
        assert f"/taisun {word}" in text
    assert reply["response_type"] == "ephemeral"
    assert "権限がありません" in text or "lack the role" in text  # U0NOBODY is no operator


def test_unknown_subcommand_suggests_the_closest_one(db_url, make_bot):
    bot = make_bot(db_url)
    reply = bot.command("deplyo production v1.2.3")
    assert "Unknown command `deplyo`" in reply["text"]
    assert "/taisun deploy" in reply["text"]


def test_unknown_environment_names_the_valid_ones(db_url, make_bot):
    bot = make_bot(db_url)
    reply = bot.command("status prd")
    assert "Did you mean `production`" in reply["text"]
    assert "staging (stg)" in reply["text"]


def test_status_shows_live_health_and_version_and_unreachable_environments(db_url, make_bot, service, slack):
    service.version = "v2.3.4"

    def one_env_unreachable(cfg):
        cfg["environments"]["development"]["url"] = "http://127.0.0.1:9"  # nothing listens on discard

    bot = make_bot(db_url, config_mutate=one_env_unreachable)
    ack = bot.command("status")
    assert "Checking" in ack["text"]
    bot.settle()
    (reply,) = slack.ephemeral(ALICE)
    text = text_of(reply)
    assert "v2.3.4" in text and "ok (200)" in text
    assert "unreachable" in text  # development: shown, not an error


def test_lock_refuses_a_second_holder_with_who_why_and_since(db_url, make_bot):
    bot = make_bot(db_url)
    ok = bot.command("lock prod investigating INC-7", user=ALICE)
    assert ok["response_type"] == "in_channel" and "locked" in ok["text"]
    refused = bot.command("lock production", user=BOB)
    text = text_of(refused)
    assert "locked by <@U0ALICE>" in text and "investigating INC-7" in text and "since" in text
    # bob is an approver, so he is offered a take-over
    assert "taisun.lock.takeover" in text
    not_yours = bot.command("unlock prod", user=BOB)
    assert "Only they or an admin" in not_yours["text"]
    assert "unlocked" in bot.command("unlock prod", user=ALICE)["text"]


def test_audit_command_shows_recent_entries_newest_first(db_url, make_bot):
    bot = make_bot(db_url)
    bot.command("lock stg one", user=ALICE)
    bot.command("unlock stg", user=ALICE)
    reply = bot.command("audit staging 5")
    text = text_of(reply)
    assert text.index("lock.released") < text.index("lock.acquired")


def test_forged_signature_and_stale_timestamp_get_401_and_change_nothing(db_url, make_bot):
    bot = make_bot(db_url)
    body, ctype = signing.slash_command("lock prod evil", user_id=ALICE, channel_id=CHANNEL)
    assert bot.post(body, ctype, secret="not-the-secret")[0] == 401
    assert bot.post(body, ctype, timestamp=int(time.time()) - 6 * 60)[0] == 401
    with bot.svc.sessions() as s:
        from bot.core import audit

        assert audit.recent(s) == []
    assert "not locked" in bot.command("unlock prod")["text"]


def test_slack_event_retry_is_processed_once(db_url, make_bot, slack):
    bot = make_bot(db_url)
    body, ctype = signing.event_callback(
        {"type": "app_mention", "text": "<@UBOT> hi", "user": ALICE, "channel": CHANNEL, "ts": "1.1"},
        event_id="Ev123",
    )
    assert bot.post(body, ctype)[0] == 200
    assert (
        bot.post(body, ctype, extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})[0]
        == 200
    )
    bot.settle()
    time.sleep(0.3)
    assert len(slack.channel_messages(CHANNEL)) == 1


def test_health_reports_database_and_slack_auth(db_url, make_bot):
    from tests.harness import wsgi_post

    bot = make_bot(db_url)
    environ_get = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health", "wsgi.input": None}
    status: list[str] = []
    body = b"".join(bot.wsgi(environ_get, lambda s, h, exc_info=None: status.append(s)))
    data = json.loads(body)
    assert status[0].startswith("200") and data["database"] == "ok"
    assert wsgi_post(bot.wsgi, "x" * (2 * 1024 * 1024), {"Content-Type": "text/plain"})[0] == 413


def test_a_long_audit_listing_shows_every_entry_it_promises(db_url, make_bot):
    def many(cfg):
        cfg["defaults"]["commands_per_minute"] = 1000

    bot = make_bot(db_url, config_mutate=many)
    for i in range(30):
        bot.command(f"lock stg reason number {i} with a fairly long explanation of why it is locked")
        bot.command("unlock stg")
    text = text_of(bot.command("audit staging 60"))
    # every one of the 60 is shown (one section holds only about 25 such lines)
    assert text.count("lock.acquired") == 30 and text.count("lock.released") == 30


def test_people_asking_for_status_at_once_share_one_round_of_checks(db_url, make_bot, slack, service):
    """An incident: ten people type /taisun status; the service is asked once, not ten times."""
    import threading
    import time

    bot = make_bot(db_url)
    before = service.hits.count("/health")
    threads = [threading.Thread(target=bot.command, args=("status",)) for _ in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    bot.settle()
    answers = [m for m in slack.ephemeral(ALICE) if "Environment status" in m.text]
    assert len(answers) == 10  # everyone got the status
    shared = service.hits.count("/health")
    assert shared - before <= 2  # 3 environments on one URL, 10 people: 1-2 checks
    time.sleep(2.2)  # older than that is checked again: nobody is shown a stale answer
    bot.command("status")
    bot.settle()
    assert service.hits.count("/health") > shared
