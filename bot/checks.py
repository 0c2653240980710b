"""`taisun check`: the config is valid and each backend is reachable (or says why not)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.core.config import Config, ConfigError, Settings, SlackUnreachable, load_config
from bot.core.logs import redact

if TYPE_CHECKING:
    from sqlalchemy import Engine

OK, FAIL, SKIP = "ok", "fail", "not configured"


def _database(settings: Settings, config: Config) -> tuple[str, str]:
    from bot.core.store.db import (
        WrongDatabase,
        current_revision,
        ensure_not_shell_database,
        head_revision,
        make_engine,
    )

    engine = make_engine(settings.database_url, connections=4, name="taisun-check")
    try:
        current, head = current_revision(engine), head_revision()
        ensure_not_shell_database(engine)
        budget = _connection_budget(engine, settings) if engine.dialect.name == "postgresql" else None
    except WrongDatabase as e:
        return FAIL, str(e)
    finally:
        engine.dispose()
    if current != head:
        return FAIL, f"reachable, but at revision {current or 'none'}; run `taisun migrate` (needs {head})"
    if budget is None:
        return OK, f"reachable, schema at {head}"
    fits, said = budget
    return (OK if fits else FAIL), f"reachable, schema at {head}; {said}"


def _connection_budget(engine: Engine, settings: Settings) -> tuple[bool, str]:
    """PostgreSQL's max_connections against what is open now and what one more bot process may open."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int"
                " + coalesce(current_setting('reserved_connections', true), '0')::int"
            )
        ).one()
        users = conn.execute(
            text(
                "SELECT coalesce(nullif(application_name, ''), '(unnamed)'), count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 2 DESC, 1"
            )
        ).all()
    limit = int(row[0]) - int(row[1])
    in_use = sum(int(n) for _name, n in users)
    per_process = settings.taisun_db_connections + (2 if settings.taisun_jobs == "worker" else 0)
    room = (limit - in_use) // per_process
    holders = ", ".join(f"{name} {n}" for name, n in users[:6]) or "none"
    said = (
        f"connections: {in_use} of {limit} open ({holders}); a bot process may open {per_process} "
        f"(TAISUN_DB_CONNECTIONS {settings.taisun_db_connections}"
        + (" + 2 for NOTIFY/LISTEN" if settings.taisun_jobs == "worker" else "")
        + ")"
    )
    if room < 1:
        return False, said + (
            f": one more would not fit under max_connections {row[0]} ({row[1]} reserved); lower "
            "TAISUN_DB_CONNECTIONS, run fewer processes (`taisun serve --workers`), or raise max_connections"
        )
    return True, said + f": room for {room} more such process" + ("es" if room > 1 else "")


def _slack(settings: Settings, config: Config) -> tuple[str, str]:
    if not settings.slack_bot_token:
        return SKIP, "SLACK_BOT_TOKEN is not set (the shell works without it)"
    from bot.slack.client import make_web_client

    resp = make_web_client(settings).auth_test()
    team = str(resp.get("team_id") or "")
    named = config.slack.team_id
    if named and team and named != team:
        return FAIL, (
            f"the token belongs to workspace {team} ({resp.get('team')}), but slack.team_id names {named}: "
            '"*" in roles would mean the members of a workspace the bot is not in'
        )
    return OK, f"authenticated to team {resp.get('team')} ({team}) as {resp.get('user')}"


def _mode(settings: Settings, config: Config) -> tuple[str, str]:
    """How Slack reaches the bot: Socket Mode (the app token, tried with Slack) or HTTP (the signing secret)."""
    from bot.slack.client import check_app_token

    if settings.slack_app_token:
        try:
            return OK, check_app_token(settings)
        except (ConfigError, SlackUnreachable) as e:
            return FAIL, str(e)
    if settings.slack_signing_secret:
        return OK, "HTTP mode: requests to /slack/events are verified with SLACK_SIGNING_SECRET"
    if not settings.slack_bot_token:
        return SKIP, "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is set"
    return FAIL, (
        "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode, xapp-…) is set: "
        "`taisun serve` would refuse to start"
    )


def _github(settings: Settings, config: Config) -> tuple[str, str]:
    if not settings.github_token:
        return SKIP, "GITHUB_TOKEN is not set: deploys run as labelled simulations"
    from bot.deploys.service import github_backend

    return OK, github_backend(settings, config).check()


def _timeline(settings: Settings, config: Config) -> tuple[str, str]:
    """How deploys started on GitHub reach the bot: the webhook (its secret), the poller, or nothing."""
    triggered = [e.name for e in config.environments.values() if e.triggers.branches or e.triggers.tags]
    ways = []
    if settings.github_webhook_secret:
        ways.append("POST /github/webhook verifies X-Hub-Signature-256 with GITHUB_WEBHOOK_SECRET")
    if config.github.poll_seconds and settings.github_token:
        ways.append(
            f"the deploy workflow's runs are polled every {max(15.0, config.github.poll_seconds):g} s"
        )
    if ways:
        where = f" (triggers: {', '.join(triggered)})" if triggered else ""
        return OK, "; ".join(ways) + where
    return SKIP, (
        "neither GITHUB_WEBHOOK_SECRET nor github.poll_seconds is set: deploys started on GitHub (a push, a tag, "
        "`gh workflow run`) are not seen; see docs/github-webhooks.md"
    )


