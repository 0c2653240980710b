"""The baseline for the ack path: a bare slack-bolt app whose /taisun listener only acks.

Served by gunicorn with the same worker/thread settings as `taisun serve`:

    BARE_SIGNING_SECRET=... gunicorn -k gthread --workers 2 --threads 8 benchmarks.bare_app:application

It verifies the Slack signature exactly as the bot does (Bolt's request verification),
so the difference to the bot is everything the bot does beyond that: routing, parsing,
roles, database writes, metrics and its own listener pool.

With BARE_DATABASE_URL (a PostgreSQL URL) it is the *durable* bare app: before acking, the listener
makes the writes any bot that keeps what it acked must make, and nothing else — the delivery's
trigger_id inserted once (ON CONFLICT DO NOTHING, as a dedupe) and a request row, committed, with
psycopg on one connection per listener thread. It is the floor for an ack that survives a crash.
"""

from __future__ import annotations

import json
import os
import threading
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


_db_url = os.environ.get("BARE_DATABASE_URL", "")
_local = threading.local()


def _connection() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(_db_url.replace("postgresql+psycopg://", "postgresql://"))
    return conn


if _db_url:
    import psycopg

    # Both gunicorn workers import this at once: CREATE TABLE IF NOT EXISTS races in PostgreSQL (the loser
    # fails on the type's name), so the tables are made under an advisory lock, one worker at a time.
    with psycopg.connect(_db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as _c:
        _c.execute("SELECT pg_advisory_lock(72110)")
        _c.execute("CREATE TABLE IF NOT EXISTS bare_seen (key text PRIMARY KEY, at timestamptz NOT NULL)")
        _c.execute("CREATE TABLE IF NOT EXISTS bare_requests (id bigserial PRIMARY KEY, user_id text, "
                   "text text, at timestamptz NOT NULL)")  # fmt: skip


@app.command("/taisun")
def taisun(ack: Ack, body: dict[str, Any]) -> None:
    if _db_url:
        conn = _connection()
        with conn.transaction():
            first = conn.execute(
                "INSERT INTO bare_seen VALUES (%s, now()) ON CONFLICT DO NOTHING RETURNING key",
                ("command:" + str(body.get("trigger_id", "")),),
            ).fetchone()
            if first:
                conn.execute(
                    "INSERT INTO bare_requests (user_id, text, at) VALUES (%s, %s, now())",
                    (body.get("user_id", ""), body.get("text", "")),
                )
    ack()


_slack = SlackRequestHandler(app)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/slack/events":
        return _slack(environ, start_response)  # type: ignore[no-any-return]
    body = json.dumps({"status": "ok"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
