"""deploy/prometheus/slo-rules.yml: the guide's SLOs as recording rules and the SRE workbook's
multi-window, multi-burn-rate alerts, checked by `promtool test rules` on synthetic series."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.config import DEFAULT_SLOS
from bot.incidents.runbooks import load_runbooks, runbook_id_from_url

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "slo-rules.yml"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
ALERTS = {
    "api_availability": "APIAvailability",
    "api_latency": "APILatency",
    "database_availability": "DatabaseAvailability",
}
promtool = shutil.which("promtool") or ""
needs_promtool = pytest.mark.skipif(
    not promtool, reason="promtool not installed (apt-get install prometheus)"
)


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return doc


def _rules() -> list[dict[str, Any]]:
    return [r for g in _doc()["groups"] for r in g["rules"]]


def test_each_slo_of_the_guide_is_recorded_over_every_window_the_alerts_use() -> None:
    records = {r["record"] for r in _rules() if "record" in r}
    assert records == {f"taisun:slo_errors_{slo}:ratio_rate{w}" for slo in DEFAULT_SLOS for w in WINDOWS}


@pytest.mark.parametrize("slo", sorted(DEFAULT_SLOS))
def test_the_burn_rate_pairs_are_the_workbooks_against_the_bots_objective(slo: str) -> None:
    alerts = {r["alert"]: r for r in _rules() if "alert" in r}
    budget = round(1 - float(DEFAULT_SLOS[slo]["objective"]) / 100, 6)  # type: ignore[arg-type]
    page, ticket = alerts[f"{ALERTS[slo]}ErrorBudgetBurn"], alerts[f"{ALERTS[slo]}ErrorBudgetBurnSlow"]

    def pairs(expr: str) -> list[tuple[str, float, float]]:
        found = re.findall(rf"taisun:slo_errors_{slo}:ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", expr)
        return [(w, float(factor), float(b)) for w, factor, b in found]

    assert pairs(page["expr"]) == [
        ("1h", 14.4, budget),
        ("5m", 14.4, budget),
        ("6h", 6, budget),
        ("30m", 6, budget),
    ]
    assert pairs(ticket["expr"]) == [
        ("1d", 3, budget),
        ("2h", 3, budget),
        ("3d", 1, budget),
        ("6h", 1, budget),
    ]
    assert page["labels"] == {"severity": "critical", "slo": slo}
    assert ticket["labels"] == {"severity": "warning", "slo": slo}
    runbooks = load_runbooks(ROOT / "runbooks")
    for rule in (page, ticket):
        assert rule["annotations"]["summary_ja"] and rule["annotations"]["description_ja"]
        assert runbook_id_from_url(rule["annotations"]["runbook_url"]) in runbooks


@needs_promtool
def test_promtool_check_rules() -> None:
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _requests(per_minute: int, errors: str, minutes: int, job: str = "taisun") -> list[dict[str, str]]:
    """Counters over `minutes`: `errors` is a promtool values string of the 5xx counter."""
    return [
        {
            "series": f'http_request_duration_seconds_count{{job="{job}",status_code="200"}}',
            "values": f"0+{per_minute}x{minutes}",
        },
        {"series": f'http_request_duration_seconds_count{{job="{job}",status_code="500"}}', "values": errors},
    ]


def _expect(at: str, alert: str, severity: str | None, slo: str, job: str = "taisun") -> dict[str, Any]:
    exp = [{"exp_labels": {"severity": severity, "slo": slo, "job": job}}] if severity else []
    return {"eval_time": at, "alertname": alert, "exp_alerts": exp}


@needs_promtool
def test_promtool_the_alerts_fire_on_the_right_burn_and_stop_after_it(tmp_path: Path) -> None:
    doc = _doc()
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop(
                "annotations", None
            )  # promtool compares annotations verbatim; the labels are what matter
    rules_file = tmp_path / "slo-rules.yml"
    rules_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    a, page, ticket = (
        "api_availability",
        "APIAvailabilityErrorBudgetBurn",
        "APIAvailabilityErrorBudgetBurnSlow",
    )
    minutes = [
        # 2 % of requests fail (20× the budget): a page at once.
        {"interval": "1m", "input_series": _requests(980, "0+20x120", 120),
         "alert_rule_test": [_expect("30m", page, "critical", a)]},
        # a 20-minute burst of 10 % errors that ended 40 minutes ago: the page has stopped (5m and 30m are quiet).
        {"interval": "1m", "input_series": _requests(900, "0+100x20 2000+0x60", 80),
         "alert_rule_test": [_expect("15m", page, "critical", a), _expect("60m", page, None, a)]},
        # latency: 20 % of requests over 500 ms pages (14.4 × 1 % = 14.4 %).
        {"interval": "1m", "input_series": [
            {"series": 'http_request_duration_seconds_bucket{job="taisun",le="0.5"}', "values": "0+800x120"},
            {"series": 'http_request_duration_seconds_count{job="taisun",status_code="200"}', "values": "0+1000x120"}],
         "alert_rule_test": [_expect("60m", "APILatencyErrorBudgetBurn", "critical", "api_latency")]},
        # the database down for the last 10 minutes of an hour pages; always up does not.
        {"interval": "1m", "input_series": [{"series": 'pg_up{job="postgres",instance="db-1"}', "values": "1x50 0x10"}],
         "alert_rule_test": [_expect("60m", "DatabaseAvailabilityErrorBudgetBurn", "critical", "database_availability", "postgres")]},
        {"interval": "1m", "input_series": [{"series": 'pg_up{job="postgres",instance="db-1"}', "values": "1x60"}],
         "alert_rule_test": [_expect("60m", "DatabaseAvailabilityErrorBudgetBurn", None, "database_availability")]},
    ]  # fmt: skip
    days = [  # the ticket windows (1d, 3d) evaluated every 10 minutes, so promtool is done in seconds
        # 0.2 % errors (2×): no page, but a ticket once three days have burnt at it.
        {"interval": "10m", "input_series": _requests(9980, "0+20x450", 450),
         "alert_rule_test": [_expect("74h", page, None, a), _expect("74h", ticket, "warning", a)]},
        # 0.05 % errors (half the budget's pace): nothing.
        {"interval": "10m", "input_series": _requests(9995, "0+5x450", 450),
         "alert_rule_test": [_expect("74h", page, None, a), _expect("74h", ticket, None, a)]},
        # 5 % of requests over 500 ms: a ticket (1d and 2h above 3 × 1 %), no page.
        {"interval": "10m", "input_series": [
            {"series": 'http_request_duration_seconds_bucket{job="taisun",le="0.5"}', "values": "0+9500x200"},
            {"series": 'http_request_duration_seconds_count{job="taisun",status_code="200"}', "values": "0+10000x200"}],
         "alert_rule_test": [_expect("26h", "APILatencyErrorBudgetBurn", None, "api_latency"),
                             _expect("26h", "APILatencyErrorBudgetBurnSlow", "warning", "api_latency")]},
    ]  # fmt: skip
    for name, interval, cases in (("minutes", "1m", minutes), ("days", "10m", days)):
        tests_file = tmp_path / f"slo-tests-{name}.yml"
        tests_file.write_text(
            yaml.safe_dump(
                {"rule_files": [str(rules_file)], "evaluation_interval": interval, "tests": cases}
            ),
            encoding="utf-8",
        )
        out = subprocess.run(
            [promtool, "test", "rules", str(tests_file)], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stdout + out.stderr
