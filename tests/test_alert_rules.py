"""deploy/prometheus/alerts.yml: valid rule file, the guide's thresholds, runbook links that resolve."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.incidents.runbooks import load_runbooks, runbook_id_from_url

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOKS = ROOT / "runbooks"

# alert name -> (severity, comparison, threshold in the expr's unit, metric the expr must use)
# From the guide (監視・アラート → 主要メトリクス).
EXPECTED: dict[str, tuple[str, str, float, str]] = {
    "HighLatencyWarning": ("warning", ">", 0.5, "http_request_duration_seconds_bucket"),  # > 500ms
    "HighLatencyCritical": ("critical", ">", 1.0, "http_request_duration_seconds_bucket"),  # > 1000ms
    "HighErrorRateWarning": ("warning", ">", 0.01, "http_request_duration_seconds_count"),  # > 1%
    "HighErrorRateCritical": ("critical", ">", 0.05, "http_request_duration_seconds_count"),  # > 5%
    "LowRequestRate": ("warning", "<", 10, "http_request_duration_seconds_count"),  # < 10/min
    "HighCPUWarning": ("warning", ">", 70, "node_cpu_seconds_total"),  # > 70%
    "HighCPUCritical": ("critical", ">", 90, "node_cpu_seconds_total"),  # > 90%
    "HighMemoryWarning": ("warning", ">", 80, "node_memory_MemAvailable_bytes"),  # > 80%
    "HighMemoryCritical": ("critical", ">", 95, "node_memory_MemAvailable_bytes"),  # > 95%
    "HighDiskUsage": ("warning", ">", 80, "node_filesystem_avail_bytes"),  # > 80%
}
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
THRESHOLD = re.compile(r"(<=|>=|<|>|==|!=)\s*(\d+(?:\.\d+)?)\s*$")


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return doc


def _rules() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in _doc()["groups"] for r in g["rules"]}


def test_is_a_valid_prometheus_rule_file() -> None:
    doc = _doc()
    assert set(doc) == {"groups"}
    names = [g["name"] for g in doc["groups"]]
    assert len(names) == len(set(names)), "group names must be unique"
    alerts = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}
        assert group["rules"], f"group {group['name']} has no rules"
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, f"{rule.get('alert')}: unknown keys {set(rule) - RULE_KEYS}"
            assert isinstance(rule["alert"], str) and isinstance(rule["expr"], str)
            assert DURATION.fullmatch(rule["for"]), f"{rule['alert']}: bad for {rule['for']!r}"
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
            assert all(isinstance(v, str) for v in rule["annotations"].values())
            expr = rule["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
            for text in rule["annotations"].values():
                assert text.count("{{") == text.count("}}")
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts)), "alert names must be unique"


def test_exactly_the_guides_alerts() -> None:
    assert set(_rules()) == set(EXPECTED)


@pytest.mark.parametrize("alert", sorted(EXPECTED))
def test_threshold_and_severity_match_the_guide(alert: str) -> None:
    severity, op, number, metric = EXPECTED[alert]
    rule = _rules()[alert]
    assert rule["labels"]["severity"] == severity
    expr = " ".join(rule["expr"].split())
    assert metric in expr
    m = THRESHOLD.search(expr)
    assert m, f"{alert}: expr should end with a comparison: {expr}"
    assert (m.group(1), float(m.group(2))) == (op, number)


def test_latency_is_the_p99_and_request_rate_is_per_minute() -> None:
    rules = _rules()
    for name in ("HighLatencyWarning", "HighLatencyCritical"):
        assert "histogram_quantile(0.99," in rules[name]["expr"]
    assert "* 60" in rules["LowRequestRate"]["expr"]
    for name in ("HighErrorRateWarning", "HighErrorRateCritical"):
        assert '{status_code=~"5.."}' in rules[name]["expr"]


def test_every_runbook_url_names_a_shipped_runbook() -> None:
    runbooks = load_runbooks(RUNBOOKS)
    for name, rule in _rules().items():
        url = rule["annotations"]["runbook_url"]
        runbook_id = runbook_id_from_url(url)
        assert runbook_id is not None, f"{name}: runbook_url {url!r} is not taisun://runbook/<id>"
        assert runbook_id in runbooks, f"{name}: runbook {runbook_id!r} does not exist"


def test_runbook_links_fit_the_alert() -> None:
    links = {n: runbook_id_from_url(r["annotations"]["runbook_url"]) for n, r in _rules().items()}
    assert links["HighLatencyWarning"] == links["HighLatencyCritical"] == "performance-degradation"
    assert links["HighErrorRateWarning"] == links["HighErrorRateCritical"] == "deploy-failure"
    assert links["HighCPUWarning"] in ("performance-degradation", "service-restart")
    assert links["HighMemoryCritical"] in ("performance-degradation", "service-restart")
    assert links["HighDiskUsage"] == "disk-usage"


def test_example_config_alert_runbooks_exist() -> None:
    """taisun.example.yml's alertname -> runbook fallbacks name real alerts and runbooks."""
    example = ROOT / "taisun.example.yml"
    if not example.exists():
        pytest.skip("no taisun.example.yml")
    mapping = (yaml.safe_load(example.read_text(encoding="utf-8")).get("alerts") or {}).get("runbooks") or {}
    runbooks = load_runbooks(RUNBOOKS)
    rules = _rules()
    for alert, runbook_id in mapping.items():
        assert alert in rules, f"taisun.example.yml maps unknown alert {alert}"
        assert runbook_id in runbooks, f"taisun.example.yml maps {alert} to unknown runbook {runbook_id}"


