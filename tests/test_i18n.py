"""Japanese and English: one catalogue, every key in both, replies in each reader's language."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import update

from bot.core import audit
from bot.core.blocks import Action
from bot.core.i18n import LANGS, MESSAGES, t
from bot.core.store.models import AuditEvent
from tests.audit_helpers import exported_audit
from tests.harness import ALICE, BOB, CHANNEL, buttons, last_card, text_of


def test_every_message_exists_in_japanese_and_english_with_the_same_fields():
    for key, entry in MESSAGES.items():
        assert set(entry) == set(LANGS), key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in entry.items()}
        # Japanese may drop an English-only field (e.g. an English preposition), never invent one
        assert fields["ja"] - fields["en"] <= {"where_ja"}, key
        assert entry["ja"] != entry["en"] or key.startswith("state.") is False, key


def test_the_yaml_catalogues_hold_exactly_the_texts_the_dict_held():
    """The split into bot/<package>/locales/<lang>.yml changed no text by a byte (the dict, frozen as JSON)."""
    before = json.loads((Path(__file__).parent / "data" / "i18n_before_split.json").read_text(encoding="utf-8"))
    assert len(MESSAGES) == len(before) == 874
    assert MESSAGES == before


def test_t_fills_named_fields_and_falls_back_to_english():
    assert t("card.requested_by", "ja", user="@bob") == "依頼: @bob"
    assert t("card.requested_by", "fr", user="@bob") == "requested by @bob"


def test_replies_follow_each_users_slack_locale_and_cards_the_workspace_language(db_url, make_bot, slack):
    slack.add_user(ALICE, "alice", locale="en-US")
    slack.add_user(BOB, "bob", locale="ja-JP")

    def english_workspace(cfg):
        cfg["language"] = "en"

    bot = make_bot(db_url, config_mutate=english_workspace)
    assert "コマンド一覧" in text_of(bot.command("help", user=BOB))  # the very first reply too
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


def _japanese(cfg):  # type: ignore[no-untyped-def]
    cfg["language"] = "ja"


def test_a_japanese_workspace_gets_japanese_incident_headers_and_checklists(db_url, make_bot, slack):
    from tests.chatops_helpers import fast, header_of, replies, settle

    bot = fast(make_bot(db_url, config_mutate=_japanese))
    bot.command('incident declare sev3 "API のレイテンシ悪化"', user=ALICE)
    settle(bot)
    header = text_of(header_of(slack, "INC-1"))
    assert "`対応中`" in header and "*コマンダー:*" in header and "*フェーズ:*" in header
    assert "*経過時間:*" in header and "検知 " in header and "確認" in header and "解決" in header
    assert "まだ状況の更新はありません" in header
    assert "OPEN" not in header and "Commander" not in header
    checklist = next(m for m in replies(slack, header_of(slack, "INC-1")) if "ステップ完了" in m.text)
    body = text_of(checklist)
    assert "開始: <@U0ALICE>" in body and "完了" in body and "スキップ…" in body
    assert "steps done" not in body and "Skip…" not in body


def test_a_japanese_workspace_gets_a_japanese_alert_group_message(db_url, make_bot, slack):
    from tests.chatops_helpers import fast, post_alerts, settle, top_level
    from tests.test_alerts import ALERTS, TOKEN, alert, webhook

    bot = fast(make_bot(db_url, taisun_alert_token=TOKEN, config_mutate=_japanese))
    payload = webhook([alert("DiskAlmostFull", f"db-{k}:9100", severity="warning") for k in range(3)])
    assert post_alerts(bot, payload, TOKEN)[0] == 200
    settle(bot)
    (group,) = top_level(slack, ALERTS)
    assert group.text == "DiskAlmostFull: 発火中 3 件、解決 0 件"
    assert "*3 件発火中* · 解決 0 件" in text_of(group)
    assert "firing" not in text_of(group)


def test_an_operation_refuses_a_japanese_reader_in_japanese(db_url, make_bot, slack):
    slack.add_user(BOB, "bob", locale="ja-JP")

    def no_cache(cfg):  # type: ignore[no-untyped-def]
        for env in cfg["environments"].values():
            env.pop("cache", None)

    bot = make_bot(db_url, config_mutate=no_cache)
    bot.command("help", user=BOB)
    bot.settle()  # bob's locale is known from now on
    assert "にはキャッシュが設定されていません" in bot.command("cache-clear stg", user=BOB)["text"]
    assert "No cache is configured for staging" in bot.command("cache-clear stg", user=ALICE)["text"]


def test_the_audit_log_shows_the_bots_own_words_in_each_readers_language(db_url, make_bot, slack):
    """A self-approval is refused and audited; the audit view gives its reason in the reader's language,
    the record keeps it in the workspace language with the message itself, and the chain covers both."""
    slack.add_user(ALICE, "alice", locale="en-US")
    slack.add_user(BOB, "bob", locale="ja-JP")
    bot = make_bot(db_url)  # an English workspace
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    card = last_card(slack)
    bot.click(Action.APPROVE, buttons(card)[Action.APPROVE], ALICE, card)  # her own request
    bot.settle()
    assert "_refused_ — You asked for this one" in text_of(bot.command("audit prod 3", user=ALICE))
    assert "_拒否_ — 自分の依頼は自分で承認できません" in text_of(bot.command("audit prod 3", user=BOB))

    (denied,) = [r for r in exported_audit(bot.settings) if r["action"] == "deploy.approval_denied"]
    assert denied["detail"] == "You asked for this one, so someone else has to approve it."
    assert denied["detail_msg"] == {"key": "err.self_approval", "fields": {}}
    with bot.svc.sessions.begin() as s:  # what readers are shown is as tamper-evident as the rest
        s.execute(
            update(AuditEvent).where(AuditEvent.seq == denied["seq"]).values(detail_msg={"key": "err.gone"})
        )
    assert not audit.verify(bot.svc.engine).ok
