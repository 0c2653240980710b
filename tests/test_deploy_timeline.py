"""One deploy timeline: deploys GitHub ran without the bot (a merge to develop, a pushed tag,
`gh workflow run`, a GitHub deployment) join the bot's own — announced once, followed, verified,
in the history and the audit log — whether GitHub's signed webhooks or the poller tell the bot.

Everything goes through the loopback GitHub: it runs the workflow, delivers `workflow_run` and
`deployment` webhooks signed with the hook's secret exactly as GitHub does (and redelivers one
when asked), and answers the poller's conditional listings with ETags and 304s.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent, DeployRun, GithubPoll, Job
from bot.deploys import timeline
from bot.deploys.service import verified_history
from tests.conftest import GITHUB_TOKEN
from tests.harness import ALICE, BOB, CAROL, CHANNEL, Bot, buttons, text_of

SECRET = "whsec-test-7b1e3a9c0d2f4e6a8b"  # noqa: S105 (a test secret, also used to prove it never leaks)
OCTOCAT_SLACK = CAROL  # github.users maps octocat to Carol; hubot is mapped to nobody


# --------------------------------------------------------------------------- helpers


def into(bot: Bot) -> Callable[[dict[str, str], bytes], int]:
    """A webhook target: the delivery, as GitHub sent it, POSTed into the bot's WSGI app."""

    def deliver(headers: dict[str, str], body: bytes) -> int:
        return post(bot, headers, body)[0]

    return deliver


def post(bot: Bot, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/github/webhook", "QUERY_STRING": "",
        "CONTENT_TYPE": headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "SERVER_NAME": "localhost", "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "REMOTE_ADDR": "140.82.115.1",
    }  # fmt: skip
    for k, v in headers.items():
        if k.lower() != "content-type":
            environ["HTTP_" + k.upper().replace("-", "_")] = v
    status: list[str] = []
    data = b"".join(bot.wsgi(environ, lambda s, h, exc_info=None: status.append(s)))
    return int(status[0].split()[0]), json.loads(data) if data else {}


def metric(bot: Bot, name: str, **labels: str) -> float:
    status: list[str] = []
    body = b"".join(
        bot.wsgi(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda s, h, exc_info=None: status.append(s)
        )
    ).decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", body, re.M)
    return float(m[1]) if m else 0.0


@pytest.fixture
def tl_bot(db_url, make_bot, github, service):  # type: ignore[no-untyped-def]
    """make(**config) -> a bot that hears GitHub: the webhook secret, github.users, the test's config."""
    github.add_branch("develop")
    for tag in ("v1.2.5", "v1.2.6"):
        github.add_commit(f"feat: {tag}")
        github.add_tag(tag)

    def make(mutate: Callable[[dict[str, Any]], None] | None = None, settings: Any = None, **kw: Any) -> Bot:
        def cfg(c: dict[str, Any]) -> None:
            c["github"]["users"] = {"octocat": OCTOCAT_SLACK}
            if mutate:
                mutate(c)

        if settings is not None:
            return make_bot(db_url, settings=settings)
        env = {"github_token": GITHUB_TOKEN, "github_api_url": github.url, "github_webhook_secret": SECRET}
        return make_bot(db_url, config_mutate=cfg, **(env | kw))

    return make


def settle(bot: Bot, github: Any, rounds: int = 3) -> None:
    """Until the webhooks are delivered and the jobs they started have ended (they may start more)."""
    for _ in range(rounds):
        assert github.flush_webhooks(20)
        bot.settle(40)


def jobs(bot: Bot) -> list[Job]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(Job).order_by(Job.created_at)))


def audit_rows(bot: Bot, action: str) -> list[AuditEvent]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def cards_saying(slack: Any, text: str) -> list[Any]:
    return [m for m in slack.channel_messages(CHANNEL) if text in text_of(m)]


def runs_recorded(bot: Bot) -> list[DeployRun]:
    with bot.svc.sessions() as s:
        return list(s.scalars(select(DeployRun).order_by(DeployRun.id)))


