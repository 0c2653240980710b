"""The deploy form (`/taisun deploy` with no arguments): strict fields, flags as form controls."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, Job
from tests.chatops_helpers import submit_view
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, CAROL, CHANNEL, text_of, the_job


@pytest.fixture
def form_bot(db_url, make_bot, github):
    def make(config_mutate=None):
        return make_bot(
            db_url, github_token=GITHUB_TOKEN, github_api_url=github.url, config_mutate=config_mutate
        )

    return make


def open_form(bot, slack, text: str = "deploy") -> dict:
    """`/taisun deploy`: the form opens at once, then is filled with what GitHub lists."""
    before = set(slack.views)
    assert bot.command(text, user=ALICE) == {}
    view_id = slack.wait_for(lambda: next(iter(set(slack.views) - before), None))
    slack.wait_for(lambda: not any("Loading" in json.dumps(b) for b in slack.views[view_id]["blocks"]))
    return slack.views[view_id]


def values(env: str, version: str, dry_run: bool = False) -> dict:
    ticked = [{"value": "dry_run"}] if dry_run else []
    return {
        "env": {Action.DEPLOY_ENV: {"type": "static_select", "selected_option": {"value": env}}},
        "version": {Action.DEPLOY_VERSION: {"type": "plain_text_input", "value": version}},
        "options": {Action.DEPLOY_OPTIONS: {"type": "checkboxes", "selected_options": ticked}},
    }


def field_errors(status: int, body: bytes) -> dict:
    assert status == 200, body
    answer = json.loads(body) if body.strip() else {}
    return answer.get("errors", {}) if answer.get("response_action") == "errors" else {}


def jobs(bot) -> list[Job]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(Job)))


def test_a_flag_typed_into_the_version_field_is_a_field_error_not_a_real_deploy(form_bot, slack, github):
    github.fail_next("/tags", 502, times=3)  # GitHub cannot list tags: the form asks for text
    bot = form_bot()
    view = open_form(bot, slack)
    assert "Could not list tags from GitHub" in json.dumps(view["blocks"])
    errors = field_errors(*submit_view(bot, view, values("staging", "v1.2.3 --dry-run"), ALICE))
    assert errors == {
        "version": "“v1.2.3 --dry-run” is not a release tag. Type one tag, like v1.2.3; for a dry run, tick "
        "“Dry run” below."
    }
    for typed in ("v1.2.3 v1.2.2", "latest", ""):
        assert "version" in field_errors(*submit_view(bot, view, values("staging", typed), ALICE))
    bot.settle(30)
    assert jobs(bot) == [] and github.dispatches == []  # nothing was run


def test_the_dry_run_checkbox_makes_a_dry_run(form_bot, slack, github):
    bot = form_bot()
    view = open_form(bot, slack)
    version = next(b for b in view["blocks"] if b["block_id"] == "version")["element"]
    assert version["type"] == "static_select" and version["initial_option"]["value"] == "v1.2.3"
    assert field_errors(*submit_view(bot, view, values("staging", " v1.2.3 ", dry_run=True), ALICE)) == {}
    bot.settle(30)
    job = the_job(bot)
    assert job.dry_run and job.state == "simulated" and job.params["version"] == "v1.2.3"
    assert github.dispatches == []
    told = text_of(slack.ephemeral(ALICE)[-1])
    assert "dry run: nothing will change" in told and job.id[:8] in told
    # Unticked, the same form deploys for real.
    assert field_errors(*submit_view(bot, view, values("staging", "v1.2.3"), ALICE)) == {}
    bot.settle(30)
    assert not the_job(bot).dry_run and the_job(bot).state == "succeeded"
    assert len(github.dispatches) == 1


def test_deploy_dry_run_without_arguments_opens_the_form_with_dry_run_ticked(form_bot, slack):
    bot = form_bot()
    view = open_form(bot, slack, "deploy --dry-run")
    options = next(b for b in view["blocks"] if b["block_id"] == "options")["element"]
    assert [o["value"] for o in options["initial_options"]] == ["dry_run"]


def test_a_refused_form_says_why_on_the_field_from_the_typed_error(form_bot, slack, github):
    bot = form_bot()
    bot.command("lock staging DB migration running", user=CAROL)
    view = open_form(bot, slack)
    errors = field_errors(*submit_view(bot, view, values("staging", "v1.2.3"), ALICE))
    assert errors["version"].startswith("*staging* is locked by @U0CAROL")
    assert not errors["version"].startswith(":warning:")
    assert [j for j in jobs(bot) if j.operation == "deploy"] == []


def test_a_form_submitted_past_slacks_deadline_runs_nothing_and_says_so(form_bot, slack, github):
    def instant_deadline(cfg):
        cfg["slack"]["ack_deadline_seconds"] = 1e-9  # every request arrives "too late"

    normal = form_bot()
    view = open_form(normal, slack)
    late = form_bot(config_mutate=instant_deadline)
    with late.svc.sessions() as s:
        audit_before = len(list(s.scalars(select(AuditEvent))))
    status, body = submit_view(late, view, values("staging", "v1.2.3"), ALICE)
    assert status == 200 and field_errors(status, body) == {}
    late.settle(30)
    assert jobs(late) == [] and github.dispatches == []
    with late.svc.sessions() as s:
        assert len(list(s.scalars(select(AuditEvent)))) == audit_before
    told = slack.wait_for(lambda: [m for m in slack.ephemeral(ALICE) if "did nothing" in m.text])
    assert told[-1].channel == CHANNEL
