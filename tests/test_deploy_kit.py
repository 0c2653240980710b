"""deploy/: the Dockerfile, systemd units, examples and Grafana dashboard say what the code does."""

from __future__ import annotations

import argparse
import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import build_parser
from bot.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "taisun-dashboard.json"
TWO_REPLICAS = DEPLOY / "examples" / "http-two-replicas"
SOCKET_MODE = DEPLOY / "examples" / "socket-mode"
UNITS = sorted([*DEPLOY.rglob("*.service"), *DEPLOY.rglob("*.timer")])
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE|ACCESS_KEY", re.I)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^@\s]+@")


# --------------------------------------------------------------------------- helpers


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _assert_cli(argv: list[str], where: str) -> None:
    """argv (after the `taisun` program) is a command line bot.cli would accept."""
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `taisun {' '.join(argv)}` is not a valid taisun command line")


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _env_pairs(args: str) -> list[tuple[str, str]]:
    """ENV KEY=value KEY2="v 2" (or the legacy ENV KEY value)."""
    if "=" not in args.split()[0]:
        key, _, value = args.partition(" ")
        return [(key, value.strip())]
    return [(m.group(1), m.group(2).strip('"')) for m in re.finditer(r'(\w+)=("[^"]*"|\S*)', args)]


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as section -> [(key, value)], repeated keys kept (systemd allows them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        current.append((key.strip(), value.strip()))
    return sections


def _values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def _env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line)
        assert m, f"{path.name}:{n}: {line!r} is not KEY=value (no quotes, no export)"
        assert " #" not in m.group(2), (
            f"{path.name}:{n}: systemd and docker read an inline # as part of the value"
        )
        out[m.group(1)] = m.group(2)
    return out


# --------------------------------------------------------------------------- Dockerfile


def _base_image(steps: list[tuple[str, str]]) -> str:
    """The first FROM's image, with $NAME / ${NAME} taken from the defaults of ARGs declared before it."""
    defaults: dict[str, str] = {}
    for instruction, args in steps:
        if instruction == "ARG":
            name, _, default = args.partition("=")
            defaults[name.strip()] = default.strip().strip('"')
        elif instruction == "FROM":
            image = args.split()[0]
            return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), image)
    return ""


def test_dockerfile_builds_a_slim_non_root_image_of_the_package() -> None:
    steps = _dockerfile()
    assert _base_image(steps) == "python:3.11-slim", [a for i, a in steps if i in ("ARG", "FROM")]
    users = [a for i, a in steps if i == "USER"]
    assert users, "the image must not run as root: add a USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"USER {users[-1]} is root"
    runs = " ".join(a for i, a in steps if i == "RUN")
    assert re.search(r"pip install [^&]*/src", runs), "the package is pip-installed from the repository"
    assert "postgresql-client" in runs, "pg_dump and psql are needed for backups"
    assert [a for i, a in steps if i == "EXPOSE"] == ["3000"]


def test_dockerfile_bakes_in_no_secret() -> None:
    for instruction, args in _dockerfile():
        if instruction in ("ENV", "ARG"):
            pairs = (
                _env_pairs(args)
                if instruction == "ENV"
                else [(args.partition("=")[0], args.partition("=")[2])]
            )
            for key, value in pairs:
                assert not (SECRET_NAME.search(key) and value), (
                    f"{instruction} {key} bakes a secret into the image"
                )
                assert not CREDENTIALS_IN_URL.search(value), f"{instruction} {key} has credentials in a URL"