# ----------------------------------------------------------------------- promtool (when installed)

promtool = shutil.which("promtool") or ""
needs_promtool = pytest.mark.skipif(
    not promtool, reason="promtool not installed (apt-get install prometheus)"
)


@needs_promtool
def test_promtool_check_rules() -> None:
    out = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _buckets(per_minute: int, le_hit: str) -> list[dict[str, str]]:
    """A histogram where every request falls in the bucket ending at `le_hit`."""
    bounds = ["0.25", "0.5", "1", "2.5", "+Inf"]
    hit = bounds.index(le_hit)
    return [
        _series(
            "http_request_duration_seconds_bucket",
            f"0+{per_minute if i >= hit else 0}x40",
            job="taisun",
            le=le,
        )
        for i, le in enumerate(bounds)
    ]


def _requests(total_per_minute: int, errors_per_minute: int) -> list[dict[str, str]]:
    ok = total_per_minute - errors_per_minute
    return [
        _series("http_request_duration_seconds_count", f"0+{ok}x40", job="taisun", status_code="200"),
        _series(
            "http_request_duration_seconds_count",
            f"0+{errors_per_minute}x40",
            job="taisun",
            status_code="500",
        ),
    ]


def _expect(alert: str, fires: bool, **labels: str) -> dict[str, Any]:
    severity = EXPECTED[alert][0]
    exp = [{"exp_labels": {"severity": severity, **labels}}] if fires else []
    return {"eval_time": "30m", "alertname": alert, "exp_alerts": exp}


def _case(series: list[dict[str, str]], expectations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"interval": "1m", "input_series": series, "alert_rule_test": expectations}


@needs_promtool
def test_promtool_thresholds_fire_on_the_right_side(tmp_path: Path) -> None:
    """Synthetic series just past each threshold fire exactly the guide's alerts."""
    doc = _doc()
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")  # promtool compares annotations verbatim; thresholds are tested here
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    job, inst = {"job": "taisun"}, {"instance": "h1"}
    cases = [
        # p99 in (0.5, 1] s → warning only; in (1, 2.5] s → warning and critical
        _case(
            _buckets(600, "1"),
            [_expect("HighLatencyWarning", True, **job), _expect("HighLatencyCritical", False)],
        ),
        _case(
            _buckets(600, "2.5"),
            [_expect("HighLatencyWarning", True, **job), _expect("HighLatencyCritical", True, **job)],
        ),
        _case(
            _buckets(600, "0.5"),
            [_expect("HighLatencyWarning", False), _expect("HighLatencyCritical", False)],
        ),
        # error rate 0.5% → nothing; 2% → warning; 10% → both
        _case(
            _requests(1000, 5),
            [_expect("HighErrorRateWarning", False), _expect("HighErrorRateCritical", False)],
        ),
        _case(
            _requests(1000, 20),
            [_expect("HighErrorRateWarning", True, **job), _expect("HighErrorRateCritical", False)],
        ),
        _case(
            _requests(1000, 100),
            [_expect("HighErrorRateWarning", True, **job), _expect("HighErrorRateCritical", True, **job)],
        ),
        # 5 requests/min → low; 60/min → fine
        _case(_requests(5, 0), [_expect("LowRequestRate", True, **job)]),
        _case(_requests(60, 0), [_expect("LowRequestRate", False)]),
        # CPU: idle 20% → 80% busy (warning); idle 5% → 95% busy (both); idle 40% → nothing
        *[
            _case(
                [_series("node_cpu_seconds_total", f"0+{idle}x40", mode="idle", cpu="0", **inst)],
                [_expect("HighCPUWarning", warn, **inst), _expect("HighCPUCritical", crit, **inst)],
            )
            for idle, warn, crit in [("12", True, False), ("3", True, True), ("24", False, False)]
        ],
        # memory: 10% available → 90% used (warning); 3% → 97% (both); 30% → nothing
        *[
            _case(
                [
                    _series("node_memory_MemAvailable_bytes", f"{avail}x40", **inst),
                    _series("node_memory_MemTotal_bytes", "100x40", **inst),
                ],
                [_expect("HighMemoryWarning", warn, **inst), _expect("HighMemoryCritical", crit, **inst)],
            )
            for avail, warn, crit in [("10", True, False), ("3", True, True), ("30", False, False)]
        ],
        # disk: 15% free → 85% used fires; 30% free does not
        *[
            _case(
                [
                    _series(
                        "node_filesystem_avail_bytes", f"{free}x40", fstype="ext4", mountpoint="/", **inst
                    ),
                    _series("node_filesystem_size_bytes", "100x40", fstype="ext4", mountpoint="/", **inst),
                ],
                [_expect("HighDiskUsage", fires, fstype="ext4", mountpoint="/", **inst)],
            )
            for free, fires in [("15", True), ("30", False)]
        ],
    ]
    test_file = tmp_path / "tests.yml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": cases}),
        encoding="utf-8",
    )
    out = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------- the bot's own alerts

