"""Japanese and English: one catalogue, every key in both, replies in each reader's language."""

from __future__ import annotations

import re

from bot.i18n import LANGS, MESSAGES, t
from tests.harness import ALICE, BOB, CHANNEL, text_of


def test_every_message_exists_in_japanese_and_english_with_the_same_fields():
    for key, entry in MESSAGES.items():
        assert set(entry) == set(LANGS), key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in entry.items()}
        # Japanese may drop an English-only field (e.g. an English preposition), never invent one
        assert fields["ja"] - fields["en"] <= {"where_ja"}, key
        assert entry["ja"] != entry["en"] or key.startswith("state.") is False, key


def test_t_fills_named_fields_and_falls_back_to_english():
    assert t("card.requested_by", "ja", user="@bob") == "依頼: @bob"
    assert t("card.requested_by", "fr", user="@bob") == "requested by @bob"


def test_replies_follow_each_users_slack_locale_and_cards_the_workspace_language(db_url, make_bot, slack):
    slack.add_user(ALICE, "alice", locale="en-US")
    slack.add_user(BOB, "bob", locale="ja-JP")

    def english_workspace(cfg):
        cfg["language"] = "en"

    bot = make_bot(db_url, config_mutate=english_workspace)
    bot.command("help", user=BOB)  # the first reply may use the workspace language while the locale loads
    bot.settle()
    assert "コマンド一覧" in text_of(bot.command("help", user=BOB))
    assert "commands" in text_of(bot.command("help", user=ALICE))
    refused = bot.command("lock prod", user="U0NOBODY")
    assert "You need the" in refused["text"]  # unknown locale → workspace language
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card = slack.channel_messages(CHANNEL)[-1]
    assert "Waiting for approval" in text_of(card)  # the channel reads the workspace language


def test_a_japanese_workspace_gets_japanese_cards(db_url, make_bot, slack):
    def japanese(cfg):
        cfg["language"] = "ja"

    bot = make_bot(db_url, config_mutate=japanese)
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card = text_of(slack.channel_messages(CHANNEL)[-1])
    assert "承認待ち" in card and "承認" in card and "依頼: <@U0ALICE>" in card


def test_usage_errors_and_refusals_are_in_the_readers_language(db_url, make_bot, slack):
    slack.add_user(BOB, "bob", locale="ja-JP")
    bot = make_bot(db_url)
    bot.command("help", user=BOB)
    bot.settle()  # bob's locale is known from now on
    assert "という環境はありません" in bot.command("status prd", user=BOB)["text"]
    assert "もしかして `production`" in bot.command("status prd", user=BOB)["text"]
    assert "Unknown environment" in bot.command("status prd", user=ALICE)["text"]
    bot.command("lock prod 調査中", user=ALICE)
    assert "ロックしています" in bot.command("deploy prod v1.2.3", user=BOB)["text"]