def deploys_reply(bot: Bot, env: str, user: str = ALICE) -> str:
    return text_of(bot.command(f"deploys {env}", user=user))


# --------------------------------------------------------------------------- a push deploys staging


def test_a_push_to_develop_makes_exactly_one_card_history_entry_and_audit_row(tl_bot, github, slack, service):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET)
    run_id = github.push("develop", actor="octocat", inputs={"version": "v1.2.6"})
    settle(bot, github)

    (job,) = jobs(bot)
    assert job.state == "succeeded", job.result
    assert job.environment == "staging" and job.params["origin"] == "push"
    assert job.params["version"] == "v1.2.6"  # a branch names no version: /version did after the deploy
    assert job.requested_by == OCTOCAT_SLACK and job.requested_by_name == "octocat"
    assert github.dispatches == []  # followed, never dispatched

    # One card, in the ops channel: who, what, where, how it started, which run, verified.
    (card,) = cards_saying(slack, "octocat deployed")
    text = text_of(card)
    number = github.run(run_id)["run_number"]
    assert "@octocat deployed v1.2.6 to staging" in text
    assert "push to `develop`" in text and f"run #{number}" in text and f"/actions/runs/{run_id}|" in text
    assert "Succeeded" in text and "Verified: healthy, version `v1.2.6`" in text
    assert Action.ROLLBACK not in buttons(card)

    # One history entry, one `deploy.seen` audit row whose actor is the mapped Slack user.
    assert verified_history(bot.svc, "staging") == ["v1.2.6"]
    (seen,) = audit_rows(bot, "deploy.seen")
    assert seen.actor_id == OCTOCAT_SLACK and seen.actor_name == "octocat" and seen.job_id == job.id
    assert seen.params["github"]["run_id"] == run_id and seen.params["origin"] == "push"
    assert [r.action for r in audit_rows(bot, "deploy.succeeded")] == ["deploy.succeeded"]
    assert audit_rows(bot, "deploy.dispatch") == []

    # GitHub told the bot three times (requested, in_progress, completed): one run, one deploy.
    runs = [d for d in github.deliveries if d.event == "workflow_run"]
    assert len(runs) == 3 and all(d.answers == [202] for d in runs)
    assert [d.answers for d in github.deliveries if d.event == "ping"] == [[200]]
    (row,) = runs_recorded(bot)
    assert row.run_id == run_id and row.job_id == job.id and row.seen_via == "webhook"

    # `/taisun deploys staging`: who, what, how, result, verified.
    listing = deploys_reply(bot, "staging")
    assert f"<@{OCTOCAT_SLACK}> (@octocat)" in listing and "`v1.2.6`" in listing
    assert "push to `develop`" in listing and "Succeeded" in listing and "verified" in listing
    # status and Home show the last deploy, whoever started it.
    bot.command("status staging", user=BOB)
    bot.svc.home.publish(BOB)
    bot.settle()
    status = next(m for m in slack.ephemeral(BOB) if "Environment status" in m.text)
    assert "last deploy: v1.2.6 by" in text_of(status) and "(@octocat) (push to `develop`)" in text_of(status)
    assert "`v1.2.6` by" in json.dumps(slack.home[BOB]) and "@octocat" in json.dumps(slack.home[BOB])
    assert SECRET not in json.dumps([text_of(m) for m in slack.channel_messages(CHANNEL)])


def test_a_delivery_sent_again_is_answered_as_a_duplicate_and_changes_nothing(tl_bot, github, slack):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET)
    github.push("develop", actor="hubot", inputs={"version": "v1.2.6"})
    settle(bot, github)
    first = next(d for d in github.deliveries if d.event == "workflow_run")
    before = metric(bot, "taisun_github_webhooks_total", event="workflow_run", result="duplicate")

    github.redeliver(first.id)  # GitHub's "Redeliver": the same X-GitHub-Delivery, the same body
    settle(bot, github)

    assert github.delivery(first.id).answers == [202, 200]
    assert len(jobs(bot)) == 1 and len(audit_rows(bot, "deploy.seen")) == 1
    assert len(cards_saying(slack, "hubot deployed")) == 1
    assert metric(bot, "taisun_github_webhooks_total", event="workflow_run", result="duplicate") == before + 1
    # Nobody maps hubot: the card and the audit row name the GitHub login.
    (seen,) = audit_rows(bot, "deploy.seen")
    assert seen.actor_id == "github:hubot" and seen.actor_name == "hubot"


