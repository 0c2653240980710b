"""Observability from chat, against a real Prometheus with 30 days of history (tests/prom_fixture.py),
a loopback Loki and a loopback Jaeger: `/taisun metrics`, `slo`, `logs`, `trace`, and the SLO line on
status and the Home tab. Everything is asserted as the person who asked reads it."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.core.store.models import AuditEvent
from bot.slack import signing
from tests.fakes.jaeger import FakeJaeger, make_trace
from tests.fakes.loki import FakeLoki
from tests.harness import ALICE, MALLORY, TEAM, text_of

DAY = 86400


# --------------------------------------------------------------------------- rigs


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    server = FakeLoki().start()
    yield server
    server.stop()


@pytest.fixture
def jaeger() -> Iterator[FakeJaeger]:
    server = FakeJaeger().start()
    yield server
    server.stop()


def observed(prom_url: str, loki_url: str = "", jaeger_url: str = "", **extra: Any):  # type: ignore[no-untyped-def]
    """Each environment watched by the one Prometheus (its `env` label), Loki and Jaeger given."""

    def mutate(cfg: dict[str, Any]) -> None:
        cfg["defaults"]["commands_per_minute"] = 200
        # The viewer role is `*` (this workspace's members): named here, so a command sent before the
        # bot's first auth.test has answered is not refused (tests/test_workspaces.py covers that path).
        cfg["slack"]["team_id"] = TEAM
        for name, env in cfg["environments"].items():
            o: dict[str, Any] = {
                "prometheus": {"url": prom_url, "selector": f'env="{name}"'},
                "grafana_url": f"https://grafana.example.com/d/taisun?var-env={name}&from=now-1h",
            }
            if loki_url:
                o["loki"] = {"url": loki_url, "selector": f'{{app="taisun", env="{name}"}}'}
            if jaeger_url:
                o["jaeger"] = {"url": jaeger_url}
            env["observability"] = o
        for key, value in extra.items():
            cfg[key] = value

    return mutate


def readable(obj: Any) -> str:
    """Every text field of a message or view (its mrkdwn as Slack gets it), one after another."""
    if isinstance(obj, dict):
        own = [obj["text"]] if isinstance(obj.get("text"), str) else []
        return "\n".join(own + [readable(v) for v in obj.values() if isinstance(v, dict | list)])
    if isinstance(obj, list):
        return "\n".join(readable(v) for v in obj)
    return ""


def answer(bot, slack, text: str, user: str = ALICE) -> tuple[dict[str, Any], str]:  # type: ignore[no-untyped-def]
    """The ack (what they see at once) and the answer posted after it, as the text they read."""
    before = len(slack.ephemeral(user))
    ack = bot.command(text, user=user)
    bot.settle()
    later = slack.ephemeral(user)[before:]
    return ack, "\n".join(readable({"text": m.text, "blocks": m.blocks}) for m in later)


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text, re.S)
    assert m, f"{pattern!r} not in {text}"
    return float(m.group(1).replace(",", ""))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- metrics


def test_the_live_scrape_goes_on_where_the_history_ends_without_a_gap(prometheus):  # type: ignore[no-untyped-def]
    """The fixture the numbers below rest on: a gap between the history's end and the first live sample
    makes every 5-minute rate read low while a window starts in it (CI, 2026-12-06: 3/min, not 600).
    The samples around the history's end are a scrape interval apart, as everywhere else."""
    from tests.prom_fixture import SCRAPE_SECONDS

    end = prometheus.exporter.now0
    selector = 'http_request_duration_seconds_count{env="production",status_code="200"}'
    while time.time() < end + 6:  # five live scrapes after the end (a server started just now)
        time.sleep(0.2)
    params = {"query": f"{selector}[10s]", "time": f"{end + 5:.3f}"}
    (result,) = httpx.get(f"{prometheus.url}/api/v1/query", params=params, timeout=10).json()["data"][
        "result"
    ]
    times = [float(t) for t, _ in result["values"]]
    assert times[0] < end < times[-1], (times, end)  # history before the end, live samples after it
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) <= 1.5 * SCRAPE_SECONDS, (gaps, end)


