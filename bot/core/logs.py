"""Structured JSON logs with secrets redacted wherever they could appear."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

_PATTERNS = [
    re.compile(r"xox[abprse]-[A-Za-z0-9-]+"),  # Slack bot/user/refresh tokens
    re.compile(r"xapp-[A-Za-z0-9-]+"),  # Slack app-level tokens
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(?<=aws_secret_access_key=)[A-Za-z0-9/+=]{20,}"),
]
# user:password@ in any URL or DSN
_DSN_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@", re.I)
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|_KEY|DSN|DATABASE_URL|REDIS_URL)$", re.I)
MASK = "***"

_known_secrets: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears (tokens from the environment, say)."""
    if value and len(value) >= 6:
        with _known_lock:
            _known_secrets.add(value)


def register_environment_secrets(environ: dict[str, str] | None = None) -> None:
    """Every environment variable that looks like a secret is redacted by value."""
    for name, value in (environ if environ is not None else os.environ).items():
        if _SECRET_ENV.search(name):
            register_secret(value)
            m = _DSN_PASSWORD.search(value or "")
            if m:
                register_secret(m.group("pw"))


def redact(text: str) -> str:
    """The text with every known or recognisable secret replaced by ***."""
    if not text:
        return text
    with _known_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return _DSN_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(redact_obj(out), ensure_ascii=False, default=str))


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """JSON logs to stderr (or `stream`), secrets from the environment registered for redaction."""
    register_environment_secrets()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Library chatter that would log request bodies or headers at debug level.
    for noisy in ("urllib3", "botocore", "boto3", "github", "httpx", "httpcore", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
