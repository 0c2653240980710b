"""The catalogue of user-facing texts in Japanese and English, and who reads which.

The texts live in YAML files next to the code that shows them, one per language per capability:
`bot/<package>/locales/<lang>.yml` in the Rails i18n shape translators' tools read (the root key
is the language; nested keys joined by "." are the names the code uses, e.g. `op.deploy.freeze`).
They are loaded and merged once, at import; a catalogue that cannot be used as it is (a key in two
catalogues, a file whose root is not its language, a value that is not text) stops the import.
How to translate, add a key or a language: docs/translating.md.

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
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from bot.core.mrkdwn import Mrkdwn, escape, fill, template_markup, to_plain

log = logging.getLogger(__name__)

LANGS = ("ja", "en")
SOURCE_LANG = "en"  # every key has English: it is shown where another language lacks a text


class CatalogueError(ValueError):
    """A catalogue file the bot cannot use as it is (the bot does not start with it)."""


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml.safe_load's loader (libyaml's when installed), refusing a key written twice in one
    mapping: PyYAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise CatalogueError(f"line {key_node.start_mark.line + 1}: {key!r} is written twice")
            seen.add(key)
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


def read_catalogue(text: str, lang: str, where: str = "catalogue") -> dict[str, str]:
    """One catalogue file's texts by dotted key (`{"op.deploy.freeze": "..."}`); `where` names it in errors."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, CatalogueError) as e:
        raise CatalogueError(f"{where}: {e}") from None
    if not isinstance(data, dict) or list(data) != [lang]:
        found = list(data) if isinstance(data, dict) else type(data).__name__
        raise CatalogueError(f"{where}: the root must be `{lang}:` alone, the file's language; found {found}")
    texts: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if node is None:
            return  # a language with no texts yet
        if not isinstance(node, dict):
            raise CatalogueError(f"{where}: {prefix or lang} should hold keys, not {node!r}")
        for name, value in node.items():
            if not isinstance(name, str):  # yes, no, on, off and numbers are not text unquoted
                raise CatalogueError(
                    f"{where}: the key {name!r} under {prefix or lang} is not text: quote it"
                )
            key = f"{prefix}.{name}" if prefix else name
            if isinstance(value, dict):
                walk(value, key)
            elif not isinstance(value, str):
                raise CatalogueError(f"{where}: {key} is {value!r}, not text: quote it")
            elif key in texts:
                raise CatalogueError(f"{where}: {key} is written twice (nested and with dots)")
            else:
                texts[key] = value

    walk(data[lang], "")
    return texts


def catalogue_files(root: Traversable) -> list[tuple[str, str, Traversable]]:
    """(package, language, file) for every `<package>/locales/<lang>.yml` under `root` (the `bot` package)."""
    found = []
    for package in sorted(root.iterdir(), key=lambda p: p.name):
        locales = package / "locales"
        if package.is_dir() and locales.is_dir():
            files = sorted(
                (f for f in locales.iterdir() if f.name.endswith((".yml", ".yaml"))), key=lambda f: f.name
            )
            found += [(package.name, f.name.rsplit(".", 1)[0], f) for f in files]
    return found


def load_catalogues(root: Traversable) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Every catalogue under `root` merged: {key: {lang: text}}, and the package that defines each key."""
    messages: dict[str, dict[str, str]] = {}
    package_of: dict[str, str] = {}
    for package, lang, file in catalogue_files(root):
        where = f"{root.name}/{package}/locales/{file.name}"
        if not file.name.endswith(".yml") or lang not in LANGS:
            raise CatalogueError(
                f"{where}: not <language>.yml for a language of LANGS {LANGS} (bot/core/i18n.py)"
            )
        for key, text in read_catalogue(file.read_text(encoding="utf-8"), lang, where).items():
            if package_of.setdefault(key, package) != package:
                raise CatalogueError(
                    f"{key} is defined in two catalogues: {root.name}/{package_of[key]}/locales and "
                    f"{root.name}/{package}/locales; keep it in one"
                )
            messages.setdefault(key, {})[lang] = text
    no_source = sorted(key for key, entry in messages.items() if SOURCE_LANG not in entry)
    if no_source:
        raise CatalogueError(
            f"no {SOURCE_LANG} text for {', '.join(no_source[:5])} (in {package_of[no_source[0]]}/locales): "
            f"{SOURCE_LANG} is shown where a language lacks a text, so every key needs it"
        )
    return messages, package_of


MESSAGES, CATALOGUE_OF = load_catalogues(resources.files("bot"))
"""MESSAGES: {key: {lang: text}} from every catalogue; CATALOGUE_OF: {key: package whose locales define it}."""


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