def test_metrics_are_the_guides_judged_by_its_thresholds_with_a_grafana_link(
    db_url, make_bot, slack, prometheus
):
    bot = make_bot(db_url, config_mutate=observed(prometheus.url))
    ack, prod = answer(bot, slack, "metrics prod")
    assert "Asking Prometheus for the metrics of production" in ack["text"]  # the ack waits on nothing
    assert "*Metrics — production*" in prod
    assert "✅ *Response time (p99)*: 248 ms — ok (warning &gt; 500 ms, critical &gt; 1000 ms)" in prod
    assert "✅ *Error rate*: 0.02% — ok (warning &gt; 1%, critical &gt; 5%)" in prod
    assert "✅ *Request rate*: 600/min — ok (warning &lt; 10/min)" in prod
    assert "✅ *CPU usage*: 35.0% — ok (warning &gt; 70%, critical &gt; 90%)" in prod
    assert "✅ *Memory usage*: 50.0% — ok (warning &gt; 80%, critical &gt; 95%)" in prod
    assert "✅ *Disk usage*: 40.0% — ok (warning &gt; 80%)" in prod
    assert "<https://grafana.example.com/d/taisun?var-env=production&amp;from=now-1h|Open in Grafana>" in prod

    _, stg = answer(bot, slack, "metrics stg")
    assert "⚠️ *Response time (p99)*: 944 ms — warning" in stg
    assert "❌ *Error rate*: 6.00% — critical" in stg
    assert "✅ *Request rate*: 120/min — ok" in stg
    assert "⚠️ *CPU usage*: 75.0% — warning" in stg
    assert "❌ *Memory usage*: 96.0% — critical" in stg
    assert "⚠️ *Disk usage*: 85.0% — warning" in stg

    _, dev = answer(bot, slack, "metrics dev")
    assert "⚠️ *Request rate*: 6/min — warning (warning &lt; 10/min)" in dev
    assert "✅ *Error rate*: 0.00% — ok" in dev
    for name in ("CPU usage", "Memory usage", "Disk usage"):  # no node_exporter there: never a made-up 0
        assert f"⚪ *{name}*: no data (the query found no series)" in dev


def test_a_gauge_the_exporter_changes_shows_in_the_next_answer(db_url, make_bot, slack, prometheus):
    bot = make_bot(db_url, config_mutate=observed(prometheus.url))
    prometheus.exporter.set("production", disk=0.92)
    try:
        prometheus.wait_for(
            '100 * max(1 - node_filesystem_avail_bytes{env="production"} / node_filesystem_size_bytes{env="production"})',
            lambda v: v > 91,
        )
        _, text = answer(bot, slack, "metrics production")
        assert "⚠️ *Disk usage*: 92.0% — warning (warning &gt; 80%)" in text
    finally:
        prometheus.exporter.reset("production")
        prometheus.wait_for(
            '100 * max(1 - node_filesystem_avail_bytes{env="production"} / node_filesystem_size_bytes{env="production"})',
            lambda v: v < 41,
        )


def test_evaluate_gives_a_deploy_watcher_numbers_at_a_time_and_over_a_window(db_url, make_bot, prometheus):
    bot = make_bot(db_url, config_mutate=observed(prometheus.url))
    obs, staging = bot.svc.observability, bot.svc.config.environments["staging"]
    now = obs.evaluate(staging, window="10m")
    assert now["error_rate"].status == "critical" and now["error_rate"].value == pytest.approx(6.0, abs=0.05)
    assert now["p99_latency"].status == "warning" and now["p99_latency"].value == pytest.approx(944, abs=2)
    before = obs.evaluate(staging, ("error_rate",), at=datetime.now(UTC) - timedelta(hours=3), window="30m")
    assert before["error_rate"].status == "ok" and before["error_rate"].value == pytest.approx(
        0.03, abs=0.005
    )
    assert [r.name for r in before.readings] == ["error_rate"]


