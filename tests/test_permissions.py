"""The role × action × environment matrix, table-driven, through real slash commands."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.store.models import AuditEvent

OPS, LEAD, VIEWER, GLASS = "U0OPS", "U0LEAD", "U0VIEWER", "U0GLASS"


def matrix_config(cfg):
    cfg["roles"] = {
        "operator": [OPS, LEAD, GLASS],
        "approver": ["@sre-leads"],
        "responder": [OPS, LEAD],
        "break_glass": [GLASS],
        "admin": [LEAD],
    }
    # production changes only by the leads' group: a per-environment override
    cfg["environments"]["production"]["roles"] = {"operator": ["@sre-leads"]}


# (user, command, allowed?)
CASES = [
    (OPS, "deploy stg v1.2.3", True),
    (OPS, "deploy prod v1.2.3", False),  # production is leads-only
    (LEAD, "deploy prod v1.2.3", True),
    (VIEWER, "deploy stg v1.2.3", False),
    (VIEWER, "rollback stg", False),
    (OPS, "rollback stg v1.2.2", True),
    (OPS, "rollback prod v1.2.2", False),
    (VIEWER, "lock stg", False),
    (OPS, "lock stg maintenance", True),
    (VIEWER, "restart stg", False),
    (VIEWER, "cache-clear stg redis", False),
    (VIEWER, "status", True),
    (VIEWER, "audit", True),
    (VIEWER, "help", True),
    (GLASS, "deploy stg v1.2.3", True),
]


@pytest.mark.parametrize(("user", "text", "allowed"), CASES, ids=[f"{u}:{t}" for u, t, _ in CASES])
def test_role_matrix(db_url, make_bot, slack, user, text, allowed):
    slack.add_usergroup("sre-leads", {LEAD})
    bot = make_bot(db_url, config_mutate=matrix_config)
    reply = bot.command(text, user=user)
    refused = "role" in reply.get("text", "") and "You need the" in reply.get("text", "")
    assert refused != allowed, reply
    if refused:
        with bot.svc.sessions() as s:
            refusal = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).first()
        assert refusal is not None and refusal.actor_id == user  # refusals are audited


def test_group_membership_changes_take_effect_when_the_cache_expires(db_url, make_bot, slack):
    slack.add_usergroup("sre-leads", {LEAD})
    bot = make_bot(db_url, config_mutate=matrix_config)
    assert "You need the" in bot.command("deploy prod v1.2.3", user=OPS)["text"]
    slack.add_usergroup("sre-leads", {LEAD, OPS})  # OPS is promoted
    bot.svc.policy.directory.invalidate()  # the 5-minute cache expires
    assert "Checking" in bot.command("deploy prod v1.2.3", user=OPS)["text"]
