"""What a request is answered with: a `Reply` to the person who asked, or a `Refusal` raised by
whatever said no.

Services and listeners never spell a refusal as text: they raise a Refusal (the role check's
NotAllowed, a held lock's EnvironmentLocked, an operation's OpError, a parse's UsageError, an
unwritable audit row's AuditWriteFailed, or `Refused` for the top floor's own). The one mapper
on the top floor (handlers.common.run_guarded) turns it into a Reply with `refused` set, which
is what the person sees (an ephemeral warning, or a form's field error) and what the command
metric counts as "refused".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.core import blocks as kit
from bot.core.i18n import render, t
from bot.core.mrkdwn import Mrkdwn, escape, to_plain

Block = dict[str, Any]


class Refusal(Exception):
    """The base of the bot's known refusals: the request ends here and the person is told why
    (`bot.core.i18n.user_message`: a catalogue message in their language, or the text)."""

    # Blocks shown under the warning (the "take the lock over" button of a lock refusal).
    extra_blocks: tuple[Block, ...] = ()


class Refused(Refusal):
    """A refusal the top floor decides itself (an environment that is gone, a lock that is someone
    else's): a catalogue `key` with its fields, or a text already in the reader's language."""

    def __init__(
        self, text: str = "", *, key: str = "", extra_blocks: list[Block] | None = None, **fields: Any
    ):
        self.key, self.fields, self.text = key, fields, text
        self.extra_blocks = tuple(extra_blocks or ())
        super().__init__(str(text) or str(self.message("en")))

    def message(self, lang: str) -> Mrkdwn:
        if self.key:
            return t(self.key, lang, **{name: render(v, lang) for name, v in self.fields.items()})
        return escape(self.text)


@dataclass(frozen=True)
class Reply:
    """A listener's answer to the person who asked.

    `text` is mrkdwn (a person's plain text is escaped when the payload is built), shown only to
    them unless `ephemeral` is False; `refused` marks a refusal (shown as a warning, counted as
    "refused"); `after` runs right after the ack (a form opened with the command's trigger_id,
    which Slack accepts only within 3 s).
    """

    text: str = ""
    blocks: list[Block] | None = None
    ephemeral: bool = True
    refused: bool = False
    after: Callable[[], None] | None = None

    @classmethod
    def refusal(cls, text: str, extra_blocks: tuple[Block, ...] | list[Block] = ()) -> Reply:
        return cls(text, list(extra_blocks), refused=True)

    def payload(self) -> dict[str, Any]:
        """The message for ack()/respond(); {} when there is nothing to say."""
        if self.refused:
            out = kit.error(self.text)
            out["blocks"] += self.blocks or []
            return out
        if not self.text and not self.blocks:
            return {}
        return kit.message(self.text, self.blocks, self.ephemeral)

    def field_error(self) -> str:
        """The answer as a form field's error: plain text, short (Slack shows up to 150 characters)."""
        return to_plain(escape(self.text))[:150]