def test_a_query_prometheus_refuses_shows_its_own_error_beside_the_others(
    db_url, make_bot, slack, prometheus
):
    def bad_cpu(cfg: dict[str, Any]) -> None:
        observed(prometheus.url)(cfg)
        cfg["observability"] = {
            "metrics": {"cpu": {"query": "100 * (1 - avg(rate(node_cpu_seconds_total{$selector}[$window]))"}}
        }

    bot = make_bot(db_url, config_mutate=bad_cpu)
    _, text = answer(bot, slack, "metrics prod")
    assert re.search(r"❔ \*CPU usage\*: query failed: 400: .*parse error", text), text
    assert "✅ *Memory usage*: 50.0% — ok" in text  # the others are answered all the same


def test_prometheus_that_does_not_answer_is_said_never_guessed(db_url, make_bot, slack, prometheus):
    gone = f"http://127.0.0.1:{closed_port()}"

    def mixed(cfg: dict[str, Any]) -> None:
        observed(prometheus.url)(cfg)
        cfg["environments"]["production"]["observability"]["prometheus"]["url"] = gone

    bot = make_bot(db_url, config_mutate=mixed)
    _, text = answer(bot, slack, "metrics prod")
    assert f"Prometheus at {gone} did not answer (connection refused or DNS failure)" in text
    assert "Response time" not in text and "%" not in text  # no number at all
    _, slo = answer(bot, slack, "slo")
    assert f"Prometheus at {gone} did not answer" in slo
    assert "✅ *API availability*" in slo  # staging and development still answered
    _, status = answer(bot, slack, "status")
    assert f"SLO: Prometheus at {gone} did not answer (connection refused or DNS failure)" in status
    assert "SLO: ❌ API availability" in status  # staging's own line


def test_a_prometheus_that_hangs_times_out_and_says_so(db_url, make_bot, slack):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def hanging(cfg: dict[str, Any]) -> None:
        cfg["environments"]["staging"]["observability"] = {"prometheus": {"url": url, "timeout_seconds": 0.5}}

    try:
        bot = make_bot(db_url, config_mutate=hanging)
        _, text = answer(bot, slack, "metrics stg")
        assert f"Prometheus at {url} did not answer (timed out)" in text
    finally:
        listener.close()


def test_a_url_that_is_not_prometheus_is_said_once_not_six_times(db_url, make_bot, slack, service):
    def wrong(cfg: dict[str, Any]) -> None:  # the service's own URL, where /api/v1/query is a 404
        cfg["environments"]["staging"]["observability"] = {"prometheus": {"url": service.url}}

    bot = make_bot(db_url, config_mutate=wrong)
    _, text = answer(bot, slack, "metrics stg")
    assert f":warning: Prometheus at {service.url} answered with an error: 404: not found" in text
    assert "query failed" not in text and "Response time" not in text  # said once, not once per metric


def test_an_environment_without_prometheus_is_told_where_to_configure_it(db_url, make_bot, slack):
    bot = make_bot(db_url)
    ack = bot.command("metrics prod")
    assert "production has no Prometheus configured" in ack["text"]
    assert "environments.production.observability.prometheus" in ack["text"]
    assert "No environment has a Prometheus configured" in bot.command("slo")["text"]
    _, status = answer(bot, slack, "status prod")
    assert "SLO" not in status  # no Prometheus: no SLO line


# --------------------------------------------------------------------------- SLOs


