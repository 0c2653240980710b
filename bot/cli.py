"""The `taisun` command line."""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from bot.core.audit import AuditKeyMismatch
from bot.core.config import ConfigError, Settings, SlackUnreachable, load_config
from bot.core.ops import OpError
from bot.core.policy import NotAllowed
from bot.core.store.db import DatabaseNotMigrated, WrongDatabase


def _settings() -> Settings:
    """The environment's settings, with the secrets *_SECRET_ID names read from AWS Secrets Manager."""
    from bot.core.secrets import load_secrets

    try:
        settings = Settings()
    except ValidationError as e:  # which variable, and what it must be (its value may be a secret: not shown)
        wrong = "; ".join(f"{'.'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in e.errors())
        raise ConfigError(
            f"{wrong}. Fix the environment variable (or /etc/taisun/env) and start again."
        ) from None
    load_secrets(settings)
    return settings


def _require_slack_settings(settings: Settings) -> None:
    """The variables `serve` needs, checked before anything starts: HTTP mode or Socket Mode."""
    if not settings.slack_bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: the bot could not post anything. "
            "Copy the xoxb- token from the app's OAuth & Permissions page."
        )
    if settings.slack_app_token:
        return  # Socket Mode; the token itself is tried with Slack once the database is known good
    if not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode cannot verify that requests come from Slack. "
            "Copy it from the app's Basic Information page, or set SLACK_APP_TOKEN (xapp-…, "
            "connections:write) to use Socket Mode, which needs neither a public URL nor the signing secret."
        )


def _prepare_database(settings: Settings, *, migrate_first: bool) -> None:
    """Refuse the shell's demo database and an unmigrated one (or migrate first), before forking."""
    from bot.core.logs import setup_logging
    from bot.core.store.db import ensure_migrated, ensure_not_shell_database, make_engine, migrate

    setup_logging(settings.log_level)
    engine = make_engine(settings.database_url)
    try:
        ensure_not_shell_database(engine)  # before --migrate: the demo's database is left as it is
        if migrate_first:
            migrate(engine)
        ensure_migrated(engine)
    finally:
        engine.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.no_jobs:
        settings = settings.model_copy(update={"taisun_jobs": "worker"})
    config = load_config(settings.config_path)  # fail fast, with the file and field, before forking
    del config
    _require_slack_settings(settings)
    _prepare_database(settings, migrate_first=args.migrate)
    if settings.slack_app_token:
        from bot.slack.client import check_app_token

        check_app_token(settings)
        return _serve_socket_mode(settings, args)
    from bot.slack.gunicorn_app import serve_http

    grace = args.graceful_timeout

    def build(s: Settings) -> Any:
        app = _build_in_worker(s)
        app.grace_seconds = grace
        return app

    # As for the worker: the jobs' grace, then time to hand back leases and send what waits for Slack.
    serve_http(settings, build, bind=args.bind, workers=args.workers, threads=args.threads,
               graceful_timeout=math.ceil(grace) + 10)  # fmt: skip
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """`taisun worker`: run jobs (TAISUN_WORKERS threads) for the `taisun serve` processes of TAISUN_JOBS=worker."""
    settings = _settings()
    load_config(settings.config_path)  # fail fast, as serve does
    if not settings.slack_bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: the worker could not post or edit any job card. "
            "Copy the xoxb- token from the app's OAuth & Permissions page."
        )
    if settings.taisun_workers < 1:
        raise ConfigError("TAISUN_WORKERS is 0: a worker with no job threads would run nothing.")
    _prepare_database(settings, migrate_first=args.migrate)
    from bot.core.priority import yield_cpu
    from bot.slack.gunicorn_app import serve_one

    yield_cpu(settings.taisun_worker_nice)  # before gunicorn forks: every thread and child inherits it
    grace = args.graceful_timeout

    def build(s: Settings) -> Any:
        from bot.wiring import build_worker

        app = build_worker(s)
        app.grace_seconds = grace
        return app

    # gunicorn's arbiter kills the worker process graceful_timeout after SIGTERM: the jobs' grace
    # period, and then time to hand back leases and send what waits for Slack.
    serve_one(settings, build, bind=args.bind, threads=2, graceful_timeout=math.ceil(grace) + 10)
    return 0


def _build_in_worker(settings: Settings) -> Any:
    """The whole bot, built in each gunicorn worker after the fork. Imported only there: Prometheus
    picks multiprocess mode when it is first imported, after serve_http has set its directory."""
    from bot.wiring import build_wsgi

    return build_wsgi(settings)


def _build_socket_mode(settings: Settings) -> Any:
    from bot.wiring import build_wsgi

    return build_wsgi(settings, socket_mode=True)


