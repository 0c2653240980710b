"""The bot's own secrets from AWS Secrets Manager: `SLACK_BOT_TOKEN_SECRET_ID` and its siblings.

Read once at start (`load_secrets`, called by the CLI and by the composition root) into the Settings
every part of the bot already reads, and kept there. When a call fails in the way a rotated secret makes
it fail (Slack's `invalid_auth`, GitHub's 401, a signature or bearer token that no longer matches), the
caller asks `refresh()`: the secret is read again, at most once per `min_interval` seconds, and the call
is tried once more if it changed. A value is registered for log redaction as it arrives and is never
logged, audited or put in an error message; only the secret's id is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.backends.secrets import SecretsManagerError, get_secret_value
from bot.core.config import ConfigError, Settings
from bot.core.logs import register_secret

log = logging.getLogger(__name__)

# Settings field → the environment variable it stands for.
SECRET_FIELDS = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "github_token": "GITHUB_TOKEN",
    "taisun_alert_token": "TAISUN_ALERT_TOKEN",
}
# A rejected call reads its secret again at most this often (a revoked token must not hammer AWS).
REFRESH_SECONDS = 30.0
# Requests anyone can send (signatures, bearer tokens) read theirs at most this often.
INBOUND_REFRESH_SECONDS = 60.0

Fetch = Callable[..., str]


class BotSecrets:
    """Which of the bot's secrets come from Secrets Manager, and when each was last read."""

    def __init__(self, settings: Settings, fetch: Fetch = get_secret_value) -> None:
        self.settings = settings
        self._fetch = fetch
        self._read_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.ids = {
            field: str(getattr(settings, f"{field}_secret_id") or "").strip()
            for field in SECRET_FIELDS
            if str(getattr(settings, f"{field}_secret_id") or "").strip()
        }

    def load(self) -> None:
        """Read every configured secret into the settings; a problem is a ConfigError naming the variable."""
        for field, secret_id in self.ids.items():
            env = SECRET_FIELDS[field]
            if getattr(self.settings, field):
                raise ConfigError(
                    f"both {env} and {env}_SECRET_ID are set: keep one (the secret id reads it from AWS Secrets Manager)"
                )
            try:
                value = self._fetch(secret_id, what=env)
            except SecretsManagerError as e:
                raise ConfigError(f"{env}_SECRET_ID: {e}") from None
            register_secret(value)
            setattr(self.settings, field, value)
            log.info("secret read from AWS Secrets Manager", extra={"variable": env, "secret_id": secret_id})

    def refresh(self, field: str, min_interval: float = REFRESH_SECONDS) -> bool:
        """Read `field`'s secret again; True when its value changed (worth trying the failed call again).
        The first refresh after the start may happen at once (a rotation can come any time); later ones
        wait `min_interval` after the previous refresh."""
        secret_id = self.ids.get(field)
        if not secret_id:
            return False
        env = SECRET_FIELDS[field]
        with self._lock:
            if time.monotonic() - self._read_at.get(field, float("-inf")) < min_interval:
                return False
            self._read_at[field] = time.monotonic()
            try:
                value = self._fetch(secret_id, what=env)
            except SecretsManagerError as e:
                log.warning("could not read a secret again", extra={"variable": env, "error": str(e)})
                return False
            register_secret(value)
            if value == getattr(self.settings, field):
                return False
            setattr(self.settings, field, value)
        log.warning(
            "secret changed in AWS Secrets Manager (a rotation); using the new value",
            extra={"variable": env, "secret_id": secret_id},
        )
        return True


def load_secrets(settings: Settings, fetch: Fetch = get_secret_value) -> BotSecrets:
    """Read the `*_SECRET_ID` secrets into `settings` once (again for the same settings: nothing happens)."""
    existing = settings.bot_secrets
    if isinstance(existing, BotSecrets):
        return existing
    secrets = BotSecrets(settings, fetch)
    secrets.load()
    settings._bot_secrets = secrets
    return secrets


def refresh(settings: Settings, field: str, min_interval: float = REFRESH_SECONDS) -> bool:
    """Read `field` (slack_bot_token…) from Secrets Manager again if it comes from there; True if it changed."""
    secrets = settings.bot_secrets
    return isinstance(secrets, BotSecrets) and secrets.refresh(field, min_interval)


def refresher(settings: Settings, field: str) -> Callable[[], str] | None:
    """For a client that retries once after a rotation: a function giving the value read again, or None
    when `field` does not come from Secrets Manager."""
    secrets = settings.bot_secrets
    if not isinstance(secrets, BotSecrets) or field not in secrets.ids:
        return None

    def renewed() -> str:
        secrets.refresh(field)
        return str(getattr(settings, field))

    return renewed
