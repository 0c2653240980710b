"""Config validation, `taisun check`, and secrets kept out of logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from bot.core.config import ConfigError, Settings, load_config
from bot.core.logs import JsonFormatter, redact, register_secret, setup_logging
from tests.harness import write_config
from tests.procs import run_cli


def test_the_example_config_is_valid_and_has_the_guides_environments():
    from bot.core.config import EXAMPLE_CONFIG

    cfg = load_config(EXAMPLE_CONFIG)
    assert list(cfg.environments) == ["development", "staging", "production"]
    assert cfg.environments["development"].url == "http://localhost:3000"
    assert cfg.environments["staging"].branch == "develop" and cfg.environments["production"].branch == "main"
    assert cfg.resolve_env("prod").name == "production" and cfg.resolve_env("STG").name == "staging"
    assert cfg.environments["production"].approval_required and cfg.github.workflow == "cd.yml"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("environments: {}\n", "at least one environment"),
        ("environments:\n  prod: {aliases: [p]}\n  stage: {aliases: [p]}\n", "'p' names both prod and stage"),
        ("timezone: Mars/Base\nenvironments: {a: {}}\n", "unknown timezone 'Mars/Base'"),
        ("environments:\n  a: {cache: {mode: flushall}}\n", "allow_flushall: true"),
        ("environments:\n  a: {restart: {backend: ssm}}\n", "needs instance_tag"),
        ("github: {repository: nope}\nenvironments: {a: {}}\n", "should look like owner/name"),
        (
            "environments:\n  a:\n    freeze_windows: [{start: {day: fri, time: '25:00'}, end: {day: mon, time: '09:00'}}]\n",
            "not a time like 18:00",
        ),
        ("backup: {max_rate_mib_per_s: -1}\nenvironments: {a: {}}\n", "max_rate_mib_per_s"),
        ("- just\n- a list\n", "should be a mapping"),
    ],
)
def test_bad_configs_name_the_field_and_the_problem(tmp_path: Path, yaml_text: str, expected: str):
    path = tmp_path / "taisun.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_a_missing_config_file_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(ConfigError, match="Copy taisun.example.yml"):
        load_config(tmp_path / "nope.yml")


def test_check_reports_each_backend(tmp_path: Path, slack, db_url):
    from tests.harness import BOT_TOKEN

    cfg = write_config(tmp_path / "taisun.yml")
    settings = Settings(
        slack_bot_token=BOT_TOKEN, slack_api_url=slack.url, database_url=db_url, taisun_config=str(cfg),
        slack_signing_secret="x", github_token="",
    )  # fmt: skip
    result = run_cli(["check", "--json"], settings)
    rows = {r["check"]: r for r in json.loads(result.stdout)}
    assert rows["config"]["status"] == "ok"
    assert rows["database"]["status"] == "ok"
    assert rows["slack"]["status"] == "ok" and "Local" in rows["slack"]["detail"]
    assert rows["github"]["status"] == "not configured"
    assert result.returncode == 0
    slack.revoked = True
    result = run_cli(["check"], settings)
    assert result.returncode == 1 and "✗ slack" in result.stdout and "token_revoked" in result.stdout


def test_check_fails_on_an_unmigrated_database(tmp_path: Path):
    from bot.core.config import EXAMPLE_CONFIG

    result = run_cli(
        ["check"], None, DATABASE_URL=f"sqlite:///{tmp_path}/new.db", TAISUN_CONFIG=str(EXAMPLE_CONFIG)
    )
    assert result.returncode == 1 and "taisun migrate" in result.stdout


def test_tokens_keys_and_dsn_passwords_are_redacted():
    text = (
        "token xoxb-1234-5678-abcdef and xapp-1-A0-123-abc, ghp_" + "a" * 36 + " github_pat_" + "b" * 30
        + " AKIAABCDEFGHIJKLMNOP postgresql://app:s3cr3t-pw@db:5432/taisun redis://:hunter2@cache:6379/0"
        + " Authorization: Bearer abc.def.ghi"
    )  # fmt: skip
    out = redact(text)
    for secret in (
        "xoxb-1234",
        "xapp-1-A0",
        "ghp_aaa",
        "github_pat_bbb",
        "AKIAABCDEFGHIJKLMNOP",
        "s3cr3t-pw",
        "hunter2",
        "abc.def.ghi",
    ):
        assert secret not in out
    assert "postgresql://app:***@db:5432/taisun" in out


def test_json_logs_redact_registered_secrets_in_messages_and_extra_fields():
    register_secret("plain-secret-value-42")
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    logging.getLogger("t").warning(
        "calling with plain-secret-value-42", extra={"dsn": "postgresql://u:pw123456@h/db"}
    )
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert "plain-secret-value-42" not in json.dumps(line) and "pw123456" not in json.dumps(line)
    assert line["level"] == "warning" and line["logger"] == "t"
    assert isinstance(JsonFormatter(), logging.Formatter)