def test_slo_table_over_30_days_with_error_budget_and_burn_rates(db_url, make_bot, slack, prometheus):
    bot = make_bot(db_url, config_mutate=observed(prometheus.url))
    ack, text = answer(bot, slack, "slo")
    assert "Asking Prometheus for the SLOs of development, production, staging" in ack["text"]
    sections = dict(re.findall(r"\*SLOs — (\w+)\* \(rolling 30 days\)(.*?)(?=\*SLOs — |$)", text, re.S))
    assert set(sections) == {"production", "staging", "development"}
    prod, stg, dev = sections["production"], sections["staging"], sections["development"]

    # production: 0.02 % errors and a 1-hour outage 10 days ago: two thirds of the budget left.
    ratio = prometheus.expected_error_ratio("production", 30 * DAY)
    assert "✅ *API availability* — objective 99.9 %" in prod
    assert number(r"API availability\*.*?SLI ([\d.]+) %", prod) == pytest.approx(100 * (1 - ratio), abs=0.005)
    left = number(r"API availability\*.*?budget left ([\d.-]+) %", prod)
    assert left == pytest.approx(100 * (1 - ratio / 0.001), abs=1.5)
    assert number(r"API availability\*.*?\(([\d.]+) of 43.2 min\)", prod) == pytest.approx(
        43.2 * left / 100, abs=0.1
    )
    assert number(r"API availability\*.*?burn rate 1h ([\d.]+)×", prod) == pytest.approx(0.2, abs=0.05)
    # 0.3 % of requests slower than 500 ms against 1 % allowed; 10 minutes of database down of 21.6.
    assert number(r"✅ \*API latency \(p99 &lt; 500 ms\)\*.*?budget left ([\d.]+) %", prod) == pytest.approx(
        70, abs=1.5
    )
    assert number(r"✅ \*Database availability\*.*?budget left ([\d.]+) %", prod) == pytest.approx(
        53.7, abs=1.5
    )
    assert number(r"Database availability\*.*?\(([\d.]+) of 21.6 min\)", prod) == pytest.approx(
        21.6 * 0.537, abs=0.4
    )

    # staging: 6 % errors for the last 90 minutes: a page-level burn, though half the budget is left.
    assert "❌ *API availability*" in stg
    assert number(r"API availability\*.*?burn rate 1h ([\d.]+)×", stg) == pytest.approx(60, abs=1)
    six_hours = 6 * 3600
    assert number(r"API availability\*.*?6h ([\d.]+)×", stg) == pytest.approx(
        prometheus.expected_error_ratio("staging", six_hours) / 0.001, abs=0.5
    )  # 15.2× when asked as the history ends; it grows while the live scrape goes on at 6 %
    # slow answers: 5 % over 500 ms for 90 minutes: spending faster than the budget lasts.
    assert "⚠️ *API latency (p99 &lt; 500 ms)*" in stg
    assert number(r"API latency.*?6h ([\d.]+)×", stg) == pytest.approx(
        prometheus.expected_slow_ratio("staging", six_hours) / 0.01, abs=0.1
    )  # 1.5× as the history ends
    assert number(r"✅ \*Database availability\*.*?budget left ([\d.]+) %", stg) == pytest.approx(
        100, abs=0.01
    )

    # development: no postgres_exporter: no data, not 100 %.
    assert "⚪ *Database availability* — objective 99.95 %: no data over the window" in dev
    assert number(r"✅ \*API availability\*.*?budget left ([\d.]+) %", dev) == pytest.approx(100, abs=0.01)
    assert "1h ≥ 14.4×, 6h ≥ 6×" in text and "Open in Grafana" in text


