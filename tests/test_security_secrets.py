"""Secrets (#18): the monthly rotation's watched secrets (names and ages only, from AWS Secrets Manager
served by moto and from the loopback GitHub), and the bot's own secrets read from Secrets Manager
(`*_SECRET_ID`), read again after a rotation, and never in a log, the audit log or Slack.

Missing IAM permissions are real refusals: moto enforcing IAM for a user whose policy lacks the action.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import select

from bot.core.logs import JsonFormatter
from bot.core.store.models import AuditEvent, Job, SecurityOccurrence
from bot.security import rotation
from bot.security import service as security
from bot.slack import signing
from tests.backend_fixtures import aws, moto_endpoint  # noqa: F401  (fixtures, requested by name)
from tests.chatops_helpers import post_alerts, settle
from tests.conftest import GITHUB_TOKEN
from tests.harness import BOB, BOT_TOKEN, CHANNEL, MALLORY, NAMES, text_of
from tests.procs import run_cli
from tests.test_security_tasks import SEC, fast, occurrences

DB_PASSWORD = "db-password-value-" + secrets.token_hex(8)  # a watched secret's value: never read, never shown


def rotation_only(cfg: dict[str, Any]) -> None:
    cfg["security"] = {
        "channel": SEC,
        "tasks": [
            {"id": tid, "enabled": False} for tid in ("dependency_scan", "access_review", "penetration_test")
        ]
        + [{"id": "secret_rotation", "owners": [BOB]}],
        "secrets": {
            "max_age_days": 35,
            "watch": [
                {"name": "taisun/production/database", "source": "aws"},
                {"name": "taisun/missing", "source": "aws"},
                {"name": "ANTHROPIC_API_KEY", "source": "github"},
                {"name": "DEPLOY_KEY", "source": "github", "max_age_days": 90},
                {"name": "NOPE", "source": "github"},
            ],
        },
    }


def sm_client() -> Any:
    return boto3.session.Session().client("secretsmanager")


@pytest.fixture
def iam_user(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[str]], None]]:  # noqa: F811
    """allow(actions): from now on AWS_* are an IAM user allowed only those actions, and moto enforces IAM."""

    def allow(actions: list[str]) -> None:
        iam = boto3.session.Session().client("iam")
        name = f"taisun-bot-{uuid.uuid4().hex[:6]}"
        iam.create_user(UserName=name)
        if actions:
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=name, PolicyName="taisun", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        httpx.post(f"{aws}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])

    yield allow
    httpx.post(f"{aws}/moto-api/reset-auth", content=b"inf", timeout=10).raise_for_status()


def rotation_comes_due(bot: Any) -> SecurityOccurrence:
    security.sweep(bot.svc)
    (scheduled,) = [o for o in occurrences(bot) if o.state == "scheduled"]
    security.sweep(bot.svc, at=scheduled.due_at)
    settle(bot)
    (due,) = [o for o in occurrences(bot) if o.state == "due"]
    return due


def test_the_monthly_rotation_lists_watched_secrets_by_name_with_their_ages_and_flags_old_ones(
    db_url,
    make_bot,
    slack,
    github,
    aws,  # noqa: F811
):
    sm_client().create_secret(Name="taisun/production/database", SecretString=DB_PASSWORD)
    now = datetime.now(UTC)
    github.add_secret("ANTHROPIC_API_KEY", now - timedelta(days=50))
    github.add_secret("DEPLOY_KEY", now - timedelta(days=40))
    bot = fast(
        make_bot(db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, config_mutate=rotation_only)
    )
    due = rotation_comes_due(bot)
    assert due.details["checked_at"]
    post = next(m for m in slack.channel_messages(SEC) if m.text.startswith("Security task"))
    shown = text_of(post)
    assert "*5 watched secret(s)* · 🔴 *3 flagged*" in shown
    assert "🔴 `ANTHROPIC_API_KEY` (github)" in shown and "*50 days ago*: over the 35-day limit" in shown
    assert "🟢 `DEPLOY_KEY` (github)" in shown and "40 days ago (limit 90)" in shown
    assert "🟢 `taisun/production/database` (aws)" in shown
    assert "⚠️ `taisun/missing` (aws) — there is no secret taisun/missing in AWS Secrets Manager" in shown
    assert "no Actions secret named NOPE" in shown
    # Forty days on, the AWS secret is flagged too (LastChangedDate: moto's secret was never rotated by AWS).
    later = {i["name"]: i for i in rotation.check(bot.svc, at=now + timedelta(days=40))}
    assert later["taisun/production/database"]["overdue"] and later["DEPLOY_KEY"]["overdue"] is False
    # The owner asks now; someone else may not see the names.
    assert "Reading the dates of 5 watched secret(s)" in bot.command("security secrets", user=BOB)["text"]
    assert "admin" in bot.command("security secrets", user=MALLORY)["text"]
    settle(bot)
    answer = slack.wait_for(lambda: [m for m in slack.ephemeral(BOB) if "watched secret" in text_of(m)])
    assert "ANTHROPIC_API_KEY" in text_of(answer[-1])
    with bot.svc.sessions() as s:
        checks = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "security.secrets_checked")))
    assert [c.actor_id for c in checks] == ["taisun", BOB]
    assert {i["name"] for i in checks[0].params["secrets"]} == {w for w in later} and checks[0].params[
        "flagged"
    ] == 3
    # Names only, ever: the value is nowhere the bot writes.
    assert_nowhere(bot, slack, DB_PASSWORD)


def test_missing_describe_secret_and_secrets_read_permissions_are_named(
    db_url, make_bot, slack, github, iam_user
):
    sm_client().create_secret(Name="taisun/production/database", SecretString=DB_PASSWORD)
    bot = fast(
        make_bot(db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, config_mutate=rotation_only)
    )
    iam_user(["secretsmanager:GetSecretValue"])  # may read values (never used), may not describe
    github.fail_next(
        "/actions/secrets", 403, body={"message": "Resource not accessible by personal access token"}
    )
    bot.command("security secrets", user=BOB)
    settle(bot)
    answer = text_of(
        slack.wait_for(lambda: [m for m in slack.ephemeral(BOB) if "watched secret" in text_of(m)])[-1]
    )
    assert "refused DescribeSecret on secret taisun/production/database (AccessDeniedException)" in answer
    assert "needs the secretsmanager:DescribeSecret permission" in answer
    assert "Secrets: read repository permission" in answer


def signed_command(bot: Any, text: str, user: str, secret: str) -> dict[str, Any]:
    """`/taisun <text>` as Slack sends it, signed with `secret` (the signing secret Slack has now)."""
    body, ctype = signing.slash_command(
        text, user_id=user, user_name=NAMES.get(user, user), channel_id=CHANNEL,
        response_url=bot.slack.response_url(f"{user}-{secrets.token_hex(4)}"),
    )  # fmt: skip
    status, data = bot.post(body, ctype, secret=secret)
    assert status == 200, (status, data)
    return json.loads(data) if data else {}


def assert_nowhere(bot: Any, slack: Any, *values: str) -> None:
    """None of `values` is in a Slack message, an audit row or a job the bot wrote."""
    with bot.svc.sessions() as s:
        rows = [
            json.dumps([e.params, e.detail, e.detail_msg, e.actor_name])
            for e in s.scalars(select(AuditEvent))
        ]
        jobs = [json.dumps([j.params, j.progress, j.result]) for j in s.scalars(select(Job))]
    said = [text_of(m) for m in slack.messages]
    for value in values:
        for where, texts in (("audit", rows), ("jobs", jobs), ("slack", said)):
            assert not any(value in t for t in texts), f"{where} shows a secret"


def test_the_bots_own_secrets_come_from_secrets_manager_are_read_again_after_a_rotation_and_never_logged(
    db_url,
    settings_for,
    make_bot,
    slack,
    github,
    aws,  # noqa: F811
):
    v1 = {"bot": BOT_TOKEN, "signing": "sign-v1-" + secrets.token_hex(12), "github": GITHUB_TOKEN,
          "alert": "alert-v1-" + secrets.token_hex(12)}  # fmt: skip
    sm = sm_client()
    sm.create_secret(
        Name="taisun/slack",
        SecretString=json.dumps({"bot_token": v1["bot"], "signing_secret": v1["signing"]}),
    )
    sm.create_secret(Name="taisun/github", SecretString=v1["github"])
    sm.create_secret(Name="taisun/alert", SecretString=v1["alert"])
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        settings = settings_for(
            db_url, slack_bot_token="", slack_signing_secret="", github_token="", github_api_url=github.url,
            slack_bot_token_secret_id="taisun/slack#bot_token", slack_signing_secret_secret_id="taisun/slack#signing_secret",
            github_token_secret_id="taisun/github", taisun_alert_token_secret_id="taisun/alert",
        )  # fmt: skip
        bot = make_bot(db_url, settings=settings)
        assert bot.settings.slack_bot_token == v1["bot"] and bot.settings.github_token == v1["github"]
        assert "commands" in text_of(signed_command(bot, "help", BOB, v1["signing"]))

        # Every secret is rotated: Slack, GitHub and Alertmanager now hold only the new values.
        v2 = {"bot": "xoxb-rotated-" + secrets.token_hex(8), "signing": "sign-v2-" + secrets.token_hex(12),
              "github": "ghp_" + secrets.token_hex(18), "alert": "alert-v2-" + secrets.token_hex(12)}  # fmt: skip
        sm.put_secret_value(
            SecretId="taisun/slack",
            SecretString=json.dumps({"bot_token": v2["bot"], "signing_secret": v2["signing"]}),
        )
        sm.put_secret_value(SecretId="taisun/github", SecretString=v2["github"])
        sm.put_secret_value(SecretId="taisun/alert", SecretString=v2["alert"])
        slack.token, github.token = v2["bot"], v2["github"]

        # A command signed with the new signing secret is accepted (the secret is read again once)...
        reply = signed_command(bot, "deploy stg v1.2.3 --dry-run", BOB, v2["signing"])
        assert "warning" not in reply.get("text", ""), reply
        bot.settle()
        # ...its job reads the tag with the new GitHub token (after one 401), and its card is posted with
        # the new bot token (after one invalid_auth).
        card = slack.wait_for(lambda: [m for m in slack.channel_messages(CHANNEL) if "v1.2.3" in m.text])
        assert "DRY RUN" in text_of(card[-1]) or "Dry run" in text_of(card[-1])
        assert github.requests_to("/git/ref/tags/v1.2.3")
        assert bot.settings.slack_bot_token == v2["bot"] and bot.settings.github_token == v2["github"]
        # Alertmanager's new bearer token is accepted; a wrong one still is not.
        hook = {"version": "4", "alerts": [{"status": "resolved", "labels": {"alertname": "Rotated"},
                                            "startsAt": "2026-01-01T00:00:00Z"}]}  # fmt: skip
        assert post_alerts(bot, hook, v2["alert"])[0] == 200
        assert post_alerts(bot, hook, "not-the-token")[0] == 401
        # A forged signature stays refused (and reads the secret at most once a minute).
        body, ctype = signing.slash_command("help", user_id=MALLORY, channel_id=CHANNEL)
        assert bot.post(body, ctype, secret="forged-" + secrets.token_hex(8))[0] == 401
        settle(bot)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    written = logs.getvalue()
    assert "secret changed in AWS Secrets Manager" in written and "taisun/github" in written
    for value in (*v1.values(), *v2.values()):
        assert value not in written
    assert_nowhere(bot, slack, *v1.values(), *v2.values())


def test_a_missing_get_secret_value_permission_stops_the_start_with_a_message_naming_it(
    db_url, settings_for, iam_user
):
    sm_client().create_secret(Name="taisun/slack", SecretString=BOT_TOKEN)
    iam_user(["secretsmanager:DescribeSecret"])
    settings = settings_for(db_url, slack_bot_token="")
    result = run_cli(["check"], settings, SLACK_BOT_TOKEN_SECRET_ID="taisun/slack")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SLACK_BOT_TOKEN_SECRET_ID: AWS Secrets Manager refused GetSecretValue" in result.stderr
    assert "needs the secretsmanager:GetSecretValue permission" in result.stderr
    both = run_cli(["check"], settings, SLACK_BOT_TOKEN="xoxb-x", SLACK_BOT_TOKEN_SECRET_ID="taisun/slack")
    assert (
        both.returncode == 2 and "both SLACK_BOT_TOKEN and SLACK_BOT_TOKEN_SECRET_ID are set" in both.stderr
    )
