"""bot/incidents/runbooks.py and the shipped runbooks/*.yml."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.incidents.runbooks import (
    ACTION_PARAMS,
    INCIDENT_PHASES,
    OPERATIONS,
    Bilingual,
    Runbook,
    RunbookError,
    check_read_only_sql,
    default_runbook_dir,
    load_runbook,
    load_runbooks,
    resolve_runbook,
    runbook_id_from_url,
)

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "runbooks"

TROUBLESHOOTING = {
    # id: (Japanese title, a symptom and a cause in the guide's own words)
    "agent-not-responding": ("エージェントが応答しない", "Task 実行がタイムアウトする", "API レート制限"),
    "mcp-connection-error": ("MCP 接続エラー", "`MCP_CONNECTION_ERROR`", "環境変数未設定"),
    "quality-gate-failure": (
        "品質ゲート失敗",
        "CI/CD パイプラインが品質ゲートで停止",
        "テストカバレッジ不足",
    ),
    "deploy-failure": ("デプロイ失敗", "デプロイがヘルスチェックで失敗", "設定ミス"),
    "performance-degradation": ("パフォーマンス低下", "レスポンスタイムが増加", "メモリリーク"),
}
SHIPPED = {
    "incident-response",
    "service-restart",
    "db-connection-reset",
    "cache-clear",
    "disk-usage",
    *TROUBLESHOOTING,
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Runbook]:
    return load_runbooks(RUNBOOKS)


# ----------------------------------------------------------------------------- shipped runbooks


def test_every_shipped_runbook_loads(shipped: dict[str, Runbook]) -> None:
    assert set(shipped) == SHIPPED
    files = sorted(p.stem for p in RUNBOOKS.glob("*.yml"))
    assert files == sorted(shipped)
    for runbook_id, runbook in shipped.items():
        assert runbook.id == runbook_id
        assert runbook.path is not None and runbook.path.stem == runbook_id
        assert runbook.title.en and runbook.title.ja


def test_step_ids_are_unique(shipped: dict[str, Runbook]) -> None:
    for runbook in shipped.values():
        assert len(runbook.step_ids) == len(set(runbook.step_ids)), runbook.id


def test_every_text_is_bilingual(shipped: dict[str, Runbook]) -> None:
    for runbook in shipped.values():
        texts = [runbook.title, *runbook.symptoms, *runbook.causes]
        for step in runbook.steps:
            texts.append(step.title)
            texts += [t for t in (step.note, step.manual.text if step.manual else None) if t]
        for text in texts:
            assert text.en.strip() and text.ja.strip()
            assert text.en != text.ja or text.en.startswith("`"), f"{runbook.id}: untranslated {text.en!r}"


def test_incident_flow_has_the_seven_phases_in_order(shipped: dict[str, Runbook]) -> None:
    flow = shipped["incident-response"]
    assert flow.kind == "incident-flow"
    guide = ("Detection", "Triage", "Containment", "Eradication", "Recovery", "Post-Mortem", "Improvement")
    assert tuple(flow.phases or []) == INCIDENT_PHASES == guide
    groups = flow.steps_by_phase()
    assert list(groups) == list(INCIDENT_PHASES)
    for phase, steps in groups.items():
        assert 1 <= len(steps) <= 3, phase
    order = [INCIDENT_PHASES.index(s.phase or "") for s in flow.steps]
    assert order == sorted(order)


def test_incident_flow_steps_are_concrete(shipped: dict[str, Runbook]) -> None:
    groups = shipped["incident-response"].steps_by_phase()
    detection_checks = [s.check.http.path for s in groups["Detection"] if s.check and s.check.http]
    assert "/health" in detection_checks
    assert all(s.kind == "manual" for s in groups["Triage"])
    assert any("commander" in s.title.en.lower() for s in groups["Triage"])
    containment_ops = {s.action.operation for s in groups["Containment"] if s.action}
    assert {"rollback", "cache-clear"} <= containment_ops
    recovery_paths = {s.check.http.path for s in groups["Recovery"] if s.check and s.check.http}
    assert {"/health", "/version"} <= recovery_paths
    assert any(s.overdue_minutes for s in groups["Detection"])
    assert any(s.overdue_minutes for s in groups["Triage"])


def test_troubleshooting_cases_from_the_guide(shipped: dict[str, Runbook]) -> None:
    for runbook_id, (title_ja, symptom_ja, cause_ja) in TROUBLESHOOTING.items():
        runbook = shipped[runbook_id]
        assert runbook.kind == "troubleshooting"
        assert runbook.title.ja == title_ja
        assert symptom_ja in runbook.symptoms_for("ja")
        assert cause_ja in runbook.causes_for("ja")
        assert len(runbook.causes) == 3, runbook_id
        assert runbook.steps


def test_guide_runbooks_have_the_guides_steps(shipped: dict[str, Runbook]) -> None:
    restart = shipped["service-restart"]
    assert [s.kind for s in restart.steps] == ["manual", "check", "action", "check"]
    assert restart.steps[0].manual and restart.steps[0].manual.command == "systemctl status taisun"
    restart_action = restart.step("restart").action
    assert restart_action is not None and restart_action.params == {"service": "taisun"}
    assert (
        restart.steps[-1].check
        and restart.steps[-1].check.http
        and restart.steps[-1].check.http.path == "/health"
    )

    reset = shipped["db-connection-reset"]
    sql = [s.check.sql.query for s in reset.steps if s.check and s.check.sql]
    assert "SELECT count(*) FROM pg_stat_activity" in sql
    ops = [s.action.operation for s in reset.steps if s.action]
    assert ops == ["db-connection-reset", "restart"]

    cache = shipped["cache-clear"]
    targets = [s.action.params.get("target") for s in cache.steps if s.action]
    assert targets == ["redis", "app"]
    assert (
        cache.steps[-1].check and cache.steps[-1].check.http and cache.steps[-1].check.http.path == "/health"
    )

    deploy = shipped["deploy-failure"]
    assert (
        deploy.steps[0].check and deploy.steps[0].check.http and deploy.steps[0].check.http.path == "/health"
    )
    assert any(s.manual and s.manual.command == "gh run view --log" for s in deploy.steps)
    assert any(s.action and s.action.operation == "rollback" for s in deploy.steps)

    perf = shipped["performance-degradation"]
    assert perf.steps[0].check and perf.steps[0].check.sql
    assert perf.steps[0].check.sql.query == (
        "SELECT pid, state, query_start, left(query, 200) FROM pg_stat_activity WHERE state = 'active'"
    )
    commands = [s.manual.command for s in perf.steps if s.manual]
    assert "npm run profile" in commands and "redis-cli INFO memory" in commands


def test_shipped_actions_use_known_operations_and_params(shipped: dict[str, Runbook]) -> None:
    for runbook in shipped.values():
        for step in runbook.steps:
            if step.action:
                assert step.action.operation in OPERATIONS
                assert set(step.action.params) <= set(ACTION_PARAMS[step.action.operation])


def test_text_renders_in_both_languages(shipped: dict[str, Runbook]) -> None:
    flow = shipped["incident-response"]
    en, ja = flow.text("en"), flow.text("ja")
    assert "Incident response" in en and "Detection — Monitoring Alerts" in en and "GET /health → 200" in en
    assert "インシデント対応" in ja and "検知 — 監視アラート" in ja
    perf = shipped["performance-degradation"].text("ja-JP")
    assert "症状" in perf and "原因" in perf and "$ redis-cli INFO memory" in perf
    assert shipped["cache-clear"].step_titles("ja") == [
        "Redis キャッシュクリア",
        "アプリケーションキャッシュクリア",
        "ヘルスチェック",
    ]


# ----------------------------------------------------------------------------- helpers


def test_bilingual_get_falls_back_to_english() -> None:
    text = Bilingual(en="Restart", ja="再起動")
    assert text.get("ja") == text.get("ja-JP") == "再起動"
    assert text.get("en") == text.get("fr") == text.get(None) == "Restart"


def test_default_runbook_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TAISUN_RUNBOOKS", raising=False)
    assert default_runbook_dir() == RUNBOOKS
    monkeypatch.setenv("TAISUN_RUNBOOKS", str(tmp_path))
    assert default_runbook_dir() == tmp_path


def test_runbook_urls_and_names(shipped: dict[str, Runbook]) -> None:
    assert runbook_id_from_url("taisun://runbook/deploy-failure") == "deploy-failure"
    assert runbook_id_from_url("taisun://runbook/deploy-failure/") == "deploy-failure"
    assert runbook_id_from_url("https://wiki.example.com/runbook") is None
    assert runbook_id_from_url("taisun://runbook/../etc") is None
    assert runbook_id_from_url(None) is None
    for name in ("cache-clear", "Cache-Clear", "cache-clear.yml", "taisun://runbook/cache-clear"):
        found = resolve_runbook(shipped, name)
        assert found is not None and found.id == "cache-clear"
    assert resolve_runbook(shipped, "nope") is None


def test_action_resolved_params(shipped: dict[str, Runbook]) -> None:
    assert shipped["incident-response"].step("clear-cache").action.resolved_params() == {"target": "all"}  # type: ignore[union-attr]
    assert shipped["incident-response"].step("rollback").action.resolved_params() == {}  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- malformed runbooks

GOOD_STEP = """\
  - id: look
    title: {en: Look, ja: 見る}
    manual:
      text: {en: Look around, ja: 周りを見る}