def test_status_and_home_show_each_environments_slo_line(db_url, make_bot, slack, prometheus):
    bot = make_bot(db_url, config_mutate=observed(prometheus.url))
    _, status = answer(bot, slack, "status")
    prod_line = re.search(r"SLO: ✅ API availability (\d+) % left · ✅ API latency \(p99 &lt; 500 ms\) (\d+) % left"
                          r" · ✅ Database availability (\d+) % left", status)  # fmt: skip
    assert prod_line, status
    assert int(prod_line.group(2)) == pytest.approx(70, abs=2)
    assert re.search(r"SLO: ❌ API availability \d+ % left · ⚠️ API latency", status)
    assert "⚪ Database availability no data" in status

    body, ctype = signing.event_callback(
        {"type": "app_home_opened", "user": ALICE, "tab": "home", "channel": "D1"}, event_id="Ev-obs-home"
    )
    assert bot.post(body, ctype)[0] == 200
    view = slack.wait_for(lambda: "SLO: ✅ API availability" in text_of({"blocks": slack.home.get(ALICE, {}).get("blocks", [])}) and slack.home[ALICE])  # fmt: skip
    home = text_of({"blocks": view["blocks"]})
    assert "SLO: ❌ API availability" in home and "⚪ Database availability no data" in home


def test_the_home_tab_draws_at_once_while_prometheus_hangs(db_url, make_bot, slack):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def hanging(cfg: dict[str, Any]) -> None:
        cfg["environments"]["production"]["observability"] = {
            "prometheus": {"url": url, "timeout_seconds": 1}
        }

    try:
        bot = make_bot(db_url, config_mutate=hanging)
        body, ctype = signing.event_callback(
            {"type": "app_home_opened", "user": ALICE, "tab": "home", "channel": "D1"}, event_id="Ev-obs-hang"
        )
        assert bot.post(body, ctype)[0] == 200
        first = slack.wait_for(lambda: slack.home.get(ALICE))
        assert "SLO: asking Prometheus…" in text_of({"blocks": first["blocks"]})  # drawn without waiting
        later = slack.wait_for(lambda: "did not answer" in text_of({"blocks": slack.home[ALICE]["blocks"]}) and slack.home[ALICE])  # fmt: skip
        assert f"SLO: Prometheus at {url} did not answer (timed out)" in text_of({"blocks": later["blocks"]})
        bot.settle()
    finally:
        listener.close()


# --------------------------------------------------------------------------- roles


def test_reading_needs_the_viewer_role_and_a_refusal_is_audited(db_url, make_bot, slack, prometheus):
    def viewers(cfg: dict[str, Any]) -> None:
        observed(prometheus.url)(cfg)
        cfg["roles"]["viewer"] = [ALICE]

    bot = make_bot(db_url, config_mutate=viewers)
    for command in ("metrics prod", "slo prod", "logs prod", "trace abc123 prod", "slo"):
        refused = bot.command(command, user=MALLORY)
        assert "You need the *viewer* role" in refused["text"], (command, refused)
        assert "roles.viewer" in refused["text"]
    with bot.svc.sessions() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.actor_id == MALLORY))]
    assert {"metrics.refused", "slo.refused", "logs.refused", "trace.refused"} <= set(actions)
    assert "Asking Prometheus" in bot.command("metrics prod", user=ALICE)["text"]
    _, status = answer(bot, slack, "status prod", user=MALLORY)  # status is for everyone; its SLO line is not
    assert "Environment status" in status and "SLO" not in status
    for user in (MALLORY, ALICE):
        body, ctype = signing.event_callback(
            {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"},
            event_id=f"Ev-viewer-{user}",
        )
        assert bot.post(body, ctype)[0] == 200
    slack.wait_for(lambda: "SLO: ✅" in readable(slack.home.get(ALICE, {})))
    bot.settle()
    assert "production" in readable(slack.home[MALLORY]) and "SLO" not in readable(slack.home[MALLORY])
    help_text = text_of(bot.command("help", user=MALLORY))
    assert "/taisun metrics &lt;env&gt;`" in help_text and "you lack the role" in help_text


# --------------------------------------------------------------------------- logs


def _push_app_logs(loki: FakeLoki, env: str, now: float) -> None:
    lines = [
        (now - 30, '{"level":"error","msg":"payment timeout","order":1}'),
        (now - 60, '{"level":"info","msg":"GET /health 200"}'),
        (now - 90, '{"level":"error","msg":"db timeout dsn=postgresql://app:hunter2@db:5432/app"}'),
        (now - 120, "plain text line: timeout while reading xoxb-1234-5678-abcdefgh token"),
        (now - 150, '{"level":"ERROR","msg":"upstream Timeout"}'),
        (now - 2 * 3600, '{"level":"error","msg":"old timeout, outside the window"}'),
    ]
    loki.push({"app": "taisun", "env": env}, lines)
    loki.push({"app": "taisun", "env": "staging"}, [(now - 10, '{"level":"error","msg":"staging timeout"}')])


def test_logs_search_words_with_the_guides_level_filter_newest_first_redacted(
    db_url, make_bot, slack, prometheus, loki
):
    _push_app_logs(loki, "production", time.time())
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, loki.url))
    ack, text = answer(bot, slack, "logs prod timeout --since 1h --level error")
    assert "Searching the logs of production" in ack["text"]
    sent = loki.queries[-1]
    assert sent["query"] == '{app="taisun", env="production"} |~ "(?i)timeout" | json | level=~"(?i)error"'
    assert sent["direction"] == "backward" and sent["limit"] == "500"
    assert int(sent["end"]) - int(sent["start"]) == 3600 * 10**9
    assert "3 lines in the last 1h 00m, newest first (times in UTC)" in text
    shown = re.search(r"```(.*?)```", text, re.S)
    assert shown, text
    lines = shown.group(1).split("\n")
    assert [ln.split("  ", 1)[1] for ln in lines] == [
        '{"level":"error","msg":"payment timeout","order":1}',
        '{"level":"error","msg":"db timeout dsn=postgresql://app:***@db:5432/app"}',  # the bot's redaction
        '{"level":"ERROR","msg":"upstream Timeout"}',
    ]
    assert "hunter2" not in text and "staging timeout" not in text and "outside the window" not in text

    _, plain = answer(bot, slack, "logs prod timeout --since 1h")
    assert "xoxb-1234" not in plain and "reading *** token" in plain  # a Slack token in a log line
    assert "4 lines" in plain


