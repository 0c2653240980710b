"""Every refusal is an audit row: whoever is turned away, by a command, a click, a form or a shortcut."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.core.blocks import Action
from bot.core.store.models import AuditEvent
from bot.slack import signing
from tests.chatops_helpers import incident, runs_of, settle, submit_view
from tests.harness import ALICE, BOB, CHANNEL, MALLORY, NAMES, Bot, text_of, the_job


def refusals(bot: Bot, user: str) -> list[AuditEvent]:
    """The audit rows of `user`'s refused attempts, oldest first."""
    with bot.svc.sessions() as s:
        q = select(AuditEvent).where(AuditEvent.actor_id == user, AuditEvent.outcome == "refused")
        return list(s.scalars(q.order_by(AuditEvent.id)))


def test_an_outsiders_commands_are_refused_and_each_refusal_is_audited(db_url, make_bot):
    bot = make_bot(db_url)
    bot.command("deploy prod v1.2.3", user=BOB)
    bot.settle()
    job = the_job(bot)

    attempts = [
        ('incident declare sev4 "db down"', "incident.refused", "", "responder", "roles.responder"),
        ("runbook run service-restart stg", "runbook.refused", "staging", "responder", "roles.responder"),
        (f"jobs cancel {job.id[:8]}", "deploy.refused", "production", "admin", "roles.admin"),
        ("unlock stg", "unlock.refused", "staging", "operator", "roles.operator"),
    ]
    for text, *_ in attempts:
        reply = bot.command(text, user=MALLORY)
        assert "You need the" in reply["text"], (text, reply)

    rows = refusals(bot, MALLORY)
    assert [(r.action, r.environment) for r in rows] == [(a, env) for _, a, env, _, _ in attempts]
    for row, (_, _, _, role, field) in zip(rows, attempts, strict=True):
        # the reason, in the workspace language, names the role and the config field that decides
        assert f"You need the *{role}* role" in row.detail and f"`{field}`" in row.detail, row.detail
        assert (
            row.params["decided_by"] == field and row.actor_name == NAMES[MALLORY] and row.channel == CHANNEL
        )
    assert rows[2].job_id == job.id  # the job they tried to cancel
    assert the_job(bot).state == "pending_approval"


def test_clicks_on_someone_elses_job_are_refused_and_audited(db_url, make_bot, slack):
    bot = make_bot(db_url)
    bot.command("deploy prod v1.2.3", user=BOB)
    bot.settle()
    job = the_job(bot)
    for action in (Action.REJECT, Action.CANCEL, Action.APPROVE):
        status, _ = bot.click(action, job.id, MALLORY)
        assert status == 200
    bot.settle()
    assert the_job(bot).state == "pending_approval"
    texts = [m.text for m in slack.ephemeral(MALLORY)]
    assert sum("You need the" in t for t in texts) == 3, texts

    rows = refusals(bot, MALLORY)  # the three clicks are answered after their acks, in any order
    assert sorted((r.action, r.job_id, r.environment) for r in rows) == [
        ("deploy.approval_denied", job.id, "production"),  # Approve
        ("deploy.refused", job.id, "production"),  # Reject
        ("deploy.refused", job.id, "production"),  # Cancel
    ]
    details = " / ".join(r.detail for r in rows)
    assert (
        "reject this request" in details and "cancel someone else's job" in details and "approve" in details
    )
    assert all(r.params["version"] == "v1.2.3" for r in rows)


def test_an_outsiders_incident_runbook_and_lock_clicks_forms_and_shortcuts_are_audited(
    db_url, make_bot, slack
):
    bot = make_bot(db_url)
    bot.command('incident declare sev4 "API slow"', user=ALICE)
    bot.command("runbook run service-restart stg", user=ALICE)
    bot.command("lock stg maintenance", user=ALICE)
    settle(bot)
    inc = incident(bot, 1)
    run = next(r for r in runs_of(bot) if r.runbook_id == "service-restart")
    runs_before = len(runs_of(bot))

    refused: list[tuple[str, str]] = []

    def expect(action: str, button: str = "") -> None:
        refused.append((action, button))

    bot.click(Action.INCIDENT_ACK, str(inc.id), MALLORY)
    expect("incident.refused", Action.INCIDENT_ACK)
    bot.click(Action.STEP_DONE, f"{run.id}|announce", MALLORY)
    expect("runbook.refused", Action.STEP_DONE)
    bot.click(Action.STEP_RUN, f"{run.id}|restart", MALLORY)
    expect("runbook.refused")
    bot.click(Action.STEP_SKIP, f"{run.id}|announce", MALLORY)
    expect("runbook.refused")
    bot.click(Action.LOCK_TAKEOVER, "staging", MALLORY)
    expect("lock.refused")
    settle(bot)  # that button answers after its ack: let it land before the next attempt

    declare_form: dict[str, Any] = {
        "type": "modal",
        "callback_id": Action.INCIDENT_DECLARE_MODAL,
        "private_metadata": "{}",
    }
    values = {
        "severity": {
            Action.INCIDENT_SEVERITY: {"type": "static_select", "selected_option": {"value": "sev4"}}
        },
        "title": {Action.INCIDENT_TITLE: {"type": "plain_text_input", "value": "from the form"}},
    }
    status, body = submit_view(bot, declare_form, values, MALLORY)
    assert status == 200 and b"responder" in body, body  # the form shows why
    expect("incident.refused")

    body_, ctype = signing.message_shortcut(
        Action.INCIDENT_FROM_MESSAGE, {"ts": "1700000000.000100", "user": ALICE, "text": "db is down"},
        user_id=MALLORY, user_name=NAMES[MALLORY], channel_id=CHANNEL,
    )  # fmt: skip
    assert bot.post(body_, ctype)[0] == 200
    expect("incident.refused")
    settle(bot)

    rows = refusals(bot, MALLORY)
    assert [r.action for r in rows] == [a for a, _ in refused]
    assert [r.params.get("button") for r in rows[:2]] == [b for _, b in refused[:2]]
    assert rows[2].params["run"] == run.id and rows[2].params["step"] == "restart"
    assert rows[4].environment == "staging"
    assert all("You need the" in r.detail for r in rows)
    assert sum("You need the" in m.text for m in slack.ephemeral(MALLORY)) >= 6  # and each was told why
    assert incident(bot, 1).state == "open" and len(runs_of(bot)) == runs_before