def test_one_delivery_to_two_replicas_at_once_is_taken_once(tl_bot, github, slack):
    a = tl_bot()
    b = tl_bot(settings=a.settings)  # a second replica: same database, same secret
    github.add_webhook(lambda headers, body: 504, SECRET)  # the load balancer timed out: GitHub retries
    github.push("develop", actor="octocat", inputs={"version": "v1.2.6"})
    assert github.flush_webhooks(10)
    requested = next(d for d in github.deliveries if d.event == "workflow_run")

    github.redeliver(requested.id, targets=[into(a), into(b)])  # the same delivery, both at one moment
    settle(a, github)
    b.settle(30)

    assert sorted(github.delivery(requested.id).answers) == [200, 202, 504]  # taken once, once a repeat
    assert len(jobs(a)) == 1 and len(runs_recorded(a)) == 1 and len(audit_rows(a, "deploy.seen")) == 1
    assert len(cards_saying(slack, "octocat deployed")) == 1
    assert jobs(a)[0].state == "succeeded"


def test_the_same_run_in_different_deliveries_to_different_replicas_counts_once(tl_bot, github, slack):
    a = tl_bot()
    b = tl_bot(settings=a.settings)
    replicas = iter([a, b, a, b, a, b])
    github.add_webhook(lambda h, body: into(next(replicas))(h, body), SECRET)  # round robin
    github.push("v1.2.6", actor="octocat", inputs={"version": "v1.2.6"})  # a pushed tag
    settle(a, github)
    b.settle(30)

    (job,) = jobs(a)
    assert job.environment == "production" and job.params["origin"] == "tag" and job.state == "succeeded"
    assert len(cards_saying(slack, "@octocat deployed v1.2.6 to production")) == 1
    assert len(audit_rows(a, "deploy.seen")) == 1


# --------------------------------------------------------------------------- signatures


def test_a_bad_or_missing_signature_is_401_and_changes_nothing(tl_bot, github, slack):
    bot = tl_bot()
    before = metric(bot, "taisun_github_webhooks_total", event="workflow_run", result="unauthorized")
    github.add_webhook(into(bot), "not-the-secret")
    github.push("develop", actor="mallory", inputs={"version": "v1.2.6"})
    assert github.flush_webhooks(10)
    assert {d.event: d.answers for d in github.deliveries} == {"ping": [401], "workflow_run": [401]}

    delivery = next(d for d in github.deliveries if d.event == "workflow_run")
    unsigned = {k: v for k, v in delivery.headers.items() if not k.lower().startswith("x-hub-signature")}
    assert post(bot, unsigned, delivery.body)[0] == 401
    tampered = delivery.body.replace(b"mallory", b"octocat")
    good = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert post(bot, delivery.headers | {"X-Hub-Signature-256": good}, tampered)[0] == 401
    assert post(bot, delivery.headers | {"X-Hub-Signature-256": "sha1=" + good[7:]}, delivery.body)[0] == 401
    bot.settle()

    assert jobs(bot) == [] and runs_recorded(bot) == [] and audit_rows(bot, "deploy.seen") == []
    assert slack.channel_messages(CHANNEL) == []
    assert (
        metric(bot, "taisun_github_webhooks_total", event="workflow_run", result="unauthorized") == before + 4
    )
    # Signed with the right secret, the very same body is taken.
    assert post(bot, delivery.headers | {"X-Hub-Signature-256": good}, delivery.body)[0] == 202
    bot.settle(40)
    assert [j.requested_by_name for j in jobs(bot)] == ["mallory"]