def test_logs_take_logql_as_typed_and_a_pipeline_on_the_environments_stream(
    db_url, make_bot, slack, prometheus, loki
):
    _push_app_logs(loki, "production", time.time())
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, loki.url))
    _, text = answer(bot, slack, 'logs prod {app="taisun", env="production"} |= "payment" --since 15m')
    assert loki.queries[-1]["query"] == '{app="taisun", env="production"} |= "payment"'
    assert "payment timeout" in text and "1 line in the last 15m 00s (times in UTC)" in text
    _, piped = answer(bot, slack, 'logs prod | json | msg=~".*health.*"')
    assert loki.queries[-1]["query"] == '{app="taisun", env="production"} | json | msg=~".*health.*"'
    assert "GET /health 200" in piped
    _, bad = answer(bot, slack, "logs prod {app=}")
    assert re.search(
        r"Loki at http://127\.0\.0\.1:\d+ answered with an error: 400 Bad Request: parse error", bad
    ), bad
    _, none = answer(bot, slack, "logs prod nosuchword --since 5m")
    assert "No line of the last 5m 00s matches." in none


def test_loki_gets_the_token_and_tenant_the_config_names_and_slack_never_sees_them(
    db_url, make_bot, slack, prometheus, loki, monkeypatch
):
    monkeypatch.setenv("PROD_LOKI_TOKEN", "loki-s3cret-token")

    def with_auth(cfg: dict[str, Any]) -> None:
        observed(prometheus.url, loki.url)(cfg)
        cfg["environments"]["production"]["observability"]["loki"] |= {
            "token_env": "PROD_LOKI_TOKEN",
            "tenant": "taisun",
        }

    _push_app_logs(loki, "production", time.time())
    bot = make_bot(db_url, config_mutate=with_auth)
    _, text = answer(bot, slack, "logs prod payment")
    assert loki.headers[-1]["Authorization"] == "Bearer loki-s3cret-token"
    assert loki.headers[-1]["X-Scope-OrgID"] == "taisun"
    assert "payment timeout" in text
    assert not any("loki-s3cret-token" in json.dumps(p) for _, p in slack.calls)


