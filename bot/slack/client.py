"""Slack Web API access: one client honouring SLACK_API_URL, retrying rate limits, 5xx and resets.

Messages are sent through it by the outbox thread (bot.slack.outbox), never on the ack path,
so slack-sdk's retry sleeps never delay an ack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

from bot.core import metrics
from bot.core.config import ConfigError, Settings, SlackUnreachable
from bot.core.secrets import refresher

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class _CountingRateLimitHandler(RateLimitErrorRetryHandler):
    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        ok = super()._can_retry(state=state, request=request, response=response, error=error)
        if ok:
            metrics.SLACK_RETRIES.labels("rate_limited").inc()
        return ok


class _CountingServerErrorHandler(ServerErrorRetryHandler):
    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        ok = super()._can_retry(state=state, request=request, response=response, error=error)
        if ok:
            metrics.SLACK_RETRIES.labels("server_error").inc()
        return ok


# What the Web API client raises when Slack answers an error (the core knows it as Services.slack_error).
SlackError = SlackApiError


def slack_error_code(e: BaseException) -> str | None:
    """Slack's error code when `e` is Slack answering an error (`invalid_auth`...), else None."""
    if isinstance(e, SlackApiError) and e.response is not None:
        return str(e.response.get("error"))
    return None


# What Slack answers to a bot token that was rotated away (SLACK_BOT_TOKEN_SECRET_ID reads the new one).
ROTATED_TOKEN_ERRORS = frozenset({"invalid_auth", "token_revoked", "token_expired", "not_authed"})


class RotatingWebClient(WebClient):
    """A WebClient whose bot token comes from AWS Secrets Manager: when Slack rejects it, the token is
    read again and, if it changed (a rotation), the call is made once more with the new one."""

    def __init__(self, *args: Any, renew: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._renew = renew
        # Told the new token (the Bolt app builds each request's client from its own copy).
        self.token_listeners: list[Callable[[str], None]] = []

    def api_call(self, api_method: str, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as e:
            own_token = any("token" in (kwargs.get(k) or {}) for k in ("params", "data", "json"))
            if own_token or slack_error_code(e) not in ROTATED_TOKEN_ERRORS:
                raise
            fresh = self._renew()
            if not fresh or fresh == self.token:
                raise
            self.token = fresh
            for listener in self.token_listeners:
                listener(fresh)
        return super().api_call(api_method, **kwargs)


def make_web_client(settings: Settings, token: str | None = None) -> WebClient:
    """A WebClient on SLACK_API_URL that retries rate limits, 5xx and connection resets."""
    renew = None if token else refresher(settings, "slack_bot_token")
    client = (
        RotatingWebClient(
            token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=10, renew=renew
        )
        if renew is not None
        else WebClient(
            token=token or settings.slack_bot_token or None, base_url=settings.slack_api_url, timeout=10
        )
    )
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        _CountingRateLimitHandler(max_retry_count=4),
        _CountingServerErrorHandler(max_retry_count=2),
    ]
    return client


APP_LEVEL_HOWTO = "create one with the connections:write scope under Basic Information → App-Level Tokens"
_APP_TOKEN_ERRORS = {
    "invalid_auth": "it is not a valid app-level token: {how}, or unset SLACK_APP_TOKEN to use HTTP mode",
    "not_authed": "it is not a valid app-level token: {how}, or unset SLACK_APP_TOKEN to use HTTP mode",
    "token_revoked": "the token was revoked: {how}",
    "account_inactive": "the token was revoked: {how}",
    "not_allowed_token_type": "it is not an app-level token (xapp-…; a bot token xoxb-… goes in "
    "SLACK_BOT_TOKEN): {how}",
    "missing_scope": "the token lacks the connections:write scope: {how}",
}


def check_app_token(settings: Settings) -> str:
    """Ask Slack for a Socket Mode connection (apps.connections.open) with SLACK_APP_TOKEN.

    Returns what worked; raises ConfigError naming Slack's error and what to do, or SlackUnreachable."""
    token = settings.slack_app_token
    if not token.startswith("xapp-"):
        raise ConfigError(
            f"SLACK_APP_TOKEN is not an app-level token (those start with xapp-): {APP_LEVEL_HOWTO}. "
            "The bot token xoxb-… goes in SLACK_BOT_TOKEN."
        )
    try:
        make_web_client(settings, token=token).apps_connections_open(app_token=token)
    except SlackApiError as e:
        error = str(e.response.get("error", "")) if e.response is not None else ""
        why = _APP_TOKEN_ERRORS.get(error, "{how}").format(how=APP_LEVEL_HOWTO)
        raise ConfigError(
            f"Slack refused SLACK_APP_TOKEN (apps.connections.open answered `{error}`): {why}."
        ) from None
    except Exception as e:  # a connection refused, DNS, TLS: Slack never answered
        raise SlackUnreachable(
            f"cannot reach Slack at {settings.slack_api_url} (SLACK_API_URL) to open a Socket Mode connection: "
            f"{type(e).__name__}: {e}".splitlines()[0]
        ) from None
    return "Socket Mode: SLACK_APP_TOKEN accepted (apps.connections.open)"


def group_fetcher(client: WebClient) -> Callable[[str], set[str] | None]:
    """Resolve a user-group handle to its members via usergroups.list + usergroups.users.list."""
    ids: dict[str, str] = {}

    def fetch(handle: str) -> set[str] | None:
        if handle not in ids:
            groups = client.usergroups_list().get("usergroups", [])
            ids.update({g["handle"]: g["id"] for g in groups})
        group_id = ids.get(handle)
        if group_id is None:
            log.warning("unknown user group in config", extra={"group": handle})
            return set()
        return set(client.usergroups_users_list(usergroup=group_id).get("users", []))

    return fetch
