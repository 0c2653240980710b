"""Drive the bot as Slack does: signed requests into the WSGI app, Web API calls to a local Slack."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bot.core.config import EXAMPLE_CONFIG, Settings
from bot.slack import signing
from bot.slack.localslack import LocalSlack, Message
from bot.slack.shell import wsgi_post

ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol", MALLORY: "mallory"}
CHANNEL = "C0OPS"
TEAM = "T0LOCAL"  # the workspace the bot is installed in (the local Slack's auth.test says so)
OTHER_TEAM = "T0PARTNER"  # another organisation sharing a Slack Connect channel
BOT_TOKEN = "xoxb-test-0000-secret"  # noqa: S105 (a test token, also used to prove redaction)


def write_config(
    path: Path, *, service_url: str = "", mutate: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """The example config with test members and, when given, every environment pointed at service_url."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["roles"] = {
        "operator": [ALICE, BOB, CAROL],
        "approver": ["@sre-leads"],
        "responder": [ALICE, BOB, CAROL],
        "break_glass": [BOB],
        "admin": [CAROL],
    }
    data["slack"] = {"ops_channel": CHANNEL, "report_channel": CHANNEL}
    data["language"] = "en"  # assertions read English; tests/test_i18n.py covers Japanese
    data["defaults"].update({"verify_timeout_seconds": 3, "verify_interval_seconds": 0.1})
    data["environments"]["production"]["freeze_windows"] = []
    if service_url:
        for env in data["environments"].values():
            env["url"] = service_url
    if mutate:
        mutate(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


UNHURRIED_DEADLINE = 30.0


class Bot:
    """One bot process's worth of services, driven in-process through the real WSGI + Bolt path."""

    def __init__(self, settings: Settings, slack: LocalSlack, start: bool = True):
        from bot.wiring import build_wsgi

        self.settings = settings
        self.slack = slack
        self.wsgi = build_wsgi(settings, start_background=start)
        self.svc = self.wsgi.svc
        self.svc.outbox.syncers["job"].min_interval = 0.0
        slack_cfg = (yaml.safe_load(Path(settings.config_path).read_text()) or {}).get("slack") or {}
        if "ack_deadline_seconds" not in slack_cfg:
            # Slack's 3 s is a property of Slack, not of a loaded CI machine: a test that is not about the
            # deadline must not find its command "not run" because four test processes share two cores.
            # Tests of the deadline set slack.ack_deadline_seconds in their config (and keep it).
            self.svc.config.slack.ack_deadline_seconds = UNHURRIED_DEADLINE
        # Likewise a first request's wait for the reader's language: the local Slack answers in
        # milliseconds, a loaded CI host can take over a second to ask it and store the answer. The tests
        # of a slow Slack set a short wait themselves.
        self.svc.people.first_wait = UNHURRIED_DEADLINE / 3

    def post(
        self,
        body: str,
        ctype: str,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        headers = signing.sign(secret or self.settings.slack_signing_secret, body, timestamp) | {
            "Content-Type": ctype
        }
        return wsgi_post(self.wsgi, body, headers | (extra or {}))

    def command(
        self, text: str, user: str = ALICE, channel: str = CHANNEL, team: str = TEAM
    ) -> dict[str, Any]:
        """Run `/taisun <text>` as `user` (of workspace `team`); returns the ack body (what they see at once)."""
        body, ctype = signing.slash_command(
            text, user_id=user, user_name=NAMES.get(user, user), channel_id=channel, team_id=team,
            response_url=self.slack.response_url(f"{user}-{secrets.token_hex(4)}"),
        )  # fmt: skip
        status, data = self.post(body, ctype)
        assert status == 200, (status, data)
        return json.loads(data) if data else {}

    def click(
        self, action_id: str, value: str, user: str, message: Message | None = None, team: str = TEAM
    ) -> tuple[int, bytes]:
        body, ctype = signing.block_action(
            action_id, value, user_id=user, user_name=NAMES.get(user, user), team_id=team,
            channel_id=message.channel if message else CHANNEL, message_ts=message.ts if message else "",
            response_url=self.slack.response_url(f"{user}-{secrets.token_hex(4)}"),
        )  # fmt: skip
        return self.post(body, ctype)

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no job is moving, background replies are sent and messages are flushed."""
        quiet = self.svc.quiet

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if quiet():
                time.sleep(0.05)
                if quiet():
                    return
            time.sleep(0.05)
        raise TimeoutError("bot did not settle")

    def stop(self) -> None:
        self.wsgi.auth.stop()  # its thread would go on calling a local Slack that is gone
        self.svc.stop()
        self.svc.engine.dispose()


def text_of(msg: dict[str, Any] | Message) -> str:
    """Everything a person would read in a message: text and all block texts."""
    if isinstance(msg, Message):
        text, blocks = msg.text, msg.blocks
    else:
        text, blocks = msg.get("text", ""), msg.get("blocks") or []
    return text + "\n" + json.dumps(blocks, ensure_ascii=False)


def buttons(msg: Message) -> dict[str, str]:
    """action_id -> value of every button in the message."""
    out = {}
    for b in msg.blocks:
        for el in b.get("elements", []) if b.get("type") == "actions" else []:
            if el.get("type") == "button":
                out[el["action_id"]] = el.get("value", "")
    return out


def the_job(bot: Bot, operation: str | None = None) -> Any:
    """The newest job (of that operation, when given)."""
    from sqlalchemy import select

    from bot.core.store.models import Job

    q = select(Job).order_by(Job.created_at.desc())
    if operation:
        q = q.where(Job.operation == operation)
    with bot.svc.sessions() as s:
        return s.scalars(q).first()


def actions(bot: Bot, job_id: str) -> list[str]:
    """The job's audit actions, in order."""
    from sqlalchemy import select

    from bot.core.store.models import AuditEvent

    with bot.svc.sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id))
        return [e.action for e in rows]


def locked(bot: Bot, env: str) -> bool:
    from bot.core import locks

    with bot.svc.sessions() as s:
        return locks.current(s, env) is not None


def last_card(slack: LocalSlack) -> Message:
    return slack.channel_messages(CHANNEL)[-1]