def test_logs_refuse_a_bad_since_or_level_at_once(db_url, make_bot, prometheus, loki):
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, loki.url))
    assert "“soon” is not a time span" in bot.command("logs prod x --since soon")["text"]
    assert "goes further back than 7d" in bot.command("logs prod x --since 30d")["text"]
    assert "“err0r!” is not a log level" in bot.command("logs prod x --level err0r!")["text"]
    assert "Unknown option `--tail`" in bot.command("logs prod x --tail 5")["text"]
    assert loki.queries == []  # nothing was asked of Loki


def test_long_logs_go_up_as_a_file_in_the_askers_dm(db_url, make_bot, slack, prometheus, loki):
    now = time.time()
    loki.push(
        {"app": "taisun", "env": "production"},
        [
            (now - i, f'{{"level":"error","msg":"request {i} failed","auth":"Bearer abcdef123456"}}')
            for i in range(1, 41)
        ],
    )
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, loki.url))
    _, text = answer(bot, slack, "logs production failed")
    (file,) = slack.files.values()
    content = file["content"].decode()
    assert file["channels"] == [f"D{ALICE}"] and file["name"].startswith("logs-production-")
    assert content.count("request ") == 40 and "abcdef123456" not in content and "Bearer ***" in content
    body = content.splitlines()
    assert body[0] == '# production: {app="taisun", env="production"} |~ "(?i)failed"'
    assert "request 1 failed" in body[3] and "request 40 failed" in body[-1]  # newest first
    assert f"https://local.slack/files/UBOT/{file['id']}/{file['name']}" in text
    assert "All 40 lines are in" in text and "in your DM with the bot; the newest 5 are below" in text
    shown = re.search(r"```(.*?)```", text, re.S)
    assert shown and shown.group(1).count("failed") == 5
    (dm,) = [m for m in slack.channel_messages(f"D{ALICE}") if m.files]
    assert "Logs of production" in dm.text and dm.files == [file["id"]]
    upload = [p for m, p in slack.calls if m == "files.getUploadURLExternal"][-1]
    assert int(upload["length"]) == len(file["content"])


def test_a_failed_upload_still_shows_the_newest_lines(db_url, make_bot, slack, prometheus, loki):
    now = time.time()
    loki.push({"app": "taisun", "env": "production"}, [(now - i, f"line {i}") for i in range(1, 31)])
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, loki.url))
    slack.fail("files.getUploadURLExternal", 200, error="missing_scope")
    _, text = answer(bot, slack, "logs prod line")
    assert "The file could not be uploaded (missing_scope); the newest 15 lines are below." in text
    assert slack.files == {}


def test_loki_that_does_not_answer_is_said(db_url, make_bot, slack, prometheus):
    gone = f"http://127.0.0.1:{closed_port()}"
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, gone))
    _, text = answer(bot, slack, "logs prod timeout")
    assert f"Loki at {gone} did not answer (connection refused or DNS failure)" in text


# --------------------------------------------------------------------------- traces


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_trace_answers_with_its_root_span_duration_and_jaeger_link(
    db_url, make_bot, slack, prometheus, jaeger
):
    start = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    jaeger.traces[TRACE] = make_trace(TRACE, int(start.timestamp() * 1e6))
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, jaeger_url=jaeger.url))
    ack, text = answer(bot, slack, f"trace {TRACE.upper()} prod")
    assert f"Looking up trace `{TRACE.upper()}`" in ack["text"]
    assert (
        "*production*: root span `GET /api/orders` of *taisun-api* · 812.0 ms · 2 spans (postgres, taisun-api)"
        in text
    )
    assert "❌ 1 spans with errors" in text and "2026-12-04 09:30 UTC" in text
    assert f"<{jaeger.url}/trace/{TRACE}|Open in Jaeger>" in text
    assert jaeger.requests == [f"/api/traces/{TRACE}"]


