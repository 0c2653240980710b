"""One catalogue of user-facing strings in Japanese and English, and who reads which.

Sentences are whole templates with named fields — never built by concatenating
fragments — so each language can order its words its own way. Channel messages
(cards that many people read) use the workspace language from the config; replies
to one person use that person's Slack locale when it is known.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LANGS = ("ja", "en")

MESSAGES: dict[str, dict[str, str]] = {
    # job states, as the card shows them
    "state.validating": {"en": "Checking", "ja": "確認中"},
    "state.pending_approval": {"en": "Waiting for approval", "ja": "承認待ち"},
    "state.queued": {"en": "Queued", "ja": "実行待ち"},
    "state.running": {"en": "Running", "ja": "実行中"},
    "state.succeeded": {"en": "Succeeded", "ja": "成功"},
    "state.failed": {"en": "Failed", "ja": "失敗"},
    "state.rejected": {"en": "Rejected", "ja": "却下"},
    "state.expired": {"en": "Expired", "ja": "期限切れ"},
    "state.cancelled": {"en": "Cancelled", "ja": "キャンセル"},
    "state.invalid": {"en": "Refused (invalid request)", "ja": "拒否（不正なリクエスト）"},
    "state.refused": {"en": "Refused (environment locked)", "ja": "拒否（環境がロック中）"},
    # the job card
    "card.requested_by": {"en": "requested by {user}", "ja": "依頼: {user}"},
    "card.approved_by": {"en": "approved by {user}", "ja": "承認: {user}"},
    "card.at": {"en": "at {time}", "ja": "{time}"},
    "card.dry_run": {"en": "DRY RUN", "ja": "ドライラン"},
    "card.why": {"en": "*Why:* {reason}", "ja": "*理由:* {reason}"},
    "card.approve": {"en": "Approve", "ja": "承認"},
    "card.reject": {"en": "Reject", "ja": "却下"},
    "card.rollback": {"en": "Roll back", "ja": "ロールバック"},
    "card.confirm_approve_title": {"en": "Approve this?", "ja": "承認しますか？"},
    "card.confirm_approve_text": {"en": "{what} will start as soon as you approve.", "ja": "承認するとすぐに「{what}」が始まります。"},
    "card.confirm_rollback_title": {"en": "Roll back?", "ja": "ロールバックしますか？"},
    "card.confirm_rollback_text": {
        "en": "Roll {env} back to the previous verified version.",
        "ja": "{env} を直前の検証済みバージョンに戻します。",
    },
    "card.cancel": {"en": "Cancel", "ja": "キャンセル"},
    "card.expires": {"en": "Expires {time}", "ja": "有効期限 {time}"},
    "card.other_approver": {
        "en": "someone other than the requester must approve",
        "ja": "依頼者以外の承認者が承認してください",
    },
    "card.running_for": {"en": "running for {elapsed} · job `{job}`", "ja": "経過 {elapsed} · ジョブ `{job}`"},
    "card.took": {"en": "took {elapsed} · job `{job}`", "ja": "所要 {elapsed} · ジョブ `{job}`"},
    # replies
    "reply.checking": {
        "en": "🔎 Checking {what}… job `{job}`. The card will appear in this channel.",
        "ja": "🔎 「{what}」を確認しています… ジョブ `{job}`。カードがこのチャンネルに表示されます。",
    },
    "reply.checking_dry": {
        "en": "🔎 Checking {what} (dry run: nothing will change)… job `{job}`.",
        "ja": "🔎 「{what}」を確認しています（ドライラン: 何も変更しません）… ジョブ `{job}`。",
    },
    "reply.status_checking": {"en": "Checking {envs}…", "ja": "{envs} を確認しています…"},
    "reply.rate_limited": {
        "en": "That is more than {limit} commands a minute. Try again in {wait} s.",
        "ja": "1 分間に {limit} 回を超えるコマンドです。{wait} 秒後にもう一度どうぞ。",
    },
    "reply.db_down": {
        "en": "I cannot reach my database, so I could not record this and nothing was run. Try again in a minute.",
        "ja": "データベースに接続できないため記録できず、何も実行していません。1 分ほどしてから再実行してください。",
    },
    "reply.unavailable": {
        "en": "`{name}` is not available in this version of the bot.",
        "ja": "`{name}` はこのバージョンのボットでは使えません。",
    },
    # refusals
    "err.not_allowed": {
        "en": "You need the *{role}* role{where} to {action}. Ask someone listed in `{config}` of the bot's config.",
        "ja": "この操作（{action}）には{where_ja}*{role}* ロールが必要です。ボット設定の `{config}` に載っている人に依頼してください。",
    },
    "err.self_approval": {
        "en": "You asked for this one, so someone else has to approve it.",
        "ja": "自分の依頼は自分で承認できません。別の承認者に依頼してください。",
    },
    "err.expired": {
        "en": "This request has expired. Ask again with the same command.",
        "ja": "この依頼は期限切れです。同じコマンドでもう一度依頼してください。",
    },
    "err.gone": {"en": "That request no longer exists.", "ja": "その依頼はもう存在しません。"},
    "err.locked": {
        "en": "*{env}* is locked by {holder} since {since}{why}. {release}",
        "ja": "*{env}* は {since} から {holder} がロックしています{why}。{release}",
    },
    "err.locked.release_job": {"en": "It is released when the job finishes.", "ja": "ジョブが終わると解除されます。"},
    "err.locked.release_holder": {
        "en": "The holder can release it with `/taisun unlock {env}`.",
        "ja": "ロックした人が `/taisun unlock {env}` で解除できます。",
    },
    "err.locked.release_fixed": {
        "en": "Once it is fixed, release it with `/taisun unlock {env}`.",
        "ja": "修正が済んだら `/taisun unlock {env}` で解除してください。",
    },
    "err.unknown_command": {
        "en": "Unknown command `{word}`.{hint} Type `/taisun help` for the list.",
        "ja": "`{word}` というコマンドはありません。{hint} 一覧は `/taisun help` で確認できます。",
    },
    "err.did_you_mean": {"en": " Did you mean `{what}`?", "ja": "もしかして `{what}` ですか？"},
    "err.unknown_env": {
        "en": "Unknown environment `{word}`.{hint} Environments: {envs}",
        "ja": "`{word}` という環境はありません。{hint} 環境: {envs}",
    },
    "err.which_env": {"en": "Which environment? Usage: `/taisun {usage}` ({envs})", "ja": "どの環境ですか？ 使い方: `/taisun {usage}`（{envs}）"},
    "err.not_a_tag": {
        "en": "`{version}` is not a release tag. Versions look like `v1.2.3` (or `v1.2.3-rc.1`).",
        "ja": "`{version}` はリリースタグではありません。`v1.2.3`（または `v1.2.3-rc.1`）の形式で指定してください。",
    },
    # help
    "help.title": {"en": "*TAISUN ChatOps* — commands", "ja": "*TAISUN ChatOps* — コマンド一覧"},
    "help.no_role": {"en": " _(you lack the role)_", "ja": " _（権限がありません）_"},
    "help.aliases": {"en": "Environment aliases: prod / stg / dev", "ja": "環境名の別名: prod / stg / dev"},
    # status
    "status.title": {"en": "*Environment status*", "ja": "*環境ステータス*"},
    "status.line": {"en": "health: {health} · version: `{version}`", "ja": "ヘルス: {health} · バージョン: `{version}`"},
    "status.last_deploy": {"en": "last deploy: {what}", "ja": "最終デプロイ: {what}"},
    "status.checked": {"en": "Checked {time}", "ja": "確認時刻 {time}"},
    # audit
    "audit.title": {"en": "*Audit log*", "ja": "*監査ログ*"},
    "audit.empty": {"en": "No entries yet.", "ja": "まだ記録はありません。"},
    "audit.footer": {
        "en": "{n} newest first · `taisun audit verify` checks the chain",
        "ja": "新しい順に {n} 件 · `taisun audit verify` で改ざんを検査できます",
    },
}


def user_message(e: BaseException, lang: str) -> str:
    """An exception's text for its reader: localized when it carries a catalogue key."""
    if hasattr(e, "message") and callable(e.message):
        return str(e.message(lang))
    key = getattr(e, "key", None)
    if key:
        return t(key, lang, **getattr(e, "fields", {}))
    return str(e)