BOT_ALERTS = ROOT / "deploy" / "prometheus" / "taisun-bot-alerts.yml"


def test_the_bots_own_alerts_use_metrics_the_bot_exports() -> None:
    """A renamed metric must not leave a rule that can never fire."""
    from prometheus_client import generate_latest

    from bot.core import metrics

    metrics.COMMANDS.labels("help", "late")  # children exist once touched, as in a running bot
    metrics.ACK_SECONDS.labels("command")
    metrics.JOBS.labels("deploy", "failed")
    metrics.SLACK_ERRORS.labels("chat.postMessage", "ratelimited")
    metrics.DB_CONNECTIONS.labels("in_use")
    exported = generate_latest().decode()
    doc = yaml.safe_load(BOT_ALERTS.read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"TaisunBotDown", "TaisunRequestsNotRun", "TaisunJobsFailing"}
    for rule in rules:
        for name in re.findall(r"\b(taisun_[a-z_]+)", rule["expr"]):
            assert re.search(rf"^{name}[{{ ]", exported, re.M), f"{rule['alert']}: {name} is not exported"
        assert rule["annotations"]["summary_ja"] and rule["labels"]["severity"] in ("warning", "critical")


@needs_promtool
def test_the_bots_own_alerts_fire_when_they_should(tmp_path: Path) -> None:
    doc = yaml.safe_load(BOT_ALERTS.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    rules_file = tmp_path / "bot-rules.yml"
    rules_file.write_text(yaml.safe_dump(doc), encoding="utf-8")

    def expect(alert: str, fires: bool, severity: str = "warning", **labels: str) -> dict[str, Any]:
        exp = [{"exp_labels": {"severity": severity, **labels}}] if fires else []
        return {"eval_time": "15m", "alertname": alert, "exp_alerts": exp}

    cases = [
        # two late requests a few minutes ago → fires; none → quiet
        _case(
            [_series("taisun_commands_total", "0x5 2x15", command="deploy", outcome="late")],
            [expect("TaisunRequestsNotRun", True)],
        ),
        _case(
            [_series("taisun_commands_total", "0+10x20", command="deploy", outcome="ok")],
            [expect("TaisunRequestsNotRun", False)],
        ),
        # 4 failed jobs in the last 30 minutes → fires; 2 → quiet
        _case(
            [_series("taisun_jobs_finished_total", "0x5 4x15", operation="deploy", outcome="failed")],
            [expect("TaisunJobsFailing", True)],
        ),
        _case(
            [_series("taisun_jobs_finished_total", "0x5 2x15", operation="deploy", outcome="failed")],
            [expect("TaisunJobsFailing", False)],
        ),
        # a replica whose pools have lent out 19 of 20 connections for 10 minutes → fires; 10 of 20 → quiet
        *[
            _case(
                [
                    _series("taisun_db_connections", f"{used}x20", state="in_use", instance="bot-1:3000"),
                    _series("taisun_db_connections_limit", "20x20", instance="bot-1:3000"),
                ],
                [expect("TaisunDbPoolFull", fires, instance="bot-1:3000")],
            )
            for used, fires in [("19", True), ("10", False)]
        ],
        # a replica that stopped answering the scrape for over 2 minutes
        _case(
            [_series("up", "1x5 0x15", job="taisun-bot", instance="bot-1:3000")],
            [expect("TaisunBotDown", True, "critical", job="taisun-bot", instance="bot-1:3000")],
        ),
    ]
    tests_file = tmp_path / "bot-tests.yml"
    tests_file.write_text(
        yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": cases}),
        encoding="utf-8",
    )
    out = subprocess.run(
        [promtool, "test", "rules", str(tests_file)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