def test_trace_not_found_or_jaeger_down_still_gives_the_link(db_url, make_bot, slack, prometheus, jaeger):
    gone = f"http://127.0.0.1:{closed_port()}"

    def two_jaegers(cfg: dict[str, Any]) -> None:
        observed(prometheus.url, jaeger_url=jaeger.url)(cfg)
        cfg["environments"]["staging"]["observability"]["jaeger"] = {
            "url": gone,
            "ui_url": "https://jaeger.example.com",
        }
        del cfg["environments"]["development"]["observability"]["jaeger"]

    bot = make_bot(db_url, config_mutate=two_jaegers)
    _, text = answer(bot, slack, "trace 00f067aa0ba902b7")
    assert "*production*: Jaeger does not have this trace" in text
    assert f"<{jaeger.url}/trace/00f067aa0ba902b7|Open in Jaeger>" in text
    assert f"*staging*: Jaeger at {gone} did not answer (connection refused or DNS failure)" in text
    assert "<https://jaeger.example.com/trace/00f067aa0ba902b7|Open in Jaeger>" in text
    assert "development" not in text
    assert "“xyz!” is not a trace id" in bot.command("trace xyz!")["text"]


# --------------------------------------------------------------------------- taisun check


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_check_asks_each_prometheus_loki_and_jaeger(db_url, settings_for, prometheus, loki, jaeger):
    from tests.procs import run_cli

    gone = f"http://127.0.0.1:{closed_port()}"

    def stack(cfg: dict[str, Any]) -> None:
        observed(prometheus.url, loki.url, jaeger.url)(cfg)
        cfg["environments"]["development"]["observability"]["loki"]["url"] = gone

    out = run_cli(["check", "--json"], settings_for(db_url, config_mutate=stack))
    row = next(r for r in json.loads(out.stdout) if r["check"] == "monitor")
    assert row["status"] == "fail" and out.returncode == 1
    assert f"development: Loki at {gone} did not answer (connection refused or DNS failure)" in row["detail"]
    assert loki.queries and loki.queries[-1]["query"] == '{app="taisun", env="staging"}'
    assert prometheus.url and jaeger.requests == ["/api/traces/0"] * 3

    def good(cfg: dict[str, Any]) -> None:
        observed(prometheus.url)(cfg)

    out = run_cli(["check", "--json"], settings_for(db_url, config_mutate=good))
    row = next(r for r in json.loads(out.stdout) if r["check"] == "monitor")
    assert row == {"check": "monitor", "status": "ok", "detail": row["detail"]}
    assert row["detail"] == "answered: development prometheus, production prometheus, staging prometheus"


# --------------------------------------------------------------------------- Japanese


def test_a_japanese_reader_gets_japanese(db_url, make_bot, slack, prometheus, loki, jaeger):
    from tests.test_i18n_leaks import english_labels, english_prose

    slack.add_user(ALICE, "alice", locale="ja-JP")
    jaeger.traces[TRACE] = make_trace(TRACE, int(time.time() * 1e6))
    _push_app_logs(loki, "production", time.time())
    bot = make_bot(db_url, config_mutate=observed(prometheus.url, loki.url, jaeger.url, language="ja"))
    shown = []
    for command in ("metrics stg", "slo", f"trace {TRACE}", "logs prod timeout --level error", "status prod"):
        ack, text = answer(bot, slack, command)
        shown += [text_of(ack), text]
    joined = "\n".join(shown)
    assert "メトリクス" in joined and "エラーバジェット残り" in joined and "ルートスパン" in joined
    assert "直近 15分00秒 の 3 行（新しい順、時刻は UTC）" in joined and "SLO: ✅ API 可用性 残り" in joined
    for text in shown:
        assert english_prose(text, {"payment timeout", "upstream Timeout"}) == [], text
        assert english_labels(text) == [], text