def test_dockerfile_runs_serve_and_checks_health_without_curl() -> None:
    steps = _dockerfile()
    cmd = json.loads([a for i, a in steps if i == "CMD"][-1])
    assert cmd == ["taisun", "serve", "--migrate"]
    _assert_cli(cmd[1:], "Dockerfile CMD")
    health = [a for i, a in steps if i == "HEALTHCHECK"][-1]
    assert "curl" not in health and "wget" not in health
    exec_form = json.loads(health[health.index("CMD") + 3 :].strip())
    assert exec_form[:2] == ["python", "-c"] and "/health" in exec_form[2]
    compile(exec_form[2], "HEALTHCHECK", "exec")


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: * and ? stay within a path segment, **/ spans several."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, and excluding a directory excludes its contents."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob(pattern.removeprefix("!"))
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def test_build_context_sends_what_copy_needs_and_keeps_secrets_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for instruction, args in _dockerfile():
        if instruction == "COPY" and "--from" not in args:
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
                assert not _dockerignored(src, patterns), f"COPY {src} is excluded by .dockerignore"
    for private in [
        "taisun.yml",
        ".env",
        "taisun.db",
        ".git",
        ".venv",
        "deploy/examples/socket-mode/taisun.env",
    ]:
        assert _dockerignored(private, patterns), f"{private} would be sent to the Docker daemon"
    assert _dockerignored("bot/__pycache__/x.pyc", patterns)


# --------------------------------------------------------------------------- systemd


def test_units_parse_as_ini() -> None:
    assert UNITS, "no systemd units under deploy/"
    for path in UNITS:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
        assert parser.has_section("Unit"), path
        assert parser.has_option("Unit", "Description"), path


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "systemd" / "taisun-bot.service", TWO_REPLICAS / "taisun-bot@.service"],
    ids=lambda p: p.name,
)
def test_bot_units_migrate_then_serve_as_taisun_hardened(path: Path) -> None:
    unit = _unit(path)
    service = dict(unit["Service"])  # last value of each key, as systemd reads single-valued keys
    assert service["User"] == "taisun"
    assert service["WorkingDirectory"] == "/opt/taisun"
    assert service["Restart"] == "always"
    assert "/etc/taisun/env" in _values(unit, "Service", "EnvironmentFile")
    assert _values(unit, "Service", "ExecStartPre")[0].split()[1:] == ["migrate"]
    assert service["ExecStart"].split()[1:2] == ["serve"]
    for key, expected in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():  # fmt: skip
        assert service.get(key) == expected, f"{path.name}: {key}={service.get(key)!r}, want {expected!r}"
    assert _values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_worker_unit_runs_taisun_worker_beside_the_bot_hardened_and_gives_jobs_time_to_end() -> None:
    path = DEPLOY / "systemd" / "taisun-worker.service"
    unit = _unit(path)
    service = dict(unit["Service"])
    argv = service["ExecStart"].split()
    assert argv[1] == "worker" and service["User"] == "taisun" and service["Restart"] == "always"
    assert _values(unit, "Service", "ExecStartPre")[0].split()[1:] == ["migrate"]
    args = build_parser().parse_args(argv[1:])
    # systemd's stop timeout outlasts the jobs' grace period (and gunicorn's 10 s more after it).
    assert float(service["TimeoutStopSec"]) > args.graceful_timeout + 10
    assert args.bind and not args.bind.endswith(":3000")  # not the bot's default PORT on the same host
    # The acks first: between services the cpu controller ranks cgroups, where niceness does not reach.
    # systemd >= 252 reads the last value, "idle" (cpu.idle: the acks go first at once); an older one
    # ignores "idle" as invalid and keeps the weight before it.
    bot_weight = dict(_unit(DEPLOY / "systemd" / "taisun-bot.service")["Service"]).get("CPUWeight", "100")
    fallback, last = _values(unit, "Service", "CPUWeight")
    assert last == "idle" and int(fallback) < int(bot_weight) / 2
    assert "Nice" not in service  # the worker sets TAISUN_WORKER_NICE itself, with its autogroup
    bot = dict(_unit(DEPLOY / "systemd" / "taisun-bot.service")["Service"])
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome", "CapabilityBoundingSet",
                "SystemCallFilter", "WorkingDirectory", "StateDirectory", "ReadWritePaths"):  # fmt: skip
        assert service.get(key) == bot.get(key), (
            f"{path.name}: {key}={service.get(key)!r}, the bot has {bot.get(key)!r}"
        )
    assert _values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_two_replica_example_runs_jobs_in_the_worker_and_scrapes_it() -> None:
    assert _env_file(TWO_REPLICAS / "taisun.env")["TAISUN_JOBS"] == "worker"
    readme = (TWO_REPLICAS / "README.md").read_text(encoding="utf-8")
    worker_bind = (
        build_parser()
        .parse_args(
            dict(_unit(DEPLOY / "systemd" / "taisun-worker.service")["Service"])["ExecStart"].split()[1:]
        )
        .bind
    )
    assert "taisun-worker.service" in readme and f'"{worker_bind}"' in readme  # Prometheus scrapes it
    ports = {_env_file(TWO_REPLICAS / f"replica-{n}.env")["PORT"] for n in (1, 2)}
    assert worker_bind.rsplit(":", 1)[1] not in ports


