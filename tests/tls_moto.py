"""moto's S3 over HTTPS (self-signed), for pgBackRest's S3 repository in the tests.

    python -m tests.tls_moto PORT BUCKET     prints "ready" once the bucket exists

pgBackRest speaks only HTTPS to S3 and, with OpenSSL 3, treats a connection closed without a
TLS close_notify as an error ("unexpected eof while reading"); werkzeug closes the socket
without one, so each connection is unwrapped properly before it is closed.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

import boto3
import urllib3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def main(port: int, bucket: str) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler, ssl_context="adhoc"
    )
    plain_shutdown = server.shutdown_request

    def shutdown_request(request: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            request.unwrap()  # send close_notify
        plain_shutdown(request)

    server.shutdown_request = shutdown_request  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urllib3.disable_warnings()
    s3 = boto3.client(
        "s3", endpoint_url=f"https://127.0.0.1:{port}", verify=False, region_name="ap-northeast-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106 (moto's)
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
