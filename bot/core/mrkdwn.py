"""Slack mrkdwn: markup the bot wrote, kept apart from text a person or an outside system wrote.

Slack parses `&`, `<` and `>` in a message's `text`, in mrkdwn sections, context and confirm
dialogs: `<!channel>` pings a whole channel, `<@U…>` a person, `<!subteam^S…>` a team, and
`<https://evil.example|the runbook>` shows a label that hides where it leads. So text that did
not come from the bot (lock reasons, incident titles, status updates, skip reasons, form fields,
display names, alert labels and annotations, what a health endpoint answered) is escaped by
Slack's rules (& < > → &amp; &lt; &gt;) before Slack sees it, and the markup the bot builds on
purpose (mentions, channel links, dates, links) is marked as such: a `Mrkdwn` string.

`Mrkdwn` is markupsafe's `Markup` with Slack's escaping: concatenating, joining or formatting it
with a plain `str` escapes the plain part, so trust never passes from the bot's text to a person's.
`bot.core.i18n.t()` returns `Mrkdwn` and escapes every field that is not `Mrkdwn` already.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from markupsafe import Markup

_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_SLACK_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,}")

# A person's `*`, `_`, `~` or backtick inside the same mark of a template (`*{title}*`, `` `{x}` ``)
# would end that formatting early and garble the rest; it is shown as a look-alike instead.
LOOKALIKES = {"*": "∗", "_": "＿", "~": "∼", "`": "ˋ"}


def escape_text(text: str) -> str:
    """Slack's escaping of one plain text: & < > become &amp; &lt; &gt; (nothing else is touched)."""
    for char, entity in _ENTITIES:
        text = text.replace(char, entity)
    return text