def _serve_socket_mode(settings: Settings, args: argparse.Namespace) -> int:
    from bot.slack.socket_mode import serve_socket_mode

    return serve_socket_mode(
        settings, _build_socket_mode, bind=args.bind, threads=args.threads, grace=args.graceful_timeout
    )


def cmd_shell(args: argparse.Namespace) -> int:
    from bot.slack.shell import run_shell
    from bot.wiring import build_wsgi

    return run_shell(build_wsgi, as_user=args.as_user, database_url=args.database)


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.core.store.db import current_revision, make_engine, migrate, shell_marked_at

    settings = _settings()
    engine = make_engine(settings.database_url)
    before = current_revision(engine)
    after = migrate(engine)
    print(
        f"database migrated: {before or 'empty'} → {after}"
        if before != after
        else f"database already at {after}"
    )
    if shell_marked_at(engine) is not None:
        # Upgrading the shell's demo database is fine; running a real bot on it is not.
        print("note: this is the demo database of `taisun shell`: `taisun serve` refuses it", file=sys.stderr)
    engine.dispose()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.checks import run_checks

    return run_checks(_settings(), json_output=args.json)


def cmd_audit(args: argparse.Namespace) -> int:
    from bot.core import audit
    from bot.core.store.db import ensure_migrated, make_engine, session_factory

    settings = _settings()
    key = audit.audit_key(settings.taisun_audit_key)
    engine = make_engine(settings.database_url)
    ensure_migrated(engine)
    if args.action == "chain":
        # The bot links rows itself within a second; this is for a database no bot runs on.
        chained = audit.chain_all(session_factory(engine).begin, key)
        print(f"chained {chained} row(s)" + ("" if key else " (unkeyed: TAISUN_AUDIT_KEY is not set)"))
        return 0
    if args.action == "anchor":
        return _audit_anchor(args, settings, engine, key)
    # verify and export only read: rows nobody has chained are reported, never chained here.
    if args.action == "verify":
        return _audit_verify(args, settings, engine, key)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
    progress = _progress("exporting", enabled=bool(args.output) and sys.stderr.isatty())
    try:
        n, unchained = audit.export(engine, out, fmt=args.format, progress=progress)
    finally:
        if args.output:
            out.close()
    if unchained:
        print(f"{unchained} of the rows are not chained yet (no seq or hash): no bot has linked them",
              file=sys.stderr)  # fmt: skip
    if args.output:
        print(f"\nexported {n} rows to {args.output}", file=sys.stderr)
    return 0


def _audit_verify(args: argparse.Namespace, settings: Settings, engine: Any, key: Any) -> int:
    """Check the chain (with the key, when set) against every anchor it can read."""
    from bot.audit.verify import verify_and_report

    return verify_and_report(
        engine, key, load_config(settings.config_path).audit.anchor,
        anchors=args.anchor, anchor_files=args.anchors, s3=not args.no_s3, json_output=args.json,
    )  # fmt: skip


def _audit_anchor(args: argparse.Namespace, settings: Settings, engine: Any, key: Any) -> int:
    """Chain what is waiting, then write the head to the configured sinks and/or a file now."""
    from datetime import timedelta

    from bot.audit import anchors
    from bot.core import audit
    from bot.core.store.db import ensure_not_shell_database, session_factory

    ensure_not_shell_database(engine)  # the demo's chain has no place in the real bucket or channel
    config = load_config(settings.config_path)
    post = None
    if settings.slack_bot_token:
        from bot.slack.client import make_web_client

        client = make_web_client(settings)

        def post(channel: str, text: str) -> str:
            return str(client.chat_postMessage(channel=channel, text=text)["ts"])

    sinks = anchors.configured_sinks(config.audit.anchor, post, config.language)
    if args.output:
        sinks.append(anchors.file_sink(args.output))
    if not sinks:
        raise ConfigError(
            "nowhere to anchor: set audit.anchor.s3_bucket or audit.anchor.slack_channel in the config, "
            "or pass -o FILE"
        )
    begin = session_factory(engine).begin
    audit.chain_all(begin, key)
    anchorer = anchors.Anchorer(begin, sinks, timedelta(minutes=config.audit.anchor.interval_minutes))
    result = anchorer.anchor(force=True)
    if result is None:
        print("nothing to anchor: the log is empty")
        return 0
    print(f"anchored seq {result.anchor.seq}: {result.anchor.hash}")
    for where in result.written:
        print(f"  → {where}")
    for failure in result.failed:
        print(f"  ✗ {failure}", file=sys.stderr)
    return 1 if result.failed else 0


