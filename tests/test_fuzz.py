"""Property-based tests: arbitrary commands and payloads get a clear answer or a silent ignore.

Never a 500, never a state change the user was not entitled to.
"""

from __future__ import annotations

import json
import string
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot import signing
from bot.blocks import Action
from bot.commands import Command, UsageError, parse
from bot.config import EXAMPLE_CONFIG, load_config
from bot.store.models import AuditEvent, Job, Lock
from tests.harness import ALICE, BOB, CHANNEL, MALLORY

CONFIG = load_config(EXAMPLE_CONFIG)
WORDS = ["deploy", "rollback", "restart", "cache-clear", "backup", "lock", "unlock", "audit", "status", "help",
         "incident", "runbook", "jobs", "prod", "stg", "dev", "production", "v1.2.3", "--dry-run", "--force",
         "declare", "sev1", "assign", "commander", "<@U123>", "run", "list", "restore", '"', "“", "\u3000", "ー"]  # fmt: skip
command_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS) | st.text(alphabet=string.printable, max_size=12), max_size=8).map(" ".join),
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@given(command_text)
@settings(max_examples=400, deadline=None)
def test_the_parser_answers_every_text_with_a_command_or_a_usage_message(text):
    try:
        cmd = parse(text, CONFIG)
    except UsageError as e:
        assert str(e).strip()  # always says something
    else:
        assert isinstance(cmd, Command)


def test_huge_input_is_refused_with_the_limit():
    with pytest.raises(UsageError, match="limit is 2000"):
        parse("deploy prod " + "v" * 5000, CONFIG)


@pytest.fixture
def fuzz_bot(db_url, make_bot):
    def no_limit(cfg):
        cfg["defaults"]["commands_per_minute"] = 100000

    return make_bot(db_url, config_mutate=no_limit, github_token="")


def _state(bot):
    with bot.svc.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running", "succeeded")))),
            s.scalar(select(func.count()).select_from(Lock)),
        )


@FUZZ
@given(text=command_text, user=st.sampled_from([ALICE, MALLORY, "U0NOBODY"]))
def test_arbitrary_slash_commands_never_fail_the_request(fuzz_bot, text, user):
    body, ctype = signing.slash_command(text, user_id=user, channel_id=CHANNEL, response_url=fuzz_bot.slack.response_url(f"{user}-f"))
    status, data = fuzz_bot.post(body, ctype)
    assert status == 200
    if data:
        assert json.loads(data).get("text") is not None


@FUZZ
@given(
    action_id=st.sampled_from([Action.APPROVE, Action.REJECT, Action.CANCEL, Action.ROLLBACK, Action.LOCK_TAKEOVER]) | st.text(max_size=40),
    value=st.text(max_size=80) | st.uuids().map(str),
    user=st.sampled_from([ALICE, BOB, MALLORY, ""]),
)
def test_arbitrary_button_clicks_are_answered_or_ignored_and_change_nothing(fuzz_bot, action_id, value, user):
    before = _state(fuzz_bot)
    status, _ = fuzz_bot.click(action_id, value, user)
    assert status == 200
    fuzz_bot.settle()
    assert _state(fuzz_bot) == before


@FUZZ
@given(payload=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
))
def test_malformed_interactive_payloads_never_get_a_500(fuzz_bot, payload):
    for body in (urlencode({"payload": json.dumps(payload)}), urlencode({"payload": "{not json"}), "garbage=%%%"):
        status, _ = fuzz_bot.post(body, "application/x-www-form-urlencoded")
        assert status < 500


def test_a_button_value_pointing_at_someone_elses_job_is_rechecked(db_url, make_bot, slack):
    bot = make_bot(db_url)
    bot.command("deploy prod v1.2.3", user=BOB)
    bot.settle()
    with bot.svc.sessions() as s:
        job = s.scalars(select(Job)).one()
    # mallory is no approver: a forged Approve carrying bob's job id is refused
    bot.click(Action.APPROVE, job.id, MALLORY)
    # alice may not cancel bob's job either (only the requester or an admin)
    bot.click(Action.CANCEL, job.id, ALICE)
    bot.settle()
    with bot.svc.sessions() as s:
        assert s.get(Job, job.id).state == "pending_approval"
        denied = s.scalars(select(AuditEvent.action).where(AuditEvent.action == "deploy.approval_denied")).all()
    assert len(denied) == 1
    texts = [m.text for m in slack.ephemeral(MALLORY)] + [m.text for m in slack.ephemeral(ALICE)]
    assert any("approver" in t for t in texts) and any("admin" in t for t in texts)


def test_a_user_sending_too_many_commands_is_told_to_wait(db_url, make_bot):
    def low_limit(cfg):
        cfg["defaults"]["commands_per_minute"] = 3

    bot = make_bot(db_url, config_mutate=low_limit)
    replies = [bot.command("help", user=ALICE)["text"] for _ in range(4)]
    assert "more than 3 commands a minute" in replies[-1]
    assert "commands" in bot.command("help", user=BOB)["text"]  # others are not affected