def test_single_host_unit_keeps_sqlite_writable_under_protect_system_strict() -> None:
    unit = _unit(DEPLOY / "systemd" / "taisun-bot.service")
    service = dict(unit["Service"])
    db = [v for v in _values(unit, "Service", "Environment") if v.startswith("DATABASE_URL=")]
    assert db == ["DATABASE_URL=sqlite:////var/lib/taisun/taisun.db"]
    assert service["StateDirectory"] == "taisun"
    assert "/var/lib/taisun" in service["ReadWritePaths"].split()


def test_replica_template_reads_its_own_port() -> None:
    unit = _unit(TWO_REPLICAS / "taisun-bot@.service")
    assert _values(unit, "Service", "EnvironmentFile") == ["/etc/taisun/env", "/etc/taisun/replica-%i.env"]
    for n in (1, 2):
        assert "PORT" in _env_file(TWO_REPLICAS / f"replica-{n}.env")


def test_every_exec_line_and_timer_uses_a_real_taisun_command() -> None:
    for path in UNITS:
        unit = _unit(path)
        for key, value in unit.get("Service", []):
            if key.startswith("Exec") and Path(value.split()[0].lstrip("-+!@:")).name == "taisun":
                _assert_cli(value.split()[1:], f"{path.name} {key}")
        if path.suffix == ".timer":
            timer = dict(unit["Timer"])
            assert any(k.startswith("On") for k in timer), f"{path.name}: no OnCalendar=/On...= trigger"
            target = timer.get("Unit", path.with_suffix(".service").name)
            assert (path.parent / target).exists(), f"{path.name} activates {target}, which is not next to it"


def test_every_unit_runs_the_same_taisun_install() -> None:
    # The install steps in taisun-bot.service's header put the bot in /opt/taisun/venv; a unit
    # pointing elsewhere would fail to start ("not executable") on a host set up that way.
    programs = {
        path.name: value.split()[0].lstrip("-+!@:")
        for path in UNITS
        for key, value in _unit(path).get("Service", [])
        if key.startswith("Exec") and value.split()[0].endswith("/taisun")
    }
    assert len(set(programs.values())) == 1, f"units disagree on where taisun is installed: {programs}"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    for path in UNITS:
        # The units point at /opt/taisun/venv/bin/taisun, which this machine need not have.
        text = re.sub(r"/opt/taisun/\S*/bin/taisun\b", "/bin/true", path.read_text(encoding="utf-8"))
        copy = tmp_path / path.name
        copy.write_text(text, encoding="utf-8")
        if "@" in path.name:
            copy = copy.rename(tmp_path / path.name.replace("@", "@1"))
        res = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60
        )
        problems = [
            line for line in (res.stdout + res.stderr).splitlines() if copy.name.split("@")[0] in line
        ]
        assert res.returncode == 0 and not problems, f"{path.name}:\n{res.stdout}{res.stderr}"


