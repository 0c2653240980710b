"""The guide's service restart runbook: status -> restart -> health check.

`LocalRestarter` runs systemctl on this host; `SSMRestarter` runs
``systemctl restart <service>`` on EC2 instances through SSM Run Command;
`rolling_restart` goes through instances one at a time and stops at the first
failure, so a bad restart never takes down more than one instance.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.core.i18n import Msg, msg, render_plain
from bot.core.logs import redact

Progress = Callable[[str], None] | None

SERVICE_RE = re.compile(r"^[A-Za-z0-9@._-]+$")
# SSM Run Command statuses after which nothing changes any more.
FINAL_STATUSES = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated"})


class RestartError(Exception):
    """Base class; messages say what failed and where to look."""


class InvalidServiceName(RestartError, ValueError):
    """The service name could not be passed safely to systemctl."""


class UnknownService(RestartError):
    """systemd has no unit of that name."""


class RestartFailed(RestartError):
    """The restart command failed or could not be sent."""


@dataclass(frozen=True)
class InvocationResult:
    instance_id: str  # "local" for LocalRestarter
    status: str  # SSM status (Success, Failed, TimedOut...) or "Error"
    stdout: str = ""
    stderr: str = ""
    command_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "Success"


@dataclass(frozen=True)
class RollingResult:
    results: list[InvocationResult] = field(default_factory=list)
    stopped_at: str | None = None  # the target where it stopped; None when all went well
    reason: str = ""  # the record (audit, logs), in English
    said: Msg = field(default_factory=dict)  # the same for people, in their language (bot.core.i18n.render)

    @property
    def ok(self) -> bool:
        return self.stopped_at is None


def check_service_name(service: str) -> str:
    """The name itself, or InvalidServiceName: it ends up in a command line on the host."""
    if not SERVICE_RE.match(service or "") or service.startswith("-"):
        raise InvalidServiceName(
            f"invalid service name {service!r}: use letters, digits and @ . _ - only (e.g. taisun or taisun@2)"
        )
    return service


def _tail(text: str, lines: int = 15, chars: int = 1500) -> str:
    return redact("\n".join(text.rstrip().splitlines()[-lines:])[-chars:])


class LocalRestarter:
    """systemctl on this host. `systemctl` may be a path or an argument prefix such as
    ["sudo", "-n", "systemctl"]; tests point it at a fake script."""

    def __init__(self, systemctl: str | Sequence[str] = "systemctl", *, timeout_s: float = 120) -> None:
        self.prefix = [systemctl] if isinstance(systemctl, str) else list(systemctl)
        self.timeout_s = timeout_s

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [*self.prefix, *args]
        try:
            return subprocess.run(  # noqa: S603 - argument list, no shell
                argv, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except FileNotFoundError:
            raise RestartFailed(f"{self.prefix[0]!r} not found: is this a systemd host?") from None
        except subprocess.TimeoutExpired:
            raise RestartFailed(
                f"`{' '.join(argv)}` did not finish within {self.timeout_s:.0f}s; "
                f"check `journalctl -u {args[-1]}` on the host"
            ) from None

    def status(self, service: str) -> str:
        """`systemctl status` output (exit 0 running, 3 not running: both are answers)."""
        check_service_name(service)
        proc = self._run("status", "--no-pager", service)
        if proc.returncode == 4:
            raise UnknownService(f"systemd has no unit {service!r} on this host: check the service name")
        if proc.returncode not in (0, 3):
            raise RestartFailed(
                f"systemctl status {service} exited with code {proc.returncode}: {_tail(proc.stderr or proc.stdout, 3)}"
            )
        return _tail(proc.stdout, 30, 4000)

    def restart(self, service: str) -> None:
        """`systemctl restart <service>`; RestartFailed with systemctl's message on failure."""
        check_service_name(service)
        proc = self._run("restart", service)
        if proc.returncode != 0:
            raise RestartFailed(
                f"systemctl restart {service} exited with code {proc.returncode}: "
                f"{_tail(proc.stderr or proc.stdout, 3) or '(no output)'}. "
                f"See `systemctl status {service}` and `journalctl -u {service}`."
            )

    def restart_one(self, service: str) -> InvocationResult:
        """restart() as an InvocationResult, for rolling_restart over a single host."""
        try:
            self.restart(service)
        except RestartError as exc:
            return InvocationResult("local", "Failed", stderr=str(exc))
        return InvocationResult("local", "Success")


