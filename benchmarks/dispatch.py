"""2. Click to dispatch: an Approve click (signed block_actions POST) → the workflow dispatch at GitHub.

N production deploys: alice asks for all of them, the bot prepares each against the
loopback FakeGitHub and posts its approval card to the local Slack; then bob or carol
(members of @sre-leads there) approve them one at a time, since each deploy holds the
production lock until it has dispatched, followed its run and verified the service. The clock
starts just before the click is sent and stops when the dispatch POST arrives at the
fake: RecordingGitHub below stamps each request on arrival (FakeGitHub itself keeps no
times). Both clocks are time.perf_counter() in this process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from sqlalchemy import select

from benchmarks.common import (
    ALICE,
    BOB,
    BOT_TOKEN,
    CAROL,
    CHANNEL,
    GITHUB_TOKEN,
    SIGNING_SECRET,
    CpuWatch,
    drop_db,
    engine_for,
    fresh_db,
    log,
    pct,
    start_bot,
)  # fmt: skip
from bot.core.blocks import Action
from bot.slack import signing
from bot.slack.localslack import LocalSlack, Message
from tests.fakes.github import FakeGitHub
from tests.fakes.service import FakeService


class RecordingGitHub(FakeGitHub):
    """FakeGitHub that stamps every workflow dispatch with its arrival time (perf_counter)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatch_times: list[float] = []
        self.request_times: list[tuple[float, str, str]] = []
        self.arrived = threading.Condition()

    def _handle(self, h: Any) -> None:  # called per request, before the body is read
        self.request_times.append((time.perf_counter(), h.command, h.path))
        if h.command == "POST" and h.path.split("?", 1)[0].endswith("/dispatches"):
            with self.arrived:
                self.dispatch_times.append(time.perf_counter())
                self.arrived.notify_all()
        super()._handle(h)

    def wait_dispatches(self, n: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.dispatch_times) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.arrived.wait(left)
            return self.dispatch_times[n - 1]


def _buttons(msg: Message) -> dict[str, str]:
    out = {}
    for b in msg.blocks:
        for el in b.get("elements", []) if b.get("type") == "actions" else []:
            if el.get("type") == "button":
                out[el["action_id"]] = el.get("value", "")
    return out


