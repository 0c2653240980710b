"""A Japanese team sees Japanese: every text the bot shows in a whole working day, checked for English.

The scenario drives every operation (simulated where a backend is not configured, as on a
first install), an incident from declaration to postmortem, a runbook drill, and the App Home,
all in a Japanese workspace whose members have Japanese Slack locales. Everything the bot
showed — channel messages and every earlier version of them, ephemeral replies, command
answers, modals, Home tabs — is then searched for English prose. Commands, identifiers, URLs
and mentions are not prose: code spans, links and names are taken out first.
"""

from __future__ import annotations

import html
import re
import socket
from typing import Any

import pytest

from bot.core.blocks import Action
from bot.slack import signing
from tests.chatops_helpers import fast, header_of, incident, replies, settle
from tests.harness import ALICE, BOB, CAROL, MALLORY, buttons, last_card

DAVE = "U0DAVE"  # new on the team: the bot has never heard of him

# Words that are names, not English: products, units of the guide, identifiers shown bare.
NAMES = {
    "taisun",
    "chatops",
    "github",
    "actions",
    "slack",
    "redis",
    "postgresql",
    "aws",
    "s3",
    "ssm",
    "production",
    "staging",
    "development",
    "prod",
    "stg",
    "dev",
    "sev1",
    "sev2",
    "sev3",
    "sev4",
    "inc",
    "api",
    "gzip",
    "pg_dump",
    "sha256",
    "flushdb",
    "flushall",
    "unlink",
    "scan",
    "url",
    "health",
    "version",
    "get",
    "post",
    "http",
    "ok",
    "systemctl",
    "taisun-api",
    "cd",
    "yml",
    "p99",
    "latency",
    "grafana",
    "dry",
    "run",
}
PROSE = re.compile(r"\b[A-Za-z][a-z']+(?:[ ,]+[A-Za-z][a-z']+){1,}\b")


