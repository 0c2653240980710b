"""The baseline for the ack path: a bare slack-bolt app whose /taisun listener only acks.

Served by gunicorn with the same worker/thread settings as `taisun serve`:

    BARE_SIGNING_SECRET=... gunicorn -k gthread --workers 2 --threads 8 benchmarks.bare_app:application

It verifies the Slack signature exactly as the bot does (Bolt's request verification),
so the difference to the bot is everything the bot does beyond that: routing, parsing,
roles, database writes, metrics and its own listener pool.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

_token = os.environ.get("BARE_BOT_TOKEN", "xoxb-bare")
app = App(
    signing_secret=os.environ.get("BARE_SIGNING_SECRET", "bench"),
    token=_token,
    token_verification_enabled=False,
    # Bolt's single-team authorization calls auth.test once per process (then caches it),
    # as it does for the bot: both point at a local Slack on loopback.
    client=WebClient(token=_token, base_url=os.environ.get("BARE_SLACK_API_URL", "https://slack.com/api/")),
)


@app.command("/taisun")
def taisun(ack: Ack) -> None:
    ack()


_slack = SlackRequestHandler(app)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/slack/events":
        return _slack(environ, start_response)  # type: ignore[no-any-return]
    body = json.dumps({"status": "ok"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