def _progress(label: str, enabled: bool) -> Callable[[int], None] | None:
    if not enabled:
        return None

    def show(n: int) -> None:
        if n % 1000 == 0:
            print(f"\r{label}: {n:,} rows", end="", file=sys.stderr, flush=True)

    return show


def run_from_cli(settings: Settings, *, json_output: bool = False) -> int:
    """`taisun backup run` (cron, the systemd timer): the backup operation in this process, with no
    job workers; exit code 0 only when a backup was stored (bot.operations.backup.run_cli_backup)."""
    from bot.operations.backup import run_cli_backup
    from bot.wiring import build_services

    return run_cli_backup(build_services(settings, workers=0), json_output=json_output)


def cmd_backup(args: argparse.Namespace) -> int:
    return run_from_cli(_settings(), json_output=args.json)


def cmd_jobs(args: argparse.Namespace) -> int:
    from bot.core.store.db import ensure_migrated
    from bot.wiring import build_services

    svc = build_services(_settings(), workers=0)
    ensure_migrated(svc.engine)
    if args.action == "cancel":
        from sqlalchemy import select

        from bot.core.store.models import Job

        with svc.sessions() as s:
            ids = list(s.scalars(select(Job.id).where(Job.id.startswith(args.id)).limit(2)))
        if len(ids) != 1:
            print(f"no single job starts with {args.id!r}", file=sys.stderr)
            return 1
        actor = f"cli:{getpass.getuser()}"
        job = svc.jobs.cancel(
            ids[0], actor, actor, reason=args.reason or "cancelled from the command line", host_operator=True
        )
        print(f"cancelled {job.id}")
        return 0
    rows = [
        {"id": j.id, "operation": j.operation, "environment": j.environment, "state": j.state,
         "requested_by": j.requested_by, "lease_owner": j.lease_owner,
         "lease_expires_at": j.lease_expires_at.isoformat() if j.lease_expires_at else None,
         "created_at": j.created_at.isoformat()}
        for j in svc.jobs.active()
    ]  # fmt: skip
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows or []:
            print(
                f"{r['id'][:8]}  {r['operation']:<12} {r['environment']:<12} {r['state']:<17} lease={r['lease_owner'] or '-'}"
            )
        if not rows:
            print("no active jobs")
    return 0


