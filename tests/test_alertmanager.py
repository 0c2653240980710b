"""Debian's real Alertmanager (prometheus-alertmanager) sends to the served bot, configured with the
shipped deploy/prometheus/alertmanager.yml: its webhook JSON, its bearer token from a file, its
grouping and its resolved notifications are what the bot reads."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from bot.core.store.db import make_engine, session_factory
from bot.core.store.models import Alert
from tests.backend_fixtures import free_port
from tests.harness import text_of
from tests.procs import ROOT, ServedBot

SHIPPED = ROOT / "deploy" / "prometheus" / "alertmanager.yml"
TOKEN = "alert-token-" + "q" * 24
ALERTS = "CALERTS"  # "#alerts" in the local Slack

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # two processes, one database


def alertmanager_binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not found:
        pytest.fail("prometheus-alertmanager is not installed: scripts/services installs it (apt)")
    return found


class RealAlertmanager:
    def __init__(self, folder: Path, bot_url: str, token: str) -> None:
        config = yaml.safe_load(SHIPPED.read_text())
        config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        (hook,) = config["receivers"][0]["webhook_configs"]
        hook["url"] = f"{bot_url}/alerts/alertmanager"
        token_file = folder / "taisun-alert-token"
        token_file.write_text(token + "\n")  # as an operator writes it: with a newline
        hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
        (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "alertmanager.log"
        self.proc = subprocess.Popen(  # noqa: S603 (an argument list)
            [alertmanager_binary(), f"--config.file={folder / 'alertmanager.yml'}",
             f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address="],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"alertmanager did not start:\n{self.log.read_text()[-3000:]}")

    def fire(self, *alerts: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/api/v2/alerts", json=list(alerts), timeout=10).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def served(db_url, settings_for, tmp_path) -> Iterator[ServedBot]:  # type: ignore[no-untyped-def]
    bot = ServedBot(settings_for(db_url, taisun_alert_token=TOKEN), tmp_path / "serve.log", workers=1)
    yield bot
    bot.stop()


def am_alert(
    name: str, instance: str, *, severity: str = "warning", ends: datetime | None = None
) -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(minutes=2)
    alert: dict[str, Any] = {
        "labels": {"alertname": name, "instance": instance, "severity": severity, "job": "taisun"},
        "annotations": {"summary": f"{name} on {instance}"},
        "startsAt": started.isoformat(),
        "generatorURL": "http://prometheus.local/graph",
    }
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    return alert


def stored(db_url: str) -> dict[str, str]:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            return {f"{a.alertname}/{a.labels['instance']}": a.status for a in s.scalars(select(Alert))}
    finally:
        engine.dispose()


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


def test_the_real_alertmanager_with_the_shipped_config_reaches_the_bot_grouped_and_resolved(
    db_url, served, slack, tmp_path
):
    am = RealAlertmanager(tmp_path, served.url, TOKEN)
    try:
        am.fire(am_alert("HighLatencyWarning", "api-1:9100"), am_alert("HighLatencyWarning", "api-2:9100"))
        assert wait_for(lambda: len(stored(db_url)) == 2) and set(stored(db_url).values()) == {"firing"}
        group = wait_for(lambda: [m for m in slack.channel_messages(ALERTS) if not m.thread_ts])
        assert len(group) == 1  # one message per alertname
        wait_for(lambda: "*2 firing*" in text_of(slack.channel_messages(ALERTS)[0]))
        assert "HighLatencyWarning" in text_of(slack.channel_messages(ALERTS)[0])

        # One of them ends: Alertmanager sends it resolved (send_resolved), and the same message says so.
        am.fire(am_alert("HighLatencyWarning", "api-1:9100", ends=datetime.now(UTC) - timedelta(seconds=1)))
        wait_for(lambda: stored(db_url).get("HighLatencyWarning/api-1:9100") == "resolved")
        wait_for(lambda: "1 resolved" in text_of(slack.channel_messages(ALERTS)[0]))
        assert len([m for m in slack.channel_messages(ALERTS) if not m.thread_ts]) == 1
    finally:
        am.stop()


def test_an_alertmanager_with_the_wrong_token_delivers_nothing(db_url, served, slack, tmp_path):
    am = RealAlertmanager(tmp_path, served.url, "not-" + TOKEN)
    try:
        am.fire(am_alert("DiskUsageWarning", "db-1:9100"))
        # Alertmanager retries and logs the bot's 401; nothing is stored, nothing is posted.
        wait_for(lambda: "401" in am.log.read_text(), timeout=30)
        assert stored(db_url) == {} and slack.channel_messages(ALERTS) == []
        assert "alertmanager webhook refused" in served.log_path.read_text()
    finally:
        am.stop()
