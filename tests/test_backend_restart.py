"""bot.backends.restart: a fake systemctl on disk, EC2/SSM served by moto."""

# Fixtures are imported from tests.backend_fixtures and then requested as arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bot.backends import aws as aws_factory
from bot.backends.restart import (
    InvalidServiceName,
    InvocationResult,
    LocalRestarter,
    RestartFailed,
    SSMRestarter,
    UnknownService,
    rolling_restart,
)
from tests.backend_fixtures import aws, moto_endpoint  # noqa: F401

FAKE_SYSTEMCTL = """\
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
verb, service = sys.argv[1], sys.argv[-1]
if service == "ghost":
    print(f"Unit {service}.service could not be found.", file=sys.stderr); sys.exit(4)
if os.path.exists(os.path.join(here, "fail-" + service)):
    print(f"Job for {service}.service failed because the control process exited with error code.",
          file=sys.stderr)
    sys.exit(1)
if verb == "status":
    print(f"* {service}.service - TAISUN\\n   Active: active (running)")
"""


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    path = tmp_path / "systemctl"
    path.write_text(f"#!{sys.executable}\n{FAKE_SYSTEMCTL}")
    path.chmod(0o755)
    return path


def _calls(systemctl: Path) -> list[list[str]]:
    log = systemctl.parent / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_local_restart_and_status(systemctl: Path) -> None:
    local = LocalRestarter(str(systemctl))
    assert "Active: active (running)" in local.status("taisun")
    local.restart("taisun")
    assert _calls(systemctl) == [["status", "--no-pager", "taisun"], ["restart", "taisun"]]
    assert local.restart_one("taisun").ok


def test_local_restart_failure_and_unknown_unit(systemctl: Path) -> None:
    local = LocalRestarter(str(systemctl))
    (systemctl.parent / "fail-taisun").touch()
    with pytest.raises(RestartFailed, match="exited with code 1: Job for taisun.service failed") as err:
        local.restart("taisun")
    assert "journalctl -u taisun" in str(err.value)
    assert local.restart_one("taisun").status == "Failed"
    with pytest.raises(UnknownService, match="no unit 'ghost'"):
        local.status("ghost")
    with pytest.raises(RestartFailed, match="not found"):
        LocalRestarter(str(systemctl.parent / "missing")).restart("taisun")


def test_service_name_is_validated_before_anything_runs(systemctl: Path) -> None:
    local = LocalRestarter(str(systemctl))
    for bad in ("taisun; reboot", "$(id)", "--force", "", "a b"):
        with pytest.raises(InvalidServiceName):
            local.restart(bad)
    assert _calls(systemctl) == []
    local.restart("taisun@2.service")  # templates and suffixes are fine
    assert _calls(systemctl) == [["restart", "taisun@2.service"]]


def _ok(target: str) -> InvocationResult:
    return InvocationResult(target, "Success", stdout="restarted")


def test_rolling_restart_all_healthy() -> None:
    lines: list[str] = []
    result = rolling_restart(["i-1", "i-2", "i-3"], _ok, lambda: (True, "200 OK"), lines.append)
    assert (
        result.ok
        and result.stopped_at is None
        and [r.instance_id for r in result.results] == ["i-1", "i-2", "i-3"]
    )
    assert lines[-1] == "[3/3] i-3 restarted and healthy"
    assert rolling_restart([], _ok, lambda: (True, "")).reason.startswith("no targets")


def test_rolling_restart_stops_at_first_failed_restart() -> None:
    called: list[str] = []

    def restart_one(target: str) -> InvocationResult:
        called.append(target)
        if target == "i-2":
            return InvocationResult(target, "Failed", stderr="Job for taisun.service failed")
        return _ok(target)

    result = rolling_restart(["i-1", "i-2", "i-3"], restart_one, lambda: (True, "ok"))
    assert called == ["i-1", "i-2"]
    assert result.stopped_at == "i-2" and not result.ok
    assert [r.status for r in result.results] == ["Success", "Failed"]
    assert "restart of i-2 failed (Failed): Job for taisun.service failed" in result.reason
    assert result.reason.endswith("not restarted: i-3")


def test_rolling_restart_stops_at_failed_health_check_and_retries() -> None:
    called: list[str] = []

    def restart_one(target: str) -> InvocationResult:
        called.append(target)
        return _ok(target)

    checks = iter([(False, "starting"), (True, "200"), (False, "503 Service Unavailable")])
    result = rolling_restart(
        ["i-1", "i-2", "i-3"],
        restart_one,
        lambda: next(checks, (False, "503 Service Unavailable")),
        health_attempts=2,
        sleep=lambda _s: None,
    )
    # i-1 healthy on the 2nd try; i-2 never healthy (2 attempts); i-3 untouched
    assert called == ["i-1", "i-2"] and result.stopped_at == "i-2"
    assert (
        result.reason
        == "health check failed after restarting i-2: 503 Service Unavailable; not restarted: i-3"
    )


def test_rolling_restart_treats_exceptions_as_failures() -> None:
    def boom(target: str) -> InvocationResult:
        raise RestartFailed(f"SSM could not send the restart to {target}")

    result = rolling_restart(["i-1", "i-2"], boom, lambda: (True, ""))
    assert result.stopped_at == "i-1" and result.results[0].status == "Error"
    health_raises = rolling_restart(["i-1"], _ok, lambda: 1 / 0, health_attempts=1)
    assert health_raises.stopped_at == "i-1" and "ZeroDivisionError" in health_raises.reason


def test_ssm_instances_by_tag_and_restart(aws: str) -> None:
    ec2, ssm = aws_factory.client("ec2"), aws_factory.client("ssm")
    image = "ami-12c6146b"  # any id does for moto; describe_images would cost seconds

    def launch(count: int, env: str) -> list[str]:
        resp = ec2.run_instances(
            ImageId=image,
            MinCount=count,
            MaxCount=count,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Environment", "Value": env}]}],
        )
        return [i["InstanceId"] for i in resp["Instances"]]

    staging = launch(2, "staging")
    launch(1, "production")
    [stopped] = launch(1, "staging")
    ec2.stop_instances(InstanceIds=[stopped])

    restarter = SSMRestarter(ssm, ec2)
    assert restarter.instances("Environment", "staging") == sorted(staging)
    assert restarter.instances("Environment", "nowhere") == []

    result = restarter.restart(staging[0], "taisun", timeout_s=10, poll_s=0.1)
    assert result.ok and result.status == "Success" and result.instance_id == staging[0] and result.command_id
    [command] = ssm.list_commands(CommandId=result.command_id)["Commands"]
    assert command["DocumentName"] == "AWS-RunShellScript"
    assert command["Parameters"]["commands"] == ["systemctl restart taisun"]

    with pytest.raises(InvalidServiceName):
        restarter.restart(staging[0], "taisun && curl evil", timeout_s=10)
    assert len(ssm.list_commands()["Commands"]) == 1  # nothing was sent

    rolled = rolling_restart(
        restarter.instances("Environment", "staging"),
        lambda iid: restarter.restart(iid, "taisun", timeout_s=10, poll_s=0.1),
        lambda: (True, "200"),
    )
    assert rolled.ok and [r.status for r in rolled.results] == ["Success", "Success"]