"""


def _write(tmp_path: Path, name: str, body: str, *, kind: str = "runbook", steps: str = GOOD_STEP) -> Path:
    path = tmp_path / f"{name}.yml"
    head = f"id: {name}\ntitle: {{en: Test, ja: テスト}}\nkind: {kind}\n"
    path.write_text(head + textwrap.dedent(body) + ("steps:\n" + steps if steps else ""), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    message = str(info.value)
    assert path.name in message
    assert "pydantic" not in message and "Traceback" not in message and "errors.pydantic.dev" not in message
    assert all(line.split(": ")[0].endswith(path.name) for line in message.splitlines())
    return message


def test_unknown_operation_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "cache-clear",
        "",
        steps=GOOD_STEP
        + """\
  - id: clear
    title: {en: Clear, ja: クリア}
    action: {operation: cache-clear, params: {target: redis}}
  - id: flush
    title: {en: Flush, ja: フラッシュ}
    action: {operation: flush-all}
""",
    )
    message = _error(path)
    assert (
        "step 3 (flush): action operation 'flush-all' is unknown; use one of: backup, cache-clear" in message
    )
    assert message.endswith("(line 14)")  # the action line


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("DELETE FROM x", "start with SELECT, WITH, SHOW or EXPLAIN, not DELETE"),
        ("SELECT 1; DROP TABLE x", "single statement"),
        ("WITH d AS (DELETE FROM x RETURNING *) SELECT * FROM d", "DELETE is not allowed"),
        (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "pg_terminate_backend() changes the server",
        ),
    ],
)
def test_write_sql_is_refused(tmp_path: Path, query: str, problem: str) -> None:
    steps = (
        GOOD_STEP
        + f"""\
  - id: count
    title: {{en: Count, ja: 数える}}
    check:
      sql: {{query: "{query}", dsn: env}}
