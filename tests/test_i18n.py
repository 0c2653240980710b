"""Japanese and English: one catalogue, every key in both, replies in each reader's language."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.core import audit
from bot.core.blocks import Action
from bot.core.i18n import (
    CATALOGUE_OF,
    LANGS,
    MESSAGES,
    CatalogueError,
    catalogue_files,
    load_catalogues,
    read_catalogue,
    t,
)
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


# Texts a YAML reader misreads when they are written carelessly, exactly as the bot must show them
# (the split was checked byte for byte against the dict it replaced; these keep the cases in view).
TRICKY = {
    ("shell.help", "en"): "Type a slash command as you would in Slack:   /taisun help\n"
    "  /as bob          act as another person (listed below)\n"
    "  /click N         click button [N] (or just type N)\n"
    "  /submit k=v ...  submit the open form, e.g. /submit env=production version=v1.2.3\n"
    "  /lang en|ja      your Slack language: replies to you and these lines follow it\n"
    "  /wait            wait until running jobs settle\n"
    "  /quit            leave (Ctrl-D works too)\n"
    "Write @bob wherever Slack would mention a person, e.g. /taisun incident assign commander @bob",
    ("rb.list.invalid", "en"): ":warning: *Invalid runbook files (not runnable):*\n```{problems}```",
    (
        "lock.locked",
        "ja",
    ): "🔒 {user} が *{env}* をロックしました: {reason}\n`/taisun unlock {env}` まではデプロイも"
    "変更もできません。{minutes} 分後に期限が切れます（その前にお知らせします）。",
    (
        "inc.reply.env_assumed",
        "ja",
    ): "\n`--env` の指定がないため *{env}* としました（チェックとアクションはそこで実行"
    "されます）。別の環境なら `--env {other}` を付けて宣言してください。",
    ("alert.head_firing", "ja"): "{icon} *{name}* — *{firing} 件発火中* · 解決 {resolved} 件{severity}",
    ("card.yes", "en"): "Yes",
    ("alert.text", "en"): "{name}: {firing} firing, {resolved} resolved",
    ("inc.pm.summary", "en"): "## Summary",
    ("inc.ev.channel", "ja"): "チャンネル #{name} を作成し、対応者 {n} 人を招待",
    ("err.locked", "en"): "*{env}* is locked by {holder} since {since}{why}. {release}",
    ("err.flag_value", "en"): '`{flag}` needs a value, e.g. `{flag} "hotfix for INC-12"`.',
    ("err.did_you_mean", "en"): " Did you mean `{what}`?",
    ("help.no_role", "ja"): " _（権限がありません）_",
    ("list.sep", "en"): "; ",
    ("unit.under_1m", "en"): "<1m",
}


@pytest.mark.parametrize(("key", "lang"), sorted(TRICKY))
def test_multi_line_and_yaml_like_texts_read_back_exactly(key, lang):
    """Lines and their indents, a leading newline, `:emoji:`, `*`, `{field}`, `#` or space, yes, `: `."""
    assert MESSAGES[key][lang] == TRICKY[(key, lang)]


BOT = resources.files("bot")
FILES = catalogue_files(BOT)


def test_every_catalogue_file_parses_with_its_language_as_its_root():
    assert {package for package, _, _ in FILES} == {
        "core", "slack", "deploys", "operations", "incidents", "alerts", "audit", "security", "observability"
    }  # fmt: skip
    for package, lang, file in FILES:
        assert lang in LANGS, file
        assert read_catalogue(file.read_text(encoding="utf-8"), lang, f"{package}/{file.name}"), file


def test_each_capability_has_every_key_in_japanese_and_english_with_the_same_fields():
    texts: dict[str, dict[str, dict[str, str]]] = {}
    for package, lang, file in FILES:
        texts.setdefault(package, {})[lang] = read_catalogue(file.read_text(encoding="utf-8"), lang)
    for package, by_lang in texts.items():
        assert set(by_lang) == set(LANGS), package
        ja, en = by_lang["ja"], by_lang["en"]
        assert set(ja) == set(en), (package, sorted(set(ja) ^ set(en)))
        for key in en:
            assert en[key].strip() and ja[key].strip(), (package, key)  # an empty text shows English
            fields = {lang: set(re.findall(r"{(\w+)}", by_lang[lang][key])) for lang in LANGS}
            assert fields["ja"] - fields["en"] <= {"where_ja"} and fields["en"] - fields["ja"] <= {"where"}, (
                key
            )
    assert sum(len(by_lang["en"]) for by_lang in texts.values()) == len(MESSAGES)  # no key in two


def test_keys_keep_their_dotted_names_and_land_with_the_capability_that_shows_them():
    assert CATALOGUE_OF["op.deploy.freeze"] == "deploys"
    assert (
        CATALOGUE_OF["err.locked"] == CATALOGUE_OF["err.locked.release_job"] == "core"
    )  # both a text and a prefix
    assert CATALOGUE_OF["inc.pm.summary"] == "incidents" and CATALOGUE_OF["alert.head_firing"] == "alerts"
    assert CATALOGUE_OF["home.recent"] == "slack" and CATALOGUE_OF["audit.anchor.text"] == "audit"
    assert CATALOGUE_OF["op.cache.result"] == "operations" and CATALOGUE_OF["state.running"] == "core"


def _catalogues(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "bot"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {"core/locales/en.yml": "en:\n  a:\n    b: x\n", "deploys/locales/en.yml": "en:\n  a.b: y\n"},
            "a.b is defined in two catalogues: bot/core/locales and bot/deploys/locales",
        ),
        ({"core/locales/en.yml": "en:\n  a: x\n  a: y\n"}, "line 3: 'a' is written twice"),
        ({"core/locales/en.yml": "en:\n  a:\n    b: x\n  a.b: y\n"}, "a.b is written twice"),
        ({"core/locales/ja.yml": "en:\n  a: x\n"}, "the root must be `ja:` alone, the file's language"),
        ({"core/locales/en.yml": "en:\n  a: x\nja:\n  a: y\n"}, "the root must be `en:` alone"),
        ({"core/locales/en.yml": "en:\n  card:\n    yes: Yes\n"}, "the key True under card is not text"),
        ({"core/locales/en.yml": "en:\n  answer: yes\n"}, "answer is True, not text: quote it"),
        ({"core/locales/en.yml": "en:\n  a: [x]\n"}, "a is ['x'], not text"),
        ({"core/locales/en.yml": "en: [x]\n"}, "en should hold keys"),
        (
            {"core/locales/en.yml": "en:\n  a: 'x\n"},
            "bot/core/locales/en.yml: while scanning a quoted scalar",
        ),
        ({"core/locales/en.yml": "en: {}\n", "core/locales/ja.yml": "ja:\n  a: x\n"}, "no en text for a"),
        ({"core/locales/fr.yml": "fr:\n  a: x\n"}, "fr.yml: not <language>.yml for a language of LANGS"),
        ({"core/locales/en.yaml": "en:\n  a: x\n"}, "en.yaml: not <language>.yml"),
    ],
)
def test_a_catalogue_the_bot_cannot_use_stops_it_with_the_file_and_key_named(tmp_path, files, error):
    with pytest.raises(CatalogueError) as e:
        load_catalogues(_catalogues(tmp_path, files))
    assert error in str(e.value)


def test_nested_and_dotted_keys_merge_into_the_names_the_code_uses(tmp_path):
    root = _catalogues(
        tmp_path,
        {
            "core/locales/en.yml": "en:\n  err:\n    locked: L\n    locked.release_job: R\n",
            "core/locales/ja.yml": "ja:\n  err:\n    locked: ロック\n",  # no ja for one key: t() shows English
            "deploys/locales/en.yml": "en:\n  op.deploy:\n    freeze: F\n",
            "deploys/locales/ja.yml": "ja:\n",  # a language with nothing yet
            "deploys/README.txt": "not a catalogue",
        },
    )
    messages, origin = load_catalogues(root)
    assert messages == {
        "err.locked": {"en": "L", "ja": "ロック"},
        "err.locked.release_job": {"en": "R"},
        "op.deploy.freeze": {"en": "F"},
    }
    assert origin == {"err.locked": "core", "err.locked.release_job": "core", "op.deploy.freeze": "deploys"}


def test_a_key_in_two_catalogues_stops_the_bot_at_import(tmp_path):
    """Seen from outside: `import bot.core.i18n` (so `taisun serve`) fails and names both files."""
    shutil.copytree(
        Path(__file__).parent.parent / "bot", tmp_path / "bot", ignore=shutil.ignore_patterns("__pycache__")
    )
    with (tmp_path / "bot" / "deploys" / "locales" / "en.yml").open("a", encoding="utf-8") as f:
        f.write("  state:\n    running: Running twice\n")
    run = subprocess.run(
        [sys.executable, "-c", "import bot.core.i18n"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert (
        "CatalogueError: state.running is defined in two catalogues: bot/core/locales and bot/deploys/locales"
        in run.stderr
    )


# Keys are named in t("..."), t_plain, msg, a local `tr`, and key=... of the bot's typed errors; an
# f-string names the fixed start of a family (f"state.{state}").
KEY_CALLS = {"t", "t_plain", "msg", "tr"}


def _named_keys() -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
    literal, prefixes = [], []
    root = Path(__file__).parent.parent
    for path in sorted([*(root / "bot").rglob("*.py"), *(root / "handlers").rglob("*.py")]):
        where = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            args: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                args += node.args[:1] if name in KEY_CALLS else []
                args += [k.value for k in node.keywords if k.arg == "key"]
            for arg in args:
                for value in [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        literal.append((where, value.lineno, value.value))
                    elif isinstance(value, ast.JoinedStr) and isinstance(value.values[0], ast.Constant):
                        prefixes.append((where, value.lineno, str(value.values[0].value)))
    return literal, prefixes


def test_every_key_the_code_names_is_in_the_catalogues():
    """A key used in code but missing from the catalogues fails here (and wherever a test shows it:
    tests/conftest.py fails a test whose bot looked up a missing key)."""
    literal, prefixes = _named_keys()
    assert len(literal) > 600 and len(prefixes) > 20  # the scan sees the code's keys
    missing = [(w, n, k) for w, n, k in literal if "." in k and k not in MESSAGES]
    assert not missing, missing
    families = [(w, n, p) for w, n, p in prefixes if "." in p and not any(k.startswith(p) for k in MESSAGES)]
    assert not families, families


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
