"""The weekly dependency scan (#18) against the loopback GitHub: the scan workflow dispatched, its run
followed, its `security-report.json` artifact read (a zip behind GitHub's 302 to storage elsewhere),
the findings posted grouped by severity, and one GitHub issue per critical or high finding, never two.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from bot.core.store.models import AuditEvent, Job, SecurityFinding
from bot.security import service as security
from bot.security.report import finding_key
from bot.security.scan import marker
from tests.chatops_helpers import settle
from tests.conftest import GITHUB_TOKEN
from tests.harness import CAROL, MALLORY, text_of
from tests.test_security_tasks import SEC, fast, occurrences

WORKFLOW = "security-scan.yml"
LODASH = {
    "id": "GHSA-aaaa-bbbb-cccc", "package": "lodash", "version": "4.17.20", "severity": "critical",
    "title": "Prototype Pollution in lodash", "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
    "fixedVersion": "4.17.21",
}  # fmt: skip
EXPRESS = {
    "id": "CVE-2024-0001", "package": "express", "version": "4.17.1", "severity": "high",
    "title": "Open redirect <script> reported by @octo-team", "url": "https://nvd.nist.gov/vuln/detail/CVE-2024-0001",
}  # fmt: skip
MINIMIST = {
    "id": "GHSA-1111-2222-3333",
    "package": "minimist",
    "version": "1.2.5",
    "severity": "moderate",
    "title": "ReDoS",
}
DEBUG = {"id": "CVE-2024-0002", "package": "debug", "severity": "low", "title": "Information exposure"}
AXIOS = {"id": "CVE-2024-0003", "package": "axios", "version": "0.21.0", "severity": "high", "title": "SSRF"}


def report(*vulns: dict[str, Any]) -> bytes:
    return json.dumps({"vulnerabilities": list(vulns)}).encode()


def scan_only(cfg: dict[str, Any]) -> None:
    cfg["security"] = {
        "channel": SEC,
        "tasks": [
            {"id": tid, "enabled": False} for tid in ("secret_rotation", "access_review", "penetration_test")
        ],
        "scan": {"poll_seconds": 0.05, "timeout_minutes": 1},
    }


def with_scan_workflow(gh: Any, *vulns: dict[str, Any]) -> None:
    gh.declare_workflow(WORKFLOW)
    gh.run_artifacts[WORKFLOW] = {"security-report": {"security-report.json": report(*vulns)}}


def scan_bot(db_url: str, make_bot: Any, gh: Any) -> Any:
    return fast(make_bot(db_url, github_token=GITHUB_TOKEN, github_api_url=gh.url, config_mutate=scan_only))


def scan_comes_due(bot: Any) -> datetime:
    """The weekly scan's next time comes (the sweep's time moved there; it is ahead of the real time, so
    the bot's own sweeps leave it alone)."""
    security.sweep(bot.svc)
    due = min(o.due_at for o in occurrences(bot) if o.state == "scheduled")
    assert security.sweep(bot.svc, at=due)["due"] == 1
    return due


def scan_jobs(bot: Any) -> list[Job]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(Job).where(Job.operation == "security-scan").order_by(Job.created_at)))


def in_order(expected: list[str], seen: list[str]) -> bool:
    """`expected` appears in `seen` in this order (other rows may come between)."""
    it = iter(seen)
    return all(any(x == e for x in it) for e in expected)


def audit_actions(bot: Any, prefix: str) -> list[str]:
    with bot.svc.sessions() as s:
        return [
            a for a in s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)) if a.startswith(prefix)
        ]


def test_the_weekly_scan_posts_findings_by_severity_and_opens_one_issue_per_finding_never_twice(
    db_url, make_bot, slack, github
):
    with_scan_workflow(github, LODASH, EXPRESS, MINIMIST, DEBUG)
    bot = scan_bot(db_url, make_bot, github)
    scan_comes_due(bot)
    settle(bot)
    (job,) = scan_jobs(bot)
    assert job.state == "succeeded" and job.requested_by == "taisun" and job.channel == SEC, job.result
    assert [d["ref"] for d in github.dispatches] == ["main"]
    assert any(WORKFLOW in r.path for r in github.requests_to("/dispatches"))
    # The artifact came from storage on another origin, and the token never went there.
    assert github.blob_requests and all(r["authorization"] is None for r in github.blob_requests)
    # One issue per critical/high finding, labelled, with the marker that finds it again; no one is mentioned.
    titles = sorted(i["title"] for i in github.issues)
    assert len(titles) == 2 and titles[0].startswith("[security] critical: lodash")
    assert "@\u200docto-team" in titles[1] and all(
        i["labels"] == [{"name": "security"}] for i in github.issues
    )
    assert marker(finding_key("GHSA-aaaa-bbbb-cccc", "lodash", "")) in github.issues[0]["body"]
    # The card: the guide's group_by(.severity), most severe first, with the issues linked.
    card = text_of(job_card(slack, bot, job))
    assert "4 vulnerabilities" in card and "2 issue(s) opened" in card
    order = [card.index(s) for s in ("*critical* (1)", "*high* (1)", "*moderate* (1)", "*low* (1)")]
    assert order == sorted(order)
    assert "https://github.com/taisun/taisun-v2/issues/1" in card
    assert "&lt;script&gt;" in card and "<script>" not in card  # the report is outside text
    # The weekly task is done, by the bot, and says what it found.
    (post,) = [
        m for m in slack.channel_messages(SEC) if m.text.startswith("Security task") and not m.thread_ts
    ]
    assert "done" in text_of(post) and "4 vulnerabilities" in text_of(post)
    assert [o.state for o in occurrences(bot)] == ["done", "scheduled"]
    # Every step in the audit log, each before the next side effect.
    steps = audit_actions(bot, "security")
    expected = [
        "security-scan.requested", "security.task_due", "security-scan.checked", "security-scan.dispatch",
        "security-scan.dispatched", "security-scan.run_found", "security-scan.run_completed",
        "security-scan.report_read", "security-scan.issue_opening", "security-scan.issue_opened",
        "security.task_done", "security-scan.succeeded",
    ]  # fmt: skip
    assert in_order(expected, steps), steps
    assert audit_actions(bot, "security-scan.issue_").count("security-scan.issue_opening") == 2
    assert audit_actions(bot, "security-scan.issue_").count("security-scan.issue_opened") == 2

    # The next week: the same findings and a new high one — one new issue, no second for the old ones.
    with_scan_workflow(github, LODASH, EXPRESS, MINIMIST, DEBUG, AXIOS)
    scan_comes_due(bot)
    settle(bot)
    assert [j.state for j in scan_jobs(bot)] == ["succeeded", "succeeded"]
    assert len(github.dispatches) == 2 and len(github.issues) == 3
    assert github.issues[2]["title"].startswith("[security] high: axios")
    with bot.svc.sessions() as s:
        assert s.scalar(select(SecurityFinding.issue_url).where(SecurityFinding.package == "minimist")) == ""