def test_without_a_webhook_secret_the_receiver_refuses_everything(tl_bot, github):
    bot = tl_bot(github_webhook_secret="")
    github.add_webhook(into(bot), SECRET)
    github.push("develop", actor="octocat")
    assert github.flush_webhooks(10)
    assert {a for d in github.deliveries for a in d.answers} == {503}
    assert jobs(bot) == []


def test_ping_is_answered_and_other_events_are_ignored_and_counted(tl_bot, github):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET, events=("workflow_run", "push", "issues"))
    before = metric(bot, "taisun_github_webhooks_total", event="issues", result="ignored")
    github.send_event(
        "issues", {"action": "opened", "issue": {"number": 1}, "repository": {"full_name": github.repository}}
    )
    github.send_event("push", {"ref": "refs/heads/develop", "repository": {"full_name": github.repository}})
    assert github.flush_webhooks(10)
    ping = next(d for d in github.deliveries if d.event == "ping")
    assert ping.answers == [200]
    status, answer = post(bot, ping.headers, ping.body)
    assert (
        status == 200
        and answer["status"] == "pong"
        and answer["missing_events"] == ["deployment", "deployment_status"]
    )
    assert [d.answers for d in github.deliveries if d.event in ("issues", "push")] == [[202], [202]]
    assert metric(bot, "taisun_github_webhooks_total", event="issues", result="ignored") == before + 1
    assert jobs(bot) == []


def test_form_encoded_deliveries_are_verified_over_the_raw_body(tl_bot, github, slack):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET, content_type="form")
    github.push("develop", actor="octocat", inputs={"version": "v1.2.6"})
    settle(bot, github)
    assert [j.state for j in jobs(bot)] == ["succeeded"]


def test_runs_of_other_workflows_and_other_repositories_are_ignored(tl_bot, github):
    bot = tl_bot()
    github.declare_workflow("lint.yml")
    github.add_webhook(into(bot), SECRET)
    github.push("develop", workflow="lint.yml", actor="octocat")
    assert github.flush_webhooks(10)
    other = json.loads(next(d for d in github.deliveries if d.event == "workflow_run").body)
    other["workflow_run"]["path"] = ".github/workflows/cd.yml"
    other["repository"]["full_name"] = "someone/else"
    github.send_event("workflow_run", other)
    settle(bot, github)
    assert jobs(bot) == [] and runs_recorded(bot) == []


# --------------------------------------------------------------------------- the poller


def poll_every_minute(c: dict[str, Any]) -> None:
    c["github"]["poll_seconds"] = 60


def test_the_poller_finds_an_outside_deploy_and_an_unchanged_listing_costs_no_rate_limit(
    tl_bot, github, slack
):
    bot = tl_bot(poll_every_minute)  # no webhook: GitHub cannot reach this bot
    run_id = github.push("develop", actor="octocat", inputs={"version": "v1.2.6"})

    bot.svc.runner.sweep()  # the periodic work every replica's workers do (theirs may be the one that polls)
    bot.slack.wait_for(lambda: jobs(bot), timeout=20)
    bot.settle(40)

    (job,) = jobs(bot)
    assert job.state == "succeeded" and job.params["github"]["run_id"] == run_id
    assert job.params["github"]["seen_via"] == "poller"
    assert len(cards_saying(slack, "@octocat deployed v1.2.6 to staging")) == 1
    listed = github.requests_to("/actions/workflows/cd.yml/runs")
    # Narrowed to what deploys each environment (the order of the two listings is the sweep's):
    # staging by its branch, production (tags only) by push events; nothing lists every run.
    assert any("branch=develop" in r.path for r in listed)
    assert all("branch=develop" in r.path or "event=push" in r.path for r in listed)

    # Nothing new: the conditional request is a 304, and a 304 costs no rate limit.
    assert timeline.poll(bot.svc, force=True)["staging"] == "changed"  # the run finished since
    used = github.rate_limit_used
    assert timeline.poll(bot.svc, force=True) == {"staging": "not_modified", "production": "not_modified"}
    assert github.rate_limit_used == used and github.not_modified >= 2
    assert len(jobs(bot)) == 1
    with bot.svc.sessions() as s:
        polls = {p.key: p for p in s.scalars(select(GithubPoll))}
    assert polls["staging"].etag.startswith('W/"') and polls["staging"].last_run_id == run_id
    # The sweep does not poll again before the interval is over (nor would the other replica).
    listed = len(github.requests_to("/runs"))
    bot.svc.runner.sweep()
    assert len(github.requests_to("/runs")) == listed


