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

from bot.core.blocks import Action
from bot.core.commands import Command, UsageError, parse
from bot.core.config import EXAMPLE_CONFIG, load_config
from bot.core.store.models import AuditEvent, Job, Lock
from bot.slack import signing
from tests.harness import ALICE, BOB, CHANNEL, MALLORY

CONFIG = load_config(EXAMPLE_CONFIG)
WORDS = ["deploy", "rollback", "restart", "cache-clear", "backup", "lock", "unlock", "audit", "status", "help",
         "incident", "runbook", "jobs", "prod", "stg", "dev", "production", "v1.2.3", "--dry-run", "--force",
         "declare", "sev1", "assign", "commander", "<@U123>", "run", "list", "restore", '"', "“", "\u3000", "ー"]  # fmt: skip
command_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS) | st.text(alphabet=string.printable, max_size=12), max_size=8).map(
        " ".join
    ),
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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
            s.scalar(
                select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running", "succeeded")))
            ),
            s.scalar(select(func.count()).select_from(Lock)),
        )


@FUZZ
@given(text=command_text, user=st.sampled_from([ALICE, MALLORY, "U0NOBODY"]))
def test_arbitrary_slash_commands_never_fail_the_request(fuzz_bot, text, user):
    body, ctype = signing.slash_command(
        text, user_id=user, channel_id=CHANNEL, response_url=fuzz_bot.slack.response_url(f"{user}-f")
    )
    status, data = fuzz_bot.post(body, ctype)
    assert status == 200
    if data:
        assert json.loads(data).get("text") is not None


@FUZZ
@given(
    action_id=st.sampled_from(
        [Action.APPROVE, Action.REJECT, Action.CANCEL, Action.ROLLBACK, Action.LOCK_TAKEOVER]
        # incident and runbook buttons carry numbers and JSON the bot wrote; a forged value is refused
        + [Action.INCIDENT_ACK, Action.INCIDENT_PICK, Action.INCIDENT_RESOLVE, Action.STEP_RUN]
    )
    | st.text(max_size=40),
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
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_malformed_interactive_payloads_never_get_a_500(fuzz_bot, payload):
    for body in (
        urlencode({"payload": json.dumps(payload)}),
        urlencode({"payload": "{not json"}),
        "garbage=%%%",
    ):
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
        denied = s.scalars(
            select(AuditEvent.action).where(AuditEvent.action == "deploy.approval_denied")
        ).all()
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


# --------------------------------------------------------------------------- malformed requests
FORM = "application/x-www-form-urlencoded"


def _audit_rows(bot) -> int:
    with bot.svc.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent)) or 0


