"""Build requests exactly as Slack sends them: form or JSON bodies with v0 signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The X-Slack-Signature headers for a body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


def slash_command(
    text: str,
    *,
    user_id: str,
    user_name: str = "",
    channel_id: str = "C0OPS",
    response_url: str = "",
    trigger_id: str = "",
    team_id: str = "T0LOCAL",
    enterprise_id: str = "",
    command: str = "/taisun",
) -> tuple[str, str]:
    """(body, content type) of a slash command delivery; team_id is the workspace of the person typing."""
    fields = {
        "token": "unused", "team_id": team_id, "channel_id": channel_id, "channel_name": channel_id.lower(),
        "user_id": user_id, "user_name": user_name or user_id, "command": command, "text": text,
        "response_url": response_url, "trigger_id": trigger_id or f"trigger-{time.monotonic_ns()}",
        "api_app_id": "A0TAISUN",
    }  # fmt: skip
    if enterprise_id:
        fields["enterprise_id"] = enterprise_id
    return urlencode(fields), "application/x-www-form-urlencoded"


def _user(user_id: str, user_name: str, team_id: str, enterprise_id: str) -> dict[str, Any]:
    """The `user` of an interactive payload: in a Slack Connect channel, team_id is the person's own."""
    user = {"id": user_id, "username": user_name or user_id, "name": user_name or user_id, "team_id": team_id}
    return user | ({"enterprise_id": enterprise_id} if enterprise_id else {})


def _team(team_id: str, enterprise_id: str) -> dict[str, Any]:
    team: dict[str, Any] = {"team": {"id": team_id}}
    return team | ({"enterprise": {"id": enterprise_id}} if enterprise_id else {})


def block_action(
    action_id: str,
    value: str,
    *,
    user_id: str,
    user_name: str = "",
    channel_id: str = "C0OPS",
    message_ts: str = "",
    response_url: str = "",
    block_id: str = "b",
    team_id: str = "T0LOCAL",
    enterprise_id: str = "",
) -> tuple[str, str]:
    """(body, content type) of a button click."""
    payload = {
        "type": "block_actions",
        **_team(team_id, enterprise_id),
        "user": _user(user_id, user_name, team_id, enterprise_id),
        "api_app_id": "A0TAISUN",
        "channel": {"id": channel_id},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id},
        "message": {"ts": message_ts},
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": block_id, "value": value,
                     "action_ts": str(time.time())}],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


def view_submission(
    view: dict[str, Any],
    values: dict[str, Any],
    *,
    user_id: str,
    user_name: str = "",
    team_id: str = "T0LOCAL",
    enterprise_id: str = "",
) -> tuple[str, str]:
    """(body, content type) of a modal submission; values is Slack's state.values shape."""
    payload = {
        "type": "view_submission",
        **_team(team_id, enterprise_id),
        "user": _user(user_id, user_name, team_id, enterprise_id),
        "api_app_id": "A0TAISUN",
        "view": dict(view, state={"values": values}),
    }
    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


def message_shortcut(
    callback_id: str,
    message: dict[str, Any],
    *,
    user_id: str,
    user_name: str = "",
    channel_id: str = "C0OPS",
    response_url: str = "",
    team_id: str = "T0LOCAL",
    enterprise_id: str = "",
) -> tuple[str, str]:
    """(body, content type) of a message shortcut ("…" menu on a message)."""
    payload = {
        "type": "message_action",
        "callback_id": callback_id,
        **_team(team_id, enterprise_id),
        "user": _user(user_id, user_name, team_id, enterprise_id),
        "api_app_id": "A0TAISUN",
        "channel": {"id": channel_id},
        "message": message,
        "message_ts": str(message.get("ts", "")),
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "response_url": response_url,
    }
    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


def event_callback(event: dict[str, Any], *, event_id: str, team_id: str = "T0LOCAL") -> tuple[str, str]:
    body = {
        "token": "unused", "team_id": team_id, "api_app_id": "A0TAISUN", "type": "event_callback",
        "event": event, "event_id": event_id, "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
    }  # fmt: skip
    return json.dumps(body), "application/json"