def test_the_same_run_seen_by_webhook_and_poller_counts_once(tl_bot, github, slack):
    bot = tl_bot(poll_every_minute)
    github.add_webhook(into(bot), SECRET)
    github.push("develop", actor="octocat", inputs={"version": "v1.2.6"})
    assert github.flush_webhooks(10)
    bot.svc.runner.sweep()  # the poller lists the same run the webhook announced
    settle(bot, github)
    timeline.poll(bot.svc, force=True)
    settle(bot, github)

    assert len(jobs(bot)) == 1 and len(runs_recorded(bot)) == 1
    assert len(audit_rows(bot, "deploy.seen")) == 1
    assert len(cards_saying(slack, "octocat deployed")) == 1
    assert verified_history(bot.svc, "staging") == ["v1.2.6"]


def test_the_first_poll_announces_what_is_going_on_not_old_history(tl_bot, github):
    from datetime import UTC, datetime, timedelta

    bot = tl_bot(poll_every_minute)
    github.push("develop", actor="octocat", script=[("completed", "success")],
                created_at=datetime.now(UTC) - timedelta(days=2))  # fmt: skip
    timeline.poll(bot.svc, force=True)
    bot.settle()
    assert jobs(bot) == []


# --------------------------------------------------------------------------- rollback and the timeline


def test_after_two_outside_deploys_a_rollback_returns_to_the_one_before(tl_bot, github, slack, service):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET)
    bot.command("deploy stg v1.2.3", user=ALICE)  # the bot's own deploy first
    settle(bot, github)
    for tag in ("v1.2.5", "v1.2.6"):  # then CI deploys twice, without the bot
        github.push("develop", actor="octocat", inputs={"version": tag})
        settle(bot, github)
    assert verified_history(bot.svc, "staging")[:3] == ["v1.2.6", "v1.2.5", "v1.2.3"]

    bot.command("rollback stg", user=ALICE)
    settle(bot, github)

    rollback = [j for j in jobs(bot) if j.operation == "rollback"][-1]
    assert rollback.state == "succeeded", rollback.result
    assert rollback.params["version"] == "v1.2.5"  # not v1.2.3, the last one the bot deployed itself
    assert github.dispatches[-1]["inputs"] == {
        "environment": "staging",
        "version": "v1.2.5",
        "rollback": "true",
    }
    assert "Roll back staging to v1.2.5" in text_of(slack.channel_messages(CHANNEL)[-1])
    listing = deploys_reply(bot, "staging")
    assert [line.split("*")[1] for line in re.findall(r"\*(?:deploy|rollback)\* `v[\d.]+`", listing)] == [
        "rollback", "deploy", "deploy", "deploy",
    ]  # fmt: skip
    assert "from Slack" in listing and "push to `develop`" in listing


def test_a_failed_outside_deploy_offers_a_rollback_to_the_version_before(tl_bot, github, slack, service):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET)
    github.push("v1.2.5", actor="octocat", inputs={"version": "v1.2.5"})
    settle(bot, github)
    github.push("v1.2.6", actor="hubot", script=["in_progress", ("completed", "failure")])
    settle(bot, github)

    failed = jobs(bot)[-1]
    assert failed.state == "failed" and "ended `failure`" in failed.result
    card = cards_saying(slack, "@hubot deployed v1.2.6 to production")[-1]
    assert Action.ROLLBACK in buttons(card) and "v1.2.5" in json.dumps(card.blocks)
    bot.click(Action.ROLLBACK, failed.id, ALICE, card)  # production: Bob approves
    bot.settle()
    approval = jobs(bot)[-1]
    bot.click(Action.APPROVE, approval.id, BOB)
    settle(bot, github)
    assert jobs(bot)[-1].state == "succeeded" and jobs(bot)[-1].params["version"] == "v1.2.5"


