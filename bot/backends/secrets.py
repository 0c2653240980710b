"""AWS Secrets Manager: one secret's value (the bot's own tokens), or only its dates (watched secrets).

A value is registered for log redaction the moment it arrives, before anything else can print it,
and it is never part of an error message. Every failure is a SecretsManagerError whose message names
the secret, the region and, for a refusal, the IAM permission that is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from bot.backends import aws
from bot.core.logs import register_secret

__all__ = ["SecretDates", "SecretsManagerError", "describe_secret", "get_secret_value", "split_id"]


class SecretsManagerError(Exception):
    """Secrets Manager could not give what was asked; ``str(exc)`` says why and what to do."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code

    @property
    def denied(self) -> bool:
        return self.code == "AccessDeniedException"


@dataclass(frozen=True)
class SecretDates:
    """When a secret last changed, as Secrets Manager tells it (DescribeSecret, never its value)."""

    name: str
    arn: str
    last_rotated: datetime | None  # LastRotatedDate: Secrets Manager's own rotation
    last_changed: datetime | None  # LastChangedDate: any change (a new value put by hand, a tag…)
    rotation_enabled: bool
    next_rotation: datetime | None

    @property
    def last_rotation(self) -> datetime | None:
        """LastRotatedDate, or LastChangedDate for a secret Secrets Manager never rotated itself."""
        return self.last_rotated or self.last_changed


def split_id(secret_id: str) -> tuple[str, str]:
    """("name or ARN", "key") of `NAME#KEY`: the key of a JSON secret; ("name", "") for the whole value.

    Secret names cannot contain `#`, so the split is never ambiguous."""
    name, _, key = secret_id.partition("#")
    return name.strip(), key.strip()


def _client(region: str | None) -> Any:
    return aws.client("secretsmanager", region=region or None)


def get_secret_value(secret_id: str, *, region: str | None = None, what: str = "") -> str:
    """The secret's string value (or one key of a JSON secret); `what` names it in errors (an env var)."""
    name, key = split_id(secret_id)
    label = f"{what} (secret {name})" if what else f"secret {name}"
    try:
        resp = _client(region).get_secret_value(SecretId=name)
    except (ClientError, BotoCoreError) as e:
        raise _explain(e, "GetSecretValue", label, region) from None
    value = resp.get("SecretString")
    if value is None:
        raise SecretsManagerError(f"{label} holds binary data; store the value as a string (SecretString)")
    register_secret(value)
    if not key:
        return str(value)
    try:
        data = json.loads(value)
    except ValueError:
        raise SecretsManagerError(
            f"{label} is not JSON, so it has no key {key!r}; drop `#{key}` from the id"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get(key), str) or not data[key]:
        raise SecretsManagerError(f"{label} has no string key {key!r}")
    register_secret(data[key])
    return str(data[key])


def describe_secret(name: str, *, region: str | None = None) -> SecretDates:
    """The secret's rotation dates (DescribeSecret: needs secretsmanager:DescribeSecret, never the value)."""
    try:
        resp = _client(region).describe_secret(SecretId=name)
    except (ClientError, BotoCoreError) as e:
        raise _explain(e, "DescribeSecret", f"secret {name}", region) from None
    return SecretDates(
        name=str(resp.get("Name") or name),
        arn=str(resp.get("ARN") or ""),
        last_rotated=_utc(resp.get("LastRotatedDate")),
        last_changed=_utc(resp.get("LastChangedDate")),
        rotation_enabled=bool(resp.get("RotationEnabled")),
        next_rotation=_utc(resp.get("NextRotationDate")),
    )


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _explain(e: Exception, operation: str, label: str, region: str | None) -> SecretsManagerError:
    where = region or aws.default_region()
    if isinstance(e, NoCredentialsError):
        return SecretsManagerError(
            f"no AWS credentials to read {label}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or run "
            "with an instance or task role",
            "NoCredentials",
        )
    if not isinstance(e, ClientError):
        return SecretsManagerError(
            f"cannot reach AWS Secrets Manager in {where} to read {label}: {type(e).__name__}", "Unreachable"
        )
    code = str(e.response.get("Error", {}).get("Code") or "")
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(e.response.get("Error", {}).get("Message") or "")
    if code == "AccessDenied" or (
        status == 403 and ("AccessDenied" in message or "not authorized" in message)
    ):
        code = "AccessDeniedException"  # an IAM denial answered the Query way (some proxies and emulators)
    if code == "AccessDeniedException":
        return SecretsManagerError(
            f"AWS Secrets Manager refused {operation} on {label} (AccessDeniedException): the bot's IAM identity "
            f"needs the secretsmanager:{operation} permission on it",
            code,
        )
    if code == "DecryptionFailure":
        return SecretsManagerError(
            f"AWS Secrets Manager could not decrypt {label} (DecryptionFailure): the bot's IAM identity needs "
            "kms:Decrypt on the secret's KMS key",
            code,
        )
    if code == "ResourceNotFoundException":
        return SecretsManagerError(f"there is no {label} in AWS Secrets Manager ({where})", code)
    if code in (
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
    ):
        return SecretsManagerError(f"AWS rejected the credentials used to read {label} ({code})", code)
    if code == "InvalidRequestException":
        return SecretsManagerError(
            f"AWS Secrets Manager cannot give {label} now (it may be scheduled for deletion)", code
        )
    return SecretsManagerError(
        f"AWS Secrets Manager answered {code or 'an error'} to {operation} on {label}", code
    )