def unescape_text(text: str) -> str:
    """The inverse of `escape_text` (only Slack's three entities; `&amp;` last, so nothing is decoded twice)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class Mrkdwn(Markup):
    """Slack mrkdwn the bot wrote on purpose; anything combined with it that is not `Mrkdwn` is escaped."""

    __slots__ = ()

    @classmethod
    def escape(cls, s: Any) -> Mrkdwn:
        """`s` as safe mrkdwn: unchanged when it is `Mrkdwn` already, else escaped by Slack's rules.

        (Any other markup, HTML's say, is text here: only the bot's own Slack markup is trusted.)
        """
        if isinstance(s, cls):
            return s
        return cls(escape_text(str(s)))


def escape(text: Any) -> Mrkdwn:
    """Text for a Slack field that parses mrkdwn: a person's words escaped, the bot's markup kept."""
    return Mrkdwn.escape(text)


def escape_within(mark: str, text: Any) -> Mrkdwn:
    """A person's text for inside `mark`…`mark` (bold, italics, code): escaped, and that mark shown
    as a look-alike so it cannot end the formatting early."""
    return Mrkdwn(escape_text(str(text)).replace(mark, LOOKALIKES[mark]))


def trusted(text: str) -> Mrkdwn:
    """Mrkdwn the bot itself rendered earlier and stored (a job's result and progress): shown as it is."""
    return Mrkdwn(text)


def is_user_id(text: str) -> bool:
    """Whether `text` is a Slack user ID (U… or W…), as opposed to the bot, the CLI or Alertmanager."""
    return bool(_SLACK_USER.fullmatch(text or ""))


def mention(user_id: str, fallback: str = "someone") -> Mrkdwn:
    """<@U…> for a Slack user ID; anything else (Alertmanager, the bot, a CLI user) as escaped text."""
    if _SLACK_USER.fullmatch(user_id or ""):
        return Mrkdwn(f"<@{user_id}>")
    return escape(user_id or fallback)


def channel_link(channel_id: str) -> Mrkdwn:
    """<#C…> for a Slack channel ID; anything else as escaped text."""
    if _SLACK_CHANNEL.fullmatch(channel_id or ""):
        return Mrkdwn(f"<#{channel_id}>")
    return escape(channel_id)


def link(url: str, label: Any) -> Mrkdwn:
    """<url|label> for an http(s) URL (a `|` or `>` in the URL cannot end it early); else just the label."""
    if not re.match(r"https?://", url or ""):
        return escape(label)
    safe_url = escape_text(url).replace("|", "%7C")
    return Mrkdwn(f"<{safe_url}|") + escape(label) + Mrkdwn(">")


def slack_time(when: datetime | None, fmt: str = "{date_short_pretty} {time}") -> Mrkdwn:
    """A timestamp Slack renders in each reader's own timezone (the fallback is UTC)."""
    if when is None:
        return Mrkdwn("—")
    when = when.astimezone(UTC)
    return Mrkdwn(f"<!date^{int(when.timestamp())}^{fmt}|{when.strftime('%Y-%m-%d %H:%M UTC')}>")


def plain_text(text: Any) -> str:
    """Text for a `plain_text` object (buttons, titles, options): Slack parses nothing there, so no escaping."""
    return unescape_text(str(text)) if isinstance(text, Mrkdwn) else str(text)


def key_values(values: Mapping[str, Any], sep: str = ", ") -> str:
    """Settings as people read and type them: `environment=staging, version=v1.2.3, rollback=false`
    (never a Python repr: booleans are lowercase, nothing is quoted)."""

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    return sep.join(f"{name}={shown(value)}" for name, value in values.items())


def clip(text: str, width: int) -> str:
    """`text` on one line in at most `width` characters: cut at a word boundary, with "…" when cut
    (a single word longer than half the width is cut inside it)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:—-") + "…"


_DATE = re.compile(r"<!date\^(\d+)\^[^|>]*(?:\^[^|>]*)?\|([^>]*)>")
_USER_REF = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_REF = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")


def to_plain(
    text: str,
    *,
    names: Mapping[str, str] | Callable[[str], str] | None = None,
    date: Callable[[int, str], str] | None = None,
) -> str:
    """Slack mrkdwn as plain text for a terminal, a document, GitHub or the audit log.

    Mentions become @name (or @ID), channels #name, links "label (url)", dates their fallback
    (or `date(timestamp, fallback)`), and the three entities are decoded last, so a person's
    escaped `&lt;!channel&gt;` reads as the `<!channel>` they typed and never becomes markup.
    """

    def name(user_id: str, given: str | None) -> str:
        if given:
            return given
        if callable(names):
            return names(user_id)
        return (names or {}).get(user_id, user_id)

    text = str(text)
    text = _DATE.sub(lambda m: date(int(m[1]), m[2]) if date else m[2], text)
    text = _USER_REF.sub(lambda m: "@" + name(m[1], m[2]), text)
    text = _CHANNEL_REF.sub(lambda m: "#" + (m[2] or m[1]), text)
    text = _SPECIAL.sub(lambda m: "@" + m[1], text)
    text = _SUBTEAM.sub(lambda m: "@" + (m[2] or m[1]), text)
    text = _LINK.sub(lambda m: f"{m[2]} ({m[1]})" if m[2] and m[2] != m[1] else m[1], text)
    return unescape_text(text)


# GitHub turns @login and @org/team into mentions (a notification) after a non-word character.
_GITHUB_MENTION = re.compile(r"(?<!\w)@(?=[A-Za-z0-9])")
ZERO_WIDTH_JOINER = "\u200d"


def without_github_mentions(text: str) -> str:
    """Text for GitHub (issue titles and bodies, deployment descriptions) that @-mentions nobody.

    A zero-width joiner after the @ keeps the words as they were typed, but GitHub no longer
    links, notifies or subscribes the user or team named.
    """
    return _GITHUB_MENTION.sub("@" + ZERO_WIDTH_JOINER, text)


# -- templates ---------------------------------------------------------------------------

_FORMATTER = string.Formatter()
# What a catalogue template may contain as markup: links built from a field, mentions, dates.
_TEMPLATE_MARKUP = re.compile(r"<(?:\{[^{}<>]*\}|[@#!]|https?://)[^<>]*>")


@lru_cache(maxsize=4096)
def template_markup(template: str) -> str:
    """A catalogue template as mrkdwn: its links stay markup, a literal `<id>` or `> 60 min` is escaped."""
    out, pos = [], 0
    for m in _TEMPLATE_MARKUP.finditer(template):
        out.append(escape_text(template[pos : m.start()]))
        out.append(m[0])
        pos = m.end()
    out.append(escape_text(template[pos:]))
    return "".join(out)


def fill(template: str, fields: Mapping[str, Any]) -> Mrkdwn:
    """A trusted template with its fields filled in: a field that is not `Mrkdwn` is escaped.

    A field the template wraps in one formatting mark (`*{title}*`, `_{reason}_`, `` `{x}` ``)
    also has that mark shown as a look-alike, so the person still sees their own words and
    the formatting around them holds.
    """
    parts = list(_FORMATTER.parse(template_markup(template)))
    out: list[str] = []
    for i, (literal, field, spec, conversion) in enumerate(parts):
        out.append(literal)
        if field is None:
            continue
        value, _ = _FORMATTER.get_field(field, (), fields)
        if conversion:
            value = _FORMATTER.convert_field(value, conversion)
        if spec:
            value = format(value, spec)
        if isinstance(value, Mrkdwn):
            out.append(str(value))
            continue
        text = escape_text(str(value))
        mark = literal[-1:]
        after = parts[i + 1][0][:1] if i + 1 < len(parts) else ""
        if mark and mark == after and mark in LOOKALIKES:
            text = text.replace(mark, LOOKALIKES[mark])
        out.append(text)
    return Mrkdwn("".join(out))
