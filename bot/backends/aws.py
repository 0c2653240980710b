"""One place that builds boto3 clients: endpoint, region, timeouts and retries.

boto3 >= 1.28 reads ``AWS_ENDPOINT_URL`` (and per-service ``AWS_ENDPOINT_URL_<SERVICE>``)
from the environment by itself, so pointing the bot at moto or LocalStack needs
no code here; the standard credential chain (``AWS_ACCESS_KEY_ID``, profiles,
instance roles...) applies as usual.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "ap-northeast-1"  # the guide's Tokyo deployment
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60  # an 8 MiB multipart part over a slow link still fits


def default_region() -> str:
    """AWS_DEFAULT_REGION, else AWS_REGION, else ap-northeast-1."""
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION


def client(service: str, *, region: str | None = None) -> Any:
    """A boto3 client for `service` with bounded timeouts and standard-mode retries.

    A fresh Session per call: boto3's default session is not thread-safe to create
    clients from, and a cached session would keep credentials read from an older
    environment. The returned client itself is thread-safe.
    """
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    session = boto3.session.Session()
    return session.client(service, region_name=region or default_region(), config=config)