"""
    )
    message = _error(_write(tmp_path, "db", "", steps=steps))
    assert "step 2 (count): check.sql.query:" in message
    assert problem in message


def test_duplicate_step_ids_are_refused(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "dup", "", steps=GOOD_STEP + GOOD_STEP))
    assert "step 2 (look): id 'look' is already used by step 1" in message


def test_duplicate_step_ids_are_reported_with_other_problems(tmp_path: Path) -> None:
    bad = GOOD_STEP.replace("ja: 見る", "jp: 見る")
    message = _error(_write(tmp_path, "dup", "", steps=GOOD_STEP + bad))
    assert "already used by step 1" in message
    assert "step 2 (look): title: unknown field 'jp'; allowed here: en, ja" in message


def test_step_with_both_manual_and_action_is_refused(tmp_path: Path) -> None:
    steps = """\
  - id: restart
    title: {en: Restart, ja: 再起動}
    manual: {text: {en: Restart it, ja: 再起動する}}
    action: {operation: restart, params: {service: taisun}}
"""
    message = _error(_write(tmp_path, "both", "", steps=steps))
    assert "step 1 (restart): a step has both manual and action" in message


def test_step_with_no_body_is_refused(tmp_path: Path) -> None:
    steps = "  - id: empty\n    title: {en: Empty, ja: 空}\n"
    assert "step 1 (empty): a step needs exactly one of manual, check or action" in _error(
        _write(tmp_path, "empty", "", steps=steps)
    )


def test_missing_japanese_title_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nojp.yml"
    path.write_text("id: nojp\ntitle: {en: Test}\nkind: runbook\nsteps:\n" + GOOD_STEP, encoding="utf-8")
    assert "nojp.yml: title.ja: the Japanese text (ja) is missing (line 2)" in _error(path)
    steps = GOOD_STEP.replace("title: {en: Look, ja: 見る}", "title: {en: Look}")
    message = _error(_write(tmp_path, "stepjp", "", steps=steps))
    assert "step 1 (look): title.ja: the Japanese text (ja) is missing" in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(
        "id: broken\ntitle: {en: Test, ja: テスト}\nkind: runbook\nsteps:\n  - id: a\n   title: x\n"
    )
    message = _error(path)
    assert "broken.yml: line 6" in message and "not valid YAML" in message


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "twice", "kind: troubleshooting\n")
    assert "duplicate key 'kind' (first at line 3)" in _error(path)


def test_id_must_match_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other-name.yml"
    path.write_text("id: name\ntitle: {en: Test, ja: テスト}\nkind: runbook\nsteps:\n" + GOOD_STEP)
    assert "id: 'name' must equal the file name 'other-name'" in _error(path)


def test_bad_action_params_are_refused(tmp_path: Path) -> None:
    steps = """\
  - id: clear
    title: {en: Clear, ja: クリア}
    action: {operation: cache-clear, params: {target: disk, force: true}}
  - id: reset
    title: {en: Reset, ja: リセット}
    action: {operation: db-connection-reset, params: {idle_age_minutes: soon}}