def cmd_security(args: argparse.Namespace) -> int:
    """`taisun security review export [ID] [-o FILE]`: an access review as CSV (audited)."""
    from bot.core.store.db import ensure_migrated
    from bot.security import review
    from bot.wiring import build_services

    svc = build_services(_settings(), workers=0)
    try:
        ensure_migrated(svc.engine)
        if args.id is not None:
            review_id = int(args.id)
        else:
            newest = review.newest(svc)
            if newest is None:
                print("no access review yet: start one with /taisun security review", file=sys.stderr)
                return 1
            review_id = newest.id
        actor = f"cli:{getpass.getuser()}"
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
        try:
            rows = review.export_csv(svc, review_id, out, actor, actor)
        finally:
            if args.output:
                out.close()
        if args.output:
            print(f"exported access review #{review_id} ({rows} rows) to {args.output}", file=sys.stderr)
        return 0
    finally:
        svc.background.shutdown(wait=False)
        svc.engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taisun", description="TAISUN ChatOps: run production from Slack, safely."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "serve", help="serve Slack (HTTP under gunicorn, or Socket Mode when SLACK_APP_TOKEN is set)"
    )
    s.add_argument("--migrate", action="store_true", help="apply database migrations first")
    s.add_argument("--bind", default=None, help="address:port (default 0.0.0.0:$PORT)")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--threads", type=int, default=8)
    s.add_argument(
        "--no-jobs",
        action="store_true",
        help="run no job here: `taisun worker` runs them (the same as TAISUN_JOBS=worker)",
    )
    s.add_argument(
        "--graceful-timeout",
        type=float,
        default=20.0,
        help="on SIGTERM, with jobs run here: seconds running jobs may take to end; those still running are "
        "then handed back for another replica to resume at once (default 20)",
    )
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser(
        "worker",
        help="run jobs (deploys, backups...) for `taisun serve` with TAISUN_JOBS=worker; /health and /metrics on PORT",
        description="Run jobs in their own process. `taisun serve` (TAISUN_JOBS=worker or --no-jobs) acks, renders "
        "and reads; this process runs the jobs with TAISUN_WORKERS threads, posts and edits their cards, and "
        "answers GET /health and GET /metrics. Several workers may run at once, on any host sharing the database.",
    )
    s.add_argument("--migrate", action="store_true", help="apply database migrations first")
    s.add_argument(
        "--bind", default=None, help="address:port for /health and /metrics (default 0.0.0.0:$PORT)"
    )
    s.add_argument(
        "--graceful-timeout",
        type=float,
        default=20.0,
        help="on SIGTERM, seconds running jobs may take to end; those still running are then handed back "
        "for another worker to resume at once (default 20)",
    )
    s.set_defaults(fn=cmd_worker)

    s = sub.add_parser("shell", help="try the bot in this terminal, no Slack workspace needed")
    s.add_argument("--as", dest="as_user", default="alice", help="who you are at start: alice, bob or carol")
    s.add_argument(
        "--database",
        default=None,
        help="the shell's own database (default sqlite:///.taisun/shell.db; never $DATABASE_URL, the real bot's)",
    )
    s.set_defaults(fn=cmd_shell)

    s = sub.add_parser("migrate", help="create or upgrade the database schema")
    s.set_defaults(fn=cmd_migrate)

    s = sub.add_parser("check", help="validate the config and report which backends are reachable")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("audit", help="verify or export the audit log")
    a = s.add_subparsers(dest="action", required=True)
    v = a.add_parser(
        "verify",
        help="check the chain (read-only) and the newest anchors; names every edited, inserted or deleted row",
    )
    v.add_argument("--json", action="store_true")
    v.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="SEQ:MAC",
        help="an anchor, as its Slack message shows it",
    )
    v.add_argument(
        "--anchors",
        action="append",
        default=[],
        metavar="FILE",
        help="a file of anchors (taisun audit anchor -o)",
    )
    v.add_argument("--no-s3", action="store_true", help="do not read anchors from audit.anchor.s3_bucket")
    a.add_parser("chain", help="link rows no bot has chained yet into the chain (a running bot does this)")
    n = a.add_parser("anchor", help="write the chain's head to S3 / Slack (audit.anchor) and/or a file now")
    n.add_argument("--output", "-o", default=None, help="also append the anchor to this file (JSON lines)")
    e = a.add_parser("export", help="write the log as JSON lines or CSV (read-only; unchained rows last)")
    e.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    e.add_argument("--output", "-o", default=None, help="file to write (default: stdout)")
    s.set_defaults(fn=cmd_audit)

    s = sub.add_parser("backup", help="backups for cron / systemd timers")
    b = s.add_subparsers(dest="action", required=True)
    r = b.add_parser(
        "run",
        help="back up the configured database to S3 and post the result",
        description="Back up the configured database to S3 and post the result to slack.report_channel.",
        epilog="Exit code 0 when a backup was stored; 1 when it failed, was refused, or was only simulated "
        '(credentials or the DSN variable missing: --json then says "state": "simulated", "ok": false).',
    )
    r.add_argument("--json", action="store_true", help='print {"ok", "state", "job_state", "result", ...}')
    s.set_defaults(fn=cmd_backup)

    s = sub.add_parser("security", help="security operations: export an access review as CSV")
    sec = s.add_subparsers(dest="what", required=True)
    rv = sec.add_parser("review", help="access reviews").add_subparsers(dest="action", required=True)
    ex = rv.add_parser("export", help="write an access review as CSV (one row per person and role; audited)")
    ex.add_argument("id", nargs="?", type=int, default=None, help="the review number (default: the newest)")
    ex.add_argument("--output", "-o", default=None, help="file to write (default: stdout)")
    s.set_defaults(fn=cmd_security)

    s = sub.add_parser("jobs", help="list active or stuck jobs, or cancel one")
    s.add_argument("action", nargs="?", choices=["list", "cancel"], default="list")
    s.add_argument("id", nargs="?", default="")
    s.add_argument("--reason", default="")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_jobs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _run(args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows here at the latest
        return code
    except BrokenPipeError:
        # What every CLI does when the pipe's reader has enough: stop quietly. Python would
        # complain again when it flushes stdout at exit, so stdout goes to /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _run(args: argparse.Namespace) -> int:
    """The command, with the errors a person can act on turned into one line and an exit code."""
    try:
        return int(args.fn(args) or 0)
    except ConfigError as e:
        print(f"taisun: configuration error: {e}", file=sys.stderr)
        return 2
    except (DatabaseNotMigrated, WrongDatabase, SlackUnreachable) as e:
        print(f"taisun: {e}", file=sys.stderr)
        return 2
    except OperationalError as e:
        from bot.core.logs import redact

        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        print(f"taisun: cannot use the database: {redact(reason)}", file=sys.stderr)
        return 2
    except (OpError, NotAllowed, AuditKeyMismatch) as e:
        print(f"taisun: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
