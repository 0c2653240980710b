"""Helpers for the incident, runbook-run and alert scenarios: find messages, click steps, wait."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import Incident, IncidentEvent, RunbookRun, RunbookStep
from bot.slack import signing
from bot.slack.localslack import LocalSlack, Message
from bot.slack.outbox import SlackOutbox
from tests.harness import NAMES, Bot, wsgi_post


def sync_of(bot: Bot) -> SlackOutbox:
    return bot.svc.outbox  # type: ignore[no-any-return]


def fast(bot: Bot, alerts: bool = True) -> Bot:
    """Messages update without the 1 s spacing (the storm test keeps it for alert groups)."""
    for prefix in ("inc", "run", *(("alert",) if alerts else ())):
        sync_of(bot).syncers[prefix].min_interval = 0.0
    return bot


def settle(*bots: Bot, timeout: float = 20.0) -> None:
    """Jobs, background work and the outbox are all quiet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bot in bots:
            bot.settle(timeout)
            sync_of(bot).flush(timeout)
        quiet = all(not b.svc.pending_background and sync_of(b).flush(0.05) for b in bots)
        if quiet:
            time.sleep(0.05)
            if all(not b.svc.pending_background and sync_of(b).flush(0.05) for b in bots):
                return
    raise TimeoutError("did not settle")


def top_level(slack: LocalSlack, channel: str | None = None) -> list[Message]:
    return [m for m in slack.channel_messages(channel) if not m.thread_ts]


def replies(slack: LocalSlack, parent: Message) -> list[Message]:
    return [m for m in slack.channel_messages(parent.channel) if m.thread_ts == parent.ts]


def header_of(slack: LocalSlack, ref: str) -> Message:
    return slack.wait_for(lambda: next((m for m in top_level(slack) if m.text.startswith(f"{ref} ")), None))


def checklist_in(slack: LocalSlack, parent: Message) -> Message:
    return slack.wait_for(lambda: next((m for m in replies(slack, parent) if "steps done" in m.text), None))


def step_value(msg: Message, step_id: str, action_id: str) -> str:
    for block in msg.blocks:
        if block.get("type") == "actions" and block.get("block_id") == f"step:{step_id}":
            for el in block["elements"]:
                if el["action_id"] == action_id:
                    return str(el["value"])
    raise AssertionError(f"no {action_id} button for step {step_id}")


def click(bot: Bot, action_id: str, value: str, user: str, message: Message | None = None) -> None:
    status, body = bot.click(action_id, value, user, message)
    assert status == 200, (status, body)


def submit_view(bot: Bot, view: dict[str, Any], values: dict[str, Any], user: str) -> tuple[int, bytes]:
    body, ctype = signing.view_submission(view, values, user_id=user, user_name=NAMES.get(user, user))
    return bot.post(body, ctype)


def skip(bot: Bot, slack: LocalSlack, msg: Message, step_id: str, user: str, reason: str) -> None:
    """Skip… opens a modal; its reason is submitted like Slack does."""
    before = set(slack.views)
    click(bot, Action.STEP_SKIP, step_value(msg, step_id, Action.STEP_SKIP), user, msg)
    view_id = slack.wait_for(lambda: next(iter(set(slack.views) - before), None))
    view = slack.views[view_id]
    assert view["callback_id"] == Action.STEP_SKIP_MODAL
    status, body = submit_view(
        bot, view, {"reason": {Action.STEP_SKIP_REASON: {"type": "plain_text_input", "value": reason}}}, user
    )
    assert status == 200 and not body.strip(b"{} \n"), body


def steps_of(bot: Bot, run_id: str) -> dict[str, RunbookStep]:
    with bot.svc.sessions() as s:
        return {st.step_id: st for st in s.scalars(select(RunbookStep).where(RunbookStep.run_id == run_id))}


def wait_step(bot: Bot, run_id: str, step_id: str, *states: str, timeout: float = 15.0) -> RunbookStep:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = steps_of(bot, run_id)[step_id]
        if st.state in states:
            return st
        time.sleep(0.05)
    raise AssertionError(f"step {step_id} is {steps_of(bot, run_id)[step_id].state}, not {states}")


def incident(bot: Bot, number: int) -> Incident:
    with bot.svc.sessions() as s:
        inc = s.scalars(select(Incident).where(Incident.number == number)).one()
    return inc


def runs_of(bot: Bot, incident_id: int | None = None) -> list[RunbookRun]:
    with bot.svc.sessions() as s:
        q = select(RunbookRun).order_by(RunbookRun.created_at)
        if incident_id is not None:
            q = q.where(RunbookRun.incident_id == incident_id)
        return list(s.scalars(q))


def timeline(bot: Bot, incident_id: int) -> list[IncidentEvent]:
    with bot.svc.sessions() as s:
        return list(
            s.scalars(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident_id)
                .order_by(IncidentEvent.at, IncidentEvent.id)
            )
        )


def user_message(slack: LocalSlack, channel: str, text: str, user: str, thread_ts: str = "") -> Message:
    """A message a person posts (the local Slack only sees the bot's own posts otherwise)."""
    ts = f"{int(time.time())}.{900000 + secrets.randbelow(99999):06d}"
    msg = Message(channel=channel, ts=ts, text=text, blocks=[], user=user, thread_ts=thread_ts)
    with slack._lock:  # noqa: SLF001  (test setup: the message exists in Slack)
        slack.messages.append(msg)
    return msg


def react(bot: Bot, user: str, channel: str, ts: str, reaction: str = "pushpin") -> None:
    event = {
        "type": "reaction_added",
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }
    body, ctype = signing.event_callback(event, event_id=f"Ev{secrets.token_hex(6)}")
    status, data = bot.post(body, ctype)
    assert status == 200, (status, data)


def post_alerts(
    bot: Bot, payload: dict[str, Any] | bytes | str, token: str | None
) -> tuple[int, dict[str, Any]]:
    raw = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    body = raw.decode() if isinstance(raw, bytes) else raw
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, data = wsgi_post(bot.wsgi, body, headers, path="/alerts/alertmanager")
    return status, json.loads(data) if data else {}