class SSMRestarter:
    """Restart a systemd service on EC2 instances through SSM Run Command."""

    def __init__(self, ssm: Any, ec2: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.ssm, self.ec2, self.sleep = ssm, ec2, sleep

    def instances(self, tag_key: str, tag_value: str) -> list[str]:
        """Running instances carrying the tag, sorted by id (a stable rolling order)."""
        ids: list[str] = []
        filters = [
            {"Name": f"tag:{tag_key}", "Values": [tag_value]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
        try:
            for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page.get("Reservations", []):
                    ids += [i["InstanceId"] for i in reservation.get("Instances", [])]
        except (ClientError, BotoCoreError) as exc:
            raise RestartFailed(
                f"listing instances tagged {tag_key}={tag_value} failed: {_aws_error(exc)}; "
                "check the region and ec2:DescribeInstances permission"
            ) from None
        return sorted(set(ids))

    def restart(
        self, instance_id: str, service: str, timeout_s: float = 120, poll_s: float = 2.0
    ) -> InvocationResult:
        """send_command `systemctl restart <service>` and poll until a final status.

        If the bot's own deadline passes first, the command is cancelled and the result
        has status "TimedOut".
        """
        check_service_name(service)
        try:
            resp = self.ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName="AWS-RunShellScript",
                Parameters={"commands": [f"systemctl restart {service}"]},
                TimeoutSeconds=max(30, int(timeout_s)),
                Comment=f"taisun chatops: restart {service}"[:100],
            )
        except (ClientError, BotoCoreError) as exc:
            raise RestartFailed(
                f"SSM could not send the restart to {instance_id}: {_aws_error(exc)}. "
                "Is the SSM agent running there and the instance registered with Systems Manager?"
            ) from None
        command_id = resp["Command"]["CommandId"]
        deadline = time.monotonic() + timeout_s
        last = "Pending"
        while True:
            try:
                inv = self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except ClientError as exc:
                # Right after send_command the invocation may not exist yet: keep polling.
                if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
                    raise RestartFailed(
                        f"polling SSM command {command_id} failed: {_aws_error(exc)}"
                    ) from None
                inv = None
            except BotoCoreError as exc:
                raise RestartFailed(f"polling SSM command {command_id} failed: {_aws_error(exc)}") from None
            if inv is not None:
                last = inv.get("Status", last)
                if last in FINAL_STATUSES:
                    return InvocationResult(
                        instance_id=instance_id,
                        status=last,
                        stdout=_tail(inv.get("StandardOutputContent", "")),
                        stderr=_tail(inv.get("StandardErrorContent", "")),
                        command_id=command_id,
                    )
            if time.monotonic() >= deadline:
                # Best effort; the result below says what happened either way.
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
                return InvocationResult(
                    instance_id=instance_id,
                    status="TimedOut",
                    stderr=f"no final status after {timeout_s:.0f}s (last: {last}); command cancelled",
                    command_id=command_id,
                )
            self.sleep(poll_s)


def _aws_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return redact(f"{err.get('Code', '?')}: {err.get('Message', '')}")
    return redact(f"{type(exc).__name__}: {exc}")


def rolling_restart(
    targets: list[str],
    restart_one: Callable[[str], InvocationResult],
    health_check: Callable[[], tuple[bool, str]],
    progress: Progress = None,
    *,
    health_attempts: int = 6,
    health_interval_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> RollingResult:
    """Restart targets one at a time; after each, health_check must pass before the next.

    The health check is tried up to `health_attempts` times `health_interval_s` apart
    (a restarted service needs a moment). Stops at the first failed restart (or one
    that raised) or failed health check; the remaining targets are left untouched.
    """
    say = progress or (lambda _line: None)
    results: list[InvocationResult] = []

    def ended(stopped_at: str | None, said: Msg) -> RollingResult:
        return RollingResult(results, stopped_at, render_plain(said, "en"), said)

    if not targets:
        return ended(None, msg("op.restart.why.none"))
    for n, target in enumerate(targets, start=1):
        left = targets[n:]
        untouched = msg("op.restart.why.untouched", targets=", ".join(left)) if left else ""
        say(f"[{n}/{len(targets)}] restarting {target}")
        try:
            result = restart_one(target)
        except Exception as exc:  # an API error is a failed restart, not a crash of the roll
            result = InvocationResult(target, "Error", stderr=redact(str(exc)))
        results.append(result)
        if not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            why = detail[-1] if detail else msg("op.restart.no_output")  # the host's own words, verbatim
            say(f"[{n}/{len(targets)}] restart of {target} failed: {result.status}")
            return ended(
                target,
                msg(
                    "op.restart.why.failed", target=target, status=result.status, why=why, untouched=untouched
                ),
            )
        ok, detail_text = False, ""
        for attempt in range(1, max(health_attempts, 1) + 1):
            try:
                ok, detail_text = health_check()
            except Exception as exc:
                ok, detail_text = False, redact(f"{type(exc).__name__}: {exc}")
            if ok or attempt >= health_attempts:
                break
            sleep(health_interval_s)
        if not ok:
            say(f"[{n}/{len(targets)}] health check failed after restarting {target}")
            return ended(
                target,
                msg("op.restart.why.unhealthy", target=target, health=detail_text, untouched=untouched),
            )
        say(f"[{n}/{len(targets)}] {target} restarted and healthy")
    return ended(None, msg("op.restart.why.all_ok", n=len(targets)))