def t(key: str, lang: str = "en", **fields: Any) -> str:
    """The message in `lang` (falling back to English), with its named fields filled in."""
    entry = MESSAGES.get(key)
    if entry is None:
        log.warning("missing message key", extra={"key": key})
        return key
    template = entry.get(lang) or entry["en"]
    try:
        return template.format(**fields)
    except (KeyError, IndexError):
        log.warning("message fields missing", extra={"key": key})
        return template


def lang_of_locale(locale: str | None, default: str) -> str:
    """Slack locales look like ja-JP or en-US."""
    if not locale:
        return default
    code = locale.split("-")[0].lower()
    return code if code in LANGS else "en"


class UserLanguages:
    """Each user's language from their Slack locale, cached; never looked up on the ack path.

    The first reply to someone uses the workspace language while their locale is fetched
    in the background; later replies use it.
    """

    def __init__(self, fetch_locale: Callable[[str], str | None], default: str, use_locale: bool, ttl: float = 86400.0):
        self._fetch = fetch_locale
        self.default = default
        self.use_locale = use_locale
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str]] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def get(self, user_id: str, schedule: Callable[[Callable[[], None]], None] | None = None) -> str:
        if not self.use_locale or not user_id:
            return self.default
        with self._lock:
            hit = self._cache.get(user_id)
            if hit and time.monotonic() - hit[0] < self._ttl:
                return hit[1]
            start = user_id not in self._pending
            self._pending.add(user_id)
        if start:
            if schedule is None:
                self._load(user_id)
                return self.get(user_id)
            schedule(lambda: self._load(user_id))
        return hit[1] if hit else self.default

    def _load(self, user_id: str) -> None:
        try:
            locale = self._fetch(user_id)
        except Exception as e:
            log.info("could not read a user's locale", extra={"error": repr(e)})
            locale = None
        with self._lock:
            self._pending.discard(user_id)
            self._cache[user_id] = (time.monotonic(), lang_of_locale(locale, self.default))