def _errors(caplog) -> list[str]:
    """ERRORs logged on the request's path (bots left over from earlier tests may log their own)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= 40 and r.name.split(".")[0] in ("bot", "handlers", "slack_bolt")
    ]


def _click_payload(**fields) -> dict:
    body, _ = signing.block_action(Action.APPROVE, "some-job", user_id=BOB, channel_id=CHANNEL)
    from urllib.parse import parse_qs

    return json.loads(parse_qs(body)["payload"][0]) | fields


def _form(payload: object) -> str:
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (urlencode({"payload": "null"}), {}),  # no signature at all
        (
            "command=%2Ftaisun&text=lock+prod",
            {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"},
        ),
        ("command=%2Ftaisun&text=lock+prod", {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=00"}),
        (
            "command=%2Ftaisun&text=lock+prod",
            {"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=00"},
        ),
        (
            "command=%2Ftaisun&text=lock+prod",
            {"X-Slack-Request-Timestamp": "١٢٣", "X-Slack-Signature": "v0=00"},
        ),
    ],
    ids=[
        "payload-null-unsigned",
        "timestamp-abc",
        "timestamp-empty",
        "timestamp-1e9",
        "timestamp-arabic-digits",
    ],
)
def test_a_request_whose_signature_cannot_be_checked_gets_401_and_changes_nothing(
    fuzz_bot, caplog, body, headers
):
    from bot.slack.shell import wsgi_post

    before = (_state(fuzz_bot), _audit_rows(fuzz_bot))
    with caplog.at_level("INFO"):
        status, _ = wsgi_post(fuzz_bot.wsgi, body, headers | {"Content-Type": FORM})
    assert status == 401
    assert (_state(fuzz_bot), _audit_rows(fuzz_bot)) == before
    assert not _errors(caplog), "a stranger's garbage is not an ERROR"


WRONG_SHAPES = {
    "actions is a string": _form(_click_payload(actions="x")),
    "actions holds null": _form(_click_payload(actions=[None])),
    "actions is empty": _form(_click_payload(actions=[])),
    "an action without action_id": _form(_click_payload(actions=[{"value": "x"}])),
    "user is a list": _form(_click_payload(user=[BOB])),
    "channel is a number": _form(_click_payload(channel=7)),
    "view is null": _form({"type": "view_submission", "user": {"id": BOB}, "view": None}),
    "view state values is a list": _form(
        {
            "type": "view_submission",
            "user": {"id": BOB},
            "view": {"type": "modal", "callback_id": "deploy", "state": {"values": []}},
        }
    ),
    "event is null": json.dumps({"type": "event_callback", "event": None, "event_id": "Ev1"}),
    "event is a string": json.dumps({"type": "event_callback", "event": "app_mention", "event_id": "Ev2"}),
    "the payload is null": urlencode({"payload": "null"}),
    "the payload is not JSON": urlencode({"payload": "{not json"}),
    "the JSON body is an array": "[1, 2]",
}


@pytest.mark.parametrize("body", list(WRONG_SHAPES.values()), ids=list(WRONG_SHAPES))
def test_a_signed_payload_of_the_wrong_shape_gets_400_and_changes_nothing(fuzz_bot, caplog, body):
    before = (_state(fuzz_bot), _audit_rows(fuzz_bot))
    with caplog.at_level("INFO"):
        status, data = fuzz_bot.post(body, "application/json" if body[:1] in "{[" else FORM)
        fuzz_bot.settle()
    assert status == 400, (status, data)
    assert b"malformed" in data
    assert (_state(fuzz_bot), _audit_rows(fuzz_bot)) == before
    assert not _errors(caplog)


_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_not_object = _scalar | st.lists(_scalar, max_size=3)
_not_string = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.lists(_scalar, max_size=2)
    | st.dictionaries(st.text(max_size=4), _scalar, max_size=2)
)


def _set(path: tuple[str | int, ...], value: object, payload: dict) -> dict:
    """A copy of payload with the field at path replaced by value."""
    out = json.loads(json.dumps(payload))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


_VIEW = {"type": "view_submission", "user": {"id": BOB}, "trigger_id": "t1",
         "view": {"type": "modal", "callback_id": "deploy", "private_metadata": CHANNEL, "state": {"values": {"b": {"a": {"type": "x"}}}}}}  # fmt: skip
_EVENT = {"type": "event_callback", "event_id": "Ev9", "team_id": "T0LOCAL",
          "event": {"type": "app_mention", "user": ALICE, "channel": CHANNEL, "ts": "1.1", "text": "hi"}}  # fmt: skip
# (a valid payload, the field Bolt or a listener reads, values of the wrong type for it)
_WRONG_FIELDS = [
    (_click_payload(), ("actions",), _not_object.filter(lambda v: v is not None) | st.just([]) | st.lists(_not_object, min_size=1, max_size=2)),
    (_click_payload(), ("actions", 0, "action_id"), _not_string),
    (_click_payload(), ("user",), _not_object.filter(lambda v: v is not None)),
    (_click_payload(), ("user", "id"), _not_string.filter(lambda v: v is not None)),
    (_click_payload(), ("channel",), _not_object.filter(lambda v: v is not None)),
    (_click_payload(), ("response_url",), _not_string | st.text(max_size=8).filter(lambda u: u != "" and not u.startswith("http"))),
    (_click_payload(), ("trigger_id",), _not_string),
    (_VIEW, ("view",), _not_object),
    (_VIEW, ("view", "state"), _not_object),
    (_VIEW, ("view", "state", "values"), _not_object | st.dictionaries(st.text(max_size=3), _not_object, min_size=1, max_size=2)),
    (_VIEW, ("view", "callback_id"), _not_string),
    (_VIEW, ("view", "type"), _not_string),
    (_VIEW, ("view", "private_metadata"), _not_string),
    (_EVENT, ("event",), _not_object),
    (_EVENT, ("event", "type"), _not_string),
    (_EVENT, ("event_id",), _not_string),
]  # fmt: skip


@FUZZ
@given(data=st.data(), case=st.sampled_from(_WRONG_FIELDS))
def test_signed_payloads_with_a_field_of_the_wrong_type_get_400_and_change_nothing(
    fuzz_bot, caplog, data, case
):
    payload, path, wrong = case
    body = _set(path, data.draw(wrong, label=".".join(map(str, path))), payload)
    before = (_state(fuzz_bot), _audit_rows(fuzz_bot))
    with caplog.at_level("INFO"):
        if body["type"] == "event_callback":
            status, _ = fuzz_bot.post(json.dumps(body), "application/json")
        else:
            status, _ = fuzz_bot.post(_form(body), FORM)
    assert status == 400
    assert (_state(fuzz_bot), _audit_rows(fuzz_bot)) == before
    assert not _errors(caplog)


@FUZZ
@given(
    timestamp=st.text(max_size=12) | st.integers().map(str) | st.floats().map(str),
    body=st.sampled_from(
        ["command=%2Ftaisun&text=lock+prod+x", _form(_click_payload()), urlencode({"payload": "null"})]
    ),
)
def test_unsigned_requests_with_any_timestamp_get_401(fuzz_bot, caplog, timestamp, body):
    from bot.slack.shell import wsgi_post

    with caplog.at_level("INFO"):
        status, _ = wsgi_post(
            fuzz_bot.wsgi,
            body,
            {
                "Content-Type": FORM,
                "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": "v0=" + "0" * 64,
            },
        )
    assert status == 401
    assert not _errors(caplog)