# --------------------------------------------------------------------------- commands in docs and configs


# `taisun x` in Markdown or comments, .../bin/taisun x in units, `docker run ... taisun-bot taisun x`.
COMMAND = re.compile(r"(?:`|bin/|\btaisun-bot )taisun ([a-z]+)(?: ([a-z]+))?")


def test_commands_named_anywhere_in_deploy_exist() -> None:
    subs = _subcommands(build_parser())
    seen = 0
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path.suffix in (".json",) or path.parent.name == "prometheus":
            continue
        for m in COMMAND.finditer(path.read_text(encoding="utf-8")):
            name, second = m.groups()
            assert name in subs, (
                f"{path.relative_to(ROOT)}: `taisun {name}` is not a command ({', '.join(subs)})"
            )
            nested = _subcommands(subs[name])
            if nested and second:
                assert second in nested, f"{path.relative_to(ROOT)}: `taisun {name} {second}` does not exist"
            seen += 1
    assert seen >= 5


# --------------------------------------------------------------------------- examples


def _known_env_names() -> set[str]:
    example = yaml.safe_load((ROOT / "taisun.example.yml").read_text(encoding="utf-8"))
    named: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif key.endswith("_env") and isinstance(node, str) and node:
            named.add(node)

    walk(example)
    return {n.upper() for n in Settings.model_fields} | named | {"TAISUN_RUNBOOKS"}


@pytest.mark.parametrize(
    "path",
    sorted((DEPLOY / "examples").rglob("*.env")),
    ids=lambda p: str(p.relative_to(DEPLOY / "examples")),
)
def test_env_templates_hold_no_secret_and_only_known_variables(path: Path) -> None:
    env = _env_file(path)
    known = _known_env_names()
    for key, value in env.items():
        assert key in known or key.startswith("AWS_"), f"{path.name}: {key} is read by nothing"
        assert not (SECRET_NAME.search(key) and value), f"{path.name}: {key} must be empty in a template"
        assert not CREDENTIALS_IN_URL.search(value) or "<password>" in value, f"{path.name}: {key}"


def test_socket_mode_example_sets_the_app_token_and_http_example_does_not() -> None:
    socket_env = _env_file(SOCKET_MODE / "taisun.env")
    assert "SLACK_APP_TOKEN" in socket_env and "PORT" in socket_env
    http_env = _env_file(TWO_REPLICAS / "taisun.env")
    assert http_env.get("SLACK_APP_TOKEN", "") == "", (
        "a set SLACK_APP_TOKEN would switch replicas to Socket Mode"
    )
    assert "SLACK_SIGNING_SECRET" in http_env
    assert http_env["DATABASE_URL"].startswith("postgresql://"), "replicas must share PostgreSQL, not SQLite"


def test_load_balancer_checks_health_and_forwards_to_both_replicas() -> None:
    cfg = (TWO_REPLICAS / "haproxy.cfg").read_text(encoding="utf-8")
    assert re.search(r"http-check send meth GET uri /health\b", cfg)
    assert "http-check expect status 200" in cfg
    ports = {_env_file(TWO_REPLICAS / f"replica-{n}.env")["PORT"] for n in (1, 2)}
    servers = re.findall(r"^\s*server \S+ \S+:(\d+) .*\bcheck\b", cfg, re.M)
    assert set(servers) == ports, f"haproxy servers {servers} vs replica ports {ports}"
    assert "/slack/events" in cfg and "/alerts/alertmanager" in cfg


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")
def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    # The certificate is the operator's; check everything else.
    cfg = (TWO_REPLICAS / "haproxy.cfg").read_text(encoding="utf-8")
    cfg = re.sub(r"bind :443 ssl crt \S+", "bind 127.0.0.1:8443", cfg)
    (tmp_path / "haproxy.cfg").write_text(cfg, encoding="utf-8")
    res = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_readme_links_in_deploy_resolve() -> None:
    for readme in DEPLOY.rglob("README.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (readme.parent / target).exists(), f"{readme.relative_to(ROOT)} links to missing {target}"


# --------------------------------------------------------------------------- Grafana


METRIC_DEF = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*(?:name\s*=\s*)?[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']"
)


def _metrics_in_code() -> dict[str, str]:
    """Every Prometheus metric the bot defines (name as exported -> kind), found in the source."""
    found: dict[str, str] = {}
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]:
        for kind, name in METRIC_DEF.findall(path.read_text(encoding="utf-8")):
            if kind == "Counter" and not name.endswith("_total"):
                name += "_total"  # the client library exports counters with _total
            found[name] = kind
    return found


