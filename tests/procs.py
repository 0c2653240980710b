"""Real bot processes: `taisun serve` under gunicorn, reached over HTTP on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bot.core.config import Settings
from bot.slack import signing

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "GITHUB_", "TAISUN_", "DATABASE_URL"))
    }
    env.update({
        "SLACK_BOT_TOKEN": settings.slack_bot_token, "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
        "SLACK_API_URL": settings.slack_api_url, "DATABASE_URL": settings.database_url,
        "TAISUN_CONFIG": settings.taisun_config, "GITHUB_TOKEN": settings.github_token,
        "GITHUB_API_URL": settings.github_api_url, "TAISUN_LEASE_SECONDS": str(settings.taisun_lease_seconds),
        "TAISUN_WORKERS": str(settings.taisun_workers), "LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT),
        "TAISUN_ALERT_TOKEN": settings.taisun_alert_token, "TAISUN_AUDIT_KEY": settings.taisun_audit_key,
    })  # fmt: skip
    env.update(extra)
    return env


class ServedBot:
    """`python -m bot serve` in its own process group, with its log captured to a file.

    command: ("worker", ...) starts `taisun worker` instead (its /health and /metrics on the port)."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        workers: int = 2,
        cwd: Path = ROOT,
        command: tuple[str, ...] = (),
        **extra_env: str,
    ):
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        argv = list(command) or ["serve", "--workers", str(workers), "--threads", "8"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *argv, "--bind", f"127.0.0.1:{self.port}"],
            cwd=cwd, env=env_for(settings, **extra_env), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        # 60 s: a `taisun worker` drops to nice 19 as it starts, and on two cores busy with eight test
        # processes it took over 30 s to answer /health (it yields to everyone, by design).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"bot exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                if self.http.get("/health").status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"bot did not start:\n{self.log_path.read_text()[-3000:]}")

    def post(
        self, body: str, ctype: str, *, secret: str | None = None, timestamp: int | None = None
    ) -> httpx.Response:
        headers = signing.sign(secret or self.settings.slack_signing_secret, body, timestamp) | {
            "Content-Type": ctype
        }
        return self.http.post("/slack/events", content=body.encode(), headers=headers)

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers die mid-whatever."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the whole process group, as systemd and docker stop do; its exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self, wait: float = 15) -> None:
        """SIGTERM, and SIGKILL after `wait` seconds (a worker lets its jobs end for up to 20)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.kill()
        self.http.close()
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def run_cli(
    args: list[str],
    settings: Settings | None = None,
    stdin: str | None = None,
    timeout: float = 120,
    cwd: Path = ROOT,
    unset: tuple[str, ...] = (),
    **extra: str,
) -> Any:
    """`taisun ARGS` as a person runs it, in `cwd`, with the variables `unset` left out."""
    env = env_for(settings, **extra) if settings else {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env = {k: v for k, v in env.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )  # fmt: skip


def stop_all(bots: list[ServedBot]) -> None:
    """A test's teardown: its processes told to stop together, and not waited on for their jobs
    (a deploy's watch would hold a worker its graceful 20 s; the test has seen what it needed)."""
    for b in bots:
        if b.proc.poll() is None:
            os.killpg(b.proc.pid, signal.SIGTERM)
    for b in bots:
        b.stop(wait=3)
