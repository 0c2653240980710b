"""The observability config (PromQL defaults laid under what taisun.yml says), the grammar of
metrics/slo/logs/trace, and the arithmetic the answers rest on (thresholds, error budgets, LogQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.commands import UsageError, parse
from bot.core.config import DEFAULT_METRICS, EXAMPLE_CONFIG, ConfigError, Endpoint, load_config
from bot.observability.service import build_logql, judge, promql, slo_reading


def _config(tmp_path: Path, observability: dict[str, Any] | None = None, env: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    if observability is not None:
        data["observability"] = observability
    if env is not None:
        data["environments"]["production"]["observability"] = env
    path = tmp_path / "taisun.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_config(path)


def test_the_guides_metrics_and_thresholds_are_the_defaults(tmp_path: Path) -> None:
    obs = _config(tmp_path).observability
    assert list(obs.metrics) == ["p99_latency", "error_rate", "request_rate", "cpu", "memory", "disk"]
    m = obs.metrics
    assert (m["p99_latency"].unit, m["p99_latency"].warning, m["p99_latency"].critical) == ("ms", 500, 1000)
    assert (m["error_rate"].unit, m["error_rate"].warning, m["error_rate"].critical) == ("%", 1, 5)
    assert (m["request_rate"].unit, m["request_rate"].warning, m["request_rate"].below) == ("/min", 10, True)
    assert (m["cpu"].warning, m["cpu"].critical, m["memory"].warning, m["memory"].critical) == (
        70,
        90,
        80,
        95,
    )
    assert (m["disk"].warning, m["disk"].critical) == (80, None)
    assert {k: s.objective for k, s in obs.slos.items()} == {
        "api_availability": 99.9, "api_latency": 99.0, "database_availability": 99.95,
    }  # fmt: skip
    assert (obs.slo_window_days, obs.metrics_window) == (30, "5m")


def test_taisun_yml_lays_one_field_over_a_default_removes_with_null_and_adds_its_own(tmp_path: Path) -> None:
    obs = _config(tmp_path, {
        "metrics": {"p99_latency": {"warning": 300}, "disk": None,
                    "queue": {"query": "sum(queue_depth{$selector})", "title": "Queue depth", "warning": 100}},
        "slos": {"api_availability": {"objective": 99.95}},
    }).observability  # fmt: skip
    assert obs.metrics["p99_latency"].warning == 300
    assert obs.metrics["p99_latency"].query == DEFAULT_METRICS["p99_latency"]["query"]  # the rest as it was
    assert "disk" not in obs.metrics and obs.metrics["queue"].title == "Queue depth"
    assert obs.slos["api_availability"].objective == 99.95 and "api_latency" in obs.slos


@pytest.mark.parametrize(
    ("observability", "env", "problem"),
    [
        ({"metrics": {"cpu": {"warning": 95, "critical": 90}}}, None, "critical should be beyond warning"),
        ({"metrics": {"new": {"unit": "%"}}}, None, "observability.metrics.new.query"),
        ({"metrics_window": "five minutes"}, None, "not a duration like 30s"),
        (
            {"slos": {"api_availability": {"objective": 100}}},
            None,
            "observability.slos.api_availability.objective",
        ),
        (None, {"prometheus": {"url": "prometheus:9090"}}, "should start with http:// or https://"),
        (None, {"loki": {"url": "http://loki:3100", "selector": 'app="x"'}}, "not a LogQL stream selector"),
        (None, {"grafana": "https://g"}, "unknown setting"),
    ],
)
def test_a_bad_observability_config_names_the_key(tmp_path: Path, observability, env, problem) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, observability, env)
    assert problem in str(err.value)


def test_endpoint_auth_and_url_come_from_the_environment_variables_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ep = Endpoint(url="http://prom:9090/", url_env="PROD_PROMETHEUS_URL", token_env="PROD_PROMETHEUS_TOKEN")
    assert ep.resolved_url() == "http://prom:9090" and ep.headers() == {}
    monkeypatch.setenv("PROD_PROMETHEUS_URL", "https://prom.internal/")
    monkeypatch.setenv("PROD_PROMETHEUS_TOKEN", "s3cret-token")
    assert ep.resolved_url() == "https://prom.internal" and ep.headers() == {
        "Authorization": "Bearer s3cret-token"
    }
    monkeypatch.setenv("PROM_PASSWORD", "pw")
    basic = Endpoint(url="http://p", username="taisun", password_env="PROM_PASSWORD")
    assert basic.headers() == {"Authorization": "Basic dGFpc3VuOnB3"}


def test_placeholders_fill_in_the_selector_and_window() -> None:
    q = DEFAULT_METRICS["error_rate"]["query"]
    assert promql(str(q), 'env="prod"', "10m") == (
        '100 * sum(rate(http_request_duration_seconds_count{status_code=~"5..",env="prod"}[10m]))'
        ' / sum(rate(http_request_duration_seconds_count{env="prod"}[10m]))'
    )
    assert '{status_code=~"5..",}' in promql(str(q))  # no selector: Prometheus takes the trailing comma
    assert promql('up{$selector,job="x"}') == 'up{job="x"}'


def test_grammar_of_the_read_only_commands(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert parse("metrics prod", config).env.name == "production"  # type: ignore[union-attr]
    assert parse("slo", config).env is None and parse("slo stg", config).env.name == "staging"  # type: ignore[union-attr]
    logs = parse('logs prod {app="taisun", env="production"} |= "time out" --since 1h --level error', config)
    assert logs.args == {
        "words": ['{app="taisun",', 'env="production"}', "|=", '"time out"'],
        "since": "1h",
        "level": "error",
    }
    assert parse("logs prod “connection reset”", config).args["words"] == [
        '"connection reset"'
    ]  # Slack's quotes
    assert parse("trace 4bf92f3577b34da6 stg", config).args == {"id": "4bf92f3577b34da6"}
    for bad, says in [("metrics", "Which environment"), ("metrics moon", "moon"), ("trace", "Usage"),
                      ("logs prod x --since", "`--since` needs a value, e.g. `--since 15m`"), ("metrics prod extra", "extra")]:  # fmt: skip
        with pytest.raises(UsageError) as err:
            parse(bad, config)
        assert says in str(err.value), (bad, str(err.value))


def test_the_guides_thresholds_judge_above_and_below(tmp_path: Path) -> None:
    m = _config(tmp_path).observability.metrics
    assert [judge(v, m["p99_latency"]) for v in (499, 500.5, 1000, 1000.5, None)] == [
        "ok", "warning", "warning", "critical", "no_data",
    ]  # fmt: skip
    assert [judge(v, m["request_rate"]) for v in (9.9, 10, 600)] == ["warning", "ok", "ok"]
    assert judge(99, m["disk"]) == "warning"  # the guide gives disk a warning only


def test_error_budget_and_burn_rate_arithmetic(tmp_path: Path) -> None:
    spec = _config(tmp_path).observability.slos["api_availability"]  # 99.9 %: 43.2 minutes in 30 days
    fine = slo_reading("api_availability", spec, {"30d": 0.0004, "1h": 0.0002, "6h": 0.0005}, 30, 25)
    assert fine.status == "ok" and fine.sli == pytest.approx(99.96) and fine.budget_left == pytest.approx(60)
    assert fine.budget_minutes == pytest.approx(43.2) and fine.budget_left_minutes == pytest.approx(25.92)
    assert fine.burn == {"1h": pytest.approx(0.2), "6h": pytest.approx(0.5)}
    assert (
        slo_reading("a", spec, {"30d": 0.0008, "1h": 0.0, "6h": 0.0}, 30, 25).status == "warning"
    )  # 20 % left
    assert (
        slo_reading("a", spec, {"30d": 0.0002, "1h": 0.0, "6h": 0.0011}, 30, 25).status == "warning"
    )  # 6h > 1×
    assert (
        slo_reading("a", spec, {"30d": 0.0002, "1h": 0.0145, "6h": 0.001}, 30, 25).status == "critical"
    )  # 14.5×
    assert (
        slo_reading("a", spec, {"30d": 0.0002, "1h": 0.001, "6h": 0.0061}, 30, 25).status == "critical"
    )  # 6.1×
    spent = slo_reading("a", spec, {"30d": 0.0012, "1h": None, "6h": None}, 30, 25)
    assert spent.status == "critical" and spent.budget_left == pytest.approx(-20) and spent.burn["1h"] is None
    assert slo_reading("a", spec, {"30d": None}, 30, 25).status == "no_data"


def test_logql_from_words_a_pipeline_or_a_query_of_ones_own() -> None:
    sel = '{app="taisun"}'
    assert build_logql(sel, ["ERROR"]) == '{app="taisun"} |~ "(?i)ERROR"'
    assert build_logql(sel, ['"conn reset"', "a.b"], "error") == (
        '{app="taisun"} |~ "(?i)conn\\\\ reset" |~ "(?i)a\\\\.b" | json | level=~"(?i)error"'
    )
    assert build_logql(sel, ['say"hi"']) == '{app="taisun"} |~ "(?i)say\\"hi\\""'
    assert build_logql(sel, ["|=", '"x"']) == '{app="taisun"} |= "x"'
    assert (
        build_logql(sel, ['{job="api"}', "!=", '"health"'], "warn")
        == '{job="api"} != "health" | json | level=~"(?i)warn"'
    )
    assert build_logql(sel, []) == sel


def test_the_docs_show_every_default_query_verbatim() -> None:
    from bot.core.config import DEFAULT_SLOS

    doc = (Path(__file__).resolve().parent.parent / "docs" / "observability.md").read_text(encoding="utf-8")
    for name, spec in DEFAULT_METRICS.items():
        assert f"{name}:\n  {spec['query']}\n" in doc, name
    for name, spec in DEFAULT_SLOS.items():
        assert f"{name}:\n  {spec['error_ratio']}\n" in doc, name
