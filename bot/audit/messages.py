"""The `/taisun audit` view: recent audit rows as people read them."""

from __future__ import annotations

from typing import Any

from bot.core.blocks import Block, context, section, sections
from bot.core.i18n import outcome, render_plain, t
from bot.core.mrkdwn import Mrkdwn, clip, escape, is_user_id, mention, slack_time

AUDIT_DETAIL_CHARS = 120


def audit_actor(ev: Any) -> Mrkdwn:
    """Who did it: a person as a mention; the bot, the CLI or Alertmanager by their name."""
    if is_user_id(ev.actor_id):
        return mention(ev.actor_id)
    return escape(ev.actor_name or ev.actor_id or "?")


def audit_detail(detail: str) -> Mrkdwn:
    """A stored detail (plain text, often what a person typed) as the audit view shows it: on one
    line, cut at a word boundary with "…", escaped once — shown as written, never parsed."""
    return escape(clip(detail, AUDIT_DETAIL_CHARS))


def audit_blocks(events: list[Any], environment: str | None, lang: str = "en") -> list[Block]:
    title = t("audit.title", lang) + (f" — {environment}" if environment else "")
    if not events:
        return [section(f"{title}\n{t('audit.empty', lang)}")]
    lines = []
    for ev in events:
        where = Mrkdwn(" `{}`").format(ev.environment) if ev.environment else ""
        # A detail the bot wrote from its catalogue reads in the reader's language; other text as stored.
        said = render_plain(ev.detail_msg, lang) if getattr(ev, "detail_msg", None) else ev.detail
        detail = Mrkdwn(" — ") + audit_detail(said) if said else ""
        lines.append(
            Mrkdwn("{}  {}  *{}*{}  _{}_{}").format(
                slack_time(ev.ts), audit_actor(ev), ev.action, where, outcome(ev.outcome, lang), detail
            )
        )
    return [section(title), *sections(lines), context(t("audit.footer", lang, n=len(events)))]