"""
    message = _error(_write(tmp_path, "params", "", steps=steps))
    assert (
        "step 1 (clear): action: params.target 'disk' is not allowed; use one of: redis, app, all" in message
    )
    assert "params.force is not a parameter of cache-clear; allowed: target" in message
    assert "step 2 (reset): action: params.idle_age_minutes should be a whole number, got text" in message


def test_bad_http_check_is_refused(tmp_path: Path) -> None:
    steps = """\
  - id: health
    title: {en: Health, ja: ヘルス}
    check: {http: {path: "https://example.com/health"}}
"""
    assert "step 1 (health): check.http.path:" in _error(_write(tmp_path, "http", "", steps=steps))


def test_unknown_fields_are_refused_with_the_allowed_ones(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "extra", "owner: sre\n"))
    assert "unknown field 'owner'; allowed here: id, title, summary, kind" in message


def test_yaml_booleans_are_explained(tmp_path: Path) -> None:
    steps = GOOD_STEP.replace("ja: 見る", "ja: no")
    assert "should be text, got false (a boolean; quote it" in _error(
        _write(tmp_path, "yesno", "", steps=steps)
    )


def test_troubleshooting_needs_symptoms_and_causes(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "ts", "", kind="troubleshooting"))
    assert "symptoms: a troubleshooting runbook lists at least one symptom" in message
    assert "causes: a troubleshooting runbook lists at least one cause" in message


def test_phases_only_in_incident_flow(tmp_path: Path) -> None:
    steps = GOOD_STEP + "    phase: Triage\n"
    message = _error(_write(tmp_path, "phased", "phases: [Triage]\n", steps=steps))
    assert "phases: only an incident-flow has phases" in message
    assert "step 1 (look): phase: only steps of an incident-flow have a phase" in message


def test_incident_flow_rules(tmp_path: Path) -> None:
    steps = (
        GOOD_STEP.replace("id: look", "id: fix")
        + "    phase: Eradication\n"
        + GOOD_STEP.replace("id: look", "id: alert")
        + "    phase: Detection\n"
        + GOOD_STEP.replace("id: look", "id: loose")
    )
    body = "phases: [Detection, Triage, Eradication]\n"
    message = _error(_write(tmp_path, "flow", body, kind="incident-flow", steps=steps))
    assert "step 2 (alert): phase 'Detection' comes after 'Eradication'; keep steps in phase order" in message
    assert "step 3 (loose): phase: every step of an incident-flow needs a phase" in message
    assert "phases: phase 'Triage' has no step" in message
    wrong_order = _write(tmp_path, "order", "phases: [Triage, Detection]\n", kind="incident-flow", steps="")
    wrong_order.write_text(wrong_order.read_text() + "steps:\n" + GOOD_STEP + "    phase: Triage\n")
    assert "phases should be in the flow's order" in _error(wrong_order)
    unknown = GOOD_STEP + "    phase: Panic\n"
    assert "phase 'Panic' is unknown" in _error(
        _write(tmp_path, "panic", "phases: [Detection]\n", kind="incident-flow", steps=unknown)
    )


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert "empty.yml: the file is empty" in _error(empty)
    listing = tmp_path / "list.yml"
    listing.write_text("- a\n- b\n")
    assert "a runbook is a mapping" in _error(listing)
    missing = tmp_path / "missing.yml"
    with pytest.raises(RunbookError, match="missing.yml: file not found"):
        load_runbook(missing)


def test_load_runbooks_lists_every_bad_file(tmp_path: Path) -> None:
    _write(tmp_path, "good", "")
    _write(tmp_path, "bad-one", "", steps=GOOD_STEP + GOOD_STEP)
    (tmp_path / "bad-two.yml").write_text("id: bad-two\ntitle: [unclosed\n")
    (tmp_path / "README.md").write_text("# not a runbook")
    with pytest.raises(RunbookError) as info:
        load_runbooks(tmp_path)
    message = str(info.value)
    assert message.startswith("2 of 3 runbook files in ")
    assert "bad-one.yml: step 2 (look): id 'look' is already used by step 1" in message
    assert "bad-two.yml: line " in message
    assert [e.path.name for e in info.value.errors if e.path] == ["bad-one.yml", "bad-two.yml"]


def test_load_runbooks_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="runbook directory not found"):
        load_runbooks(tmp_path / "nope")


def test_models_are_immutable(shipped: dict[str, Runbook]) -> None:
    with pytest.raises(ValidationError):
        shipped["cache-clear"].id = "other"


# ----------------------------------------------------------------------------- SQL guard


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM pg_stat_activity",
        "SELECT pid, state, query_start, left(query, 200) FROM pg_stat_activity WHERE state = 'active'",
        "select 1;",
        "  WITH x AS (SELECT 1 AS n) SELECT n FROM x  ",
        "SHOW max_connections",
        "EXPLAIN SELECT * FROM pg_stat_activity",
        "SELECT 'a; DROP TABLE x' AS s",
        "SELECT 1 -- ; DELETE FROM x\n",
        "SELECT /* DROP TABLE x; */ 1",
        'SELECT "update" FROM t',
        "SELECT $$; delete from x$$",
        "SELECT E'it\\'s; drop' AS s",
        "SELECT datname, usename FROM pg_stat_activity WHERE query_start < NOW() - INTERVAL '1 hour'",
    ],
)
def test_read_only_sql_is_accepted(query: str) -> None:
    assert check_read_only_sql(query) == query.strip()


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM x",
        "SELECT 1; DROP TABLE x",
        "SELECT 1; SELECT 2",
        "UPDATE t SET a = 1",
        "INSERT INTO t VALUES (1)",
        "TRUNCATE t",
        "drop table x",
        "/* hi */ DROP TABLE x",
        "WITH d AS (DELETE FROM x RETURNING *) SELECT * FROM d",
        "EXPLAIN ANALYZE DELETE FROM x",
        "SELECT * INTO t2 FROM t",
        "SELECT * FROM t FOR UPDATE",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle'",
        "SELECT pg_catalog.set_config('x', 'y', false)",
        "SELECT pg_advisory_lock(1)",
        "SET statement_timeout = 0",
        "COPY t TO '/tmp/x'",
        "",
        "   ;  ",
        "SELECT 'unterminated",
        "SELECT 1 /* unterminated",
    ],
)
def test_write_or_broken_sql_is_refused(query: str) -> None:
    with pytest.raises(ValueError):
        check_read_only_sql(query)


def test_readme_example_is_a_valid_runbook(tmp_path: Path) -> None:
    readme = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    name = block.splitlines()[0].removeprefix("# runbooks/").strip()
    path = tmp_path / name
    path.write_text(block, encoding="utf-8")
    runbook = load_runbook(path)
    assert [s.kind for s in runbook.steps] == ["manual", "check", "action", "check"]