def _redis(settings: Settings, config: Config) -> tuple[str, str]:
    urls = {
        e.name: os.environ.get(e.cache.redis_url_env, "")
        for e in config.environments.values()
        if e.cache and e.cache.redis_url_env
    }
    if settings.redis_url:
        urls["REDIS_URL"] = settings.redis_url
    urls = {k: v for k, v in urls.items() if v}
    if not urls:
        return SKIP, "no Redis URL in the environment"
    import redis

    for _name, url in urls.items():
        redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    return OK, f"ping ok: {', '.join(urls)}"


def _aws_credentials() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))


def _aws(settings: Settings, config: Config) -> tuple[str, str]:
    if not _aws_credentials():
        return SKIP, "no AWS credentials: backups and SSM restarts run as labelled simulations"
    from bot.backends.aws import client

    client("s3").head_bucket(Bucket=config.backup.bucket)
    return OK, f"bucket {config.backup.bucket} reachable"


def _audit(settings: Settings, config: Config) -> tuple[str, str]:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from bot.core.audit import audit_key
    from bot.core.store.db import make_engine
    from bot.core.store.models import AuditHead

    key = audit_key(settings.taisun_audit_key)  # a too-short key is a ConfigError: FAIL with why
    anchor = config.audit.anchor
    where = [f"s3://{anchor.s3_bucket}/{anchor.s3_prefix}"] if anchor.s3_bucket else []
    where += [f"Slack {anchor.slack_channel}"] if anchor.slack_channel else []
    anchored = (
        f"anchored every {anchor.interval_minutes:g} min to {' and '.join(where)}"
        if where
        else "not anchored (audit.anchor): deleting the newest rows and rewriting audit_head goes unnoticed"
    )
    if key is None:
        return SKIP, (
            "the chain is unkeyed (plain SHA-256): anyone who can write the database can edit rows and "
            "recompute the chain, or delete the newest rows and rewrite audit_head, and `taisun audit verify` "
            f"cannot tell; set TAISUN_AUDIT_KEY to make it an HMAC chain. {anchored}"
        )
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            chain_key = conn.execute(select(AuditHead.key_id).where(AuditHead.id == 1)).scalar()
    except SQLAlchemyError:
        chain_key = None  # the database check says why
    finally:
        engine.dispose()
    if chain_key and chain_key != key.id:
        return FAIL, (
            f"TAISUN_AUDIT_KEY (key id {key.id}) is not the key the chain is keyed with ({chain_key}): "
            "the bot would leave new rows unchained"
        )
    return OK, f"keyed (HMAC-SHA256, key id {key.id}); {anchored}"


def _pgbackrest(settings: Settings, config: Config) -> tuple[str, str]:
    """pgBackRest (#17): installed, the stanza known, WAL reaching the repositories, the drill's target safe."""
    p = config.backup.pgbackrest
    if not p.stanza:
        return (
            SKIP,
            "backup.pgbackrest.stanza is empty: only the daily pg_dump copy (RPO up to 24 h; docs/backups.md)",
        )
    from bot.backends.pgbackrest import PgBackRestError
    from bot.core.i18n import user_message
    from bot.core.mrkdwn import to_plain
    from bot.operations.pitr import drill_target_problem, pgbackrest_of

    pgb = pgbackrest_of(config.backup)
    if not pgb.installed():
        return (
            FAIL,
            f"{p.command[0] if p.command else 'pgbackrest'} is not installed (apt-get install pgbackrest)",
        )
    try:
        info = pgb.info()
    except PgBackRestError as e:
        return FAIL, str(e)
    if info.broken:
        return FAIL, f"stanza {p.stanza!r}: {info.status} (pgbackrest stanza-create, docs/backups.md)"
    try:
        pgb.check()  # a WAL switch that must reach every repository: archive_command works
    except PgBackRestError as e:
        return FAIL, f"stanza {p.stanza!r}: {e}"
    problem = drill_target_problem(config)
    if problem is not None:
        return FAIL, to_plain(user_message(problem, "en"))
    full = info.newest("full")
    newest = info.newest()
    return OK, (
        f"stanza {p.stanza}: archiving works; {len(info.backups)} backups"
        + (f", newest full {full.label}" if full else ", no full backup yet")
        + (f", newest {newest.label}" if newest and newest is not full else "")
    )


