"""One catalogue of user-facing strings in Japanese and English, and who reads which.

Sentences are whole templates with named fields — never built by concatenating
fragments — so each language can order its words its own way. Channel messages
(cards that many people read) use the workspace language from the config; replies
to one person use that person's Slack locale when it is known.

Templates are Slack mrkdwn the bot wrote; `t()` fills them escaping every field that is not
markup already (bot.core.mrkdwn), so what a person typed is shown, never parsed. `t_plain()`
gives the same text for a terminal, a document, GitHub or the audit log.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.core.mrkdwn import Mrkdwn, escape, fill, template_markup, to_plain

log = logging.getLogger(__name__)

LANGS = ("ja", "en")

MESSAGES: dict[str, dict[str, str]] = {
    # units and joins
    "unit.s": {"en": "{s}s", "ja": "{s}秒"},
    "unit.m_s": {"en": "{m}m {s}s", "ja": "{m}分{s}秒"},
    "unit.h_m": {"en": "{h}h {m}m", "ja": "{h}時間{m}分"},
    "unit.m": {"en": "{m}m", "ja": "{m}分"},
    "unit.d_h": {"en": "{d}d {h}h", "ja": "{d}日{h}時間"},
    "unit.days": {"en": "{d} days", "ja": "{d}日"},
    "unit.under_1m": {"en": "<1m", "ja": "1分未満"},
    "unit.n_s": {"en": "{n} s", "ja": "{n} 秒"},
    "unit.n_min": {"en": "{n} min", "ja": "{n} 分"},
    "list.sep": {"en": "; ", "ja": "、"},
    "unit.duration": {"en": "{seconds}s", "ja": "{seconds}秒"},  # rendered by render() as a duration
    # job states, as the card shows them
    "state.validating": {"en": "Checking", "ja": "確認中"},
    "state.pending_approval": {"en": "Waiting for approval", "ja": "承認待ち"},
    "state.queued": {"en": "Queued", "ja": "実行待ち"},
    "state.running": {"en": "Running", "ja": "実行中"},
    "state.succeeded": {"en": "Succeeded", "ja": "成功"},
    # A simulation or a dry run ran to its end and changed nothing: never called a success.
    "state.simulated": {
        "en": "Simulated — nothing was changed",
        "ja": "シミュレーション — 何も変更していません",
    },
    "state.simulated_dry_run": {
        "en": "Dry run — nothing was changed",
        "ja": "ドライラン — 何も変更していません",
    },
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
    # the Reject form (bot/slack/messages.py reject_modal)
    "card.reject_title": {"en": "Reject this?", "ja": "却下しますか？"},
    "card.reject_text": {
        "en": "Reject *{what}*, asked for by {user}? Nothing runs; your reason is shown on the card and kept in "
        "the audit log.",
        "ja": "{user} が依頼した *{what}* を却下しますか？ 何も実行されません。理由はカードに表示され、監査ログに残ります。",
    },
    "card.reject_reason": {"en": "Why?", "ja": "却下の理由"},
    "card.reject_reason_required": {
        "en": "Required for production changes and destructive operations: the requester and the audit log "
        "should learn why.",
        "ja": "本番環境への変更と破壊的な操作では必須です（依頼者と監査ログに理由を残すため）。",
    },
    "card.reject_reason_optional": {
        "en": "Optional, but it helps the requester.",
        "ja": "任意ですが、依頼者の助けになります。",
    },
    "err.reject_reason_required": {
        "en": "Say why you reject it: this request needs a reason (it is shown on the card and kept in the audit log).",
        "ja": "却下の理由を書いてください。この依頼の却下には理由が必要です（カードに表示され、監査ログに残ります）。",
    },
    "card.rollback": {"en": "Roll back", "ja": "ロールバック"},
    "card.confirm_approve_title": {"en": "Approve this?", "ja": "承認しますか？"},
    "card.confirm_approve_text": {
        "en": "{what} will start as soon as you approve.",
        "ja": "承認するとすぐに「{what}」が始まります。",
    },
    "card.confirm_rollback_title": {"en": "Roll back?", "ja": "ロールバックしますか？"},
    "card.confirm_rollback_text": {
        "en": "Roll {env} back to `{version}`. If {env} has been deployed again since this card, the bot refuses "
        "and points you to `/taisun rollback {env}`.",
        "ja": "{env} を `{version}` に戻します。このカードの後に {env} へ別のデプロイがあった場合は実行せず、"
        "`/taisun rollback {env}` をご案内します。",
    },
    "card.cancel": {"en": "Cancel", "ja": "キャンセル"},
    "card.yes": {"en": "Yes", "ja": "はい"},
    "card.expires": {"en": "Expires {time}", "ja": "有効期限 {time}"},
    "card.other_approver": {
        "en": "someone other than the requester must approve",
        "ja": "依頼者以外の承認者が承認してください",
    },
    "card.running_for": {
        "en": "running for {elapsed} · job `{job}`",
        "ja": "経過 {elapsed} · ジョブ `{job}`",
    },
    "card.took": {"en": "took {elapsed} · job `{job}`", "ja": "所要 {elapsed} · ジョブ `{job}`"},
    "card.left_locked": {
        "en": "🔒 This rollback left *{env}* locked so nothing deploys past it. Once it is fixed, {user} (who rolled "
        "back) or an admin can release it with `/taisun unlock {env}`.",
        "ja": "🔒 このロールバックにより *{env}* はロックされ、これ以上デプロイできません。修正が済んだら、ロールバックした "
        "{user} または admin が `/taisun unlock {env}` で解除できます。",
    },
    "card.job": {"en": "job `{job}`", "ja": "ジョブ `{job}`"},
    # replies
    "reply.checking": {
        "en": "🔎 Checking {what}… job `{job}`. If it checks out, I'll post its card in this channel; if not, "
        "I'll tell you why, here.",
        "ja": "🔎 「{what}」を確認しています… ジョブ `{job}`。問題がなければこのチャンネルにカードを投稿し、"
        "問題があればその理由をここでお知らせします。",
    },
    "reply.checking_form": {
        "en": "🔎 Checking {what}… job `{job}`. Its card, or why it was refused, will be posted in this channel.",
        "ja": "🔎 「{what}」を確認しています… ジョブ `{job}`。カード、または拒否した理由をこのチャンネルに投稿します。",
    },
    "reply.checking_form_dry": {
        "en": "🔎 Checking {what} (dry run: nothing will change)… job `{job}`. Its card, or why it was refused, "
        "will be posted in this channel.",
        "ja": "🔎 「{what}」を確認しています（ドライラン: 何も変更しません）… ジョブ `{job}`。カード、または拒否した"
        "理由をこのチャンネルに投稿します。",
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
    "err.not_allowed_external": {
        "en": "You need the *{role}* role{where} to {action}. `*` in `{config}` means members of this workspace, "
        "and you are signed in from another organisation: people from outside act only where `{config}` names "
        "their user ID (yours is `{user}`).",
        "ja": "この操作（{action}）には{where_ja}*{role}* ロールが必要です。`{config}` の `*` はこのワークスペースの"
        "メンバーだけを指し、あなたは別の組織のアカウントです。外部の人が操作できるのは、`{config}` にユーザー ID"
        "（あなたは `{user}`）が書かれている場合だけです。",
    },
    "err.not_allowed_team_unknown": {
        "en": "You need the *{role}* role{where} to {action}. `*` in `{config}` means members of this workspace, "
        "and this request did not say which workspace you belong to. Someone listed in `{config}` can add your "
        "user ID (`{user}`) there.",
        "ja": "この操作（{action}）には{where_ja}*{role}* ロールが必要です。`{config}` の `*` はこのワークスペースの"
        "メンバーだけを指しますが、このリクエストにはあなたの所属ワークスペースが含まれていませんでした。"
        "`{config}` に載っている人に、あなたのユーザー ID（`{user}`）を追加してもらってください。",
    },
    "err.not_allowed_home_unknown": {
        "en": "You need the *{role}* role{where} to {action}. `*` in `{config}` means members of this workspace, "
        "and the bot does not know yet which workspace it is installed in (Slack has not answered auth.test). "
        "Try again in a minute; an admin can name it as `slack.team_id` in the bot's config.",
        "ja": "この操作（{action}）には{where_ja}*{role}* ロールが必要です。`{config}` の `*` はこのワークスペースの"
        "メンバーだけを指しますが、ボットはまだ自分がどのワークスペースにインストールされているかを確認できていません"
        "（Slack の auth.test に応答がありません）。少し待ってから再度お試しください。管理者はボット設定の "
        "`slack.team_id` で指定できます。",
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
    "err.locked.release_job": {
        "en": "It is released when the job finishes.",
        "ja": "ジョブが終わると解除されます。",
    },
    "err.locked.release_holder": {
        "en": "The holder can release it with `/taisun unlock {env}`.",
        "ja": "ロックした人が `/taisun unlock {env}` で解除できます。",
    },
    "err.locked.release_fixed": {
        "en": "Once it is fixed, an admin can release it with `/taisun unlock {env}`.",
        "ja": "修正が済んだら admin が `/taisun unlock {env}` で解除できます。",
    },
    "err.locked.release_fixed_by": {
        "en": "Once it is fixed, {user} (who rolled back) or an admin can release it with `/taisun unlock {env}`.",
        "ja": "修正が済んだら、ロールバックした {user} または admin が `/taisun unlock {env}` で解除できます。",
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
    "err.which_env": {
        "en": "Which environment? Usage: `/taisun {usage}` ({envs})",
        "ja": "どの環境ですか？ 使い方: `/taisun {usage}`（{envs}）",
    },
    "err.flag_value": {
        "en": '`{flag}` needs a value, e.g. `{flag} "hotfix for INC-12"`.',
        "ja": '`{flag}` には値が必要です。例: `{flag} "INC-12 の緊急修正"`',
    },
    "err.unknown_option": {
        "en": "Unknown option `{token}`. Usage: `/taisun {usage}`",
        "ja": "`{token}` というオプションはありません。使い方: `/taisun {usage}`",
    },
    "err.unexpected": {
        "en": "Unexpected `{words}`. Usage: `/taisun {usage}`",
        "ja": "`{words}` は余分です。使い方: `/taisun {usage}`",
    },
    "err.too_long": {
        "en": "That command is {n} characters long; the limit is {limit}.",
        "ja": "コマンドが {n} 文字あります。上限は {limit} 文字です。",
    },
    "err.which_version": {
        "en": "Which version? Usage: `/taisun {usage}`, e.g. `/taisun deploy {env} v1.2.3`.",
        "ja": "どのバージョンですか？ 使い方: `/taisun {usage}`（例: `/taisun deploy {env} v1.2.3`）",
    },
    "err.no_services": {
        "en": "No services are configured for {env} (environments.{env}.services).",
        "ja": "{env} にはサービスが設定されていません（environments.{env}.services）。",
    },
    "err.unknown_service": {
        "en": "Unknown service `{service}` in {env}. Services: {services}",
        "ja": "{env} に `{service}` というサービスはありません。サービス: {services}",
    },
    "err.unknown_cache": {
        "en": "Unknown cache `{target}`. Choose `redis`, `app` or `all`.",
        "ja": "`{target}` というキャッシュはありません。`redis`、`app`、`all` のいずれかを指定してください。",
    },
    "err.which_backup": {
        "en": "Which backup? `/taisun backup list` shows them; then `/taisun backup restore <id>`.",
        "ja": "どのバックアップですか？ `/taisun backup list` で一覧を確認し、`/taisun backup restore <id>` を実行してください。",
    },
    "err.backup_action": {
        "en": "Unknown backup action `{action}`.{hint} Usage: `/taisun backup run`, `/taisun backup list` or "
        "`/taisun backup restore <id>`.",
        "ja": "`{action}` というバックアップ操作はありません。{hint} 使い方: `/taisun backup run`、`/taisun backup list`、"
        "`/taisun backup restore <id>`",
    },
    "err.audit_n": {
        "en": "Show between 1 and 100 entries, e.g. `/taisun audit production 20`.",
        "ja": "表示件数は 1〜100 で指定してください。例: `/taisun audit production 20`",
    },
    "err.jobs_usage": {
        "en": "Usage: `/taisun jobs` or `/taisun jobs cancel <id>`.",
        "ja": "使い方: `/taisun jobs` または `/taisun jobs cancel <id>`",
    },
    "err.unknown_severity": {
        "en": 'Unknown severity `{severity}`. Use one of {choices}: `/taisun incident declare sev2 "API p99 over 1s"`.',
        "ja": '`{severity}` という重大度はありません。{choices} のいずれかを指定してください: `/taisun incident declare sev2 "API の p99 が 1 秒超"`',
    },
    "err.incident_title": {
        "en": 'Give the incident a title: `/taisun incident declare sev2 "API p99 over 1s"`.',
        "ja": 'インシデントにタイトルを付けてください: `/taisun incident declare sev2 "API の p99 が 1 秒超"`',
    },
    "err.incident_action": {
        "en": "Unknown incident action `{action}`.{hint} Usage: `/taisun {usage}`",
        "ja": "`{action}` というインシデント操作はありません。{hint} 使い方: `/taisun {usage}`",
    },
    "err.which_runbook": {
        "en": "Which runbook? `/taisun runbook list` shows them.",
        "ja": "どのランブックですか？ `/taisun runbook list` で一覧を確認できます。",
    },
    "err.usage": {"en": "Usage: `/taisun {usage}`", "ja": "使い方: `/taisun {usage}`"},
    "err.not_a_tag": {
        "en": "`{version}` is not a release tag. Versions look like `v1.2.3` (or `v1.2.3-rc.1`).",
        "ja": "`{version}` はリリースタグではありません。`v1.2.3`（または `v1.2.3-rc.1`）の形式で指定してください。",
    },
    # help
    "help.title": {"en": "*TAISUN ChatOps* — commands", "ja": "*TAISUN ChatOps* — コマンド一覧"},
    "help.no_role": {"en": " _(you lack the role)_", "ja": " _（権限がありません）_"},
    "help.aliases": {"en": "Environment aliases: prod / stg / dev", "ja": "環境名の別名: prod / stg / dev"},
    "modal.deploy.title": {"en": "Deploy", "ja": "デプロイ"},
    "modal.deploy.submit": {"en": "Request deploy", "ja": "デプロイを依頼"},
    "modal.deploy.env": {"en": "Environment", "ja": "環境"},
    "modal.deploy.version": {"en": "Version (release tag)", "ja": "バージョン（リリースタグ）"},
    "modal.deploy.options": {"en": "Options", "ja": "オプション"},
    "modal.deploy.dry_run": {
        "en": "Dry run: show what would happen, change nothing",
        "ja": "ドライラン: 何が起きるかを表示するだけで、何も変更しない",
    },
    "modal.deploy.pick_env": {"en": "Pick an environment.", "ja": "環境を選んでください。"},
    "modal.deploy.bad_version": {
        "en": "“{text}” is not a release tag. Type one tag, like v1.2.3; for a dry run, tick “Dry run” below.",
        "ja": "「{text}」はリリースタグではありません。v1.2.3 のようにタグを 1 つだけ入力してください。"
        "ドライランは下の「ドライラン」にチェックを入れてください。",
    },
    "modal.deploy.loading": {"en": "Loading release tags…", "ja": "リリースタグを読み込んでいます…"},
    "modal.deploy.no_tags": {
        "en": "No release tags found; type one.",
        "ja": "リリースタグが見つかりません。入力してください。",
    },
    "modal.deploy.tags_failed": {
        "en": "Could not list tags from GitHub: {error}",
        "ja": "GitHub からタグの一覧を取得できません: {error}",
    },
    "help.text": {"en": "TAISUN ChatOps commands", "ja": "TAISUN ChatOps のコマンド一覧"},
    "help.mention_reply": {
        "en": "Type `/taisun help` to see what I can do.",
        "ja": "`/taisun help` と入力すると、できることの一覧が表示されます。",
    },
    # the local shell's own lines (taisun shell): plain text for a terminal, in the shell's language
    "shell.banner": {
        "en": "TAISUN ChatOps shell — config {config}, database {database}, log {log}",
        "ja": "TAISUN ChatOps シェル — 設定 {config}、データベース {database}、ログ {log}",
    },
    "shell.own_database": {
        "en": "The shell keeps its demo data in its own database; DATABASE_URL (the real bot's) is not used.",
        "ja": "シェルはデモのデータを専用のデータベースに保存します。実際のボット用の DATABASE_URL は使いません。",
    },
    "shell.you_are": {"en": "You are {name}.", "ja": "あなたは {name} です。"},
    "shell.simulated": {
        "en": "No credentials for {what}: those operations run as labelled simulations.",
        "ja": "{what} の認証情報がないため、それを使う操作はシミュレーションとして実行します（カードにそう表示されます）。",
    },
    "shell.type_help": {
        "en": "Type /taisun help, or /help for shell commands.",
        "ja": "/taisun help でボットのコマンド一覧、/help でシェルのコマンドを表示します。",
    },
    "shell.help": {
        "en": "Type a slash command as you would in Slack:   /taisun help\n"
        "  /as bob          act as another person (listed below)\n"
        "  /click N         click button [N] (or just type N)\n"
        "  /submit k=v ...  submit the open form, e.g. /submit env=production version=v1.2.3\n"
        "  /lang en|ja      your Slack language: replies to you and these lines follow it\n"
        "  /wait            wait until running jobs settle\n"
        "  /quit            leave (Ctrl-D works too)\n"
        "Write @bob wherever Slack would mention a person, e.g. /taisun incident assign commander @bob",
        "ja": "Slack と同じようにスラッシュコマンドを入力します:   /taisun help\n"
        "  /as bob          別の人として操作する（下の一覧を参照）\n"
        "  /click N         ボタン [N] をクリックする（数字だけでも可）\n"
        "  /submit k=v ...  開いているフォームを送信する（例: /submit env=production version=v1.2.3）\n"
        "  /lang en|ja      あなたの Slack の言語（あなたへの返信とこの表示がその言語になります）\n"
        "  /wait            実行中のジョブが落ち着くまで待つ\n"
        "  /quit            終了する（Ctrl-D でも終了します）\n"
        "人をメンションするところでは @bob のように書きます（例: /taisun incident assign commander @bob）",
    },
    "shell.people": {"en": "People (name, Slack ID, roles):", "ja": "登場人物（名前、Slack ID、ロール）:"},
    "shell.role_in_envs": {"en": "{role} (only in {envs})", "ja": "{role}（{envs} のみ）"},
    "shell.no_roles": {"en": "no role", "ja": "ロールなし"},
    "shell.you_are_now": {"en": "you are now {name}", "ja": "{name} として操作します"},
    "shell.unknown_person": {
        "en": "there is no {name} here; choose {names}",
        "ja": "{name} という人はいません。{names} から選んでください",
    },
    "shell.lang_set": {
        "en": "{name}'s Slack language is now {language}.",
        "ja": "{name} の Slack の言語を{language}にしました。",
    },
    "shell.lang.en": {"en": "English", "ja": "英語"},
    "shell.lang.ja": {"en": "Japanese", "ja": "日本語"},
    "shell.lang_ignored": {
        "en": "The config says use_user_locale: false, so the bot answers everyone in the workspace language ({current}).",
        "ja": "設定が use_user_locale: false のため、ボットは全員にワークスペースの言語（{current}）で答えます。",
    },
    "shell.lang_usage": {
        "en": "usage: /lang en or /lang ja (now: {current})",
        "ja": "使い方: /lang en または /lang ja（現在: {current}）",
    },
    "shell.no_button": {"en": "no button [{n}]", "ja": "ボタン [{n}] はありません"},
    "shell.click_usage": {"en": "usage: /click N", "ja": "使い方: /click N"},
    "shell.not_clicked": {"en": "not clicked", "ja": "クリックしませんでした"},
    "shell.confirmed": {"en": "({title} — confirmed)", "ja": "（{title} — 確認しました）"},
    "shell.clicks": {"en": "{name} clicks [{n}] {label}", "ja": "{name} が [{n}] {label} をクリック"},
    "shell.no_form": {"en": "no form is open", "ja": "開いているフォームはありません"},
    "shell.form_error": {
        "en": "form error in {field}: {error}",
        "ja": "フォームのエラー（{field}）: {error}",
    },
    "shell.form_submitted": {"en": "form submitted", "ja": "フォームを送信しました"},
    "shell.form_title": {"en": "form: {title}", "ja": "フォーム: {title}"},
    "shell.form_hint": {
        "en": "  — fill it with /submit key=value ...",
        "ja": "  — /submit key=value ... で入力します",
    },
    "shell.one_of": {"en": " (one of: {options})", "ja": "（選択肢: {options}）"},
    "shell.http_error": {
        "en": "Slack would show an error: HTTP {status}",
        "ja": "Slack ではエラーが表示されます: HTTP {status}",
    },
    "shell.not_a_command": {
        "en": "Commands start with /taisun (try /taisun help); /help lists shell commands.",
        "ja": "コマンドは /taisun で始めます（/taisun help を試してください）。/help でシェルのコマンドを表示します。",
    },
    "shell.only_you": {"en": "taisun (only you)", "ja": "taisun（あなただけに表示）"},
    "shell.only_other": {"en": "taisun → only {name}", "ja": "taisun → {name} だけに表示"},
    "shell.edited": {"en": " (edited)", "ja": "（編集済み）"},
    "shell.in_thread": {"en": " (in thread)", "ja": "（スレッド内）"},
    # what a role allows, as refusals name it ("You need the operator role to {action}")
    "act.run": {"en": "run {op}", "ja": "{op} の実行"},
    "act.approve": {"en": "approve {op}", "ja": "{op} の承認"},
    "act.reject": {"en": "reject this request", "ja": "この依頼の却下"},
    "act.cancel_other": {"en": "cancel someone else's job", "ja": "他の人のジョブのキャンセル"},
    "act.freeze_deploy": {"en": "deploy inside a freeze window", "ja": "フリーズ期間中のデプロイ"},
    "act.lock": {"en": "lock an environment", "ja": "環境のロック"},
    "act.unlock": {"en": "unlock an environment", "ja": "環境のロック解除"},
    "act.take_over": {"en": "take over a lock", "ja": "ロックの引き継ぎ"},
    "act.incident": {"en": "run incident commands", "ja": "インシデントのコマンド"},
    "act.declare": {"en": "declare an incident", "ja": "インシデントの宣言"},
    "act.do_that": {"en": "do that", "ja": "この操作"},
    "act.runbook": {"en": "run a runbook", "ja": "ランブックの実行"},
    "act.skip_step": {"en": "skip a step", "ja": "ステップのスキップ"},
    "act.run_step": {"en": "run a runbook step", "ja": "ランブックのステップの実行"},
    # days of the week (freeze windows)
    "day.mon": {"en": "Monday", "ja": "月曜"},
    "day.tue": {"en": "Tuesday", "ja": "火曜"},
    "day.wed": {"en": "Wednesday", "ja": "水曜"},
    "day.thu": {"en": "Thursday", "ja": "木曜"},
    "day.fri": {"en": "Friday", "ja": "金曜"},
    "day.sat": {"en": "Saturday", "ja": "土曜"},
    "day.sun": {"en": "Sunday", "ja": "日曜"},
    # a click on a card that has moved on
    "err.decided.queued": {
        "en": "Already approved; it is queued.",
        "ja": "承認済みです。実行を待っています。",
    },
    "err.decided.queued_by": {
        "en": "Already approved by {user}; it is queued.",
        "ja": "{user} が承認済みです。実行を待っています。",
    },
    "err.decided.running": {"en": "Already approved; it is running.", "ja": "承認済みです。実行中です。"},
    "err.decided.running_by": {
        "en": "Already approved by {user}; it is running.",
        "ja": "{user} が承認済みです。実行中です。",
    },
    "err.decided.succeeded": {"en": "Already done.", "ja": "完了しています。"},
    "err.decided.expired": {
        "en": "This request has expired. Ask again with the same command.",
        "ja": "この依頼は期限切れです。同じコマンドでもう一度依頼してください。",
    },
    "err.decided.rejected": {"en": "This request was rejected.", "ja": "この依頼は却下されました。"},
    "err.decided.cancelled": {"en": "This request was cancelled.", "ja": "この依頼はキャンセルされました。"},
    "err.decided.other": {
        "en": "This request is already decided ({state}).",
        "ja": "この依頼はすでに処理済みです（{state}）。",
    },
    "err.cancel_running": {
        "en": "That job is running right now on a live worker; it can be cancelled only if its worker dies.",
        "ja": "そのジョブは稼働中のワーカーで実行中です。キャンセルできるのはワーカーが停止した場合だけです。",
    },
    "err.audit_request": {
        "en": "I could not record this request in the audit log, so nothing was run. "
        "The bot's database may be down; try again in a minute.",
        "ja": "この依頼を監査ログに記録できなかったため、何も実行していません。"
        "ボットのデータベースが停止している可能性があります。1 分ほどしてから再実行してください。",
    },
    "err.audit_approval": {
        "en": "I could not record the approval, so nothing was started. Try again.",
        "ja": "承認を記録できなかったため、何も開始していません。もう一度お試しください。",
    },
    # job results stored on the job (the card shows them under "Why")
    "job.result.expired": {"en": "approval expired", "ja": "承認の期限切れ"},
    "job.result.cancelled_by": {"en": "cancelled by {user}", "ja": "{user} がキャンセル"},
    "job.result.rejected_by": {"en": "rejected by {user}", "ja": "{user} が却下"},
    "job.result.rejected_because": {"en": "rejected by {user}: {reason}", "ja": "{user} が却下: {reason}"},
    "job.result.internal_error": {
        "en": "The bot hit an internal error; see its logs. Nothing more was done.",
        "ja": "ボットの内部エラーです（詳細はログを参照）。これ以上は何も行っていません。",
    },
    "job.result.unknown_op": {
        "en": "This bot version does not know the operation `{op}`.",
        "ja": "このバージョンのボットは操作 `{op}` を知りません。",
    },
    "job.result.not_resumable": {
        "en": "The bot restarted while this was running. It is not safe to repeat automatically: "
        "check the environment, then ask again.",
        "ja": "実行中にボットが再起動しました。自動で繰り返すのは安全ではありません。環境を確認してから、もう一度依頼してください。",
    },
    "job.result.unexpected": {"en": "Unexpected error: {error}", "ja": "予期しないエラー: {error}"},
    # jobs
    "jobs.text": {"en": "Active jobs", "ja": "実行中のジョブ"},
    "jobs.title": {"en": "*Active jobs*", "ja": "*実行中のジョブ*"},
    "jobs.none": {"en": "No active jobs.", "ja": "実行中のジョブはありません。"},
    "jobs.line": {"en": "`{job}` {what} — {state} · {user}", "ja": "`{job}` {what} — {state} · {user}"},
    "jobs.line_stuck": {
        "en": "`{job}` {what} — {state} · {user} — *stuck: its worker stopped* (`/taisun jobs cancel {job}`)",
        "ja": "`{job}` {what} — {state} · {user} — *停止中: ワーカーが止まりました*（`/taisun jobs cancel {job}`）",
    },
    "jobs.no_single": {
        "en": "No single job starts with `{prefix}`. `/taisun jobs` lists them.",
        "ja": "`{prefix}` で始まるジョブが 1 つに絞れません。`/taisun jobs` で一覧を確認してください。",
    },
    "jobs.cancelled": {"en": "Cancelled job `{job}`.", "ja": "ジョブ `{job}` をキャンセルしました。"},
    # locks
    "lock.by_hand": {"en": "locked by hand", "ja": "手動でロック"},
    "lock.taken_from": {"en": "taken over from {user}", "ja": "{user} から引き継ぎ"},
    "lock.holder_job": {"en": "a running job `{job}`", "ja": "実行中のジョブ `{job}`"},
    "lock.holder_kept": {"en": "TAISUN (after {user}'s rollback)", "ja": "TAISUN（{user} のロールバック後）"},
    "lock.why": {"en": " — “{reason}”", "ja": "（理由:「{reason}」）"},
    "card.through_own_lock": {
        "en": "🔒 goes through {user}'s own lock on {env}{why}",
        "ja": "🔒 {user} 自身の {env} のロック{why}を通して実行",
    },
    "reply.through_own_lock": {
        "en": "🔒 You hold the lock on {env}, so this goes through your own lock (it stays held until you "
        "`/taisun unlock {env}`).",
        "ja": "🔒 {env} のロックはあなたが持っているため、あなた自身のロックを通して実行します（ロックは "
        "`/taisun unlock {env}` するまで保持されます）。",
    },
    "lock.describe": {
        "en": "*{env}* is locked by {holder} since {since}{why}",
        "ja": "*{env}* は {since} から {holder} がロック中{why}",
    },
    "lock.describe_until": {
        "en": "*{env}* is locked by {holder} since {since}{why}, expires {until}",
        "ja": "*{env}* は {since} から {holder} がロック中{why}、{until} に期限切れ",
    },
    "lock.locked_text": {"en": "🔒 {env} is locked: {reason}", "ja": "🔒 {env} をロックしました: {reason}"},
    "lock.locked": {
        "en": "🔒 *{env}* is locked by {user}: {reason}\nNo deploys or changes until `/taisun unlock {env}`. "
        "It expires in {minutes} minutes; you will be reminded before that.",
        "ja": "🔒 {user} が *{env}* をロックしました: {reason}\n`/taisun unlock {env}` まではデプロイも変更もできません。"
        "{minutes} 分後に期限が切れます（その前にお知らせします）。",
    },
    "lock.unlocked_text": {"en": "🔓 {env} is unlocked", "ja": "🔓 {env} のロックを解除しました"},
    "lock.unlocked": {
        "en": "🔓 *{env}* is unlocked by {user}.",
        "ja": "🔓 {user} が *{env}* のロックを解除しました。",
    },
    "lock.not_locked": {"en": "{env} is not locked.", "ja": "{env} はロックされていません。"},
    "lock.held_by_job": {
        "en": "{env} is held by a running job `{job}`; it is released when the job ends.",
        "ja": "{env} は実行中のジョブ `{job}` が保持しています。ジョブが終わると解除されます。",
    },
    "lock.not_yours": {
        "en": "{lock}. Only they or an admin can unlock it; an approver can take it over from the lock message.",
        "ja": "{lock}。解除できるのはロックした人か admin だけです。approver はロックのメッセージから引き継げます。",
    },
    "lock.not_yours_kept": {
        "en": "{lock}. A rollback left it so nothing deploys past it: only {user}, who rolled back, or an admin "
        "can unlock it.",
        "ja": "{lock}。ロールバック後に再デプロイを防ぐためのロックです。解除できるのはロールバックした {user} か "
        "admin だけです。",
    },
    "lock.not_yours_bot": {
        "en": "{lock}. Only an admin can unlock it.",
        "ja": "{lock}。解除できるのは admin だけです。",
    },
    "lock.takeover_button": {"en": "Take over the lock", "ja": "ロックを引き継ぐ"},
    "lock.takeover_title": {"en": "Take over?", "ja": "引き継ぎますか？"},
    "lock.takeover_text": {
        "en": "{user} will be told you took the lock on {env}.",
        "ja": "{env} のロックを引き継いだことを {user} に知らせます。",
    },
    "lock.takeover_yes": {"en": "Take over", "ja": "引き継ぐ"},
    "lock.env_gone": {
        "en": "That environment is no longer configured.",
        "ja": "その環境はもう設定にありません。",
    },
    "lock.job_holds_now": {
        "en": "A running job holds that lock now; it is released when the job ends.",
        "ja": "いまは実行中のジョブがそのロックを保持しています。ジョブが終わると解除されます。",
    },
    "lock.taken_dm": {
        "en": "{user} took over your lock on {env}.",
        "ja": "{user} が {env} のロックを引き継ぎました。",
    },
    "lock.reminder_dm": {
        "en": "⏰ Your lock on *{env}* (“{reason}”) expires at {until}. Lock it again with "
        "`/taisun lock {env} <reason>` if you still need it, or release it with `/taisun unlock {env}`.",
        "ja": "⏰ *{env}* のロック（理由:「{reason}」）は {until} に期限が切れます。まだ必要なら "
        "`/taisun lock {env} <理由>` でロックし直し、不要なら `/taisun unlock {env}` で解除してください。",
    },
    "lock.expired_notice": {
        "en": "🔓 The lock on *{env}* held by {user} (“{reason}”) expired.",
        "ja": "🔓 {user} による *{env}* のロック（理由:「{reason}」）は期限が切れて解除されました。",
    },
    "lock.you_hold": {
        "en": "🔒 You now hold the lock on {env}.",
        "ja": "🔒 {env} のロックを引き継ぎました。",
    },
    "reply.too_late": {
        "en": "I was too busy to answer within Slack's 3 seconds (your request waited {seconds} s), so I did "
        "nothing. Please send it again.",
        "ja": "混み合っていて Slack の 3 秒以内に応答できませんでした（{seconds} 秒待機）。何も実行していません。"
        "もう一度送ってください。",
    },
    "reply.too_late_work": {
        "en": "My database was too slow to record this within Slack's 3 seconds (it took {seconds} s), so I "
        "did nothing. Please send it again.",
        "ja": "データベースの応答が遅く、Slack の 3 秒以内に記録できませんでした（{seconds} 秒）。何も実行していません。"
        "もう一度送ってください。",
    },
    "reply.went_wrong": {
        "en": "Something went wrong: {error}. The details are in the bot's log.",
        "ja": "問題が発生しました: {error}。詳細はボットのログにあります。",
    },
    "reply.rolling_back": {
        "en": "Rolling back {env} to {target}… job `{job}`",
        "ja": "{env} を {target} にロールバックしています… ジョブ `{job}`",
    },
    "reply.rejected": {
        "en": "You rejected “{what}” (job `{job}`). Nothing was run; the card says so.",
        "ja": "「{what}」を却下しました（ジョブ `{job}`）。何も実行していません。カードにも表示しています。",
    },
    "reply.withdrawn": {
        "en": "You withdrew your request “{what}” (job `{job}`). Nothing was run; the card says so.",
        "ja": "依頼「{what}」を取り下げました（ジョブ `{job}`）。何も実行していません。カードにも表示しています。",
    },
    "err.rollback.not_offered": {
        "en": "This card no longer offers a rollback. Use `/taisun rollback <env>` to roll back.",
        "ja": "このカードのロールバックはもう使えません。`/taisun rollback <env>` でロールバックしてください。",
    },
    "err.rollback.auto_done": {
        "en": "{env} was already rolled back to `{target}` automatically when this deploy failed. To roll back "
        "again, use `/taisun rollback {env}`.",
        "ja": "このデプロイが失敗したときに {env} はすでに `{target}` へ自動でロールバックされています。さらに戻すには "
        "`/taisun rollback {env}` を使ってください。",
    },
    "err.rollback.moved_on": {
        "en": "{env} has moved on to {version} since this deploy (job `{job}`), so this button would undo newer "
        "releases and does nothing. Use `/taisun rollback {env}` (or `/taisun rollback {env} <version>`).",
        "ja": "このデプロイの後、{env} は {version} に進んでいます（ジョブ `{job}`）。このボタンは新しいリリースを"
        "戻してしまうため、何もしません。`/taisun rollback {env}`（または `/taisun rollback {env} <version>`）を使ってください。",
    },
    "err.rollback.newer_active": {
        "en": "A newer change to {env} ({version}, job `{job}`) is under way, so this button no longer applies "
        "and does nothing. Once it has finished, use `/taisun rollback {env}` if you still need to.",
        "ja": "{env} への新しい変更（{version}、ジョブ `{job}`）が進行中のため、このボタンはもう使えず、何もしません。"
        "終わった後も必要なら `/taisun rollback {env}` を使ってください。",
    },
    # status
    "status.title": {"en": "*Environment status*", "ja": "*環境ステータス*"},
    "status.text": {"en": "Environment status", "ja": "環境ステータス"},
    "status.head": {
        "en": "{icon} *{env}*  ·  branch `{branch}`  ·  {url}",
        "ja": "{icon} *{env}*  ·  ブランチ `{branch}`  ·  {url}",
    },
    "status.no_url": {"en": "no URL", "ja": "URL なし"},
    "status.deploy": {"en": "{version} by {user} {time}", "ja": "{version}（{user}、{time}）"},
    "status.line": {
        "en": "health: {health} · version: `{version}`",
        "ja": "ヘルス: {health} · バージョン: `{version}`",
    },
    "status.last_deploy": {"en": "last deploy: {what}", "ja": "最終デプロイ: {what}"},
    # what an environment's /health answered (status, Home, verification); the service's own words verbatim
    "health.ok": {"en": "ok ({status})", "ja": "正常（{status}）"},
    "health.http": {"en": "{status} {reason}", "ja": "異常（HTTP {status} {reason}）"},
    "health.unreachable": {"en": "unreachable: {why}", "ja": "接続できません: {why}"},
    "health.timed_out": {"en": "timed out", "ja": "タイムアウト"},
    "health.refused": {"en": "connection refused or DNS failure", "ja": "接続拒否または名前解決の失敗"},
    "health.no_url": {"en": "no URL configured", "ja": "URL が設定されていません"},
    "status.last_simulation": {
        "en": "🧪 last simulated deploy: {what} (nothing was changed)",
        "ja": "🧪 最後のシミュレーション: {what}（何も変更していません）",
    },
    "status.checked": {"en": "Checked {time}", "ja": "確認時刻 {time}"},
    # audit
    "audit.title": {"en": "*Audit log*", "ja": "*監査ログ*"},
    "audit.text": {"en": "Audit log", "ja": "監査ログ"},
    "audit.empty": {"en": "No entries yet.", "ja": "まだ記録はありません。"},
    # how each row ended, as the audit view and the Home tab show it
    "audit.outcome.ok": {"en": "ok", "ja": "完了"},
    "audit.outcome.error": {"en": "error", "ja": "エラー"},
    "audit.outcome.failed": {"en": "failed", "ja": "失敗"},
    "audit.outcome.refused": {"en": "refused", "ja": "拒否"},
    "audit.outcome.pending": {"en": "pending", "ja": "承認待ち"},
    "audit.outcome.skipped": {"en": "skipped", "ja": "スキップ"},
    "audit.outcome.not_run": {"en": "not run", "ja": "未実行"},
    "audit.outcome.unknown": {"en": "unknown", "ja": "不明"},
    "audit.outcome.cancelled": {"en": "cancelled", "ja": "キャンセル"},
    "audit.outcome.rejected": {"en": "rejected", "ja": "却下"},
    "audit.outcome.expired": {"en": "expired", "ja": "期限切れ"},
    "audit.outcome.invalid": {"en": "invalid", "ja": "不正"},
    "audit.outcome.simulated": {"en": "simulated", "ja": "シミュレーション"},
    # details the bot itself writes into audit rows
    "audit.why.keyed": {
        "en": "from this row on, the chain is keyed with TAISUN_AUDIT_KEY (HMAC-SHA256)",
        "ja": "この行から、チェーンは TAISUN_AUDIT_KEY（HMAC-SHA256）で鍵付けされています",
    },
    "audit.why.no_approval": {"en": "no approval in time", "ja": "期限内に承認されませんでした"},
    "audit.why.resumed": {"en": "attempt {attempt} on {owner}", "ja": "{owner} で {attempt} 回目の実行"},
    "audit.why.late": {
        "en": "rolled back: the answer would have reached Slack {waited} s after the request arrived "
        "(deadline {deadline} s)",
        "ja": "取り消しました: 応答が Slack に届くのはリクエストの到着から {waited} 秒後になるところでした"
        "（期限 {deadline} 秒）",
    },
    "audit.footer": {
        "en": "{n} newest first · `taisun audit verify` checks the chain",
        "ja": "新しい順に {n} 件 · `taisun audit verify` で改ざんを検査できます",
    },
    "audit.anchor.text": {
        "en": "Audit log anchor: seq {seq}, {alg} `{hash}`. Check the log against it with "
        "`taisun audit verify --anchor {seq}:{hash}`",
        "ja": "監査ログのアンカー: seq {seq}、{alg} `{hash}`。`taisun audit verify --anchor {seq}:{hash}` "
        "で監査ログをこの時点の記録と照合できます",
    },
    # bot/incidents/messages.py: runbook checklists
    "rb.job_state.validating": {"en": "being checked", "ja": "確認中"},
    "rb.job_state.pending_approval": {"en": "waiting for approval", "ja": "承認待ち"},
    "rb.job_state.queued": {"en": "queued", "ja": "実行待ち"},
    "rb.job_state.running": {"en": "running", "ja": "実行中"},
    "rb.job_state.requested": {"en": "requested", "ja": "依頼済み"},
    "rb.the_bot": {"en": "the bot", "ja": "ボット"},
    "rb.status.done": {"en": "done by {who}{when}", "ja": "{who} が完了{when}"},
    "rb.status.done_result": {"en": "done by {who}{when}: {result}", "ja": "{who} が完了{when}: {result}"},
    "rb.status.passed": {"en": "passed{when}: {result}", "ja": "合格{when}: {result}"},
    "rb.status.failed": {"en": "*failed*{when}: {result}", "ja": "*失敗*{when}: {result}"},
    "rb.status.skipped": {
        "en": "skipped by {who}{when}: _{reason}_",
        "ja": "{who} がスキップ{when}: _{reason}_",
    },
    "rb.status.job": {
        "en": "job `{job}` {what} (requested by {who})",
        "ja": "ジョブ `{job}` {what}（依頼: {who}）",
    },
    "rb.status.checking": {"en": "checking…", "ja": "チェック中…"},
    "rb.btn.run": {"en": "Run {operation}", "ja": "{operation} を実行"},
    "rb.btn.run_dry": {"en": "Run {operation} (dry run)", "ja": "{operation} を実行（ドライラン）"},
    "rb.confirm.run_title": {"en": "Run {operation}?", "ja": "{operation} を実行しますか？"},
    "rb.confirm.run_text": {
        "en": "{action} on *{env}*. The usual approvals and locks apply.",
        "ja": "*{env}* で {action} を実行します。通常どおり承認とロックが適用されます。",
    },
    "rb.confirm.run_text_dry": {
        "en": "{action} on *{env}* (dry run). The usual approvals and locks apply.",
        "ja": "*{env}* で {action} をドライランで実行します。通常どおり承認とロックが適用されます。",
    },
    "rb.confirm.run_yes": {"en": "Run", "ja": "実行"},
    "rb.btn.recheck": {"en": "Run check again", "ja": "チェックを再実行"},
    "rb.btn.check": {"en": "Run check", "ja": "チェックを実行"},
    "rb.btn.done": {"en": "Done", "ja": "完了"},
    "rb.btn.skip": {"en": "Skip…", "ja": "スキップ…"},
    "rb.drill_badge": {
        "en": "`DRILL — every action runs as a dry run`",
        "ja": "`訓練 — すべてのアクションはドライランで実行されます`",
    },
    "rb.started_by": {"en": "started by {user} {time}", "ja": "開始: {user} {time}"},
    "rb.steps_done": {"en": "{done}/{total} steps done", "ja": "{done}/{total} ステップ完了"},
    "rb.phase": {"en": "phase: *{phase}*", "ja": "フェーズ: *{phase}*"},
    "rb.completed_at": {"en": "completed {time}", "ja": "完了 {time}"},
    "rb.symptoms": {"en": "*Symptoms:* {items}", "ja": "*症状:* {items}"},
    "rb.causes": {"en": "*Causes:* {items}", "ja": "*原因:* {items}"},
    "rb.overdue": {"en": "⏰ *overdue*", "ja": "⏰ *期限超過*"},
    "rb.buttons_later": {
        "en": "Buttons for {n} later step(s) appear as earlier ones are finished.",
        "ja": "後続の {n} ステップのボタンは、前のステップが終わると表示されます。",
    },
    "rb.checklist_text": {
        "en": "{title}: {done}/{total} steps done",
        "ja": "{title}: {done}/{total} ステップ完了",
    },
    # bot/incidents/messages.py: incident header, list, nudges, follow-ups
    "inc.milestones": {
        "en": "detected {detected} · acknowledged {acknowledged} · mitigated {mitigated} · resolved {resolved}",
        "ja": "検知 {detected} · 確認 {acknowledged} · 緩和 {mitigated} · 解決 {resolved}",
    },
    "inc.state.open": {"en": "OPEN", "ja": "対応中"},
    "inc.state.resolved": {"en": "RESOLVED", "ja": "解決済み"},
    "inc.header.phase": {"en": "*Phase:* {phase} ({n}/{total})", "ja": "*フェーズ:* {phase}（{n}/{total}）"},
    "inc.header.roles": {
        "en": "*Commander:* {commander} · *Scribe:* {scribe} · *Comms:* {comms}",
        "ja": "*コマンダー:* {commander} · *記録係:* {scribe} · *広報:* {comms}",
    },
    "inc.unassigned": {"en": "_unassigned_", "ja": "_未割り当て_"},
    "inc.header.elapsed": {"en": "*Elapsed:* {elapsed}", "ja": "*経過時間:* {elapsed}"},
    "inc.header.status": {
        "en": "*Status:* {text}\n_by {user} {time}_",
        "ja": "*状況:* {text}\n_{user} {time}_",
    },
    "inc.header.no_status": {
        "en": "No status update yet: `/taisun incident status <what we know>`",
        "ja": "まだ状況の更新はありません: `/taisun incident status <わかっていること>`",
    },
    "inc.btn.ack": {"en": "Acknowledge", "ja": "確認"},
    "inc.btn.mitigated": {"en": "Mitigated", "ja": "緩和済み"},
    "inc.btn.promote": {"en": "Promote to channel", "ja": "専用チャンネルを作成"},
    "inc.btn.resolve": {"en": "Resolve", "ja": "解決"},
    "inc.confirm.resolve_title": {"en": "Resolve {ref}?", "ja": "{ref} を解決しますか？"},
    "inc.confirm.resolve_text": {
        "en": "The postmortem draft is posted in the thread.",
        "ja": "ポストモーテムの下書きがスレッドに投稿されます。",
    },
    "inc.where.channel": {"en": "channel {channel}", "ja": "チャンネル {channel}"},
    "inc.where.environment": {"en": "environment `{env}`", "ja": "環境 `{env}`"},
    "inc.where.thread": {
        "en": "checklist and timeline in the thread · react :pushpin: to add a message to the timeline",
        "ja": "チェックリストとタイムラインはスレッドにあります · :pushpin: のリアクションでメッセージをタイムラインに追加できます",
    },
    "inc.text": {"en": "{ref} {severity}: {title} ({phase})", "ja": "{ref} {severity}: {title}（{phase}）"},
    "inc.text_resolved": {
        "en": "{ref} {severity}: {title} (resolved)",
        "ja": "{ref} {severity}: {title}（解決済み）",
    },
    "inc.list.empty": {
        "en": "No open incidents. Declare one with `/taisun incident declare <sev> <title>`.",
        "ja": "対応中のインシデントはありません。宣言するには `/taisun incident declare <sev> <title>` を使います。",
    },
    "inc.list.no_commander": {"en": "_no commander_", "ja": "_コマンダー未定_"},
    "inc.list.title": {"en": "*Incidents*", "ja": "*インシデント*"},
    "inc.nudge.snooze": {"en": "Snooze {minutes} min", "ja": "{minutes} 分スヌーズ"},
    "inc.followups.none": {
        "en": "No follow-up items for {ref}.",
        "ja": "{ref} のフォローアップ項目はありません。",
    },
    "inc.followups.title": {"en": "*Follow-ups for {ref}*", "ja": "*{ref} のフォローアップ*"},
    "inc.followups.issue": {"en": "issue", "ja": "Issue"},
    "inc.followups.open_issue": {"en": "Open GitHub issue", "ja": "GitHub Issue を作成"},
    # bot/incidents/messages.py: modals
    "inc.modal.declare_title": {"en": "Declare incident", "ja": "インシデント宣言"},
    "inc.modal.declare": {"en": "Declare", "ja": "宣言"},
    "inc.modal.cancel": {"en": "Cancel", "ja": "キャンセル"},
    "inc.modal.severity": {"en": "Severity", "ja": "重大度"},
    "inc.modal.what": {"en": "What is happening?", "ja": "何が起きていますか？"},
    "inc.modal.what_placeholder": {"en": "API p99 over 1s", "ja": "API の p99 が 1 秒超"},
    "rb.modal.skip_title": {"en": "Skip step", "ja": "ステップをスキップ"},
    "rb.modal.skip": {"en": "Skip", "ja": "スキップ"},
    "rb.modal.skip_why": {
        "en": "Skipping *{step}*. Why? (It goes into the timeline and the postmortem.)",
        "ja": "*{step}* をスキップします。理由は？（タイムラインとポストモーテムに記録されます）",
    },
    "rb.modal.reason": {"en": "Reason", "ja": "理由"},
    "rb.modal.reason_placeholder": {
        "en": "no deploy preceded the incident",
        "ja": "インシデント前にデプロイはなかった",
    },
    "rb.modal.version_title": {"en": "Which version?", "ja": "どのバージョン？"},
    "rb.modal.run": {"en": "Run", "ja": "実行"},
    "rb.modal.needs_tag": {
        "en": "*{step}* needs a release tag.",
        "ja": "*{step}* にはリリースタグが必要です。",
    },
    "rb.modal.version": {"en": "Version", "ja": "バージョン"},
    # bot/incidents/messages.py: alert groups
    "alert.head_firing": {
        "en": "{icon} *{name}* — *{firing} firing* · {resolved} resolved{severity}",
        "ja": "{icon} *{name}* — *{firing} 件発火中* · 解決 {resolved} 件{severity}",
    },
    "alert.head_resolved": {
        "en": "{icon} *{name}* — *all resolved* · {resolved} resolved{severity}",
        "ja": "{icon} *{name}* — *すべて解決* · 解決 {resolved} 件{severity}",
    },
    "alert.more_firing": {"en": "…and {more} more firing", "ja": "…ほか {more} 件が発火中"},
    "alert.since": {"en": "since {time}", "ja": "{time} から"},
    "alert.attached": {"en": "attached to *{ref}*", "ja": "*{ref}* に紐付け済み"},
    "alert.source": {"en": "source ({host})", "ja": "ソース（{host}）"},
    "alert.start_runbook": {"en": "Start runbook: {title}", "ja": "ランブック開始: {title}"},
    "alert.runbook_running": {
        "en": "Runbook *{title}* is running in the thread.",
        "ja": "ランブック *{title}* をスレッドで実行中です。",
    },
    "alert.text": {
        "en": "{name}: {firing} firing, {resolved} resolved",
        "ja": "{name}: 発火中 {firing} 件、解決 {resolved} 件",
    },
    # bot/incidents/service.py: errors (each reader's language) and messages in the incident's thread
    "inc.err.gone": {"en": "That incident no longer exists.", "ja": "そのインシデントはもう存在しません。"},
    "inc.err.no_flow": {
        "en": "No valid incident-flow runbook ({file}) is available.{why}",
        "ja": "有効なインシデント対応ランブック（{file}）がありません。{why}",
    },
    "inc.err.severity": {
        "en": "Unknown severity `{severity}`; use one of {choices}.",
        "ja": "`{severity}` という重大度はありません。{choices} のいずれかを指定してください。",
    },
    "inc.err.no_title": {"en": "An incident needs a title.", "ja": "インシデントにはタイトルが必要です。"},
    "inc.err.number": {
        "en": "Could not allocate an incident number; try again.",
        "ja": "インシデント番号を割り当てられませんでした。もう一度お試しください。",
    },
    "inc.err.status_text": {
        "en": 'Say what is known: `/taisun incident status "rolled back; error rate falling"`.',
        "ja": 'わかっていることを書いてください: `/taisun incident status "ロールバック済み、エラー率は低下中"`',
    },
    "inc.err.roles": {"en": "Roles are {roles}.", "ja": "ロールは {roles} です。"},
    "inc.err.same_severity": {"en": "{ref} is already {severity}.", "ja": "{ref} はすでに {severity} です。"},
    "inc.err.has_channel": {
        "en": "{ref} already has its channel {channel}.",
        "ja": "{ref} にはすでに専用チャンネル {channel} があります。",
    },
    "inc.err.channel_creating": {
        "en": "The channel for {ref} is being created.",
        "ja": "{ref} のチャンネルを作成中です。",
    },
    "inc.err.already_acknowledged": {
        "en": "{ref} was already acknowledged.",
        "ja": "{ref} はすでに確認済みです。",
    },
    "inc.err.already_mitigated": {
        "en": "{ref} is already marked mitigated.",
        "ja": "{ref} はすでに緩和済みになっています。",
    },
    "inc.err.already_resolved": {"en": "{ref} is already resolved.", "ja": "{ref} はすでに解決済みです。"},
    "inc.err.followup_gone": {
        "en": "That follow-up no longer exists.",
        "ja": "そのフォローアップ項目はもう存在しません。",
    },
    "inc.err.issue_opening": {
        "en": "Someone is opening that issue right now.",
        "ja": "ちょうど他の人がその Issue を作成しているところです。",
    },
    "inc.err.issue_opened": {"en": "Already opened: {url}", "ja": "作成済みです: {url}"},
    "inc.err.github": {
        "en": "GitHub did not create the issue: {error}",
        "ja": "GitHub で Issue を作成できませんでした: {error}",
    },
    "inc.err.github_no_url": {
        "en": "GitHub created the issue but did not say where.",
        "ja": "GitHub で Issue は作成されましたが、URL が返されませんでした。",
    },
    "inc.msg.no_channel": {
        "en": "⚠️ I could not create a channel for {ref} (`{error}`; the bot needs the channels:manage scope). "
        "The incident lives in this thread instead.",
        "ja": "⚠️ {ref} のチャンネルを作成できませんでした（`{error}`。ボットには channels:manage スコープが必要です）。"
        "代わりにこのスレッドでインシデント対応を進めます。",
    },
    "inc.msg.declared_elsewhere": {
        "en": "🚨 *{ref}* ({severity}) declared by {user}: {title} → {link}",
        "ja": "🚨 *{ref}*（{severity}）が {user} により宣言されました: {title} → {link}",
    },
    "inc.msg.own_channel": {
        "en": "📣 {ref} now has its own channel: {link}",
        "ja": "📣 {ref} の専用チャンネルができました: {link}",
    },
    "inc.msg.channel_intro": {
        "en": "🚨 This channel is for *{ref}* ({severity}): {title}. The checklist and timeline are in the incident "
        "thread in {home}; incident commands here apply to {ref}.",
        "ja": "🚨 このチャンネルは *{ref}*（{severity}）用です: {title}。チェックリストとタイムラインは {home} の"
        "インシデントスレッドにあります。ここでのインシデントコマンドは {ref} に適用されます。",
    },
    "inc.msg.status": {
        "en": "📣 *Status update* from {user}: {text}",
        "ja": "📣 {user} からの*状況更新*: {text}",
    },
    "inc.role.commander": {"en": "Commander", "ja": "コマンダー"},
    "inc.role.scribe": {"en": "Scribe", "ja": "記録係"},
    "inc.role.comms": {"en": "Comms", "ja": "広報"},
    "inc.msg.assigned": {"en": "👤 {role}: {user} (by {by})", "ja": "👤 {role}: {user}（設定: {by}）"},
    "inc.msg.reassigned": {
        "en": "👤 {role}: {user} (was {previous}) (by {by})",
        "ja": "👤 {role}: {user}（前任: {previous}）（設定: {by}）",
    },
    "inc.msg.severity": {
        "en": "🔺 Severity {previous} → *{severity}* (by {user})",
        "ja": "🔺 重大度 {previous} → *{severity}*（変更: {user}）",
    },
    "inc.msg.mitigated": {
        "en": "🩹 Marked *mitigated* by {user}.",
        "ja": "🩹 {user} が*緩和済み*にしました。",
    },
    "inc.msg.phase": {"en": "➡️ Phase *{phase}*", "ja": "➡️ フェーズ *{phase}*"},
    "inc.msg.resolved": {
        "en": "✅ {ref} resolved by {user} after {elapsed}.",
        "ja": "✅ {ref} は {user} により解決されました（所要 {elapsed}）。",
    },
    "inc.msg.postmortem_text": {"en": "Postmortem draft for {ref}", "ja": "{ref} のポストモーテム下書き"},
    "inc.msg.postmortem_title": {
        "en": "📝 *Postmortem draft — {ref}* (Markdown: copy it into your doc)",
        "ja": "📝 *ポストモーテム下書き — {ref}*（Markdown: ドキュメントにコピーしてください）",
    },
    "inc.msg.followups_text": {"en": "Follow-ups for {ref}", "ja": "{ref} のフォローアップ"},
    "inc.nudge.no_commander": {
        "en": "No incident commander after {minutes} min: `/taisun incident assign commander @someone`",
        "ja": "{minutes} 分経ってもインシデントコマンダーがいません: `/taisun incident assign commander @someone`",
    },
    "inc.nudge.no_status": {
        "en": 'No status update for {minutes} min: `/taisun incident status "what we know"`',
        "ja": '{minutes} 分間状況の更新がありません: `/taisun incident status "わかっていること"`',
    },
    "inc.nudge.overdue": {
        "en": "Step *{step}* is overdue (due within {minutes} min)",
        "ja": "ステップ *{step}* が期限を過ぎています（{minutes} 分以内の予定）",
    },
    "inc.nudge.head": {
        "en": "⏰ {who}*{ref}* reminders:\n{lines}",
        "ja": "⏰ {who}*{ref}* のリマインダー:\n{lines}",
    },
    # bot/incidents/service.py: the postmortem draft's headings (stored in the workspace language)
    # the incident timeline, as the postmortem lists it
    "inc.modal.environment": {"en": "Environment", "ja": "環境"},
    "inc.err.no_github": {
        "en": "GITHUB_TOKEN is not set, so I cannot open GitHub issues. Copy the item from the postmortem draft "
        "into an issue by hand, or set GITHUB_TOKEN (issues:write) and click again.",
        "ja": "GITHUB_TOKEN が未設定のため GitHub の Issue を作成できません。ポストモーテム草稿の項目を手作業で Issue に"
        "写すか、GITHUB_TOKEN（issues:write）を設定してからもう一度クリックしてください。",
    },
    "inc.ev.declared": {
        "en": '{ref} declared ({severity}): "{title}" by {user}',
        "ja": "{ref} を宣言（{severity}）:「{title}」宣言者 {user}",
    },
    "inc.ev.channel": {
        "en": "Channel #{name} created; invited {n} responder(s)",
        "ja": "チャンネル #{name} を作成し、対応者 {n} 人を招待",
    },
    "inc.ev.status": {"en": "Status update by {user}: {text}", "ja": "状況の更新（{user}）: {text}"},
    "inc.ev.assigned": {"en": "{role}: {user}, assigned by {by}", "ja": "{role}: {user}（割り当て: {by}）"},
    "inc.ev.reassigned": {
        "en": "{role}: {user} (was {previous}), assigned by {by}",
        "ja": "{role}: {user}（前任 {previous}、割り当て: {by}）",
    },
    "inc.ev.severity": {
        "en": "Severity {previous} → {severity} by {user}",
        "ja": "重大度 {previous} → {severity}（{user}）",
    },
    "inc.ev.promoted": {"en": "Promoted to its own channel by {user}", "ja": "{user} が専用チャンネルに移行"},
    "inc.ev.milestone": {
        "en": "Milestone {name} ({why}), {since} after detection",
        "ja": "マイルストーン「{name}」（{why}）、検知から {since}",
    },
    "inc.ms.acknowledged": {"en": "acknowledged", "ja": "確認"},
    "inc.ms.mitigated": {"en": "mitigated", "ja": "緩和"},
    "inc.ms.resolved": {"en": "resolved", "ja": "解決"},
    "inc.why.first_commander": {"en": "first commander {user}", "ja": "最初のコマンダー {user}"},
    "inc.why.acknowledged_by": {"en": "acknowledged by {user}", "ja": "確認者 {user}"},
    "inc.why.marked_by": {"en": "marked by {user}", "ja": "記録者 {user}"},
    "inc.why.recovery_reached": {"en": "Recovery phase reached", "ja": "Recovery フェーズに到達"},
    "inc.why.resolved_unmitigated": {
        "en": "resolved without an earlier mitigation mark",
        "ja": "緩和の記録なしで解決",
    },
    "inc.why.resolved_by": {"en": "resolved by {user}", "ja": "解決者 {user}"},
    "inc.ev.phase": {"en": "Phase {old} → {new}", "ja": "フェーズ {old} → {new}"},
    "inc.ev.pin": {"en": "📌 {user}: {text}", "ja": "📌 {user}: {text}"},
    "inc.ev.pin_empty": {
        "en": "📌 {user}: (a message without text)",
        "ja": "📌 {user}:（テキストのないメッセージ）",
    },
    "inc.ev.issue_opened": {"en": "Issue opened: {title} — {url}", "ja": "Issue を作成: {title} — {url}"},
    "inc.ev.from_message": {
        "en": "Declared from a message by {user}: {text}",
        "ja": "{user} のメッセージから宣言: {text}",
    },
    "inc.ev.runbook": {"en": "Runbook started: {title}", "ja": "ランブック開始: {title}"},
    "inc.ev.step_done": {"en": "Step done: {title}", "ja": "ステップ完了: {title}"},
    "inc.ev.step_skipped": {
        "en": "Step skipped: {title} — reason: {reason}",
        "ja": "ステップをスキップ: {title} — 理由: {reason}",
    },
    "inc.ev.check_passed": {"en": "Check passed: {title} — {text}", "ja": "チェック成功: {title} — {text}"},
    "inc.ev.check_failed": {"en": "Check failed: {title} — {text}", "ja": "チェック失敗: {title} — {text}"},
    "inc.ev.action_requested": {
        "en": "Action requested: {title} — {what}, job {job}",
        "ja": "アクション依頼: {title} — {what}、ジョブ {job}",
    },
    "inc.ev.action_requested_dry": {
        "en": "Action requested: {title} — {what} (dry run), job {job}",
        "ja": "アクション依頼: {title} — {what}（ドライラン）、ジョブ {job}",
    },
    "inc.ev.action_ended": {
        "en": "Action {state}: {title} (job {job}) — {result}",
        "ja": "アクション{state}: {title}（ジョブ {job}）— {result}",
    },
    "inc.ev.action_ended_approved": {
        "en": "Action {state}: {title} (job {job}, approved by {user}) — {result}",
        "ja": "アクション{state}: {title}（ジョブ {job}、承認 {user}）— {result}",
    },
    "inc.ev.alert_firing": {
        "en": "Alert {alertname} firing: {n} alert(s) — {summary}",
        "ja": "アラート {alertname} 発火中: {n} 件 — {summary}",
    },
    "inc.ev.alert_firing_bare": {
        "en": "Alert {alertname} firing: {n} alert(s)",
        "ja": "アラート {alertname} 発火中: {n} 件",
    },
    "inc.ev.alert_resolved": {
        "en": "Alert {alertname} resolved ({n} alert(s))",
        "ja": "アラート {alertname} 解決（{n} 件）",
    },
    "inc.ev.kind.declared": {"en": "declared", "ja": "宣言"},
    "inc.ev.kind.channel": {"en": "channel", "ja": "チャンネル"},
    "inc.ev.kind.status": {"en": "status", "ja": "状況"},
    "inc.ev.kind.role": {"en": "role", "ja": "役割"},
    "inc.ev.kind.severity": {"en": "severity", "ja": "重大度"},
    "inc.ev.kind.promoted": {"en": "promoted", "ja": "移行"},
    "inc.ev.kind.milestone": {"en": "milestone", "ja": "マイルストーン"},
    "inc.ev.kind.phase": {"en": "phase", "ja": "フェーズ"},
    "inc.ev.kind.pin": {"en": "pin", "ja": "ピン"},
    "inc.ev.kind.followup": {"en": "followup", "ja": "フォローアップ"},
    "inc.ev.kind.runbook": {"en": "runbook", "ja": "ランブック"},
    "inc.ev.kind.step": {"en": "step", "ja": "ステップ"},
    "inc.ev.kind.alert": {"en": "alert", "ja": "アラート"},
    # postmortem lines
    "inc.pm.action": {
        "en": "{what}{flags} (job {job}, requested by @{user}): {state}{result}",
        "ja": "{what}{flags}（ジョブ {job}、依頼 @{user}）: {state}{result}",
    },
    "inc.pm.action_approved": {
        "en": "{what}{flags} (job {job}, requested by @{user}, approved by @{approver}): {state}{result}",
        "ja": "{what}{flags}（ジョブ {job}、依頼 @{user}、承認 @{approver}）: {state}{result}",
    },
    "inc.pm.flag_dry_run": {"en": " [dry run]", "ja": "［ドライラン］"},
    "inc.pm.flag_drill": {"en": " (drill)", "ja": "（訓練）"},
    "inc.pm.result": {"en": " — {result}", "ja": " — {result}"},
    "inc.pm.check": {
        "en": "Check `{check}`: {state} — {result}",
        "ja": "チェック `{check}`: {state} — {result}",
    },
    "inc.pm.check_passed": {"en": "passed", "ja": "成功"},
    "inc.pm.check_failed": {"en": "failed", "ja": "失敗"},
    "inc.pm.skipped": {
        "en": "Skipped: {n}. {title} — by @{user}: {reason}",
        "ja": "スキップ: {n}. {title} — @{user}: {reason}",
    },
    "inc.pm.failed": {"en": "Failed: {n}. {title} — {result}", "ja": "失敗: {n}. {title} — {result}"},
    "inc.pm.followup_failed_step": {
        "en": "{ref}: investigate the failed step “{title}”",
        "ja": "{ref}: 失敗したステップ「{title}」を調査する",
    },
    "inc.pm.summary": {"en": "## Summary", "ja": "## 概要"},
    # runbook checks: what a check saw (stored on the step, shown in its thread)
    "chk.crashed": {"en": "the check crashed: {error}", "ja": "チェックがクラッシュしました: {error}"},
    "chk.no_env": {
        "en": "this run has no environment to check",
        "ja": "この実行にはチェック対象の環境がありません",
    },
    "chk.no_url": {
        "en": "{env} has no url in the config (environments.{env}.url)",
        "ja": "設定に {env} の URL がありません（environments.{env}.url）",
    },
    "chk.http_timeout": {
        "en": "GET {url}: no answer within {seconds} s",
        "ja": "GET {url}: {seconds} 秒以内に応答なし",
    },
    "chk.http_unreachable": {
        "en": "GET {url}: {error} (unreachable)",
        "ja": "GET {url}: {error}（到達できません）",
    },
    "chk.http_status": {
        "en": "GET {url} → {status}, expected {expected}: {body}",
        "ja": "GET {url} → {status}（期待値 {expected}）: {body}",
    },
    "chk.http_not_json": {
        "en": "GET {url} → {status} but the body is not JSON: {body}",
        "ja": "GET {url} → {status} ですが、本文が JSON ではありません: {body}",
    },
    "chk.http_json_mismatch": {
        "en": "GET {url} → {status} but the JSON does not match {expected}: {body}",
        "ja": "GET {url} → {status} ですが、JSON が {expected} と一致しません: {body}",
    },
    "chk.http_ok": {"en": "GET {url} → {status}: {body}", "ja": "GET {url} → {status}: {body}"},
    "chk.no_database": {
        "en": "{env} has no database in the config (environments.{env}.database.dsn_env)",
        "ja": "設定に {env} のデータベースがありません（environments.{env}.database.dsn_env）",
    },
    "chk.dsn_unset": {
        "en": "the environment variable {name} (the {env} database DSN) is not set",
        "ja": "環境変数 {name}（{env} のデータベース DSN）が設定されていません",
    },
    "chk.sql_timeout": {
        "en": "the query ran longer than {seconds} s and was cancelled",
        "ja": "クエリが {seconds} 秒を超えたためキャンセルしました",
    },
    "chk.sql_failed": {"en": "the query failed: {error}", "ja": "クエリが失敗しました: {error}"},
    "chk.sql_rows": {"en": "{n} row(s)\n{table}", "ja": "{n} 行\n{table}"},
    "inc.pm.severity": {"en": "- Severity: {severity}", "ja": "- 重大度: {severity}"},
    "inc.pm.environment": {"en": "- Environment: {env}", "ja": "- 環境: {env}"},
    "inc.pm.declared": {"en": "- Declared by: @{user} at {time}", "ja": "- 宣言: @{user}（{time}）"},
    "inc.pm.roles": {
        "en": "- Commander: {commander} · Scribe: {scribe} · Comms: {comms}",
        "ja": "- コマンダー: {commander} · 記録係: {scribe} · 広報: {comms}",
    },
    "inc.pm.resolved": {"en": "- Resolved: {time} by @{user}", "ja": "- 解決: {time}（@{user}）"},
    "inc.pm.duration": {
        "en": "- Duration (detected → resolved): {elapsed}",
        "ja": "- 所要時間（検知 → 解決）: {elapsed}",
    },
    "inc.pm.last_status": {"en": "- Last status: {text}", "ja": "- 最終状況: {text}"},
    "inc.pm.impact": {"en": "## Impact", "ja": "## 影響"},
    "inc.pm.impact_hint": {
        "en": "_Who and what was affected, for how long, and how far the SLOs were missed (fill in)._",
        "ja": "_誰が・何が・どれだけの時間影響を受け、SLO をどれだけ下回ったか（記入してください）。_",
    },
    "inc.pm.milestones": {"en": "## Milestones", "ja": "## マイルストーン"},
    "inc.pm.milestones_head": {
        "en": "| Milestone | Time | Since detection |",
        "ja": "| マイルストーン | 時刻 | 検知からの経過 |",
    },
    "inc.pm.detected": {"en": "Detected", "ja": "検知"},
    "inc.pm.declared_row": {"en": "Declared", "ja": "宣言"},
    "inc.pm.acknowledged": {"en": "Acknowledged", "ja": "確認"},
    "inc.pm.mitigated": {"en": "Mitigated", "ja": "緩和"},
    "inc.pm.resolved_row": {"en": "Resolved", "ja": "解決"},
    "inc.pm.phases": {"en": "## Phases", "ja": "## フェーズ"},
    "inc.pm.phases_head": {
        "en": "| Phase | Entered | Time in phase |",
        "ja": "| フェーズ | 開始 | フェーズ内の時間 |",
    },
    "inc.pm.current": {"en": "{spent} (current)", "ja": "{spent}（現在）"},
    "inc.pm.timeline": {"en": "## Timeline", "ja": "## タイムライン"},
    "inc.pm.actions": {"en": "## Actions taken", "ja": "## 実施した対応"},
    "inc.pm.none_recorded": {"en": "- none recorded", "ja": "- 記録なし"},
    "inc.pm.problems": {"en": "## Skipped or failed steps", "ja": "## スキップ・失敗したステップ"},
    "inc.pm.none": {"en": "- none", "ja": "- なし"},
    "inc.pm.improvements": {"en": "## Improvement items", "ja": "## 改善項目"},
    "inc.pm.root_cause": {"en": "## Root cause", "ja": "## 根本原因"},
    "inc.pm.fill_in": {"en": "_Fill in._", "ja": "_記入してください。_"},
    "inc.pm.went_well": {
        "en": "## What went well / what did not",
        "ja": "## うまくいったこと / いかなかったこと",
    },
    # handlers/incident.py: replies to the person who asked
    "inc.reply.none_open": {
        "en": "No incident is open. Declare one: `/taisun incident declare <sev> <title>`.",
        "ja": "対応中のインシデントはありません。宣言するには: `/taisun incident declare <sev> <title>`",
    },
    "inc.reply.which": {
        "en": "Several incidents are open. Which one? (In an incident's own channel, commands apply to it.)",
        "ja": "複数のインシデントが対応中です。どれですか？（インシデント専用チャンネルでは、コマンドはそのインシデントに適用されます）",
    },
    "inc.reply.open_list": {"en": "Open incidents", "ja": "対応中のインシデント"},
    "inc.reply.declared_channel": {
        "en": "🚨 {ref} declared for *{env}* ({severity}): {title} — its own channel is being created.{assumed}",
        "ja": "🚨 *{env}* の {ref} を宣言しました（{severity}）: {title} — 専用チャンネルを作成しています。{assumed}",
    },
    "inc.reply.declared_here": {
        "en": "🚨 {ref} declared for *{env}* ({severity}): {title} — the header and checklist thread are being "
        "posted here.{assumed}",
        "ja": "🚨 *{env}* の {ref} を宣言しました（{severity}）: {title} — ヘッダーとチェックリストのスレッドをここに"
        "投稿しています。{assumed}",
    },
    # `incident declare` without --env: the environment was not chosen, so the reply says which one it is
    "inc.reply.env_assumed": {
        "en": "\nNo `--env` was given, so it is for *{env}*: its checks and actions run there. For another "
        "environment, declare it with `--env {other}`.",
        "ja": "\n`--env` の指定がないため *{env}* としました（チェックとアクションはそこで実行されます）。別の環境なら "
        "`--env {other}` を付けて宣言してください。",
    },
    "inc.reply.status_current": {
        "en": "{ref} — {phase}: “{text}” (by {user}). Update it: `/taisun incident status <text>`.",
        "ja": "{ref} — {phase}: 「{text}」（{user}）。更新するには: `/taisun incident status <text>`",
    },
    "inc.reply.status_none": {
        "en": "{ref} — {phase}: no status update yet. Update it: `/taisun incident status <text>`.",
        "ja": "{ref} — {phase}: まだ状況の更新はありません。更新するには: `/taisun incident status <text>`",
    },
    "inc.reply.status_updated": {
        "en": "📣 Status of {ref} updated.",
        "ja": "📣 {ref} の状況を更新しました。",
    },
    "inc.reply.assigned": {
        "en": "👤 {user} is now {role} of {ref}.",
        "ja": "👤 {user} が {ref} の{role}になりました。",
    },
    "inc.reply.severity": {
        "en": "{ref} is now {severity}.",
        "ja": "{ref} の重大度を {severity} にしました。",
    },
    "inc.reply.promoting": {
        "en": "Creating a channel for {ref}…",
        "ja": "{ref} のチャンネルを作成しています…",
    },
    "inc.reply.resolved": {
        "en": "✅ {ref} resolved. The postmortem draft is in its thread.",
        "ja": "✅ {ref} を解決しました。ポストモーテムの下書きはスレッドにあります。",
    },
    "inc.reply.unknown_action": {
        "en": "Unknown incident action `{action}`.",
        "ja": "`{action}` というインシデント操作はありません。",
    },
    "inc.reply.opened": {"en": "Opened {url}", "ja": "作成しました: {url}"},
    "inc.reply.snoozed": {
        "en": "😴 Snoozed for {minutes} minutes; I will remind once more if it still applies.",
        "ja": "😴 {minutes} 分間スヌーズしました。その時点でまだ該当すれば、もう一度リマインドします。",
    },
    "inc.role_lc.commander": {"en": "commander", "ja": "コマンダー"},
    "inc.role_lc.scribe": {"en": "scribe", "ja": "記録係"},
    "inc.role_lc.comms": {"en": "comms", "ja": "広報"},
    # handlers/runbook.py: replies to the person who asked
    "rb.list.line": {"en": "`{id}` — {title} · _{kind}_", "ja": "`{id}` — {title} · _{kind}_"},
    "rb.kind.incident-flow": {"en": "incident-flow", "ja": "インシデント対応フロー"},
    "rb.kind.runbook": {"en": "runbook", "ja": "ランブック"},
    "rb.kind.troubleshooting": {"en": "troubleshooting", "ja": "トラブルシューティング"},
    "rb.list.none": {"en": "No runbooks found.", "ja": "ランブックが見つかりません。"},
    "rb.list.title": {"en": "*Runbooks*", "ja": "*ランブック*"},
    "rb.list.text": {"en": "Runbooks", "ja": "ランブック"},
    "rb.list.invalid": {
        "en": ":warning: *Invalid runbook files (not runnable):*\n```{problems}```",
        "ja": ":warning: *不正なランブックファイル（実行できません）:*\n```{problems}```",
    },
    "rb.list.how": {
        "en": "Run one: `/taisun runbook run <id> <env> [--drill]`",
        "ja": "実行するには: `/taisun runbook run <id> <env> [--drill]`",
    },
    "rb.reply.starting": {
        "en": "📋 Starting *{title}*; the checklist appears in this channel.",
        "ja": "📋 *{title}* を開始します。チェックリストがこのチャンネルに表示されます。",
    },
    "rb.reply.starting_drill": {
        "en": "📋 Starting *{title}* as a *drill* (actions run as dry runs); the checklist appears in this channel.",
        "ja": "📋 *{title}* を*訓練*として開始します（アクションはドライランで実行）。チェックリストがこのチャンネルに表示されます。",
    },
    "rb.reply.requested": {
        "en": "🔎 Requested {what}: job `{job}`.",
        "ja": "🔎 {what} を依頼しました: ジョブ `{job}`。",
    },
    "rb.reply.requested_dry": {
        "en": "🔎 Requested {what} (dry run): job `{job}`.",
        "ja": "🔎 {what} を依頼しました（ドライラン）: ジョブ `{job}`。",
    },
    "rb.reply.not_a_tag": {
        "en": "`{version}` is not a release tag (like v1.2.3).",
        "ja": "`{version}` はリリースタグではありません（v1.2.3 のような形式）。",
    },
    # bot/incidents/runs.py: errors (each reader's language) and notes in the checklist's thread
    "rb.err.invalid": {
        "en": "The runbook `{name}` is invalid, so it cannot be run. Fix the file:\n{problems}",
        "ja": "ランブック `{name}` は不正なため実行できません。ファイルを修正してください:\n{problems}",
    },
    "rb.err.unknown": {
        "en": "There is no runbook `{name}`. Runbooks: {ids}. (`/taisun runbook list`)",
        "ja": "`{name}` というランブックはありません。ランブック: {ids}（`/taisun runbook list`）",
    },
    "rb.err.needs_env": {
        "en": "`{id}` has check or action steps, so it needs an environment: `/taisun runbook run {id} <env>` ({envs}).",
        "ja": "`{id}` にはチェックまたはアクションのステップがあるため、環境の指定が必要です: `/taisun runbook run {id} <env>`（{envs}）",
    },
    "rb.err.run_gone": {
        "en": "That runbook run no longer exists.",
        "ja": "そのランブックの実行はもう存在しません。",
    },
    "rb.err.no_step": {
        "en": "This run has no step `{step}`.",
        "ja": "この実行には `{step}` というステップはありません。",
    },
    "rb.err.done": {"en": "Already done.", "ja": "すでに完了しています。"},
    "rb.err.done_by": {"en": "Already done by {user}.", "ja": "{user} がすでに完了しています。"},
    "rb.err.passed": {"en": "That check already passed.", "ja": "そのチェックはすでに合格しています。"},
    "rb.err.skipped": {"en": "Already skipped: {reason}", "ja": "すでにスキップされています: {reason}"},
    "rb.err.skipped_by": {
        "en": "Already skipped by {user}: {reason}",
        "ja": "{user} がすでにスキップしています: {reason}",
    },
    "rb.err.running": {
        "en": "That step is running right now; its result will appear in the thread.",
        "ja": "そのステップは実行中です。結果はスレッドに表示されます。",
    },
    "rb.err.failed": {
        "en": "That step failed; run it again or skip it.",
        "ja": "そのステップは失敗しました。再実行するかスキップしてください。",
    },
    "rb.err.pending": {"en": "That step has not started.", "ja": "そのステップはまだ始まっていません。"},
    "rb.err.state": {"en": "That step is {state}.", "ja": "そのステップの状態は {state} です。"},
    "rb.err.skip_reason": {
        "en": "Say why the step is skipped; it goes into the timeline and the postmortem.",
        "ja": "スキップする理由を書いてください。タイムラインとポストモーテムに記録されます。",
    },
    "rb.err.not_check": {"en": "That step is not a check.", "ja": "そのステップはチェックではありません。"},
    "rb.err.needs_version": {
        "en": "This deploy step needs a version.",
        "ja": "このデプロイのステップにはバージョンが必要です。",
    },
    "rb.err.rollback_needs_version": {
        "en": "I can't tell which version to roll {env} back to: TAISUN has no earlier deploy of {env} on record. "
        "Name the release tag to return to.",
        "ja": "{env} をどのバージョンに戻せばよいかわかりません（TAISUN に {env} の以前のデプロイの記録がありません）。"
        "戻す先のリリースタグを指定してください。",
    },
    "rb.err.not_action": {
        "en": "That step is not an action.",
        "ja": "そのステップはアクションではありません。",
    },
    "rb.err.op_unavailable": {
        "en": "The `{op}` operation is not available in this version of the bot, so I cannot run this step. "
        "Do it by hand (see the runbook text), then mark the step *Done* — or *Skip* it with a reason.",
        "ja": "`{op}` 操作はこのバージョンのボットでは使えないため、このステップを実行できません。"
        "手作業で実施し（ランブックの本文を参照）、ステップを*完了*にしてください。または理由を添えて*スキップ*してください。",
    },
    "rb.err.no_env": {
        "en": "This run has no environment, so its actions cannot run. Start it with one: `/taisun runbook run {id} <env>`.",
        "ja": "この実行には環境が指定されていないため、アクションを実行できません。環境を指定して開始してください: `/taisun runbook run {id} <env>`",
    },
    "rb.msg.complete": {
        "en": "✅ Every step is done or skipped: this runbook is complete.",
        "ja": "✅ すべてのステップが完了またはスキップされました。このランブックは完了です。",
    },
    "rb.msg.check": {
        "en": "{icon} *{title}* — `{check}`\n{text}{took}",
        "ja": "{icon} *{title}* — `{check}`\n{text}{took}",
    },
    "rb.msg.check_by": {
        "en": "{icon} *{title}* — `{check}` (run by {user})\n{text}{took}",
        "ja": "{icon} *{title}* — `{check}`（実行: {user}）\n{text}{took}",
    },
    "rb.msg.action": {
        "en": "▶️ {user} ran *{title}*: {what} — job `{job}`; its card is in the channel.",
        "ja": "▶️ {user} が *{title}* を実行しました: {what} — ジョブ `{job}`。カードはチャンネルにあります。",
    },
    "rb.msg.action_dry": {
        "en": "▶️ {user} ran *{title}* as a *dry run*: {what} — job `{job}`; its card is in the channel.",
        "ja": "▶️ {user} が *{title}* を*ドライラン*で実行しました: {what} — ジョブ `{job}`。カードはチャンネルにあります。",
    },
    # bot/alerts/service.py: errors for the person who clicked
    "alert.err.gone": {
        "en": "That alert group no longer exists.",
        "ja": "そのアラートグループはもう存在しません。",
    },
    "alert.err.no_runbook": {
        "en": "No runbook is linked to {name} (runbook_url annotation or alerts.runbooks).",
        "ja": "{name} にはランブックが紐付いていません（runbook_url アノテーションまたは alerts.runbooks）。",
    },
    "alert.err.posting": {
        "en": "The alert message is still being posted; try again in a second.",
        "ja": "アラートのメッセージを投稿中です。少し待ってからもう一度お試しください。",
    },
    "alert.err.running": {
        "en": "A runbook is already running for {name}: see the alert's thread.",
        "ja": "{name} のランブックはすでに実行中です。アラートのスレッドを確認してください。",
    },
    "alert.reply.started": {
        "en": "📋 Runbook `{id}` started in the alert's thread.",
        "ja": "📋 ランブック `{id}` をアラートのスレッドで開始しました。",
    },
    "alert.reply.started_drill": {
        "en": "📋 Runbook `{id}` started (drill) in the alert's thread.",
        "ja": "📋 ランブック `{id}` を訓練としてアラートのスレッドで開始しました。",
    },
    # bot/slack/home.py: the App Home tab, in each viewer's language
    "home.updated": {
        "en": "Updated {time} · `/taisun help` for every command",
        "ja": "更新 {time} · 全コマンドは `/taisun help` で確認できます",
    },
    "home.environments": {"en": "*Environments*", "ja": "*環境*"},
    "home.checking": {"en": "checking…", "ja": "確認中…"},
    "home.last": {
        "en": "last: {operation} `{version}` by {user} {time}",
        "ja": "前回: {operation} `{version}`（{user}、{time}）",
    },
    "home.waiting": {"en": "*Waiting for your approval* ({n})", "ja": "*あなたの承認待ち*（{n} 件）"},
    "home.nothing_waits": {"en": "Nothing waits for you.", "ja": "承認待ちはありません。"},
    "home.asked_by": {"en": "{what} — asked by {user}", "ja": "{what} — 依頼: {user}"},
    "home.approve": {"en": "Approve", "ja": "承認"},
    "home.reject": {"en": "Reject", "ja": "却下"},
    "home.confirm_title": {"en": "Approve this?", "ja": "承認しますか？"},
    "home.confirm_text": {"en": "{what} will start.", "ja": "「{what}」が始まります。"},
    "home.open_incidents": {"en": "*Open incidents*", "ja": "*対応中のインシデント*"},
    "home.no_incidents": {"en": "No open incidents.", "ja": "対応中のインシデントはありません。"},
    "home.recent": {"en": "*Your recent actions*", "ja": "*あなたの最近の操作*"},
    "home.nothing_yet": {"en": "Nothing yet.", "ja": "まだありません。"},
    "home.incident": {
        "en": "🚨 *{ref}* {severity} · {title} · {phase} · {elapsed} · commander {commander}",
        "ja": "🚨 *{ref}* {severity} · {title} · {phase} · {elapsed} · コマンダー {commander}",
    },
    "home.incident_no_commander": {
        "en": "🚨 *{ref}* {severity} · {title} · {phase} · {elapsed} · *no commander*",
        "ja": "🚨 *{ref}* {severity} · {title} · {phase} · {elapsed} · *コマンダー未定*",
    },
    # bot/operations/ and bot/deploys/: shared words in operation steps and fields (rendered in the workspace language when recorded)
    "op.unknown": {"en": "unknown", "ja": "不明"},
    "op.none": {"en": "none", "ja": "なし"},
    "op.nothing": {"en": "nothing", "ja": "なし"},
    "op.label.dry_run": {"en": "DRY RUN", "ja": "ドライラン"},
    "op.label.simulated": {"en": "SIMULATED", "ja": "シミュレーション"},
    "op.why.dry_run": {"en": "dry run", "ja": "ドライラン"},
    "op.field.environment": {"en": "Environment", "ja": "環境"},
    "op.field.version": {"en": "Version", "ja": "バージョン"},
    "op.field.commit": {"en": "Commit", "ja": "コミット"},
    "op.field.changes": {"en": "Changes", "ja": "変更内容"},
    "op.field.rollback": {"en": "Rollback", "ja": "ロールバック"},
    # bot/deploys/operations.py: deploy and rollback
    "op.deploy.freeze": {
        "en": "*{env}* is in the freeze window “{window}” ({span}). Deploys are refused; in an emergency someone "
        'with the break-glass role can use `/taisun deploy {env} {version} --force "<reason>"`, which still needs approval.',
        "ja": "*{env}* はフリーズ期間「{window}」（{span}）中のため、デプロイできません。緊急時は break-glass ロールを"
        '持つ人が `/taisun deploy {env} {version} --force "<reason>"` を使えます（その場合も承認は必要です）。',
    },
    "op.deploy.env_value": {"en": "{env} ({url})", "ja": "{env}（{url}）"},
    "op.deploy.env_value_no_url": {"en": "{env} (no URL)", "ja": "{env}（URL なし）"},
    "op.deploy.commit_unchecked": {"en": "not checked", "ja": "未確認"},  # the banner says why
    "op.deploy.no_tag": {
        "en": "There is no tag `{version}` in {repo}. Latest tags: {tags}.",
        "ja": "{repo} に `{version}` というタグはありません。最新のタグ: {tags}",
    },
    "op.deploy.changes": {
        "en": "<{url}|{commits}> since {live}\n{titles}",
        "ja": "{live} 以降の <{url}|{commits}>\n{titles}",
    },
    "op.deploy.changes_more": {
        "en": "<{url}|{commits}> since {live}\n{titles}\n…and {more} more",
        "ja": "{live} 以降の <{url}|{commits}>\n{titles}\n…ほか {more} 件",
    },
    "unit.commit_one": {"en": "{n} commit", "ja": "{n} 件のコミット"},
    "unit.commits": {"en": "{n} commits", "ja": "{n} 件のコミット"},
    "op.deploy.changes_none": {
        "en": "none: `{version}` is already live",
        "ja": "なし: `{version}` はすでに稼働中です",
    },
    "op.deploy.changes_unknown": {
        "en": "changes unknown: {why} (the deploy goes on)",
        "ja": "変更内容は不明: {why}（デプロイは続行します）",
    },
    "op.deploy.why_no_live": {
        "en": "{env}'s /version did not tell the live version",
        "ja": "{env} の /version から稼働中のバージョンがわかりません",
    },
    "op.deploy.why_no_url": {
        "en": "the environment has no URL to read the live version from",
        "ja": "稼働中のバージョンを読む URL が環境に設定されていません",
    },
    "op.deploy.why_not_a_tag": {
        "en": "the live version `{live}` is not a tag in {repo}",
        "ja": "稼働中のバージョン `{live}` は {repo} のタグではありません",
    },
    "op.deploy.github_check": {
        "en": "Could not check `{version}` on GitHub: {error}",
        "ja": "GitHub で `{version}` を確認できませんでした: {error}",
    },
    "op.deploy.flag_freeze": {"en": "FREEZE OVERRIDE: {why}", "ja": "フリーズ期間の強制実行: {why}"},
    "op.deploy.flag_simulated": {"en": "SIMULATED — {why}", "ja": "シミュレーション — {why}"},
    "op.deploy.no_token": {
        "en": "no GITHUB_TOKEN: nothing is dispatched, every other step is real",
        "ja": "GITHUB_TOKEN なし: ワークフローは起動しませんが、それ以外の手順は実際に行います",
    },
    "op.deploy.run_ended": {
        "en": "The workflow run ended `{conclusion}`: <{url}|see its log>.",
        "ja": "ワークフロー実行が `{conclusion}` で終了しました: <{url}|ログを見る>",
    },
    "op.deploy.live": {
        "en": "{version} is live on {env} and healthy.",
        "ja": "{env} で {version} が稼働し、正常です。",
    },
    "op.deploy.sim_dispatch": {
        "en": "would dispatch `{workflow}` on `{ref}` of {repo} with inputs `{inputs}`",
        "ja": "{repo} の `{ref}` で `{workflow}` を入力 `{inputs}` で起動するところです",
    },
    "op.deploy.sim_follow": {
        "en": "would follow the workflow run to completion",
        "ja": "ワークフロー実行を完了まで追跡するところです",
    },
    "op.deploy.sim_verify": {
        "en": "would verify {url}/health is 200 and {url}/version is `{version}`",
        "ja": "{url}/health が 200 で {url}/version が `{version}` であることを検証するところです",
    },
    "op.deploy.sim_result": {
        "en": "{label}: nothing was changed ({why}).",
        "ja": "{label}: 何も変更していません（{why}）。",
    },
    "op.deploy.tag_moved": {
        "en": "The tag `{version}` now points to `{sha}`, not the approved `{approved}`. Nothing was deployed; "
        "ask again to review the new commit.",
        "ja": "タグ `{version}` は承認された `{approved}` ではなく `{sha}` を指しています。デプロイは行っていません。"
        "新しいコミットを確認するため、もう一度依頼してください。",
    },
    "op.deploy.dispatching": {"en": "Dispatching the workflow…", "ja": "ワークフローを起動しています…"},
    "op.deploy.dispatch_error": {
        "en": "GitHub answered with an error ({error}); looking for the run instead of dispatching again",
        "ja": "GitHub がエラーを返しました（{error}）。再度起動せず、実行を探しています",
    },
    "op.deploy.dispatch_refused": {
        "en": "GitHub refused the dispatch: {error}",
        "ja": "GitHub がワークフローの起動を拒否しました: {error}",
    },
    "op.deploy.dispatched": {"en": "Dispatched `{workflow}`", "ja": "`{workflow}` を起動しました"},
    "op.deploy.no_deployment": {
        "en": "Could not record a GitHub deployment ({error}); continuing",
        "ja": "GitHub のデプロイメントを記録できませんでした（{error}）。続行します",
    },
    "op.deploy.github_slow": {
        "en": "GitHub is not answering well ({error}); still looking for the run",
        "ja": "GitHub の応答が不安定です（{error}）。引き続き実行を探しています",
    },
    "op.deploy.no_run": {
        "en": "No workflow run appeared within {seconds} s. Nothing was deployed as far as GitHub shows; "
        "check the Actions tab, then ask again.",
        "ja": "{seconds} 秒以内にワークフロー実行が現れませんでした。GitHub 上ではデプロイは行われていません。"
        "Actions タブを確認してから、もう一度依頼してください。",
    },
    "op.deploy.no_run_why": {
        "en": "No workflow run appeared within {seconds} s (the dispatch answered: {error}). Nothing was deployed "
        "as far as GitHub shows; check the Actions tab, then ask again.",
        "ja": "{seconds} 秒以内にワークフロー実行が現れませんでした（起動時の応答: {error}）。GitHub 上ではデプロイは"
        "行われていません。Actions タブを確認してから、もう一度依頼してください。",
    },
    "op.deploy.link_run": {"en": "workflow run", "ja": "ワークフロー実行"},
    "op.deploy.run_found": {
        "en": "Workflow run <{url}|#{id}> found",
        "ja": "ワークフロー実行 <{url}|#{id}> が見つかりました",
    },
    "op.deploy.workflow_status": {"en": "Workflow {status}…", "ja": "ワークフロー: {status}…"},
    "op.deploy.workflow_done": {
        "en": "Workflow completed: `{conclusion}`",
        "ja": "ワークフロー完了: `{conclusion}`",
    },
    "op.deploy.timeout": {
        "en": "The workflow run did not finish within {minutes} minutes.",
        "ja": "ワークフロー実行が {minutes} 分以内に終わりませんでした。",
    },
    "op.deploy.verifying": {
        "en": "Verifying {url}/health and /version…",
        "ja": "{url}/health と /version を検証しています…",
    },
    "op.deploy.failed_unreachable": {
        "en": "the service did not answer /health ({health})",
        "ja": "サービスが /health に応答しません（{health}）",
    },
    "op.deploy.failed_health": {
        "en": "the health check failed: /health answered {health} (/version is `{version}` as expected)",
        "ja": "ヘルスチェックに失敗: /health の応答は {health}（/version は期待どおり `{version}`）",
    },
    "op.deploy.failed_version": {
        "en": "the version check failed: /version is `{seen}`, expected `{version}` (/health answered {health})",
        "ja": "バージョンチェックに失敗: /version は `{seen}`、期待値は `{version}`（/health の応答は {health}）",
    },
    "op.deploy.failed_both": {
        "en": "both checks failed: /health answered {health}, and /version is `{seen}`, expected `{version}`",
        "ja": "ヘルスチェックとバージョンチェックの両方に失敗: /health の応答は {health}、/version は `{seen}`"
        "（期待値 `{version}`）",
    },
    "op.deploy.verified": {
        "en": "Verified: healthy, version `{version}`",
        "ja": "検証済み: 正常、バージョン `{version}`",
    },
    "op.deploy.verify_failed_step": {
        "en": "Verification failed after {seconds} s: {failed}",
        "ja": "{seconds} 秒経っても検証に失敗: {failed}",
    },
    "op.deploy.auto_rollback": {
        "en": "Rolling back automatically to `{target}` (auto_rollback is on for {env})",
        "ja": "`{target}` へ自動でロールバックしています（{env} は auto_rollback が有効）",
    },
    "op.deploy.auto_rollback_failed": {
        "en": "Verification failed ({failed}) and the automatic rollback could not be dispatched: {error}",
        "ja": "検証に失敗し（{failed}）、自動ロールバックも起動できませんでした: {error}",
    },
    "op.deploy.auto_rolled_back": {
        "en": "Verification failed ({failed}). Rolled back automatically to `{target}`; follow it in GitHub Actions.",
        "ja": "検証に失敗しました（{failed}）。`{target}` へ自動でロールバックしました。GitHub Actions で進行を確認してください。",
    },
    "op.deploy.verify_failed": {
        "en": "Verification failed: {failed}.",
        "ja": "検証に失敗しました: {failed}。",
    },
    "op.deploy.verify_failed_offer": {
        "en": "Verification failed: {failed}. Use *Roll back* to return to `{target}`.",
        "ja": "検証に失敗しました: {failed}。*ロールバック* で `{target}` に戻せます。",
    },
    "op.rollback.previous": {"en": "the previous version", "ja": "直前のバージョン"},
    "op.rollback.lock_reason": {
        "en": "rolled back from {previous} to {version} — fix before deploying again",
        "ja": "{previous} から {version} にロールバック済み — 修正してから再デプロイしてください",
    },
    "op.deploy.freeze_span": {
        "en": "{start_day} {start} – {end_day} {end} {tz}",
        "ja": "{start_day} {start} 〜 {end_day} {end} {tz}",
    },
    "op.deploy.freeze_note": {
        "en": "{window} ({span}) — forced by {user}: {reason}",
        "ja": "{window}（{span}）— {user} が強制実行: {reason}",
    },
    "op.rollback.no_tags": {
        "en": "Could not list tags to find the previous version: {error}",
        "ja": "直前のバージョンを探すためのタグ一覧を取得できませんでした: {error}",
    },
    "op.rollback.live_one": {"en": "the live one", "ja": "稼働中のもの"},
    "op.rollback.from_verified": {
        "en": "{version} (the last deploy TAISUN verified)",
        "ja": "{version}（TAISUN が最後に検証したデプロイ）",
    },
    "op.rollback.from_simulated": {
        "en": "{version} (the last simulated deploy)",
        "ja": "{version}（最後にシミュレーションしたデプロイ）",
    },
    "op.rollback.unknown_target": {
        "en": "I don't know which version to roll {env} back to (no verified history and no older tag than "
        "`{current}`). Name it: `/taisun rollback {env} v1.2.2`.",
        "ja": "{env} をどのバージョンにロールバックすればよいかわかりません（検証済みの履歴がなく、`{current}` より"
        "古いタグもありません）。バージョンを指定してください: `/taisun rollback {env} v1.2.2`",
    },
    # bot/operations/restart.py and the other operations: flags and fields
    "op.flag.simulated": {"en": "SIMULATED — {why}", "ja": "シミュレーション — {why}"},
    # why an operation runs as a labelled simulation (stored in job.params["simulated"])
    "op.restart.bad_name": {
        "en": "Invalid service name `{name}`: use letters, digits and @ . _ - only (e.g. taisun or taisun@2).",
        "ja": "サービス名 `{name}` は使えません。英数字と @ . _ - だけを使ってください（例: taisun、taisun@2）。",
    },
    "op.restart.list_failed": {
        "en": "Could not list the instances to restart: {error}",
        "ja": "再起動するインスタンスの一覧を取得できません: {error}",
    },
    "op.restore.bad_id": {
        "en": "`{id}` is not a backup id or key: use an id like `20261128_020000`, a name like "
        "`backup_20261128_020000` or a key like `{prefix}backup_20261128_020000.sql.gz` (`/taisun backup list` "
        "shows them).",
        "ja": "`{id}` はバックアップの ID でもキーでもありません。`20261128_020000` のような ID、"
        "`backup_20261128_020000` のような名前、または `{prefix}backup_20261128_020000.sql.gz` のようなキーを"
        "指定してください（`/taisun backup list` で一覧を確認できます）。",
    },
    "op.sim.no_aws": {
        "en": "no AWS credentials in the environment, a profile or an instance role",
        "ja": "AWS の認証情報がありません（環境変数・プロファイル・インスタンスロールのいずれも）",
    },
    "op.sim.ssm": {"en": "{problem}: nothing is sent to SSM", "ja": "{problem}: SSM には何も送りません"},
    "op.sim.no_exe": {
        "en": "`{exe}` was not found on this host: nothing is restarted",
        "ja": "このホストに `{exe}` がありません: 何も再起動しません",
    },
    "op.sim.no_systemd": {
        "en": "this host does not run systemd: nothing is restarted",
        "ja": "このホストでは systemd が動いていません: 何も再起動しません",
    },
    "op.sim.no_upload": {"en": "{problem}: nothing is uploaded", "ja": "{problem}: 何もアップロードしません"},
    "op.sim.no_download": {
        "en": "{problem}: nothing is downloaded",
        "ja": "{problem}: 何もダウンロードしません",
    },
    "op.sim.unset_dump": {
        "en": "{name} is not set: nothing is dumped",
        "ja": "{name} が未設定: 何もダンプしません",
    },
    "op.sim.unset_restore": {
        "en": "{name} is not set: nothing is restored",
        "ja": "{name} が未設定: 何もリストアしません",
    },
    "op.sim.unset_redis": {
        "en": "{name} is not set: Redis is not touched",
        "ja": "{name} が未設定: Redis には触れません",
    },
    "op.sim.unset_app": {
        "en": "{name} is not set: the app's cache endpoint is not called",
        "ja": "{name} が未設定: アプリのキャッシュエンドポイントは呼びません",
    },
    "op.sim.unset_db": {
        "en": "{name} is not set: no connection is terminated",
        "ja": "{name} が未設定: 接続は終了しません",
    },
    "op.field.service": {"en": "Service", "ja": "サービス"},
    "op.field.where": {"en": "Where", "ja": "対象"},
    # bot/operations/restart.py: health checks (shared with cache-clear and db-connection-reset) and restarts
    "op.health.version": {"en": "{health}, version `{version}`", "ja": "{health}、バージョン `{version}`"},
    "op.health.no_url_step": {
        "en": "No URL configured for {env}: /health not checked",
        "ja": "{env} に URL が設定されていないため、/health は確認していません",
    },
    "op.health.not_checked": {"en": "not checked (no URL)", "ja": "未確認（URL なし）"},
    "op.health.checking": {"en": "Checking {url}/health…", "ja": "{url}/health を確認しています…"},
    "op.health.ok": {"en": "Health check: {health}", "ja": "ヘルスチェック: {health}"},
    "op.health.failed": {"en": "Health check failed: {health}", "ja": "ヘルスチェック失敗: {health}"},
    "op.restart.unhealthy_after": {
        "en": "Restarted, but {url}/health answers {health} after {seconds} s. Check the service now.",
        "ja": "再起動しましたが、{seconds} 秒経っても {url}/health が {health} を返しています。今すぐサービスを確認してください。",
    },
    "op.restart.no_services": {
        "en": "No services are configured for {env} (environments.{env}.services).",
        "ja": "{env} にはサービスが設定されていません（environments.{env}.services）。",
    },
    "op.restart.unknown_service": {
        "en": "Unknown service `{name}` in {env}. Services: {services}",
        "ja": "{env} に `{name}` というサービスはありません。サービス: {services}",
    },
    "op.restart.where_ssm": {
        "en": "instances tagged `{tag}={value}` (SSM)",
        "ja": "タグ `{tag}={value}` の付いたインスタンス（SSM）",
    },
    "op.restart.where_local": {
        "en": "this host `{host}` (`{command}`)",
        "ja": "このホスト `{host}`（`{command}`）",
    },
    "op.restart.no_instances_tagged": {
        "en": "No running instances are tagged `{tag}={value}`: nothing to restart in {env}.",
        "ja": "タグ `{tag}={value}` の付いた稼働中のインスタンスがありません。{env} で再起動するものはありません。",
    },
    "op.restart.sim_status": {
        "en": "would show the status of `{service}` on {what}",
        "ja": "{what} の `{service}` の状態を表示するところです",
    },
    "op.restart.sim_restart": {
        "en": "would restart `{service}` on {what}, one at a time, checking {url}/health after each and "
        "stopping at the first failure",
        "ja": "{what} の `{service}` を 1 台ずつ再起動し、毎回 {url}/health を確認して、最初の失敗で止めるところです",
    },
    "op.restart.no_url": {"en": "(no URL)", "ja": "（URL なし）"},
    "op.restart.none_running": {
        "en": "No running instances to restart in {env} ({where}).",
        "ja": "{env} に再起動できる稼働中のインスタンスがありません（{where}）。",
    },
    "op.restart.resumed_current": {
        "en": "Resumed: `{target}` was being restarted when the bot stopped; restarting it again",
        "ja": "再開: ボットが止まったとき `{target}` を再起動中でした。もう一度再起動します",
    },
    "op.restart.resumed_done": {
        "en": "Resumed: {n} already restarted and healthy; going on with the next",
        "ja": "再開: {n} 台は再起動済みで正常です。次に進みます",
    },
    "op.restart.summary": {
        "en": "`{service}` restarted on {n} of {total} in {env}; /health {health}",
        "ja": "{env} で `{service}` を {total} 台中 {n} 台再起動しました。/health {health}",
    },
    "op.restart.result": {"en": "{summary}.", "ja": "{summary}。"},
    "op.restart.other_host": {
        "en": "This restart was started on host `{host}`; the bot on `{me}` cannot finish it. Check `{service}` on "
        "`{host}` by hand.",
        "ja": "この再起動はホスト `{host}` で開始されたため、`{me}` 上のボットでは完了できません。`{host}` の "
        "`{service}` を手作業で確認してください。",
    },
    "op.restart.restarting": {
        "en": "`{target}`: restarting `{service}`…",
        "ja": "`{target}`: `{service}` を再起動しています…",
    },
    "op.restart.restarted_checking": {
        "en": "`{target}`: restarted ({status}); checking /health…",
        "ja": "`{target}`: 再起動しました（{status}）。/health を確認しています…",
    },
    "op.restart.no_url_detail": {"en": "not checked (no URL configured)", "ja": "未確認（URL 未設定）"},
    "op.restart.restarted": {
        "en": "`{target}`: restarted · /health {detail}",
        "ja": "`{target}`: 再起動済み · /health {detail}",
    },
    "op.restart.step_failed": {
        "en": "`{target}`: restart {status} — {why}",
        "ja": "`{target}`: 再起動 {status} — {why}",
    },
    "op.restart.no_output": {"en": "(no output)", "ja": "（出力なし）"},
    # why a rolling restart ended where it did (the host's and /health's own words inside)
    "op.restart.why.none": {
        "en": "no targets: nothing was restarted",
        "ja": "対象がないため、何も再起動していません",
    },
    "op.restart.why.failed": {
        "en": "restart of {target} failed ({status}): {why}{untouched}",
        "ja": "{target} の再起動に失敗しました（{status}）: {why}{untouched}",
    },
    "op.restart.why.unhealthy": {
        "en": "health check failed after restarting {target}: {health}{untouched}",
        "ja": "{target} の再起動後のヘルスチェックに失敗しました: {health}{untouched}",
    },
    "op.restart.why.untouched": {"en": "; not restarted: {targets}", "ja": "（未再起動: {targets}）"},
    "op.restart.why.all_ok": {
        "en": "all {n} restarted and healthy",
        "ja": "{n} 台すべて再起動済みで正常です",
    },
    "op.restart.unhealthy": {
        "en": "`{target}`: restarted, but /health stayed unhealthy: {health}",
        "ja": "`{target}`: 再起動しましたが、/health が異常のままです: {health}",
    },
    "op.restart.not_restarted": {"en": "`{target}`: not restarted", "ja": "`{target}`: 再起動していません"},
    "op.restart.stopped": {
        "en": "Rolling restart of `{service}` in {env} stopped at `{stopped}`: {reason}. {n} of {total} restarted and healthy.",
        "ja": "{env} の `{service}` のローリング再起動は `{stopped}` で止まりました: {reason}。{total} 台中 {n} 台が再起動済みで正常です。",
    },
    "op.restart.stopped_untouched": {
        "en": "Rolling restart of `{service}` in {env} stopped at `{stopped}`: {reason}. {n} of {total} restarted and "
        "healthy; left untouched: {untouched}.",
        "ja": "{env} の `{service}` のローリング再起動は `{stopped}` で止まりました: {reason}。{total} 台中 {n} 台が"
        "再起動済みで正常です。未処理: {untouched}。",
    },
    "op.restart.status_failed": {
        "en": "Status check failed, nothing was restarted: {error}",
        "ja": "状態の確認に失敗しました。何も再起動していません: {error}",
    },
    "op.restart.health_now": {"en": " · /health now {health}", "ja": " · 現在の /health: {health}"},
    "op.restart.no_active": {"en": "no Active: line", "ja": "Active: 行なし"},
    "op.restart.status_local": {
        "en": "Status of `{service}` on `{target}`: {active}{now}",
        "ja": "`{target}` の `{service}` の状態: {active}{now}",
    },
    "op.restart.status_ssm": {
        "en": "Status: {n} running instance(s) {where}{now}",
        "ja": "状態: {where} の稼働中インスタンス {n} 台{now}",
    },
    "op.restart.which_env": {
        "en": "Which environment? Usage: `/taisun restart <env> [service]`.",
        "ja": "どの環境ですか？ 使い方: `/taisun restart <env> [service]`",
    },
    "op.restart.sim_result": {
        "en": "{label}: nothing was restarted ({why}).",
        "ja": "{label}: 何も再起動していません（{why}）。",
    },
    # bot/operations/cache.py: cache clear
    "op.cache.which_env": {
        "en": "Which environment? Usage: `/taisun cache-clear <env> [redis|app|all]`.",
        "ja": "どの環境ですか？ 使い方: `/taisun cache-clear <env> [redis|app|all]`",
    },
    "op.cache.unknown": {
        "en": "Unknown cache `{target}`. Choose `redis`, `app` or `all`.",
        "ja": "`{target}` というキャッシュはありません。`redis`、`app`、`all` のいずれかを選んでください。",
    },
    "op.cache.none": {
        "en": "No cache is configured for {env} (environments.{env}.cache).",
        "ja": "{env} にはキャッシュが設定されていません（environments.{env}.cache）。",
    },
    "op.cache.no_redis": {
        "en": "No Redis is configured for {env} (environments.{env}.cache.redis_url_env).",
        "ja": "{env} には Redis が設定されていません（environments.{env}.cache.redis_url_env）。",
    },
    "op.cache.no_app": {
        "en": "No application cache is configured for {env}: set environments.{env}.cache.app_endpoint "
        "(with app_token_env) or app_command.",
        "ja": "{env} にはアプリケーションキャッシュが設定されていません。environments.{env}.cache.app_endpoint"
        "（app_token_env と併せて）または app_command を設定してください。",
    },
    "op.cache.nothing": {
        "en": "Nothing to clear in {env}: its cache section names neither Redis nor an app cache.",
        "ja": "{env} にはクリアするものがありません。cache の設定に Redis もアプリキャッシュもありません。",
    },
    "op.cache.redis_what_prefix": {"en": "keys matching `{prefix}*`", "ja": "`{prefix}*` に一致するキー"},
    "op.cache.redis_what_flushdb": {
        "en": "every key of its database (FLUSHDB)",
        "ja": "そのデータベースの全キー（FLUSHDB）",
    },
    "op.cache.redis_what_flushall": {
        "en": "every database on the server (FLUSHALL)",
        "ja": "サーバー上の全データベース（FLUSHALL）",
    },
    "op.cache.not_set": {"en": "${name} (not set)", "ja": "${name}（未設定）"},
    "op.cache.redis_field": {
        "en": "{where} · mode `{mode}`: {what}",
        "ja": "{where} · モード `{mode}`: {what}",
    },
    "op.field.redis": {"en": "Redis", "ja": "Redis"},
    "op.field.app_cache": {"en": "App cache", "ja": "アプリキャッシュ"},
    "op.field.deleted": {"en": "Deleted", "ja": "削除"},
    "op.field.redis_memory": {"en": "Redis memory", "ja": "Redis メモリ"},
    "op.cache.sim_redis": {
        "en": "would clear Redis: {what}",
        "ja": "Redis をクリアするところです: {what}",
    },
    "op.cache.sim_app": {
        "en": "would clear the app cache: {what}",
        "ja": "アプリキャッシュをクリアするところです: {what}",
    },
    "op.cache.sim_health": {
        "en": "would check {url}/health",
        "ja": "{url}/health を確認するところです",
    },
    "op.cache.sim_result": {
        "en": "{label}: nothing was cleared ({why}).",
        "ja": "{label}: 何もクリアしていません（{why}）。",
    },
    "op.cache.unhealthy_after": {
        "en": "The cache was cleared ({notes}), but {url}/health answers {health} after {seconds} s. Check the service now.",
        "ja": "キャッシュはクリアしました（{notes}）が、{seconds} 秒経っても {url}/health が {health} を返しています。"
        "今すぐサービスを確認してください。",
    },
    "op.cache.result": {
        "en": "Cleared on {env}: {notes}. /health {health}.",
        "ja": "{env} でクリアしました: {notes}。/health {health}。",
    },
    "op.cache.result_partial": {
        "en": "Cleared on {env}: {notes}. /health {health}. ({label}: {why})",
        "ja": "{env} でクリアしました: {notes}。/health {health}。（{label}: {why}）",
    },
    "op.cache.redis_unset": {
        "en": "{name} is no longer set in the bot's environment: Redis was not touched.",
        "ja": "ボットの環境に {name} が設定されていません。Redis には触れていません。",
    },
    "op.cache.redis_clearing": {
        "en": "Redis {where}: clearing {what}…",
        "ja": "Redis {where}: {what} をクリアしています…",
    },
    "op.cache.redis_failed": {
        "en": "The Redis cache was not cleared: {error}",
        "ja": "Redis キャッシュをクリアできませんでした: {error}",
    },
    "op.cache.every_key": {"en": "every key", "ja": "全キー"},
    "op.cache.keys": {"en": "{n} key(s)", "ja": "{n} 件のキー"},
    "op.cache.redis_done": {
        "en": "Redis {where} ({mode}): {deleted} deleted · memory {memory}",
        "ja": "Redis {where}（{mode}）: {deleted} を削除 · メモリ {memory}",
    },
    "op.cache.redis_note": {
        "en": "Redis {deleted} deleted, memory {memory}",
        "ja": "Redis の {deleted} を削除、メモリ {memory}",
    },
    "op.cache.app_running": {"en": "App cache: {what}…", "ja": "アプリキャッシュ: {what}…"},
    "op.cache.app_step": {"en": "App cache: {text}", "ja": "アプリキャッシュ: {text}"},
    "op.cache.app_failed": {
        "en": "The application cache was not cleared: {error}",
        "ja": "アプリケーションキャッシュをクリアできませんでした: {error}",
    },
    "op.cache.app_note": {
        "en": "app cache cleared ({summary})",
        "ja": "アプリキャッシュをクリア（{summary}）",
    },
    # bot/operations/dbreset.py: DB connection reset
    "op.db.counts": {
        "en": "{total} connection(s): {idle} idle, {older} idle > {age}",
        "ja": "接続 {total} 件: アイドル {idle} 件、{age} 超のアイドル {older} 件",
    },
    "op.db.counts_txn": {
        "en": "{total} connection(s): {idle} idle, {older} idle > {age}, {txn} idle in transaction (left alone)",
        "ja": "接続 {total} 件: アイドル {idle} 件、{age} 超のアイドル {older} 件、トランザクション中のアイドル {txn} 件（対象外）",
    },
    "op.db.dsn_unset": {
        "en": "{name} is no longer set in the bot's environment: nothing was changed.",
        "ja": "ボットの環境に {name} が設定されていません。何も変更していません。",
    },
    "op.db.which_env": {
        "en": "Which environment? The DB connection reset works on one environment's database.",
        "ja": "どの環境ですか？ DB 接続リセットは 1 つの環境のデータベースに対して行います。",
    },
    "op.db.none": {
        "en": "No database is configured for {env} (environments.{env}.database.dsn_env).",
        "ja": "{env} にはデータベースが設定されていません（environments.{env}.database.dsn_env）。",
    },
    "op.db.own_db": {
        "en": "environments.{env}.database.dsn_env is DATABASE_URL, the bot's own database. "
        "Name the variable that holds the application's database DSN instead.",
        "ja": "environments.{env}.database.dsn_env が DATABASE_URL（ボット自身のデータベース）になっています。"
        "代わりにアプリケーションのデータベース DSN を持つ変数を指定してください。",
    },
    "op.db.bad_age": {
        "en": "idle_age_minutes should be a number of minutes, got {value}.",
        "ja": "idle_age_minutes には分数を数値で指定してください（指定値: {value}）。",
    },
    "op.db.age_positive": {
        "en": "idle_age_minutes should be more than 0.",
        "ja": "idle_age_minutes は 0 より大きくしてください。",
    },
    "op.db.same_dsn": {
        "en": "{name} holds the same DSN as the bot's own DATABASE_URL; refusing to end the bot's connections.",
        "ja": "{name} はボット自身の DATABASE_URL と同じ DSN です。ボットの接続を切断することになるため拒否します。",
    },
    "op.field.database": {"en": "Database", "ja": "データベース"},
    "op.field.terminates": {"en": "Terminates", "ja": "切断対象"},
    "op.field.connections_now": {"en": "Connections now", "ja": "現在の接続"},
    "op.field.before": {"en": "Before", "ja": "実行前"},
    "op.field.terminated": {"en": "Terminated", "ja": "切断数"},
    "op.field.after": {"en": "After", "ja": "実行後"},
    "op.db.terminates": {"en": "connections idle for more than {age}", "ja": "{age} を超えてアイドルの接続"},
    "op.db.pg_stat_failed": {
        "en": "Could not read pg_stat_activity: {error}",
        "ja": "pg_stat_activity を読めませんでした: {error}",
    },
    "op.db.terminating": {
        "en": "Terminating connections idle > {age} on {dsn}…",
        "ja": "{dsn} で {age} 超アイドルの接続を切断しています…",
    },
    "op.db.reset_failed_step": {"en": "Reset failed: {error}", "ja": "リセットに失敗: {error}"},
    "op.db.reset_failed": {
        "en": "No connection was reset: {error}",
        "ja": "接続は 1 つもリセットしていません: {error}",
    },
    "op.db.pids": {"en": " (pids {pids})", "ja": "（pid {pids}）"},
    "op.db.not_ended": {
        "en": "; {n} could not be ended (pids {pids})",
        "ja": "。{n} 件は切断できませんでした（pid {pids}）",
    },
    "op.db.before": {"en": "Before: {counts}", "ja": "実行前: {counts}"},
    "op.db.terminated": {
        "en": "Terminated {n} idle connection(s){pids}{failed}",
        "ja": "アイドル接続を {n} 件切断しました{pids}{failed}",
    },
    "op.db.after": {"en": "After: {counts}", "ja": "実行後: {counts}"},
    "op.db.summary": {
        "en": "Terminated {n} idle connection(s) on {env}",
        "ja": "{env} でアイドル接続を {n} 件切断しました",
    },
    "op.db.restart_skipped": {
        "en": "Restart skipped (restart: false)",
        "ja": "再起動はスキップ（restart: false）",
    },
    "op.db.now": {"en": "Now: {counts}", "ja": "現在: {counts}"},
    "op.db.sim_terminate": {
        "en": "would terminate {n} idle connection(s){pids}",
        "ja": "アイドル接続を {n} 件切断するところです{pids}",
    },
    "op.db.sim_count": {
        "en": "would count connections in pg_stat_activity",
        "ja": "pg_stat_activity の接続数を数えるところです",
    },
    "op.db.sim_terminate_age": {
        "en": "would terminate connections idle for more than {age}",
        "ja": "{age} を超えてアイドルの接続を切断するところです",
    },
    "op.db.sim_result": {
        "en": "{label}: nothing was changed ({why}).",
        "ja": "{label}: 何も変更していません（{why}）。",
    },
    # bot/operations/backup.py: backup and restore
    "op.backup.busy_backup": {
        "en": "A backup is already running (job `{job}`, started by {who}). Only one backup or restore runs at a time; "
        "try again when it finishes.",
        "ja": "バックアップがすでに実行中です（ジョブ `{job}`、開始: {who}）。バックアップとリストアは同時に 1 つしか"
        "実行できません。終わってからもう一度お試しください。",
    },
    "op.backup.busy_restore": {
        "en": "A restore is already running (job `{job}`, started by {who}). Only one backup or restore runs at a time; "
        "try again when it finishes.",
        "ja": "リストアがすでに実行中です（ジョブ `{job}`、開始: {who}）。バックアップとリストアは同時に 1 つしか"
        "実行できません。終わってからもう一度お試しください。",
    },
    "op.backup.busy_backup_nightly": {
        "en": "A backup is already running (job `{job}`, started by the nightly timer). Only one backup or restore runs "
        "at a time; try again when it finishes.",
        "ja": "バックアップがすでに実行中です（ジョブ `{job}`、夜間タイマーが開始）。バックアップとリストアは同時に "
        "1 つしか実行できません。終わってからもう一度お試しください。",
    },
    "op.backup.busy_restore_nightly": {
        "en": "A restore is already running (job `{job}`, started by the nightly timer). Only one backup or restore runs "
        "at a time; try again when it finishes.",
        "ja": "リストアがすでに実行中です（ジョブ `{job}`、夜間タイマーが開始）。バックアップとリストアは同時に "
        "1 つしか実行できません。終わってからもう一度お試しください。",
    },
    "op.field.destination": {"en": "Destination", "ja": "保存先"},
    "op.field.retention": {"en": "Retention", "ja": "保持期間"},
    "op.field.memory_system": {"en": "Memory system", "ja": "メモリシステム"},
    "op.field.backup": {"en": "Backup", "ja": "バックアップ"},
    "op.field.size": {"en": "Size", "ja": "サイズ"},
    "op.field.sha256": {"en": "SHA-256", "ja": "SHA-256"},
    "op.field.duration": {"en": "Duration", "ja": "所要時間"},
    "op.field.taken": {"en": "Taken", "ja": "取得日時"},
    "op.field.restore_into": {"en": "Restore into", "ja": "リストア先"},
    "op.field.then": {"en": "Then", "ja": "その後"},
    "op.backup.retention_value": {
        "en": "{days} days (the newest backup is always kept)",
        "ja": "{days} 日（最新のバックアップは常に保持）",
    },
    "op.backup.dsn_unset": {
        "en": "{name} is no longer set in the bot's environment: nothing was backed up.",
        "ja": "ボットの環境に {name} が設定されていません。何もバックアップしていません。",
    },
    "op.backup.result": {
        "en": "Backup `{id}` stored: {size}, sha256 `{sha}…`, {seconds} s. Retention: nothing older than {days} days.",
        "ja": "バックアップ `{id}` を保存しました: {size}、sha256 `{sha}…`、{seconds} 秒。保持期間: {days} 日より古いものはありません。",
    },
    "op.backup.result_deleted": {
        "en": "Backup `{id}` stored: {size}, sha256 `{sha}…`, {seconds} s. Retention deleted {n} backup(s) older than {days} days.",
        "ja": "バックアップ `{id}` を保存しました: {size}、sha256 `{sha}…`、{seconds} 秒。保持期間により {days} 日より古い"
        "バックアップを {n} 件削除しました。",
    },
    "op.backup.sim_dump": {
        "en": "would run pg_dump on {source}, gzip it and stream it to s3://{bucket}/{object}",
        "ja": "{source} で pg_dump を実行し、gzip して s3://{bucket}/{object} に転送するところです",
    },
    "op.backup.sim_memory": {
        "en": "would tar {paths} to s3://{bucket}/{prefix}",
        "ja": "{paths} を tar にまとめて s3://{bucket}/{prefix} に保存するところです",
    },
    "op.backup.sim_retention": {
        "en": "would delete backups older than {days} days (keeping the newest)",
        "ja": "{days} 日より古いバックアップを削除するところです（最新のものは保持）",
    },
    "op.backup.sim_check": {
        "en": "would check that the new backup is listed with its SHA-256",
        "ja": "新しいバックアップが SHA-256 付きで一覧にあることを確認するところです",
    },
    "op.backup.sim_result": {
        "en": "{label}: nothing was backed up ({why}).",
        "ja": "{label}: 何もバックアップしていません（{why}）。",
    },
    "op.backup.resumed_unfinished": {
        "en": "Resumed: the previous attempt did not finish `{object}`; taking a new backup",
        "ja": "再開: 前回の試行は `{object}` を完了していません。新しくバックアップを取ります",
    },
    "op.backup.resumed_stored": {
        "en": "Resumed: `{object}` had been stored before the bot stopped",
        "ja": "再開: ボットが止まる前に `{object}` は保存済みでした",
    },
    "op.backup.dumping": {
        "en": "Dumping {dsn} to s3://{bucket}/{object}…",
        "ja": "{dsn} を s3://{bucket}/{object} にダンプしています…",
    },
    "op.backup.progress_upload": {"en": "Uploading", "ja": "アップロード中"},
    "op.backup.failed_step": {"en": "Backup failed: {error}", "ja": "バックアップ失敗: {error}"},
    "op.backup.failed": {"en": "The backup failed: {error}", "ja": "バックアップに失敗しました: {error}"},
    "op.backup.failed_nothing": {
        "en": "The backup failed: {error}. Nothing was stored.",
        "ja": "バックアップに失敗しました: {error}。何も保存していません。",
    },
    "op.backup.stored": {
        "en": "Stored s3://{bucket}/{object}: {size} ({raw} of SQL) in {seconds} s, {throughput}",
        "ja": "s3://{bucket}/{object} に保存しました: {size}（SQL {raw}）、{seconds} 秒、{throughput}",
    },
    "op.backup.size_value": {"en": "{size} gzip ({raw} of SQL)", "ja": "{size} gzip（SQL {raw}）"},
    "op.backup.memory_progress": {"en": "Memory system", "ja": "メモリシステム"},
    "op.backup.memory_failed_step": {
        "en": "Memory system backup failed: {error}",
        "ja": "メモリシステムのバックアップ失敗: {error}",
    },
    "op.backup.memory_failed": {
        "en": "The database backup `{id}` is stored, but the memory system's was not: {error}",
        "ja": "データベースのバックアップ `{id}` は保存しましたが、メモリシステムのバックアップは保存できませんでした: {error}",
    },
    "op.backup.memory_none": {
        "en": "Memory system: none of {paths} exists on this host; skipped",
        "ja": "メモリシステム: {paths} はいずれもこのホストにありません。スキップしました",
    },
    "op.backup.memory_done": {
        "en": "Memory system: s3://{bucket}/{object}, {size}",
        "ja": "メモリシステム: s3://{bucket}/{object}、{size}",
    },
    "op.backup.retention_failed_step": {
        "en": "Retention failed: {error}",
        "ja": "保持期間の処理に失敗: {error}",
    },
    "op.backup.retention_failed": {
        "en": "The backup `{id}` is stored, but retention failed: {error}",
        "ja": "バックアップ `{id}` は保存しましたが、保持期間の処理に失敗しました: {error}",
    },
    "op.backup.retention_deleted": {
        "en": "Retention: deleted {n} backup(s) older than {days} days: {names}",
        "ja": "保持期間: {days} 日より古いバックアップを {n} 件削除しました: {names}",
    },
    "op.backup.retention_nothing": {
        "en": "Retention: nothing older than {days} days",
        "ja": "保持期間: {days} 日より古いものはありません",
    },
    "op.backup.retention_field": {
        "en": "{n} deleted (older than {days} days)",
        "ja": "{n} 件削除（{days} 日より古いもの）",
    },
    "op.backup.list_failed": {
        "en": "The backup `{id}` was uploaded, but listing it failed: {error}",
        "ja": "バックアップ `{id}` はアップロードしましたが、一覧の取得に失敗しました: {error}",
    },
    "op.backup.check_failed_step": {
        "en": "Check failed: `{id}` is not listed with sha256 `{sha}…`",
        "ja": "確認失敗: `{id}` が sha256 `{sha}…` 付きで一覧にありません",
    },
    "op.backup.check_failed": {
        "en": "The backup `{id}` is not listed in s3://{bucket}/{prefix} with its checksum.",
        "ja": "バックアップ `{id}` がチェックサム付きで s3://{bucket}/{prefix} の一覧にありません。",
    },
    "op.backup.checked": {
        "en": "Checked: `{id}` is listed, sha256 `{sha}…` recorded",
        "ja": "確認済み: `{id}` は一覧にあり、sha256 `{sha}…` が記録されています",
    },
    "op.restore.no_db": {
        "en": "No database is configured for {env} (environments.{env}.database.dsn_env), so there is nothing to restore into there.",
        "ja": "{env} にはデータベースが設定されていない（environments.{env}.database.dsn_env）ため、リストア先がありません。",
    },
    "op.restore.own_db": {
        "en": "The restore target is DATABASE_URL, the bot's own database. Set backup.restore_dsn_env "
        "(or the environment's database.dsn_env) to the application database's variable.",
        "ja": "リストア先が DATABASE_URL（ボット自身のデータベース）になっています。backup.restore_dsn_env"
        "（または環境の database.dsn_env）にアプリケーションのデータベースの変数を設定してください。",
    },
    "op.restore.same_dsn": {
        "en": "{name} holds the bot's own DATABASE_URL; refusing to restore over the bot's database.",
        "ja": "{name} はボット自身の DATABASE_URL です。ボットのデータベースを上書きすることになるため拒否します。",
    },
    "op.restore.read_failed": {
        "en": "Could not read s3://{bucket}/{object}: {error}",
        "ja": "s3://{bucket}/{object} を読めませんでした: {error}",
    },
    "op.restore.no_sha": {
        "en": "`{id}` has no recorded SHA-256: it is an unfinished upload and cannot be verified. "
        "Pick another backup (`/taisun backup list`).",
        "ja": "`{id}` には SHA-256 が記録されていません。未完了のアップロードのため検証できません。"
        "別のバックアップを選んでください（`/taisun backup list`）。",
    },
    "op.restore.sha_value": {
        "en": "`{sha}` (verified before anything is restored)",
        "ja": "`{sha}`（リストア前に検証します）",
    },
    "op.restore.not_set": {"en": "(not set)", "ja": "（未設定）"},
    "op.restore.no_verify": {
        "en": "no backup.verify_command configured",
        "ja": "backup.verify_command は未設定",
    },
    "op.restore.not_found": {
        "en": "There is no backup `{id}` in s3://{bucket}/{prefix}. Latest: {latest}.",
        "ja": "s3://{bucket}/{prefix} に `{id}` というバックアップはありません。最新: {latest}",
    },
    "op.restore.sim_download": {
        "en": "would download s3://{bucket}/{object} and verify its SHA-256",
        "ja": "s3://{bucket}/{object} をダウンロードして SHA-256 を検証するところです",
    },
    "op.restore.sim_replay": {
        "en": "would replay it with psql into ${var} in a single transaction",
        "ja": "psql で ${var} に単一トランザクションで流し込むところです",
    },
    "op.restore.sim_verify": {
        "en": "would run `{command}`",
        "ja": "`{command}` を実行するところです",
    },
    "op.restore.sim_result": {
        "en": "{label}: nothing was restored ({why}).",
        "ja": "{label}: 何もリストアしていません（{why}）。",
    },
    "op.restore.dsn_unset": {
        "en": "{name} is no longer set in the bot's environment: nothing was restored.",
        "ja": "ボットの環境に {name} が設定されていません。何もリストアしていません。",
    },
    "op.restore.downloading": {
        "en": "Downloading s3://{bucket}/{object}…",
        "ja": "s3://{bucket}/{object} をダウンロードしています…",
    },
    "op.restore.progress": {"en": "Restore", "ja": "リストア"},
    "op.restore.checksum_failed": {
        "en": "The backup's checksum does not match, so nothing was restored: {error}",
        "ja": "バックアップのチェックサムが一致しないため、何もリストアしていません: {error}",
    },
    "op.restore.checksum_failed_step": {
        "en": "Checksum check failed: {error}",
        "ja": "チェックサムの確認に失敗: {error}",
    },
    "op.restore.failed_step": {"en": "Restore failed: {error}", "ja": "リストア失敗: {error}"},
    "op.restore.failed": {"en": "The restore failed: {error}", "ja": "リストアに失敗しました: {error}"},
    "op.restore.changed": {
        "en": "Note: the backup changed after approval (sha256 `{before}…` → `{after}…`)",
        "ja": "注意: 承認後にバックアップが変わりました（sha256 `{before}…` → `{after}…`）",
    },
    "op.restore.checksum_ok": {
        "en": "Checksum verified: sha256 `{sha}…` matches the backup's record",
        "ja": "チェックサム検証済み: sha256 `{sha}…` はバックアップの記録と一致します",
    },
    "op.restore.restored": {
        "en": "Restored into {dsn} in {seconds} s (one transaction, committed)",
        "ja": "{dsn} にリストアしました（{seconds} 秒、単一トランザクションでコミット済み）",
    },
    "op.restore.result": {
        "en": "Backup `{id}` restored into {dsn}: sha256 `{sha}…` verified, {seconds} s. {check}",
        "ja": "バックアップ `{id}` を {dsn} にリストアしました: sha256 `{sha}…` 検証済み、{seconds} 秒。{check}",
    },
    "op.restore.no_verify_step": {
        "en": "No backup.verify_command configured: the checksum was the only check",
        "ja": "backup.verify_command が未設定のため、チェックサムのみで確認しました",
    },
    "op.restore.no_verify_result": {
        "en": "No integrity command configured.",
        "ja": "整合性チェックのコマンドは未設定です。",
    },
    "op.restore.running": {"en": "Running `{command}`…", "ja": "`{command}` を実行しています…"},
    "op.restore.verify_failed_step": {"en": "`{command}` failed: {last}", "ja": "`{command}` 失敗: {last}"},
    "op.restore.verify_failed": {
        "en": "The data was restored, but the integrity check `{command}` failed: {last}",
        "ja": "データはリストアしましたが、整合性チェック `{command}` が失敗しました: {last}",
    },
    "op.restore.verify_passed_step": {"en": "`{command}` passed: {last}", "ja": "`{command}` 成功: {last}"},
    "op.restore.verify_passed": {"en": "`{command}` passed.", "ja": "`{command}` は成功しました。"},
    "op.backup.list.cannot": {
        "en": "Cannot list {where}: {problem}.",
        "ja": "{where} の一覧を取得できません: {problem}。",
    },
    "op.backup.list.cannot_long": {
        "en": "Cannot list `{where}`: {problem}. Set the AWS credentials in the bot's environment.",
        "ja": "`{where}` の一覧を取得できません: {problem}。ボットの環境に AWS の認証情報を設定してください。",
    },
    "op.backup.list.failed": {
        "en": "Could not list the backups: {error}",
        "ja": "バックアップの一覧を取得できませんでした: {error}",
    },
    "op.backup.list.failed_in": {
        "en": "Could not list the backups in {where}: {error}",
        "ja": "{where} のバックアップ一覧を取得できませんでした: {error}",
    },
    "op.backup.list.empty": {
        "en": "No backups in {where} yet.",
        "ja": "{where} にはまだバックアップがありません。",
    },
    "op.backup.list.empty_long": {
        "en": "No backups in `{where}` yet. `/taisun backup run` takes one.",
        "ja": "`{where}` にはまだバックアップがありません。`/taisun backup run` で取得できます。",
    },
    "op.backup.list.unfinished": {
        "en": "⚠️ unfinished (no checksum; cannot be restored)",
        "ja": "⚠️ 未完了（チェックサムなし。リストアできません）",
    },
    "op.backup.list.line": {
        "en": "`{id}` · {time} · {age} ago · {size} · {check}",
        "ja": "`{id}` · {time} · {age} 前 · {size} · {check}",
    },
    "op.backup.list.more": {"en": "…and {n} older", "ja": "…ほか古いもの {n} 件"},
    "op.backup.list.text": {"en": "{n} backup(s) in {where}", "ja": "{where} のバックアップ {n} 件"},
    "op.backup.list.title": {
        "en": "*Backups in `{where}`* (newest first, kept {days} days)",
        "ja": "*`{where}` のバックアップ*（新しい順、{days} 日間保持）",
    },
    "op.backup.list.how": {
        "en": "Restore one with `/taisun backup restore <id>` (needs approval).",
        "ja": "リストアするには `/taisun backup restore <id>`（承認が必要です）。",
    },
    "op.backup.list.listing": {"en": "Listing backups…", "ja": "バックアップを一覧しています…"},
    "op.backup.report.ok": {"en": "✅ Nightly backup succeeded", "ja": "✅ 夜間バックアップ成功"},
    "op.backup.report.simulated": {
        "en": "❌ Nightly backup did NOT run (simulated: credentials missing)",
        "ja": "❌ 夜間バックアップは実行されませんでした（シミュレーション: 認証情報なし）",
    },
    "op.backup.report.failed": {"en": "❌ Nightly backup FAILED", "ja": "❌ 夜間バックアップ失敗"},
    # bot/incidents/runs.py: how an action step's job ended (the step's result and its thread note)
    "rb.job_final.succeeded": {"en": "succeeded", "ja": "成功"},
    "rb.job_final.simulated": {
        "en": "simulated — nothing was changed",
        "ja": "シミュレーション（何も変更していません）",
    },
    "rb.job_final.failed": {"en": "failed", "ja": "失敗"},
    "rb.job_final.rejected": {"en": "rejected", "ja": "却下"},
    "rb.job_final.expired": {"en": "expired", "ja": "期限切れ"},
    "rb.job_final.cancelled": {"en": "cancelled", "ja": "キャンセル"},
    "rb.job_final.invalid": {"en": "invalid", "ja": "不正なリクエスト"},
    "rb.job_final.refused": {"en": "refused", "ja": "拒否"},
    "rb.action.ended": {"en": "{state}", "ja": "{state}"},
    "rb.action.ended_result": {"en": "{state}: {result}", "ja": "{state}: {result}"},
    "rb.action.ended_approved": {"en": "{state}, approved by {user}", "ja": "{state}（承認: {user}）"},
    "rb.action.ended_approved_result": {
        "en": "{state}, approved by {user}: {result}",
        "ja": "{state}（承認: {user}）: {result}",
    },
    "rb.msg.action_ended": {
        "en": "{icon} *{title}*: job `{job}` {text}",
        "ja": "{icon} *{title}*: ジョブ `{job}` {text}",
    },
    # --- observability (#16) ---
    # bot/backends/monitoring.py: a monitoring service that did not answer, or answered with an error
    "obs.unreachable": {
        "en": "{what} at {url} did not answer ({why})",
        "ja": "{what}（{url}）から応答がありません（{why}）",
    },
    "obs.refused": {
        "en": "{what} at {url} answered with an error: {error}",
        "ja": "{what}（{url}）がエラーを返しました: {error}",
    },
    "obs.not_configured": {
        "en": "{env} has no {what} configured (`{path}` in taisun.yml).",
        "ja": "{env} には {what} が設定されていません（taisun.yml の `{path}`）。",
    },
    "obs.act.read": {
        "en": "read metrics, SLOs, logs and traces",
        "ja": "メトリクス・SLO・ログ・トレースの閲覧",
    },
    "obs.open_grafana": {"en": "Open in Grafana", "ja": "Grafana で開く"},
    "obs.as_of": {"en": "as of {time}", "ja": "{time} 時点"},
    "obs.status.ok": {"en": "ok", "ja": "正常"},
    "obs.status.warning": {"en": "warning", "ja": "警告"},
    "obs.status.critical": {"en": "critical", "ja": "重大"},
    "obs.status.no_data": {"en": "no data", "ja": "データなし"},
    "obs.status.failed": {"en": "query failed", "ja": "クエリ失敗"},
    # bot/observability/messages.py: /taisun metrics
    "metrics.checking": {
        "en": "Asking Prometheus for the metrics of {env}…",
        "ja": "{env} のメトリクスを Prometheus に問い合わせています…",
    },
    "metrics.text": {"en": "Metrics of {env}", "ja": "{env} のメトリクス"},
    "metrics.title": {"en": "*Metrics — {env}*", "ja": "*メトリクス — {env}*"},
    "metrics.name.p99_latency": {"en": "Response time (p99)", "ja": "レスポンスタイム (p99)"},
    "metrics.name.error_rate": {"en": "Error rate", "ja": "エラー率"},
    "metrics.name.request_rate": {"en": "Request rate", "ja": "リクエスト数"},
    "metrics.name.cpu": {"en": "CPU usage", "ja": "CPU 使用率"},
    "metrics.name.memory": {"en": "Memory usage", "ja": "メモリ使用率"},
    "metrics.name.disk": {"en": "Disk usage", "ja": "ディスク使用率"},
    "metrics.line": {
        "en": "{icon} *{name}*: {value} — {status}{limits}",
        "ja": "{icon} *{name}*: {value} — {status}{limits}",
    },
    "metrics.limits": {"en": " ({limits})", "ja": "（{limits}）"},
    "metrics.warn_above": {"en": "warning > {v}", "ja": "警告 > {v}"},
    "metrics.crit_above": {"en": "critical > {v}", "ja": "重大 > {v}"},
    "metrics.warn_below": {"en": "warning < {v}", "ja": "警告 < {v}"},
    "metrics.crit_below": {"en": "critical < {v}", "ja": "重大 < {v}"},
    "metrics.no_data": {
        "en": "{icon} *{name}*: no data (the query found no series)",
        "ja": "{icon} *{name}*: データなし（クエリに該当する系列がありません）",
    },
    "metrics.failed": {
        "en": "{icon} *{name}*: query failed: {error}",
        "ja": "{icon} *{name}*: クエリ失敗: {error}",
    },
    "metrics.how": {
        "en": "Rates over the last {window}; thresholds from the ops guide (taisun.yml `observability.metrics`).",
        "ja": "レートは直近 {window}。閾値は運用ガイドのもの（taisun.yml の `observability.metrics`）。",
    },
    # /taisun slo, and the SLO line on status and the Home tab
    "slo.checking": {
        "en": "Asking Prometheus for the SLOs of {envs}…",
        "ja": "{envs} の SLO を Prometheus に問い合わせています…",
    },
    "slo.text": {"en": "SLOs of {envs}", "ja": "{envs} の SLO"},
    "slo.title": {"en": "*SLOs — {env}* (rolling {days} days)", "ja": "*SLO — {env}*（直近 {days} 日）"},
    "slo.name.api_availability": {"en": "API availability", "ja": "API 可用性"},
    "slo.name.api_latency": {"en": "API latency (p99 < 500 ms)", "ja": "API レイテンシ (p99 < 500ms)"},
    "slo.name.database_availability": {"en": "Database availability", "ja": "Database 可用性"},
    "slo.line": {
        "en": "{icon} *{name}* — objective {objective} %\n      SLI {sli} % · error budget left {left} % ({minutes} of {total} min)"
        " · burn rate 1h {burn1h} · 6h {burn6h}",
        "ja": "{icon} *{name}* — 目標 {objective}%\n      SLI {sli}% · エラーバジェット残り {left}%（{total} 分中 {minutes} 分）"
        " · バーンレート 1h {burn1h} · 6h {burn6h}",
    },
    "slo.no_data": {
        "en": "{icon} *{name}* — objective {objective} %: no data over the window",
        "ja": "{icon} *{name}* — 目標 {objective}%: 期間内のデータなし",
    },
    "slo.failed": {
        "en": "{icon} *{name}*: query failed: {error}",
        "ja": "{icon} *{name}*: クエリ失敗: {error}",
    },
    "slo.how": {
        "en": "❌ budget spent, or burning at page level (1h ≥ 14.4×, 6h ≥ 6×) · ⚠️ under {warn} % of the budget left, "
        "or 6h burn above 1× · minutes: the budget as minutes of full outage",
        "ja": "❌ バジェット切れ、またはページ相当のバーン（1h ≥ 14.4×、6h ≥ 6×）· ⚠️ 残り {warn}% 未満、"
        "または 6h バーンが 1× 超 · 分: バジェットを全停止の分数で表したもの",
    },
    "slo.none": {
        "en": "No environment has a Prometheus configured (`environments.<name>.observability.prometheus`).",
        "ja": "Prometheus が設定された環境がありません（`environments.<name>.observability.prometheus`）。",
    },
    "slo.compact": {"en": "SLO: {items}", "ja": "SLO: {items}"},
    "slo.compact_item": {"en": "{icon} {name} {left} % left", "ja": "{icon} {name} 残り {left}%"},
    "slo.compact_no_data": {"en": "{icon} {name} no data", "ja": "{icon} {name} データなし"},
    "slo.compact_failed": {"en": "{icon} {name} query failed", "ja": "{icon} {name} クエリ失敗"},
    "slo.compact_down": {"en": "SLO: {error}", "ja": "SLO: {error}"},
    "slo.compact_waiting": {"en": "SLO: asking Prometheus…", "ja": "SLO: Prometheus に問い合わせ中…"},
    # /taisun logs
    "logs.searching": {"en": "Searching the logs of {env}…", "ja": "{env} のログを検索しています…"},
    "logs.text": {"en": "Logs of {env}", "ja": "{env} のログ"},
    "logs.title": {"en": "*Logs — {env}*  `{query}`", "ja": "*ログ — {env}*  `{query}`"},
    "logs.summary": {
        "en": "{n} lines in the last {since}, newest first (times in UTC).",
        "ja": "直近 {since} の {n} 行（新しい順、時刻は UTC）。",
    },
    "logs.summary_one": {
        "en": "1 line in the last {since} (times in UTC).",
        "ja": "直近 {since} の 1 行（時刻は UTC）。",
    },
    "logs.capped": {
        "en": "Only the newest {limit} were fetched: narrow the search or --since to see older ones.",
        "ja": "新しい {limit} 行だけを取得しました。それより古い行は検索語か --since を絞って見てください。",
    },
    "logs.none": {
        "en": "No line of the last {since} matches.",
        "ja": "直近 {since} に一致する行はありません。",
    },
    "logs.file": {
        "en": "All {n} lines are in {link}, in your DM with the bot; the newest {shown} are below.",
        "ja": "{n} 行すべてをボットとの DM に {link} として送りました。新しい {shown} 行を以下に表示します。",
    },
    "logs.file_failed": {
        "en": "The file could not be uploaded ({error}); the newest {shown} lines are below.",
        "ja": "ファイルをアップロードできませんでした（{error}）。新しい {shown} 行を以下に表示します。",
    },
    "logs.file_comment": {
        "en": "Logs of {env}: `{query}` ({n} lines, newest first)",
        "ja": "{env} のログ: `{query}`（{n} 行、新しい順）",
    },
    "logs.file_title": {"en": "Logs of {env}", "ja": "{env} のログ"},
    "logs.flag_value": {
        "en": "`{flag}` needs a value, e.g. `{flag} {example}`.",
        "ja": "`{flag}` には値が必要です（例: `{flag} {example}`）。",
    },
    "logs.bad_since": {
        "en": "“{since}” is not a time span: use --since 30s, 15m, 6h or 2d.",
        "ja": "「{since}」は期間ではありません。--since 30s、15m、6h、2d のように指定してください。",
    },
    "logs.since_too_long": {
        "en": "--since {since} goes further back than {longest}, the most this bot searches (`observability.logs_max_since`).",
        "ja": "--since {since} は、このボットが検索する最長の {longest} より長すぎます（`observability.logs_max_since`）。",
    },
    "logs.bad_level": {
        "en": "“{level}” is not a log level: use --level error, warn, info or debug.",
        "ja": "「{level}」はログレベルではありません。--level error、warn、info、debug のように指定してください。",
    },
    # /taisun trace
    "trace.looking": {"en": "Looking up trace `{id}`…", "ja": "トレース `{id}` を検索しています…"},
    "trace.text": {"en": "Trace {id}", "ja": "トレース {id}"},
    "trace.title": {"en": "*Trace* `{id}`", "ja": "*トレース* `{id}`"},
    "trace.found": {
        "en": "*{env}*: root span `{operation}` of *{service}* · {duration} · {spans} spans ({services}) · started {time}",
        "ja": "*{env}*: ルートスパン *{service}* の `{operation}` · {duration} · スパン {spans} 個（{services}）· 開始 {time}",
    },
    "trace.errors": {"en": "❌ {n} spans with errors", "ja": "❌ エラーのスパン {n} 個"},
    "trace.not_found": {
        "en": "*{env}*: Jaeger does not have this trace (not sampled, or older than its retention).",
        "ja": "*{env}*: Jaeger にこのトレースはありません（サンプリング外か、保持期間より古い）。",
    },
    "trace.no_answer": {"en": "*{env}*: {error}", "ja": "*{env}*: {error}"},
    "trace.open": {"en": "Open in Jaeger", "ja": "Jaeger で開く"},
    "trace.bad_id": {
        "en": "“{id}” is not a trace id: Jaeger's are up to 32 hexadecimal digits.",
        "ja": "「{id}」はトレース ID ではありません。Jaeger のトレース ID は 32 桁までの 16 進数です。",
    },
    "trace.no_jaeger": {
        "en": "No environment has a Jaeger configured (`environments.<name>.observability.jaeger`).",
        "ja": "Jaeger が設定された環境がありません（`environments.<name>.observability.jaeger`）。",
    },
    # --- end of observability (#16) ---
}


Msg = dict[str, Any]
"""A message to show later: {"key": ..., "fields": {...}}, JSON-storable (job params, timeline data)."""


def msg(key: str, **fields: Any) -> Msg:
    """A stored reference to a catalogue message; fields may themselves be `msg(...)`."""
    if key not in MESSAGES:
        raise KeyError(f"no message {key!r} in the catalogue")
    return {"key": key, "fields": fields}


def render(value: Any, lang: str) -> Mrkdwn:
    """A stored text in `lang` as mrkdwn: a `msg(...)` is translated, a list joined, plain text escaped."""
    if isinstance(value, dict) and "key" in value:
        if value["key"] == "unit.duration":  # a span of time, written out in the reader's units
            return escape(duration(float((value.get("fields") or {}).get("seconds") or 0), lang))
        fields = {name: render(v, lang) for name, v in (value.get("fields") or {}).items()}
        return t(str(value["key"]), lang, **fields)
    if isinstance(value, list):
        return t("list.sep", lang).join(render(v, lang) for v in value)
    return escape("" if value is None else value)


def render_plain(value: Any, lang: str) -> str:
    """A stored text in `lang` as plain text (documents, exports, searches)."""
    return to_plain(render(value, lang))


def duration(seconds: float, lang: str = "en") -> str:
    """12s, 3m 05s, 1h 02m (ja: 12秒, 3分05秒, 1時間02分)."""
    s = int(max(0, seconds))
    if s < 60:
        return t("unit.s", lang, s=s)
    if s < 3600:
        return t("unit.m_s", lang, m=s // 60, s=f"{s % 60:02d}")
    return t("unit.h_m", lang, h=s // 3600, m=f"{s % 3600 // 60:02d}")


def coarse_duration(seconds: float, lang: str = "en") -> str:
    """An age at a glance: <1m, 12m, 1h 05m, 2d 3h, 29 days (ja: 1分未満, 12分, 1時間05分, 2日3時間, 29日)."""
    minutes = int(max(0, seconds)) // 60
    if minutes < 1:
        return t("unit.under_1m", lang)
    if minutes < 60:
        return t("unit.m", lang, m=minutes)
    hours = minutes // 60
    if hours < 24:
        return t("unit.h_m", lang, h=hours, m=f"{minutes % 60:02d}")
    if hours < 7 * 24:
        return t("unit.d_h", lang, d=hours // 24, h=hours % 24)
    return t("unit.days", lang, d=hours // 24)


def minutes_text(minutes: float, lang: str = "en") -> str:
    """A configured span: 60 -> '60 min', 0.05 -> '3 s' (ja: 60 分, 3 秒)."""
    if minutes < 1:
        return t("unit.n_s", lang, n=f"{minutes * 60:g}")
    return t("unit.n_min", lang, n=f"{minutes:g}")


def user_message(e: BaseException, lang: str) -> Mrkdwn:
    """An exception's text for its reader as mrkdwn: localized when it carries a catalogue key."""
    if hasattr(e, "message") and callable(e.message):
        return escape(e.message(lang))
    key = getattr(e, "key", None)
    if key:
        return t(key, lang, **{name: render(v, lang) for name, v in getattr(e, "fields", {}).items()})
    return escape(str(e))