def _exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = [v for v in variables.values() if v["type"] == "datasource"]
    assert ds and ds[0]["query"] == "prometheus"
    ref = "${" + ds[0]["name"] + "}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        here = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not here & cells, f"panel {p['title']!r} overlaps another"
        cells |= here
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == ref, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == ref
            assert 'instance=~"$instance"' in t["expr"], f"{p['title']}: not filtered by the replica variable"


def test_every_metric_in_the_code_has_a_panel() -> None:
    metrics = _metrics_in_code()
    assert "taisun_commands_total" in metrics and "taisun_ack_seconds" in metrics  # the scan works
    exprs = "\n".join(_exprs())
    missing = [
        name for name in metrics if not re.search(rf"\b{re.escape(name)}(_bucket|_sum|_count)?\b", exprs)
    ]
    assert not missing, f"metrics with no panel in {DASHBOARD.relative_to(ROOT)}: {missing}"


def test_every_metric_a_panel_uses_exists_in_the_code() -> None:
    metrics = _metrics_in_code()
    used = set(re.findall(r"\btaisun_[a-z0-9_]+", "\n".join(_exprs())))
    unknown = sorted(
        u for u in used if u not in metrics and re.sub(r"_(bucket|sum|count)$", "", u) not in metrics
    )
    assert not unknown, f"the dashboard queries metrics the bot does not export: {unknown}"


def _labels_in_code() -> dict[str, set[str]]:
    """Exported series name -> label names, from the live collectors of every module that defines metrics."""
    import importlib

    from prometheus_client import REGISTRY

    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]:
        if METRIC_DEF.search(path.read_text(encoding="utf-8")):
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    names = REGISTRY._names_to_collectors  # noqa: SLF001 - the registry has no public lookup by name
    return {name: set(getattr(c, "_labelnames", ())) for name, c in names.items()}


def test_panels_group_and_filter_only_by_labels_the_metrics_have() -> None:
    labels = _labels_in_code()
    for expr in _exprs():
        metrics = set(re.findall(r"\btaisun_[a-z0-9_]+", expr))
        have = set().union(*(labels.get(m, set()) for m in metrics)) | {"job", "instance", "le"}
        used = {
            name for group in re.findall(r"\bby \(([^)]*)\)", expr) for name in re.split(r"\s*,\s*", group)
        }
        used |= set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)\s*\"", expr))
        assert used <= have, f"{expr}: labels {sorted(used - have)} are not labels of {sorted(metrics)}"


def test_ack_latency_panel_shows_p50_and_p99_from_the_histogram() -> None:
    exprs = _exprs()
    for q in ("0.5", "0.99"):
        assert any(f"histogram_quantile({q}," in e and "taisun_ack_seconds_bucket" in e for e in exprs), q


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_promtool_parses_every_panel_query(tmp_path: Path) -> None:
    grafana_vars = {
        "$__rate_interval": "5m",
        "$__range": "6h",
        "$__interval": "1m",
        "$job": ".*",
        "$instance": ".*",
    }
    rules = []
    for n, expr in enumerate(_exprs()):
        for var, value in grafana_vars.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        rules.append({"record": f"taisun:dashboard_query_{n}", "expr": expr})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    res = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