def job_card(slack: Any, bot: Any, job: Job) -> Any:
    with bot.svc.sessions() as s:
        ts = s.get(Job, job.id).message_ts
    return next(m for m in slack.channel_messages(SEC) if m.ts == ts)


def test_an_issue_opened_before_a_crash_or_a_restore_is_found_again_never_opened_twice(
    db_url, make_bot, slack, github
):
    with_scan_workflow(github, LODASH, EXPRESS)
    # lodash's issue exists on GitHub, but the database does not know it (restored from an older backup).
    lodash_key = finding_key(LODASH["id"], "lodash", "")
    httpx.post(
        f"{github.url}/repos/taisun/taisun-v2/issues", headers={"Authorization": f"Bearer {GITHUB_TOKEN}"},
        json={"title": "[security] critical: lodash", "body": f"earlier\n{marker(lodash_key)}\n", "labels": ["security"]},
    ).raise_for_status()  # fmt: skip
    bot = scan_bot(db_url, make_bot, github)
    # express's issue was claimed by a scan that died before it opened anything (its job ended failed).
    dead = "00000000-dead-4000-8000-000000000000"
    with bot.svc.sessions.begin() as s:
        now = datetime.now(UTC)
        s.add(Job(id=dead, operation="security-scan", environment="", params={}, state="failed", requested_by="taisun",
                  created_at=now, updated_at=now))  # fmt: skip
        s.add(SecurityFinding(key=finding_key(EXPRESS["id"], "express", ""), severity="high", advisory=EXPRESS["id"],
                              package="express", issue_claimed_by=dead, issue_claimed_at=now))  # fmt: skip
    reply = bot.command("security scan", user=CAROL)  # by hand: carol is an admin
    assert "Dependency scan requested" in reply["text"]
    settle(bot)
    (job,) = [j for j in scan_jobs(bot) if j.id != dead]
    assert job.state == "succeeded", job.result
    assert len(github.issues) == 2  # the one found again, and express's
    with bot.svc.sessions() as s:
        urls = dict(s.execute(select(SecurityFinding.package, SecurityFinding.issue_url)).all())
    assert urls == {
        "lodash": "https://github.com/taisun/taisun-v2/issues/1",
        "express": "https://github.com/taisun/taisun-v2/issues/2",
    }
    assert audit_actions(bot, "security-scan.issue_") == [
        "security-scan.issue_found", "security-scan.issue_opening", "security-scan.issue_opened",
    ]  # fmt: skip
    # Only the task's owners (here: admins) may run it.
    assert "admin" in bot.command("security scan", user=MALLORY)["text"]


def test_missing_github_permissions_are_named_on_the_card_and_the_task(db_url, make_bot, slack, github):
    with_scan_workflow(github, LODASH)
    github.fail_next(
        "/artifacts", 403,
        body={"message": "Resource not accessible by personal access token", "documentation_url": "x", "status": "403"},
    )  # fmt: skip
    bot = scan_bot(db_url, make_bot, github)
    scan_comes_due(bot)
    settle(bot)
    (job,) = scan_jobs(bot)
    assert job.state == "failed" and "actions:read" in job.result and "403" in job.result
    (post,) = [
        m for m in slack.channel_messages(SEC) if m.text.startswith("Security task") and not m.thread_ts
    ]
    assert "The scan failed" in text_of(post) and "actions:read" in text_of(post)
    assert not github.issues
    # A dispatch the token may not send names actions:write.
    github.fail_next("/dispatches", 403, body={"message": "Resource not accessible by integration"})
    with bot.svc.sessions.begin() as s:  # the weekly task is still due: run it again by hand
        s.execute(update(Job).where(Job.id == job.id).values(state="failed"))
    bot.command("security scan", user=CAROL)
    settle(bot)
    second = scan_jobs(bot)[-1]
    assert second.state == "failed" and "actions:write" in second.result