# --------------------------------------------------------------------------- the bot's own runs


def run_names(c: dict[str, Any]) -> None:
    c["github"]["run_name_pattern"] = r"to (?P<environment>\w+)$"


def test_runs_the_bot_dispatched_are_recognised_and_not_announced_twice(tl_bot, github, slack):
    # cd.yml names its environment in the run title, so GitHub's webhooks about the bot's own runs
    # are attributable — and arrive before the bot has found its run in the listing.
    github.declare_workflow(
        "cd.yml", inputs=["environment", "version", "rollback"], run_name="Deploy {version} to {environment}"
    )
    github.run_list_lag = 2
    bot = tl_bot(run_names)
    github.add_webhook(into(bot), SECRET)
    bot.command("deploy stg v1.2.3", user=ALICE)
    settle(bot, github)

    (job,) = jobs(bot)
    assert job.state == "succeeded" and "origin" not in job.params
    assert audit_rows(bot, "deploy.seen") == []
    (row,) = runs_recorded(bot)
    assert (
        row.job_id == job.id and row.origin == "slack" and row.seen_via == "webhook"
    )  # heard first, then claimed
    assert len([m for m in slack.channel_messages(CHANNEL) if "v1.2.3" in text_of(m)]) == 1

    # Someone runs `gh workflow run cd.yml -f environment=staging -f version=v1.2.5`: that one is theirs.
    github.push("main", event="workflow_dispatch", actor="octocat",
                inputs={"environment": "staging", "version": "v1.2.5", "rollback": "false"})  # fmt: skip
    settle(bot, github)
    outside = jobs(bot)[-1]
    assert outside.params["origin"] == "workflow_dispatch" and outside.params["version"] == "v1.2.5"
    assert outside.state == "succeeded"
    card = cards_saying(slack, "@octocat deployed v1.2.5 to staging")
    assert len(card) == 1 and "started by hand in GitHub Actions" in text_of(card[0])


def test_the_bots_own_github_deployments_are_not_taken_for_someone_elses(tl_bot, github, slack):
    def deployments(c: dict[str, Any]) -> None:
        c["github"]["create_deployment"] = True

    bot = tl_bot(deployments)
    github.add_webhook(into(bot), SECRET)
    bot.command("deploy stg v1.2.3", user=ALICE)
    settle(bot, github)
    assert [d.answers for d in github.deliveries if d.event.startswith("deployment")] == [[202], [202], [202]]
    assert [j.state for j in jobs(bot)] == ["succeeded"] and audit_rows(bot, "deploy.seen") == []


def test_a_deployment_names_the_environment_of_a_run_started_by_hand(tl_bot, github, slack):
    bot = tl_bot()  # no run_name_pattern: the run alone does not say where it deploys
    github.add_webhook(into(bot), SECRET)
    run_id = github.push("main", event="workflow_dispatch", actor="octocat", inputs={"version": "v1.2.6"})
    assert github.flush_webhooks(10)
    assert runs_recorded(bot) == []  # not attributable yet
    github.add_deployment("v1.2.6", "Production", actor="github-actions[bot]", run_id=run_id)
    settle(bot, github)
    (job,) = jobs(bot)
    assert job.environment == "production" and job.params["origin"] == "workflow_dispatch"
    assert job.params["version"] == "v1.2.6" and job.state == "succeeded"