def _security(settings: Settings, config: Config) -> tuple[str, str]:
    """The security cadence's outside parts: the scan workflow, and the watched secrets' dates (names only)."""
    sec = config.security
    kinds = {t.kind for t in sec.all_tasks() if t.enabled}
    checked: list[str] = []
    skipped: list[str] = []
    if "dependency_scan" in kinds:
        if not settings.github_token:
            skipped.append("GITHUB_TOKEN is not set: the weekly dependency scan cannot run")
        else:
            from bot.deploys.service import github_backend

            gh = github_backend(settings, config, workflow=sec.scan.workflow, ref=sec.scan.ref)
            try:
                checked.append("scan " + gh.check(field="security.scan.workflow"))
            finally:
                gh.close()
    if "secret_rotation" in kinds and sec.secrets.watch:
        from bot.security.rotation import ages

        can = {"github": bool(settings.github_token), "aws": _aws_credentials()}
        watch = [w for w in sec.secrets.watch if can[w.source]]
        if len(watch) < len(sec.secrets.watch):
            missing = sorted({"GITHUB_TOKEN" if w.source == "github" else "AWS credentials"
                              for w in sec.secrets.watch if not can[w.source]})  # fmt: skip
            skipped.append(f"watched secrets not checked without {' and '.join(missing)}")
        items = ages(settings, config, watch=watch) if watch else []
        unreadable = [f"{i['name']}: {i['error']}" for i in items if i["error"]]
        if unreadable:
            return FAIL, "watched secrets: " + "; ".join(unreadable)
        old = [i["name"] for i in items if i["overdue"]]
        if items:
            checked.append(
                f"{len(items)} watched secret(s) readable by date"
                + (f", {len(old)} due for rotation: {', '.join(old)}" if old else "")
            )
    if not checked:
        return SKIP, "; ".join(
            skipped
        ) or "no dependency scan and no watched secrets (security in the config)"
    return OK, "; ".join(checked + skipped)


def _runbooks(settings: Settings, config: Config) -> tuple[str, str]:
    try:
        from bot.incidents.runbooks import default_runbook_dir, load_runbooks
    except ImportError:
        return SKIP, "runbooks are not part of this version"
    books = load_runbooks(default_runbook_dir())
    return OK, f"{len(books)} runbooks valid"


def _monitor(settings: Settings, config: Config) -> tuple[str, str]:
    """Each environment's Prometheus, Loki and Jaeger answer (metrics, slo, logs, trace)."""
    from bot.backends.monitoring import MonitoringError
    from bot.observability.service import Observability

    named = [
        (env, what) for env in config.environments.values() if env.observability
        for what in ("prometheus", "loki", "jaeger") if getattr(env.observability, what)
    ]  # fmt: skip
    if not named:
        return SKIP, "no environment names a Prometheus, Loki or Jaeger (environments.<name>.observability)"
    obs = Observability(config)
    answered, failed = [], []
    try:
        for env, what in named:
            try:
                obs.ping(env, what)
                answered.append(f"{env.name} {what}")
            except MonitoringError as e:
                failed.append(f"{env.name}: {redact(str(e))}")
    finally:
        obs.close()
    if failed:
        return FAIL, "; ".join(failed)
    return OK, "answered: " + ", ".join(answered)


def _why(e: Exception) -> str:
    from bot.incidents.runbooks import RunbookError
    from bot.slack.client import slack_error_code

    if isinstance(e, RunbookError):
        return "invalid runbooks:\n" + "\n".join(f"            {p}" for p in e.problems)

    code = slack_error_code(e)
    if code is not None:
        return f"Slack answered `{code}`: check SLACK_BOT_TOKEN"
    return redact(f"{type(e).__name__}: {e}".splitlines()[0])[:300]


CHECKS: list[tuple[str, Callable[[Settings, Config], tuple[str, str]]]] = [
    ("database", _database),
    ("slack", _slack),
    ("mode", _mode),
    ("github", _github),
    ("timeline", _timeline),
    ("redis", _redis),
    ("aws", _aws),
    ("audit", _audit),
    ("pgbackrest", _pgbackrest),
    ("security", _security),
    ("runbooks", _runbooks),
    ("monitor", _monitor),
]


def run_checks(settings: Settings, json_output: bool = False) -> int:
    """Print one line per backend; exit 1 when the config is bad or a configured backend fails."""
    config = load_config(settings.config_path)  # ConfigError goes up with the file and field
    results = [("config", OK, f"{settings.config_path}: {len(config.environments)} environments")]
    for name, fn in CHECKS:
        try:
            status, detail = fn(settings, config)
        except Exception as e:
            status, detail = FAIL, _why(e)
        results.append((name, status, detail))
    if json_output:
        print(json.dumps([{"check": n, "status": s, "detail": d} for n, s, d in results]))
    else:
        icons = {OK: "✓", FAIL: "✗", SKIP: "–"}
        for n, s, d in results:
            print(f"{icons[s]} {n:<9} {d}")
    return 1 if any(s == FAIL for _, s, _ in results) else 0
