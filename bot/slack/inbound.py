"""What a request to /slack/events must be before Bolt reads it: signed, and of the shape we rely on.

Bolt and our listeners dereference a few fields of every payload (``user.id``, ``actions[0]``,
``view.state.values``, ``event.type``...). A body where one of them has the wrong type used to
raise inside Bolt and answer 500. Here the signature is checked first (401: we cannot tell who
sent it), then the shape of those few fields (400: Slack, or someone holding the signing
secret, sent something we do not understand). Everything else in a payload passes untouched.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier


class Unsigned(Exception):
    """The request's signature cannot be checked or does not match (answer 401)."""


class Malformed(Exception):
    """A signed request whose body is not the shape of a Slack payload (answer 400)."""


def verify_signature(secret: str, body: str, headers: dict[str, str]) -> None:
    """Raise Unsigned unless the v0 signature over the body and timestamp matches and is fresh."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    # SignatureVerifier calls int() on it: "abc", "" and "1e9" would raise instead of failing.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Unsigned("missing or malformed X-Slack-Request-Timestamp")
    if not SignatureVerifier(secret).is_valid(body, timestamp, headers.get("x-slack-signature", "")):
        raise Unsigned("signature does not match or is stale")


class _Shape(BaseModel):
    # Only the fields named below are checked; Slack adds fields all the time.
    model_config = ConfigDict(extra="allow")

    # May be absent, but never null when present: Bolt or a listener reads into them
    # (`body["view"]["callback_id"]`, `body["event"]["type"]`).
    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def present_means_not_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.NOT_NULL:
                if name in data and data[name] is None:
                    raise ValueError(f"{name} is null where Slack always sends a value")
        return data


class _Ref(_Shape):
    """A user, team, channel or enterprise sent as an object."""

    id: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None
    name: str | None = None
    username: str | None = None


class _Action(_Shape):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    action_ts: str | None = None
    type: str | None = None


class _Option(_Shape):
    value: str | None = None


class _Element(_Shape):
    """One input's state in a submitted form: a typed value or a picked option."""

    type: str | None = None
    value: str | None = None
    selected_option: _Option | None = None


class _ViewState(_Shape):
    values: dict[str, dict[str, _Element]] = Field(default_factory=dict)


class _View(_Shape):
    type: str  # "modal", "home"...: Bolt compares it on every view submission
    callback_id: str = ""
    private_metadata: str = ""
    state: _ViewState = Field(default_factory=_ViewState)
    app_installed_team_id: str | None = None
    team_id: str | None = None


class _Event(_Shape):
    type: str = ""
    subtype: str | None = None
    user: str | _Ref | None = None
    channel: str | _Ref | None = None
    item: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    previous_message: dict[str, Any] | None = None
    ts: str | None = None
    thread_ts: str | None = None
    tab: str | None = None
    user_team: str | None = None
    team: str | None = None


class _Authorization(_Shape):
    team_id: str | None = None
    enterprise_id: str | None = None
    user_id: str | None = None


# Where respond() posts: a URL or nothing (urllib raises on anything else).
_URL = r"^(https?://\S+)?$"


class _ResponseUrl(_Shape):
    response_url: str = Field(pattern=_URL)


class SlackPayload(_Shape):
    """The envelope of a slash command, an interaction or an Events API callback."""

    type: str | None = None
    user: _Ref | None = None
    channel: _Ref | None = None
    team: str | _Ref | None = None
    enterprise: str | _Ref | None = None
    message: dict[str, Any] | None = None
    container: dict[str, Any] | None = None
    actions: list[_Action] = Field(default_factory=list, min_length=1)
    view: _View | None = None
    event: _Event | None = None
    authorizations: list[_Authorization] | None = None
    response_urls: list[_ResponseUrl] = Field(default_factory=list)
    # Matched with regular expressions or used as addresses by Bolt and the listeners.
    command: str = ""
    callback_id: str = ""
    action_id: str = ""
    trigger_id: str = ""
    response_url: str = Field("", pattern=_URL)
    event_id: str = ""
    challenge: str = ""
    NOT_NULL = ("view", "event")


def parse_payload(body: str, content_type: str | None) -> dict[str, Any]:
    """The payload as Bolt will read it, or Malformed saying where its shape is wrong."""
    try:
        payload = parse_body(body, content_type)
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise Malformed(f"body is not JSON or form data: {type(e).__name__}") from None
    if not isinstance(payload, dict):
        kind = {type(None): "null", list: "an array", str: "a string", bool: "a boolean"}.get(
            type(payload), "a number"
        )
        raise Malformed(f"the payload is {kind}, not an object")
    try:
        SlackPayload.model_validate(payload)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise Malformed(f"{where}: {first['msg']}") from None
    return payload


def content_type_of(headers: dict[str, str]) -> str | None:
    value = headers.get("content-type", "")
    return value.split(";")[0].strip() or None