def outcome(code: str, lang: str) -> Mrkdwn:
    """How an audit row ended (ok, refused...) in `lang`; an outcome without a label is shown as stored."""
    key = f"audit.outcome.{code}"
    return t(key, lang) if key in MESSAGES else escape(code)


def stored(e: BaseException, lang: str) -> Msg | str:
    """An exception's text to store (an audit detail): its catalogue message when it has one, so each
    reader sees it in their language later; otherwise its plain words in `lang`."""
    if callable(getattr(e, "stored", None)):
        return e.stored()  # type: ignore[attr-defined,no-any-return]
    if callable(getattr(e, "message", None)):
        return to_plain(e.message(lang))  # type: ignore[attr-defined]
    key = getattr(e, "key", None)
    if key and key in MESSAGES:
        return msg(key, **getattr(e, "fields", {}))
    return str(e)


def t(key: str, lang: str = "en", **fields: Any) -> Mrkdwn:
    """The message in `lang` (falling back to English) as Slack mrkdwn, with its named fields filled in.

    Fields are escaped unless they are `Mrkdwn` already (a nested `t()`, a mention, a date, a
    link the bot built): whatever a person typed reaches Slack as the text they typed, never as
    a ping or a disguised link. For a terminal, a document or GitHub use `t_plain()`.
    """
    entry = MESSAGES.get(key)
    if entry is None:
        log.warning("missing message key", extra={"key": key})
        return escape(key)
    template = entry.get(lang) or entry["en"]
    try:
        return fill(template, fields)
    except (KeyError, IndexError, AttributeError):
        log.warning("message fields missing", extra={"key": key})
        return Mrkdwn(template_markup(template))


def t_plain(key: str, lang: str = "en", **fields: Any) -> str:
    """The message as plain text: for a terminal, a document, GitHub or the audit log (not Slack)."""
    return to_plain(t(key, lang, **fields))


def lang_of_locale(locale: str | None, default: str) -> str:
    """Slack locales look like ja-JP or en-US."""
    if not locale:
        return default
    code = locale.split("-")[0].lower()
    return code if code in LANGS else "en"