def test_a_deployment_without_a_run_is_followed_through_its_statuses(tl_bot, github, slack, service):
    bot = tl_bot()
    github.add_webhook(into(bot), SECRET)
    service.version = "v1.2.6"
    service.version_fn = None
    dep = github.add_deployment("v1.2.6", "staging", actor="octocat")
    github.add_deployment_status(dep, "in_progress")
    assert github.flush_webhooks(10)
    github.add_deployment_status(dep, "success")
    settle(bot, github)
    (job,) = jobs(bot)
    assert job.params["origin"] == "deployment" and job.state == "succeeded", job.result
    assert "a GitHub deployment of `v1.2.6`" in text_of(cards_saying(slack, "octocat deployed")[0])
    assert "deploy.deployment_completed" in {r.action for r in audit_rows(bot, "deploy.deployment_completed")}


# --------------------------------------------------------------------------- smoke tests


def smoke_workflow(auto_rollback: bool) -> Callable[[dict[str, Any]], None]:
    def cfg(c: dict[str, Any]) -> None:
        prod = c["environments"]["production"]
        prod["smoke"] = {"workflow": "smoke.yml", "timeout_minutes": 1}
        prod["auto_rollback"] = auto_rollback

    return cfg


def test_a_failing_smoke_workflow_rolls_back_where_auto_rollback_is_on(tl_bot, github, slack):
    github.declare_workflow("smoke.yml", inputs=["environment"])
    bot = tl_bot(smoke_workflow(auto_rollback=True))
    github.add_webhook(into(bot), SECRET)
    github.push("v1.2.5", actor="octocat", inputs={"version": "v1.2.5"})  # smoke passes
    settle(bot, github)
    github.workflow_scripts["smoke.yml"] = ["queued", ("completed", "failure")]
    github.push("v1.2.6", actor="octocat", inputs={"version": "v1.2.6"})
    settle(bot, github)

    first, second = jobs(bot)
    assert first.state == "succeeded" and first.progress["smoke"] == "passed"
    assert second.state == "failed" and "smoke test failed" in second.result
    assert "Rolled back automatically to `v1.2.5`" in second.result
    smoke, rollback = github.dispatches[-2:]
    assert smoke["inputs"] == {"environment": "production"}
    assert rollback["inputs"] == {"environment": "production", "version": "v1.2.5", "rollback": "true"}
    card = cards_saying(slack, "@octocat deployed v1.2.6 to production")[-1]
    assert "❌ Smoke test failed" in text_of(card) and "`smoke.yml` ended `failure`" in text_of(card)
    assert Action.ROLLBACK not in buttons(card)
    done = [r for r in audit_rows(bot, "deploy.smoke_completed") if r.job_id == second.id]
    assert [(r.outcome, r.params["conclusion"]) for r in done] == [("failed", "failure")]
    assert [r.action for r in audit_rows(bot, "deploy.auto_rollback_dispatch")] == [
        "deploy.auto_rollback_dispatch"
    ]
    assert "smoke test failed" in deploys_reply(bot, "production")


def test_a_failing_smoke_workflow_fails_the_bots_deploy_and_offers_a_rollback(tl_bot, github, slack):
    github.declare_workflow("smoke.yml", inputs=["environment"])
    github.workflow_scripts["smoke.yml"] = [("completed", "failure")]
    bot = tl_bot(smoke_workflow(auto_rollback=False))
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    bot.click(Action.APPROVE, jobs(bot)[0].id, BOB)
    bot.settle(40)
    (job,) = jobs(bot)
    assert job.state == "failed" and "smoke test failed" in job.result and "Use *Roll back*" in job.result
    assert Action.ROLLBACK in buttons(slack.channel_messages(CHANNEL)[-1])
    assert [d["inputs"] for d in github.dispatches] == [
        {"environment": "production", "version": "v1.2.3", "rollback": "false"}, {"environment": "production"},
    ]  # fmt: skip