def test_unlocking_someone_elses_lock_is_refused_and_audited(db_url, make_bot):
    bot = make_bot(db_url)
    bot.command("lock stg maintenance", user=ALICE)
    reply = bot.command("unlock stg", user=BOB)  # an operator, but not the holder and not an admin
    assert "Only they or an admin can unlock it" in text_of(reply)
    (row,) = refusals(bot, BOB)
    assert row.action == "unlock.refused" and row.environment == "staging"
    assert "Only they or an admin can unlock it" in row.detail and f"@{ALICE}" in row.detail  # audit details are plain text


def test_a_refusal_is_audited_in_the_workspace_language(db_url, make_bot):
    def japanese(cfg: dict[str, Any]) -> None:
        cfg["language"] = "ja"

    bot = make_bot(db_url, config_mutate=japanese)
    bot.command('incident declare sev4 "db down"', user=MALLORY)
    (row,) = refusals(bot, MALLORY)
    assert row.action == "incident.refused"
    assert "*responder* ロールが必要です" in row.detail and "`roles.responder`" in row.detail


def test_the_non_approver_refusal_names_the_list_that_decides(db_url, make_bot, slack):
    def named_approvers(cfg: dict[str, Any]) -> None:
        cfg["environments"]["production"]["approvers"] = [ALICE]

    bot = make_bot(db_url, config_mutate=named_approvers)
    bot.command("deploy prod v1.2.3", user=BOB)
    bot.settle()
    job = the_job(bot)
    bot.click(Action.APPROVE, job.id, MALLORY)
    bot.settle()
    told = slack.ephemeral(MALLORY)[-1].text
    assert "`environments.production.approvers`" in told and "roles.approver" not in told, told
    (row,) = refusals(bot, MALLORY)
    assert row.params["decided_by"] == "environments.production.approvers"

    plain = make_bot(db_url)  # production's approvers left empty: roles.approver decides
    plain.command("deploy prod v1.2.4", user=BOB)
    plain.settle()
    plain.click(Action.APPROVE, the_job(plain).id, MALLORY)
    plain.settle()
    told = slack.ephemeral(MALLORY)[-1].text
    assert "`roles.approver`" in told and "environments.production" not in told, told


def _commands_counted(bot: Bot, command: str, outcome: str) -> float:
    """taisun_commands_total{command, outcome} as /metrics shows it (Prometheus' text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    body = b"".join(bot.wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda *a, **k: None))
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "taisun_commands_total"
        and sample.labels == {"command": command, "outcome": outcome}
    )


def test_refused_commands_are_counted_as_refused_and_answered_with_a_warning(db_url, make_bot):
    """The one error mapper: a refusal from any floor is the warning the person sees and the
    `refused` label of the command metric; a command that ran is `ok`, a form opened is `ok`."""
    bot = make_bot(db_url)
    counts = {
        (name, outcome): _commands_counted(bot, name, outcome)
        for name in ("unlock", "frobnicate", "lock", "deploy")
        for outcome in ("ok", "refused")
    }
    assert bot.command("lock stg fixing the cache", user=ALICE)["response_type"] == "in_channel"
    answers = {
        "unlock": bot.command("unlock stg", user=MALLORY),  # the role check (NotAllowed)
        "lock": bot.command("lock stg mine now", user=BOB),  # a held lock (EnvironmentLocked)
        "frobnicate": bot.command("frobnicate", user=ALICE),  # the parser (UsageError)
    }
    for name, reply in answers.items():
        assert reply["text"].startswith(":warning: "), (name, reply)
        assert reply["blocks"][0]["text"]["text"] == reply["text"], (name, reply)
    assert "You need the" in answers["unlock"]["text"] and "is locked" in answers["lock"]["text"]
    assert bot.command("deploy", user=ALICE) == {}  # the form opens after the ack, nothing is said
    assert _commands_counted(bot, "unlock", "refused") == counts[("unlock", "refused")] + 1
    assert _commands_counted(bot, "lock", "refused") == counts[("lock", "refused")] + 1
    assert _commands_counted(bot, "lock", "ok") == counts[("lock", "ok")] + 1
    assert _commands_counted(bot, "frobnicate", "refused") == counts[("frobnicate", "refused")] + 1
    assert _commands_counted(bot, "deploy", "ok") == counts[("deploy", "ok")] + 1
