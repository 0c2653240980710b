"""`*` means members of the installed workspace: people of another organisation in a Slack Connect
channel act only where the config names them, and nobody acts through `*` before the bot knows
which workspace it is in."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent
from tests.chatops_helpers import incident, runs_of, settle
from tests.harness import ALICE, BOB, CAROL, OTHER_TEAM, TEAM, Bot, text_of

DAVE = "U0DAVE"  # a member of this workspace whom no role names
PARTNER = "U0PARTNER"  # someone of the other organisation in the shared channel
FRIEND = "U0FRIEND"  # someone of the other organisation whom roles.operator names


def everyone(cfg: dict[str, Any]) -> None:
    cfg["roles"] = {
        "operator": ["*", FRIEND],
        "approver": [BOB],
        "responder": ["*"],
        "break_glass": [],
        "admin": [CAROL],
    }


def knows_its_workspace(bot: Bot, slack) -> Bot:  # type: ignore[no-untyped-def]
    """The bot asks Slack's auth.test at start; wait for the answer."""
    slack.wait_for(lambda: bot.svc.policy.workspaces.home is not None)
    return bot


def refusals(bot: Bot, user: str) -> list[AuditEvent]:
    with bot.svc.sessions() as s:
        q = select(AuditEvent).where(AuditEvent.actor_id == user, AuditEvent.outcome == "refused")
        return list(s.scalars(q.order_by(AuditEvent.id)))


# (user, their workspace, command, allowed?)
CASES = [
    (DAVE, TEAM, "deploy stg v1.2.3", True),  # `*` covers every member of this workspace
    (DAVE, TEAM, 'incident declare sev4 "db down"', True),
    (PARTNER, OTHER_TEAM, "deploy stg v1.2.3", False),
    (PARTNER, OTHER_TEAM, "rollback stg v1.2.2", False),
    (PARTNER, OTHER_TEAM, "lock stg", False),
    (PARTNER, OTHER_TEAM, 'incident declare sev4 "db down"', False),
    (PARTNER, OTHER_TEAM, "runbook run service-restart stg", False),
    (PARTNER, OTHER_TEAM, "status", True),  # no role needed
    (FRIEND, OTHER_TEAM, "deploy stg v1.2.3", True),  # named in roles.operator: allowed
    (FRIEND, OTHER_TEAM, 'incident declare sev4 "db down"', False),  # but not named as a responder
]


@pytest.mark.parametrize(("user", "team", "text", "allowed"), CASES, ids=[f"{u}:{t}" for u, _, t, _ in CASES])
def test_star_roles_cover_this_workspace_and_outsiders_only_where_named(
    db_url, make_bot, slack, user, team, text, allowed
):
    bot = knows_its_workspace(make_bot(db_url, config_mutate=everyone), slack)
    reply = bot.command(text, user=user, team=team)
    refused = "You need the" in reply.get("text", "")
    assert refused != allowed, reply
    rows = refusals(bot, user)
    if not refused:
        assert rows == []
        return
    assert "another organisation" in reply["text"] and f"`{user}`" in reply["text"]
    (row,) = rows  # audited, saying where they came from
    assert row.action.endswith(".refused") and row.params["why"] == "external"
    assert row.params["team_id"] == OTHER_TEAM and "another organisation" in row.detail


def test_outsiders_clicks_and_forms_on_star_roles_are_refused_and_audited(db_url, make_bot, slack):
    bot = knows_its_workspace(make_bot(db_url, config_mutate=everyone), slack)
    bot.command('incident declare sev4 "API slow"', user=ALICE)
    bot.command("runbook run service-restart stg", user=ALICE)
    settle(bot)
    inc = incident(bot, 1)
    run = next(r for r in runs_of(bot) if r.runbook_id == "service-restart")

    bot.click(Action.INCIDENT_ACK, str(inc.id), PARTNER, team=OTHER_TEAM)
    bot.click(Action.STEP_RUN, f"{run.id}|restart", PARTNER, team=OTHER_TEAM)
    form = {"type": "modal", "callback_id": Action.INCIDENT_DECLARE_MODAL, "private_metadata": "{}"}
    values = {
        "severity": {
            Action.INCIDENT_SEVERITY: {"type": "static_select", "selected_option": {"value": "sev4"}}
        },
        "title": {Action.INCIDENT_TITLE: {"type": "plain_text_input", "value": "from outside"}},
    }
    from bot.slack import signing

    body, ctype = signing.view_submission(form, values, user_id=PARTNER, team_id=OTHER_TEAM)
    status, answer = bot.post(body, ctype)
    assert status == 200 and b"from another org" in answer, answer  # the form says why (cut to fit)
    settle(bot)
    assert incident(bot, 1).acknowledged_at is None
    assert [r.action for r in refusals(bot, PARTNER)] == [
        "incident.refused",
        "runbook.refused",
        "incident.refused",
    ]
    assert all(r.params["team_id"] == OTHER_TEAM for r in refusals(bot, PARTNER))
    assert all("another organisation" in m.text for m in slack.ephemeral(PARTNER))

    # the same button from a member of this workspace works
    bot.click(Action.INCIDENT_ACK, str(inc.id), DAVE, team=TEAM)
    settle(bot)
    assert incident(bot, 1).acknowledged_at is not None and refusals(bot, DAVE) == []


def test_star_admits_no_one_until_the_bot_knows_its_workspace(db_url, make_bot):
    bot = make_bot(db_url, start=False, config_mutate=everyone)  # auth.test has not answered
    reply = bot.command("deploy stg v1.2.3", user=DAVE)
    assert "does not know yet which workspace" in text_of(reply) and "slack.team_id" in text_of(reply)
    (row,) = refusals(bot, DAVE)
    assert row.action == "deploy.refused" and row.params["why"] == "home_unknown"
    # a user ID named in the role does not depend on the workspace
    assert "Checking" in bot.command("deploy stg v1.2.3", user=FRIEND, team=OTHER_TEAM)["text"]


def test_the_config_can_name_the_workspace(db_url, make_bot):
    def named(cfg: dict[str, Any]) -> None:
        everyone(cfg)
        cfg["slack"]["team_id"] = TEAM

    bot = make_bot(db_url, start=False, config_mutate=named)  # no auth.test needed
    assert "Checking" in bot.command("deploy stg v1.2.3", user=DAVE, team=TEAM)["text"]
    assert "another organisation" in bot.command("deploy stg v1.2.3", user=PARTNER, team=OTHER_TEAM)["text"]