def _strip(text: str) -> str:
    """Take out what is not prose: code, links and mentions, URLs, user-typed quotes."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"「[^」]*」|“[^”]*”|\"[^\"]*\"", " ", text)
    return text


def english_prose(text: str, typed: set[str]) -> list[str]:
    text = _strip(text)
    for phrase in typed:  # what the users typed comes back verbatim, as it should
        text = text.replace(phrase, " ")
    found = []
    for m in PROSE.finditer(text):
        words = [w for w in re.split(r"[ ,]+", m.group(0).lower()) if w not in NAMES]
        if len(words) >= 2:
            found.append(m.group(0))
    return found


PLACEHOLDER = re.compile(r"<([^<>!@#]*)>|\"([^\"]*)\"")
LABEL = re.compile(r"(?:^|\s)_([A-Za-z][A-Za-z-]+)_(?=\s|$|[、。:）)])|\[([A-Za-z][A-Za-z-]+)\]")


def english_placeholders(text: str) -> list[str]:
    """Example text inside a command to copy (`incident status <what we know>`) is prose too."""
    found = []
    for code in re.findall(r"`([^`\n]*)`", html.unescape(text)):
        for groups in PLACEHOLDER.findall(code):
            words = [w for w in re.findall(r"[A-Za-z][a-z']+", "".join(groups)) if w.lower() not in NAMES]
            if len(words) >= 2:
                found.append(code)
    return found


def english_labels(text: str) -> list[str]:
    """One-word English labels: a button or title of one word (`Cancel`), `_runbook_`, `[manual]`."""
    stripped = _strip(text)
    words = [a or b for a, b in LABEL.findall(stripped)]
    if re.fullmatch(r"\s*[A-Za-z][a-z]+\s*", stripped):
        words.append(stripped.strip())
    return [w for w in words if w.lower() not in NAMES]


def _texts(obj: Any) -> list[str]:
    """Every "text"/"title"/"placeholder" string in a message, a block list or a view."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str) and k in ("text", "title", "placeholder", "label", "value", "alt_text"):
                if k != "value" or not v.startswith(("{", "[")):
                    out.append(v)
            else:
                out += _texts(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _texts(v)
    return out


def _with_a_staging_freeze(cfg: dict[str, Any]) -> None:
    """Staging inside a freeze window for the whole week (its name typed in Japanese); development down."""
    cfg["defaults"]["commands_per_minute"] = 200  # a whole day in a few seconds
    cfg["environments"]["development"]["url"] = f"http://127.0.0.1:{_closed_port()}"  # connection refused
    cfg["environments"]["staging"]["freeze_windows"] = [
        {
            "name": "リリース凍結",
            "start": {"day": "mon", "time": "00:00"},
            "end": {"day": "sun", "time": "23:59"},
        }
    ]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def _open_home(bot, user: str, n: int = 0) -> None:  # type: ignore[no-untyped-def]
    body, ctype = signing.event_callback(
        {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"},
        event_id=f"Ev-home-{user}-leaks-{n}",
    )
    assert bot.post(body, ctype)[0] == 200


def _a_day_of_work(db_url, make_bot, slack, lang: str):  # type: ignore[no-untyped-def]
    """Everyone in `lang` (workspace and Slack locales); returns the bot, the answers and all shown."""
    locale = {"ja": "ja-JP", "en": "en-US"}[lang]
    for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")):
        slack.add_user(user, name, locale=locale)

    def config(cfg: dict[str, Any]) -> None:
        _with_a_staging_freeze(cfg)
        cfg["language"] = lang

    bot = fast(make_bot(db_url, config_mutate=config))
    answers: list[dict[str, Any]] = []

    def say(text: str, user: str = ALICE) -> dict[str, Any]:
        answer = bot.command(text, user=user)
        answers.append(answer)
        return answer

    _open_home(bot, DAVE)  # the first thing dave ever does: his Home tab, drawn in his language
    for user in (ALICE, BOB, CAROL):
        say("help", user)  # everyone's first answer, before the bot has heard of them

    # Typing mistakes and refusals: each says what was wrong and what to type.
    for mistake in (
        "deploy prod",
        "deploy prod 1.2",
        "restart stg nosuch",
        "cache-clear stg foo",
        "audit 500",
        "jobs foo",
        'incident declare sev9 "x"',
        "incident declare sev2",
        "incident frobnicate",
        "backup frob",
        "runbook run",
        "deploy prod v1.2.3 --fast",
        "unlock prod extra words",
        "lokc prod",
    ):
        say(mistake)
    say("deploy prod v1.2.3", MALLORY)
    say("jobs cancel 0000", BOB)

    say("deploy")  # the form, with the release tags (none here: no GitHub)
    say("incident declare")  # the form
    say("status")
    say("deploy stg v1.2.3")  # refused: staging is frozen
    say('deploy stg v1.2.3 --force "決済の緊急修正"', BOB)  # break-glass: needs approval, flagged
    settle(bot)
    card = last_card(slack)
    bot.click(Action.APPROVE, buttons(card)[Action.APPROVE], CAROL, card)
    settle(bot)
    say("deploy prod v1.2.3")
    settle(bot)
    bot.click(Action.APPROVE, buttons(last_card(slack))[Action.APPROVE], ALICE, last_card(slack))  # her own
    settle(bot)  # a card's click is acked first and decided after: as a person would, wait for it
    say("audit prod 3")  # the refusal, as the audit log shows it
    bot.click(Action.APPROVE, buttons(last_card(slack))[Action.APPROVE], BOB, last_card(slack))
    settle(bot)
    say("rollback prod v1.2.2")
    settle(bot)
    card = last_card(slack)
    if Action.APPROVE in buttons(card):
        bot.click(Action.APPROVE, buttons(card)[Action.APPROVE], BOB, card)
        settle(bot)
    say("status prod")
    say("deploy prod v1.2.3")  # refused: the rollback left production locked
    say("unlock prod", CAROL)
    say("restart stg")
    say("cache-clear stg")
    say("backup run")
    settle(bot)
    say("backup list")
    say("runbook list")
    say("runbook run db-connection-reset stg --drill")
    say("lock stg 負荷試験中", BOB)
    say("lock stg 別件", CAROL)  # refused, with the take-over button for an approver
    say("unlock stg", ALICE)  # not theirs
    say("audit prod 10")
    say("jobs")
    settle(bot)

    say('incident declare sev3 "決済 API の遅延"')
    settle(bot)
    say(f"incident assign commander <@{BOB}>")
    say('incident status "原因を調査中"', BOB)
    say("incident severity sev2", BOB)
    settle(bot)
    say("incident resolve", BOB)
    settle(bot)
    followups = next(
        m
        for m in replies(slack, header_of(slack, "INC-1"))
        if "フォローアップ" in m.text or "Follow-ups" in m.text
    )
    issue = next(b["accessory"] for b in followups.blocks if b.get("accessory"))
    bot.click(Action.INCIDENT_FOLLOWUP_ISSUE, issue["value"], ALICE, followups)  # no GITHUB_TOKEN: says so
    settle(bot)
    for user in (ALICE, BOB, DAVE):
        _open_home(bot, user, 1)
    settle(bot)
    header_of(slack, "INC-1")

    shown: list[tuple[str, str]] = []
    for m in slack.messages:
        for version in [*m.history, {"text": m.text, "blocks": m.blocks}]:
            shown += [(f"message in {m.channel}", t) for t in [version["text"], *_texts(version["blocks"])]]
    shown += [("command answer", t) for a in answers for t in _texts(a)]
    shown += [("modal", t) for v in slack.views.values() for t in _texts(v)]
    shown += [("home", t) for v in slack.home.values() for t in _texts(v)]
    shown.append(("postmortem draft", incident(bot, 1).postmortem))
    return bot, answers, shown


TYPED = {"決済 API の遅延", "原因を調査中", "負荷試験中", "別件", "決済の緊急修正", "リリース凍結"}


# What the day must show, in each language: refusals, the freeze override, the rollback's lock,
# names (not IDs) in the postmortem draft, the missing GitHub token, the deploy form.
DAY_SHOWS = {
    "ja": [
        "*operator* ロールが必要です",
        "フリーズ期間の強制実行: リリース凍結（月曜 00:00 〜 日曜 23:59",
        "v1.2.2 にロールバック済み — 修正してから再デプロイしてください",
        "マイルストーン「確認」（最初のコマンダー @bob）",
        "GITHUB_TOKEN が未設定のため",
        "バージョン（リリースタグ）",
        "ヘルス: 接続できません: 接続拒否または名前解決の失敗",  # status of an environment that is down
        "_拒否_ — 自分の依頼は自分で承認できません",  # a self-approval, as the audit log shows it
        "`/taisun incident status &lt;わかっていること&gt;`",
        "データベース接続リセット · _ランブック_",
        "キャンセル",  # the confirm dialogs' second button
    ],
    "en": [
        "You need the *operator* role",
        "FREEZE OVERRIDE: リリース凍結 (Monday 00:00 – Sunday 23:59",
        "to v1.2.2 — fix before deploying again",
        "Milestone acknowledged (first commander @bob)",
        "GITHUB_TOKEN is not set",
        "Version (release tag)",
        "health: unreachable: connection refused or DNS failure",
        "_refused_ — You asked for this one, so someone else has to approve it.",
        "`/taisun incident status &lt;what we know&gt;`",
        "Database connection reset · _runbook_",
        "Cancel",
    ],
}
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff01-\uff5e]+")


def other_language(text: str, lang: str) -> list[str]:
    """English prose in a Japanese day; any Japanese in an English one (what people typed aside)."""
    if lang == "ja":
        return english_prose(text, TYPED) + english_placeholders(text) + english_labels(text)
    for phrase in TYPED:
        text = text.replace(phrase, " ")
    return JAPANESE.findall(text)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_team_sees_only_its_own_language_in_a_whole_day_of_work(lang, db_url, make_bot, slack):
    """Japanese: no English prose. English: nothing falls back to the guide's Japanese."""
    bot, answers, shown = _a_day_of_work(db_url, make_bot, slack, lang)
    everything = "\n".join(text for _, text in shown)
    assert len(shown) > 100
    assert all(a["text"].startswith(":warning:") for a in answers[3:17]), [a["text"] for a in answers[3:17]]
    for expected in DAY_SHOWS[lang]:
        assert expected in everything, expected
    assert "@U0" not in incident(bot, 1).postmortem
    first_home = next(p["view"] for m, p in slack.calls if m == "views.publish" and p["user_id"] == DAVE)
    # dave's first tab, in his language
    assert {"ja": "*環境*", "en": "*Environments*"}[lang] in str(first_home)

    raw = [
        (where, text)
        for where, text in shown
        if re.search(r"&lt;(?:!date\^|@[UW][A-Z0-9]{2,}|#C[A-Z0-9]{2,})", text)
    ]
    assert not raw, raw[:3]  # the bot's own markup (a date, a mention) is rendered, never shown escaped

    leaks = [(where, text, other_language(text, lang)) for where, text in shown]
    leaks = [leak for leak in leaks if leak[2]]
    assert not leaks, "\n".join(f"{where}: {found} in {text[:200]!r}" for where, text, found in leaks)


def test_the_detector_finds_english_and_lets_names_and_code_through():
    assert english_prose("rolled back from v1 to v2 — fix before deploying again", set())
    assert english_prose("REDIS_URL is not set: Redis is not touched", set())
    assert english_prose("Take over", set()) and english_prose("ロック — expires soon", set())
    assert not english_prose("`/taisun unlock production` で解除してください", set())
    assert not english_prose("GitHub Actions の cd.yml を実行しました <https://x.y/a b c|run 12>", set())
    assert not english_prose("<@U0ALICE> が staging を v1.2.3 にデプロイ", set())
    assert english_placeholders("`/taisun incident status <what we know>` で更新できます")
    assert not english_placeholders(
        "`/taisun deploy <env> <version>` / `/taisun incident status <わかっていること>`"
    )
    assert english_labels("Cancel") and english_labels("`cache-clear` — キャッシュクリア · _runbook_")
    assert english_labels("  1. [manual] 接続プールを確認する") and not english_labels(
        "*operator* ロールが必要です"
    )
