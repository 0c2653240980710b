"""deploy/prometheus/taisun-backup-alerts.yml: the guide's RPO / RTO as alerts on metrics the bot exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.config import BackupConfig

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "taisun-backup-alerts.yml"
promtool = shutil.which("promtool") or ""
needs_promtool = pytest.mark.skipif(
    not promtool, reason="promtool not installed (apt-get install prometheus)"
)


def _rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def test_the_rules_use_metrics_the_bot_exports_and_the_guides_targets() -> None:
    from prometheus_client import generate_latest

    from bot.core import metrics

    metrics.BACKUP_LAST_SUCCESS.labels("full")
    exported = generate_latest().decode()
    rules = _rules()
    assert set(rules) == {"BackupTooOld", "RestoreDrillFailed", "RestoreDrillTooSlow"}
    for name, rule in rules.items():
        for metric in re.findall(r"\b(taisun_[a-z_]+)", rule["expr"]):
            assert re.search(rf"^# TYPE {metric} ", exported, re.M), f"{name}: {metric} is not exported"
        assert rule["annotations"]["summary_ja"] and rule["annotations"]["description_ja"]
    defaults = BackupConfig()
    assert rules["BackupTooOld"]["expr"].endswith(f"> {defaults.rpo_minutes * 60}")  # RPO 1 h
    assert rules["RestoreDrillTooSlow"]["expr"].endswith(f"> {defaults.rto_minutes * 60}")  # RTO 4 h


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_the_alerts_fire_on_the_right_side_of_the_targets(tmp_path: Path) -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")  # promtool compares annotations verbatim; the thresholds are tested here
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(doc), encoding="utf-8")

    def case(series: dict[str, str], alert: str, fires: bool, severity: str) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in series.items()],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": alert,
                 "exp_alerts": [{"exp_labels": {"severity": severity}}] if fires else []}
            ],
        }  # fmt: skip

    cases = [
        # RPO: 59 minutes is fine, 61 minutes (two replicas, the worse counts) fires.
        case({'taisun_backup_rpo_seconds{instance="a"}': "3540x30"}, "BackupTooOld", False, "critical"),
        case(
            {
                'taisun_backup_rpo_seconds{instance="a"}': "60x30",
                'taisun_backup_rpo_seconds{instance="b"}': "3660x30",
            },
            "BackupTooOld",
            True,
            "critical",
        ),  # fmt: skip
        case({"taisun_restore_drill_success": "1x30"}, "RestoreDrillFailed", False, "critical"),
        case({"taisun_restore_drill_success": "0x30"}, "RestoreDrillFailed", True, "critical"),
        case({"taisun_restore_drill_duration_seconds": "14000x30"}, "RestoreDrillTooSlow", False, "warning"),
        case({"taisun_restore_drill_duration_seconds": "14500x30"}, "RestoreDrillTooSlow", True, "warning"),
    ]
    tests = tmp_path / "tests.yml"
    tests.write_text(
        yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": cases}),
        encoding="utf-8",
    )
    out = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