def test_http_smoke_checks_pass_or_fail_the_deploy_and_show_on_the_card(tl_bot, github, slack, service):
    def checks(c: dict[str, Any]) -> None:
        c["environments"]["staging"]["smoke"] = {
            "checks": [{"path": "/api/ping", "status": 200, "json_subset": {"ok": True, "db": {"up": True}}}]
        }

    bot = tl_bot(checks)
    service.routes["/api/ping"] = (200, {"ok": True, "db": {"up": True, "ms": 3}})
    bot.command("deploy stg v1.2.3", user=ALICE)
    bot.settle(40)
    assert jobs(bot)[-1].state == "succeeded"
    assert "Smoke test passed (1 checks)" in text_of(slack.channel_messages(CHANNEL)[-1])

    service.routes["/api/ping"] = (200, {"ok": True, "db": {"up": False}})
    bot.command("deploy stg v1.2.5", user=ALICE)
    bot.settle(40)
    job = jobs(bot)[-1]
    assert job.state == "failed" and "without the expected `db.up`" in job.result
    assert Action.ROLLBACK in buttons(slack.channel_messages(CHANNEL)[-1])
    (check,) = [r for r in audit_rows(bot, "deploy.smoke_check") if r.job_id == job.id]
    assert check.outcome == "failed" and check.params["path"] == "/api/ping" and check.params["status"] == 200


# --------------------------------------------------------------------------- the command


def test_deploys_refuses_a_count_it_cannot_show(tl_bot):
    bot = tl_bot()
    assert "number from 1 to 50" in bot.command("deploys stg 500")["text"]
    assert "No deploys of staging yet" in deploys_reply(bot, "stg")


def test_a_smoke_dispatch_answered_502_is_looked_for_never_sent_again(tl_bot, github, slack):
    github.declare_workflow("smoke.yml", inputs=["environment"])
    github.fail_next("/smoke.yml/dispatches", 502, after_effect=True)  # the run started all the same
    bot = tl_bot(smoke_workflow(auto_rollback=False))
    github.add_webhook(into(bot), SECRET)
    github.push("v1.2.6", actor="octocat", inputs={"version": "v1.2.6"})
    settle(bot, github)
    (job,) = jobs(bot)
    assert job.state == "succeeded", job.result
    assert len([r for r in github.requests_to("/smoke.yml/dispatches", "POST")]) == 1
    (sent,) = [r for r in audit_rows(bot, "deploy.smoke_dispatched") if r.job_id == job.id]
    assert sent.outcome == "unknown"
    assert [r.outcome for r in audit_rows(bot, "deploy.smoke_completed")] == ["ok"]


def test_the_bots_automatic_rollback_run_is_its_own_not_someone_elses(tl_bot, github, slack, service):
    github.declare_workflow(
        "cd.yml", inputs=["environment", "version", "rollback"], run_name="Deploy {version} to {environment}"
    )

    def cfg(c: dict[str, Any]) -> None:
        run_names(c)
        c["environments"]["staging"]["auto_rollback"] = True

    bot = tl_bot(cfg)
    github.add_webhook(into(bot), SECRET)
    service.healthy = False
    bot.command("deploy stg v1.2.3", user=ALICE)
    settle(bot, github)
    (job,) = jobs(bot)
    assert job.state == "failed" and "Rolled back automatically" in job.result
    assert audit_rows(bot, "deploy.seen") == [] and len(github.dispatches) == 2
    assert sorted((r.origin, r.job_id) for r in runs_recorded(bot)) == [
        ("auto_rollback", job.id), ("slack", job.id),
    ]  # fmt: skip


def test_a_japanese_workspace_reads_an_outside_deploy_in_japanese(tl_bot, github, slack):
    def ja(c: dict[str, Any]) -> None:
        c["language"] = "ja"

    bot = tl_bot(ja)
    github.add_webhook(into(bot), SECRET)
    github.push("develop", actor="hubot", inputs={"version": "v1.2.6"})
    settle(bot, github)
    text = text_of(cards_saying(slack, "hubot")[0])
    assert "@hubot が staging に v1.2.6 をデプロイ" in text and "`develop` への push" in text
    assert "実行 #" in text and "検証済み" in text