def run_one_db(kind: str, *, n: int, config_for: Any) -> dict[str, Any]:
    versions = [f"v2.0.{i}" for i in range(n)]
    gh = RecordingGitHub("taisun/taisun-v2", token=GITHUB_TOKEN).start()
    for v in ["v1.2.3", *versions]:
        gh.add_commit(f"feat: towards {v}")
        gh.add_tag(v)
    gh.declare_workflow("cd.yml", inputs=["environment", "version", "rollback"])
    gh.run_script = [("completed", "success")]  # each deploy ends at once so the next can take the lock
    service = FakeService(version="v1.2.3").start()

    def live_version() -> str:
        d = gh.dispatches
        return str(d[-1]["inputs"]["version"]) if d else "v1.2.3"

    service.version_fn = live_version
    slack = LocalSlack(token=BOT_TOKEN).start()
    slack.add_usergroup("sre-leads", {BOB, CAROL})
    cards: dict[str, Message] = {}
    card_times: dict[str, float] = {}
    card_seen = threading.Condition()

    def on_change(kind_: str, obj: Any) -> None:
        if kind_ in ("posted", "updated") and isinstance(obj, Message):
            job_id = _buttons(obj).get(Action.APPROVE)
            if job_id:
                with card_seen:
                    if job_id not in cards:
                        cards[job_id] = obj
                        card_times[job_id] = time.perf_counter()
                    card_seen.notify_all()

    slack.on_change(on_change)
    config = config_for(service.url)
    db_url = fresh_db(kind, f"dispatch-{kind}")
    bot, url = start_bot(
        name=f"dispatch-{kind}", db_url=db_url, config=config, slack_url=slack.url,
        github_token=GITHUB_TOKEN, github_url=gh.url,
    )  # fmt: skip
    engine = engine_for(db_url)
    http = httpx.Client(base_url=url, timeout=30)
    lat: list[float] = []
    cpu_watch = CpuWatch()
    click_ack: list[float] = []
    card_wait: list[float] = []  # first slash command sent → each approval card posted
    pickup: list[float] = []
    job_wait: list[float] = []  # dispatch → job finished (run found, followed, verified)
    failures: list[str] = []
    try:
        from bot.core.store.models import Job

        # Phase 1: alice asks for N production deploys; then wait for every approval card.
        sent_at: list[float] = []
        for i, version in enumerate(versions):
            body, ctype = signing.slash_command(
                f"deploy production {version}", user_id=ALICE, user_name="alice", channel_id=CHANNEL,
                response_url=slack.response_url(f"{ALICE}-{i}"),
            )  # fmt: skip
            sent_at.append(time.perf_counter())
            r = http.post(
                "/slack/events",
                content=body,
                headers=signing.sign(SIGNING_SECRET, body) | {"Content-Type": ctype},
            )
            if r.status_code != 200:
                failures.append(f"deploy {version}: HTTP {r.status_code}")
        with card_seen:
            card_seen.wait_for(lambda: len(cards) >= n, timeout=60)
            order = sorted(cards, key=lambda j: card_times[j])
        if len(order) < n:
            failures.append(f"only {len(order)} of {n} approval cards within 60 s")
        card_wait = [card_times[j] - sent_at[0] for j in order]
        # Phase 2: approve them one at a time (each holds the production lock until it ends).
        cpu_watch = CpuWatch().__enter__()
        for i, job_id in enumerate(order):
            card = cards[job_id]
            approver = BOB if i % 2 == 0 else CAROL
            body, ctype = signing.block_action(
                Action.APPROVE, job_id, user_id=approver, user_name=approver.lower(), channel_id=card.channel,
                message_ts=card.ts, response_url=slack.response_url(f"{approver}-{i}"),
            )  # fmt: skip
            headers = signing.sign(SIGNING_SECRET, body) | {"Content-Type": ctype}
            before = len(gh.dispatch_times)
            t0 = time.perf_counter()
            r = http.post("/slack/events", content=body, headers=headers)
            click_ack.append(time.perf_counter() - t0)
            if r.status_code != 200:
                failures.append(f"approve {job_id[:8]}: HTTP {r.status_code}")
                continue
            arrived = gh.wait_dispatches(before + 1, timeout=30)
            if arrived is None:
                failures.append(f"approve {job_id[:8]}: no dispatch within 30 s")
                continue
            lat.append(arrived - t0)
            first = next((t for t, _, _ in list(gh.request_times) if t > t0), arrived)
            pickup.append(first - t0)  # click → the worker's first GitHub request (tag re-check)
            deadline = time.monotonic() + 30
            state = ""
            while time.monotonic() < deadline:
                with engine.connect() as c:
                    state = c.execute(select(Job.state).where(Job.id == job_id)).scalar_one()
                if state in ("succeeded", "failed", "cancelled", "refused", "invalid", "expired", "rejected"):
                    break
                time.sleep(0.02)
            job_wait.append(time.perf_counter() - arrived)
            if state != "succeeded":
                failures.append(f"deploy {job_id[:8]} ended {state or 'unknown'}")
        cpu_watch.__exit__(None, None, None)
    finally:
        http.close()
        engine.dispose()
        bot.stop(fast=True)
        slack.stop()
        gh.stop()
        service.stop()
        drop_db(db_url)
    return {
        "db": kind,
        "deploys": n,
        "measured": len(lat),
        "p50_ms": round(pct(lat, 50) * 1000, 1),
        "p99_ms": round(pct(lat, 99) * 1000, 1),
        "max_ms": round(max(lat, default=0) * 1000, 1),
        "min_ms": round(min(lat, default=0) * 1000, 1),
        "click_ack_p50_ms": round(pct(click_ack, 50) * 1000, 1),
        "click_ack_p99_ms": round(pct(click_ack, 99) * 1000, 1),
        "all_cards_s": round(max(card_wait, default=0), 2),
        "click_to_first_github_p50_ms": round(pct(pickup, 50) * 1000, 1),
        "dispatch_to_done_p50_ms": round(pct(job_wait, 50) * 1000, 1),
        "dispatches": len(gh.dispatch_times),
        "cpu": getattr(cpu_watch, "result", None),
        "fake_errors": list(gh.errors),
        "failures": failures[:10],
    }


def run(db_kinds: list[str], *, n: int, config_for: Any) -> list[dict[str, Any]]:
    rows = []
    for kind in db_kinds:
        log(f"click to dispatch on {kind}: {n} production deploys")
        rows.append(run_one_db(kind, n=n, config_for=config_for))
    return rows
