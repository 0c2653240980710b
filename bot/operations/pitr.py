"""Backups that prove the guide's RPO 1 h and RTO 4 h: pgBackRest with WAL, status, restore drills.

    backup run full|diff|incr   pgBackRest backup to every configured repository (posix, S3), retention
                                from backup.retention_days; each repository's result its own audit row
    backup status               newest full / incremental, WAL archive lag, the RPO right now against
                                backup.rpo_minutes, the last drill against backup.rto_minutes
    backup drill [time]         the newest backup (or a point in time) restored into a scratch instance,
                                the integrity check run on it, every phase timed, the RTO margin reported

The schedule (daily full at 02:00 JST, hourly incremental, weekly drill) is run by the bot itself:
each slot becomes a job whose id is derived from the slot, so two replicas, or one restarted,
create it exactly once, and the job engine's leases take it over when a replica dies.

A drill never touches the live database: its target is a directory of its own under
backup.drill.scratch_dir (marked, so a killed drill's leftovers are found and removed) on a port of
its own; a port something already listens on, or a directory that is the source's, is refused.
"""

from __future__ import annotations

import configparser
import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.backends.backup import run_verify_command
from bot.backends.pgbackrest import (
    KINDS,
    Archiver,
    BackupSet,
    Info,
    PgBackRest,
    PgBackRestError,
    ScratchError,
    ScratchInstance,
    archiver_status,
    leftover_scratch,
    marker_of,
    port_in_use,
)
from bot.backends.pgconn import InvalidDsn, parse_dsn, safe_dsn
from bot.core import audit, blocks, i18n, locks, metrics
from bot.core.config import DAYS, BackupConfig, Config
from bot.core.i18n import t
from bot.core.locks import EnvironmentLocked
from bot.core.mrkdwn import Mrkdwn, mention
from bot.core.ops import JobContext, Operation, OpError, Request, Throttled, human_bytes
from bot.core.replies import Reply
from bot.core.states import JobState, Progress
from bot.core.store.models import Job

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

PITR_LOCK = "pgbackrest"  # one pgBackRest backup at a time (pgBackRest would refuse a second anyway)
DRILL_LOCK = "drill"  # one drill at a time: they share the scratch port
SCHEDULE_ACTOR = "taisun-schedule"
SCHEDULE_NAME = "TAISUN schedule"
SLOT_NAMESPACE = uuid.UUID("5f0c6a52-1b7e-4a1e-9d35-17a0b4c0e017")
REFRESH_SECONDS = 60.0
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


# --- shared pieces --------------------------------------------------------------------------------


def pgbackrest_of(b: BackupConfig) -> PgBackRest:
    p = b.pgbackrest
    return PgBackRest(
        stanza=p.stanza, command=tuple(p.command), run_as=tuple(p.run_as), config_path=p.config_path,
        nice=b.nice,
    )  # fmt: skip


def _active(svc: Services, operation: str, exclude: str = "") -> Job | None:
    """A job of that operation still to finish on a live worker (a dead one's lease has run out)."""
    now = datetime.now(UTC)
    with svc.sessions() as s:
        for job in s.scalars(
            select(Job).where(
                Job.operation == operation,
                Job.state.in_((JobState.VALIDATING, JobState.QUEUED, JobState.RUNNING)),
                Job.id != exclude,
            )
        ):
            if job.state != JobState.RUNNING or job.lease_expires_at is None or job.lease_expires_at > now:
                return job
    return None


def _busy(job: Job, key: str) -> OpError:
    who = t("rpo.schedule_name", "en") if job.requested_by == SCHEDULE_ACTOR else mention(job.requested_by)
    return OpError(key=key, job=job.id[:8], who=who)


def _take(ctx: JobContext, name: str, what: str, busy_key: str) -> None:
    """A pseudo-lock held by the job; the engine releases it however the job ends."""
    job = ctx.job
    try:
        with ctx.svc.sessions.begin() as s:
            locks.acquire(
                s, name, holder_id=job.requested_by, holder_name=job.requested_by_name, reason=what,
                job_id=job.id, channel=job.channel,
            )  # fmt: skip
    except EnvironmentLocked as e:
        other = None
        if e.info.job_id:
            with ctx.svc.sessions() as s:
                other = s.get(Job, e.info.job_id)
        raise (_busy(other, busy_key) if other else OpError(e.message(ctx.lang))) from None


def _warn_ops(ctx: JobContext, key: str, **fields: Any) -> None:
    """A warning in the ops channel: audited first, then posted off the job's thread."""
    channel = ctx.svc.config.slack.ops_channel
    text = ctx.t(key, job=ctx.job.id[:8], **fields)
    ctx.record("warned", channel=channel, key=key)
    if ctx.svc.settings.slack_bot_token:
        ctx.svc.later(lambda: ctx.svc.slack.chat_postMessage(channel=channel, text=text))


def _seconds(s: float, lang: str) -> str:
    return i18n.duration(s, lang)


# --- backup run full|diff|incr ---------------------------------------------------------------------


def _quiet_success(svc: Services, job: Job, kind: str) -> bool:
    """A scheduled run of a kind in backup.schedule.quiet that has not failed: no card (yet)."""
    return (
        job.params.get("trigger") == "schedule"
        and kind in svc.config.backup.schedule.quiet
        and job.state not in (JobState.FAILED, JobState.CANCELLED, JobState.INVALID, JobState.REFUSED)
    )


class PitrBackup(Operation):
    """A pgBackRest backup (full, differential or incremental) to each configured repository."""

    name = "pitr_backup"
    title: ClassVar[dict[str, str]] = {"en": "pgBackRest backup", "ja": "pgBackRest バックアップ"}
    needs_env = False
    needs_lock = False
    # A backup killed mid-way is taken again: pgBackRest resumes or removes the partial one itself.
    resumable = True

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Any, version: str = ""
    ) -> dict[str, Any]:
        return {"kind": str(params.get("kind") or "incr")}

    def posts_card(self, svc: Services, job: Job) -> bool:
        return not _quiet_success(svc, job, str(job.params.get("kind") or "incr"))

    def check_request(self, svc: Services, req: Request) -> None:
        b = svc.config.backup
        if not b.pgbackrest.stanza:
            raise OpError(key="rpo.pgbackrest_off")
        kind = str(req.params.get("kind") or "incr")
        if kind not in KINDS:
            raise OpError(key="backup.bad_kind", kind=kind)
        busy = _active(svc, self.name)
        if busy is not None:
            raise _busy(busy, "backup.pitr_busy")
        req.params = {
            "action": "run",
            "kind": kind,
            **{k: v for k, v in req.params.items() if k in ("trigger", "slot")},
        }

    def describe(self, job: Job, lang: str = "en") -> str:
        return i18n.t_plain(f"backup.describe.{job.params.get('kind', 'incr')}", lang)

    def prepare(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        repos = ", ".join(f"repo{n}" for n in b.pgbackrest.repos)
        ctx.save(
            fields=[
                (ctx.t("rpo.field.stanza"), f"`{b.pgbackrest.stanza}`"),
                (ctx.t("rpo.field.kind"), ctx.t(f"backup.kind.{ctx.params['kind']}")),
                (ctx.t("rpo.field.repos"), repos),
                (ctx.t("op.field.retention"), ctx.t("op.backup.retention_value", days=b.retention_days)),
            ]
        )

    def run(self, ctx: JobContext) -> None:
        try:
            self._run(ctx)
        except OpError as e:
            if ctx.params.get("trigger") == "schedule":
                _warn_ops(
                    ctx, "backup.warn_failed", kind=ctx.params["kind"], error=i18n.user_message(e, ctx.lang)
                )
            raise
        finally:
            ctx.svc.later(lambda: refresh(ctx.svc, force=True))

    def _run(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        kind = ctx.params["kind"]
        if ctx.dry_run:
            for repo in b.pgbackrest.repos:
                argv = " ".join(pgbackrest_of(b).argv("backup", f"--type={kind}", f"--repo={repo}"))
                ctx.step(ctx.t("backup.sim_step", command=argv), Progress.INFO)
            ctx.simulated(ctx.t("backup.sim_result"))
            return
        _take(ctx, PITR_LOCK, f"pgBackRest {kind} backup", "backup.pitr_busy")
        pgb = pgbackrest_of(b)
        interrupted = ctx.progress.get("repo_running")
        if interrupted:
            # pgBackRest finds its own unfinished backup and resumes or removes it on the next run.
            ctx.record("interrupted", save={"repo_running": None}, repo=interrupted, kind=kind)
            ctx.step(ctx.t("backup.interrupted", repo=interrupted), Progress.INFO)
        done: list[int] = list(ctx.progress.get("done_repos", []))
        for repo in b.pgbackrest.repos:
            if repo in done:
                continue
            ctx.save(repo_running=repo)  # before the backup: a resumed job knows it was interrupted
            ctx.step(ctx.t("backup.running", kind=ctx.t(f"backup.kind.{kind}"), repo=repo), Progress.RUNNING)
            started = time.monotonic()
            try:
                pgb.backup(
                    kind, repo, retention_days=b.retention_days, timeout=b.pgbackrest.timeout_seconds,
                    progress=Throttled(ctx, ctx.t("backup.progress", repo=repo), every=5.0),
                )  # fmt: skip
            except PgBackRestError as e:
                ctx.record(
                    "stored",
                    outcome="error",
                    detail=str(e),
                    save={"repo_running": None},
                    repo=repo,
                    kind=kind,
                )
                ctx.step(ctx.t("backup.failed_step", repo=repo, error=str(e)), Progress.FAILED)
                raise OpError(key="backup.pitr_failed", repo=repo, error=str(e)) from None
            seconds = time.monotonic() - started
            newest = None
            try:
                newest = pgb.info().newest(repo=repo)
            except PgBackRestError as e:
                log.warning("pgbackrest info failed after a backup", extra={"error": str(e)})
            label = newest.label if newest else "?"
            actual = newest.kind if newest else kind
            done.append(repo)
            size = human_bytes(newest.repo_bytes) if newest else "?"
            ctx.record(
                "stored", save={"done_repos": done, "repo_running": None, f"label_{repo}": label, "seconds": seconds},
                repo=repo, kind=actual, requested_kind=kind, label=label, seconds=round(seconds, 3),
                repo_bytes=newest.repo_bytes if newest else None, size_bytes=newest.size_bytes if newest else None,
            )  # fmt: skip
            ctx.step(
                ctx.t("backup.stored", repo=repo, label=label, kind=ctx.t(f"backup.kind.{actual}"),
                      size=size, seconds=_seconds(seconds, ctx.lang)),
                Progress.DONE,
            )  # fmt: skip
            if actual != kind:
                ctx.step(ctx.t("backup.promoted_to_full", kind=ctx.t(f"backup.kind.{kind}")), Progress.INFO)
        labels = ", ".join(f"`{ctx.progress.get(f'label_{r}', '?')}`" for r in b.pgbackrest.repos)
        ctx.save(result=ctx.t("backup.result", kind=ctx.t(f"backup.kind.{kind}"), labels=labels, n=len(done)))


# --- backup drill [time] -------------------------------------------------------------------------


def parse_target_time(text: str, tz: ZoneInfo) -> datetime:
    """`2026-12-04 09:30`, `2026-12-04T09:30:00+09:00`: a naive time is in the workspace timezone."""
    try:
        when = datetime.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        raise OpError(key="drill.bad_time", time=text) from None
    return (when.replace(tzinfo=tz) if when.tzinfo is None else when).astimezone(UTC)


def _pg1_path(b: BackupConfig) -> str:
    """The live data directory as pgbackrest.conf names it for the stanza (empty when unreadable)."""
    path = b.pgbackrest.config_path or "/etc/pgbackrest/pgbackrest.conf"
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error):
        return ""
    for section in (b.pgbackrest.stanza, "global"):
        if parser.has_option(section, "pg1-path"):
            return parser.get(section, "pg1-path")
    return ""


def _inside(a: str, b: str) -> bool:
    pa, pb = Path(a).resolve(), Path(b).resolve()
    return pa == pb or pb in pa.parents or pa in pb.parents


def drill_target_problem(config: Config) -> OpError | None:
    """Why the configured scratch target could be the live database (same port here, same data dir)."""
    b = config.backup
    dsn = os.environ.get(b.dsn_env, "")
    if dsn:
        try:
            p = parse_dsn(dsn)
        except InvalidDsn:
            p = {}
        host = (p.get("host") or p.get("hostaddr") or "").split(",")[0]
        port = int((p.get("port") or "5432").split(",")[0] or 5432)
        if (host in LOCAL_HOSTS or host.startswith("/")) and port == b.drill.port:
            return OpError(key="drill.same_port", port=port, source=safe_dsn(dsn))
    live = _pg1_path(b)
    if live and _inside(b.drill.scratch_dir, live):
        return OpError(key="drill.same_dir", scratch=b.drill.scratch_dir, live=live)
    return None


def scratch_dsn(config: Config) -> str:
    """The scratch instance's DSN: the source's user, password and database on 127.0.0.1:<drill port>."""
    b = config.backup
    params: dict[str, str] = {"user": "postgres", "dbname": "postgres"}
    dsn = os.environ.get(b.dsn_env, "")
    if dsn:
        with contextlib.suppress(InvalidDsn):
            params.update({k: v for k, v in parse_dsn(dsn).items() if k in ("user", "password", "dbname")})
    if b.drill.database:
        params["dbname"] = b.drill.database
    from psycopg.conninfo import make_conninfo

    return make_conninfo(host="127.0.0.1", port=str(b.drill.port), connect_timeout="10", **params)


class Drill(Operation):
    """A restore drill: restore, open, check, time every phase, report the RTO margin, clean up."""

    name = "drill"
    title: ClassVar[dict[str, str]] = {"en": "Restore drill", "ja": "リストア訓練"}
    needs_env = False
    needs_lock = False
    # A drill killed mid-way removes its scratch instance when resumed and starts again.
    resumable = True

    def posts_card(self, svc: Services, job: Job) -> bool:
        return not _quiet_success(svc, job, "drill")

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Any, version: str = ""
    ) -> dict[str, Any]:
        return {}

    def check_request(self, svc: Services, req: Request) -> None:
        b = svc.config.backup
        if not b.pgbackrest.stanza:
            raise OpError(key="rpo.pgbackrest_off")
        problem = drill_target_problem(svc.config)
        if problem is not None:
            raise problem
        text = str(req.params.get("time") or "")
        params: dict[str, Any] = {k: v for k, v in req.params.items() if k in ("trigger", "slot")}
        if text:
            when = parse_target_time(text, svc.config.tz)
            if when > datetime.now(UTC):
                raise OpError(key="drill.future", time=text)
            params["target_time"] = when.isoformat()
        busy = _active(svc, self.name)
        if busy is not None:
            raise _busy(busy, "drill.busy")
        req.params = {"action": "drill", **params}

    def describe(self, job: Job, lang: str = "en") -> str:
        when = job.params.get("target_time")
        if when:
            return i18n.t_plain("drill.describe_pitr", lang, time=when[:19].replace("T", " ") + " UTC")
        return i18n.t_plain("drill.describe", lang)

    def prepare(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        when = ctx.params.get("target_time")
        verify = f"`{' '.join(b.verify_command)}`" if b.verify_command else ctx.t("op.restore.no_verify")
        ctx.save(
            fields=[
                (ctx.t("rpo.field.stanza"), f"`{b.pgbackrest.stanza}` · repo{b.pgbackrest.repos[0]}"),
                (
                    ctx.t("drill.field.target"),
                    blocks.slack_time(datetime.fromisoformat(when)) if when else ctx.t("drill.latest"),
                ),
                (ctx.t("drill.field.scratch"), f"`{b.drill.scratch_dir}` · 127.0.0.1:{b.drill.port}"),
                (ctx.t("op.field.then"), verify),
                (ctx.t("drill.field.rto"), i18n.duration(b.rto_minutes * 60, ctx.lang)),
            ]
        )

    def run(self, ctx: JobContext) -> None:
        try:
            self._run(ctx)
        except OpError as e:
            _warn_ops(ctx, "drill.warn_failed", error=i18n.user_message(e, ctx.lang))
            raise
        finally:
            ctx.svc.later(lambda: refresh(ctx.svc, force=True))

    def _instance(self, ctx: JobContext, data_dir: str) -> ScratchInstance:
        b = ctx.svc.config.backup
        return ScratchInstance(data_dir, b.drill.port, b.drill.pg_bin, tuple(b.pgbackrest.run_as), b.nice)

    def _clean_leftovers(self, ctx: JobContext) -> None:
        """A drill killed mid-way leaves a marked scratch directory (maybe a running instance): remove it."""
        b = ctx.svc.config.backup
        own = ctx.progress.get("scratch")
        if own and not ctx.progress.get("cleaned"):
            ctx.step(ctx.t("drill.interrupted", phase=ctx.progress.get("phase", "?")), Progress.INFO)
        for path in leftover_scratch(b.drill.scratch_dir):
            try:
                self._instance(ctx, path).remove()
            except ScratchError as e:
                ctx.record("leftover_removed", outcome="error", detail=str(e), path=path)
                raise OpError(key="drill.leftover_failed", path=path, error=str(e)) from None
            ctx.record(
                "leftover_removed", path=path, interrupted_phase=ctx.progress.get("phase") if own else None
            )
            ctx.step(ctx.t("drill.leftover_removed", path=path), Progress.DONE)
        if own:
            ctx.save(scratch=None, cleaned=True)

    def _run(self, ctx: JobContext) -> None:
        svc, b = ctx.svc, ctx.svc.config.backup
        if ctx.dry_run:
            ctx.step(ctx.t("drill.sim_step", path=b.drill.scratch_dir, port=b.drill.port), Progress.INFO)
            ctx.simulated(ctx.t("drill.sim_result"))
            return
        _take(ctx, DRILL_LOCK, "restore drill", "drill.busy")
        self._clean_leftovers(ctx)
        problem = drill_target_problem(svc.config)
        if problem is not None:
            raise problem
        if port_in_use(b.drill.port):
            raise OpError(key="drill.port_in_use", port=b.drill.port)
        attempt = int(ctx.progress.get("attempt", 0)) + 1
        scratch = str(Path(b.drill.scratch_dir) / f"drill-{ctx.job.id[:8]}-{attempt}")
        Path(b.drill.scratch_dir).mkdir(parents=True, exist_ok=True)
        target = ctx.params.get("target_time")
        when = datetime.fromisoformat(target) if target else None
        # Marked before pgBackRest writes into it: whatever happens next, it is found and removed.
        ctx.save(attempt=attempt, scratch=scratch, phase="restore", cleaned=False, phases={})
        marker_of(scratch).write_text(f"job {ctx.job.id}\n", encoding="utf-8")
        inst = self._instance(ctx, scratch)
        phases: dict[str, float] = {}
        failure: OpError | None = None
        try:
            self._phases(ctx, b, scratch, when, inst, phases)
        except OpError as e:
            failure = e
        finally:
            ctx.save(phase="cleanup")
            started = time.monotonic()
            try:
                inst.remove()
            except ScratchError as e:
                ctx.record("cleaned", outcome="error", detail=str(e), path=scratch)
                ctx.step(ctx.t("drill.cleanup_failed", path=scratch, error=str(e)), Progress.FAILED)
                raise OpError(key="drill.leftover_failed", path=scratch, error=str(e)) from None
            phases["cleanup"] = time.monotonic() - started
            ctx.record("cleaned", save={"scratch": None, "cleaned": True}, path=scratch)
            ctx.step(ctx.t("drill.cleaned", path=scratch), Progress.DONE)
        total = sum(v for k, v in phases.items() if k != "cleanup")
        rto = b.rto_minutes * 60.0
        ok = failure is None and total <= rto
        facts = {
            "ok": failure is None, "within_rto": total <= rto, "total_seconds": round(total, 3),
            "rto_seconds": rto, "margin_seconds": round(rto - total, 3),
            "phases": {k: round(v, 3) for k, v in phases.items()}, "target_time": target,
        }  # fmt: skip
        ctx.record(
            "drilled",
            outcome="ok" if ok else "failed",
            save={"drill": facts, "phases": facts["phases"]},
            **facts,
        )
        if failure is not None:
            raise failure
        margin = rto - total
        text = ctx.t(
            "drill.result" if ok else "drill.result_slow",
            total=_seconds(total, ctx.lang), rto=_seconds(rto, ctx.lang), margin=_seconds(abs(margin), ctx.lang),
            restore=_seconds(phases.get("restore", 0), ctx.lang), recovery=_seconds(phases.get("recovery", 0), ctx.lang),
            verify=_seconds(phases.get("verify", 0), ctx.lang),
        )  # fmt: skip
        fields = list(ctx.progress.get("fields", []))
        fields.append((ctx.t("drill.field.rto_margin"), text))
        ctx.save(fields=fields, result=text)
        if not ok:
            raise OpError(key="drill.too_slow", total=_seconds(total, ctx.lang), rto=_seconds(rto, ctx.lang))

    def _phases(
        self, ctx: JobContext, b: BackupConfig, scratch: str, when: datetime | None, inst: ScratchInstance,
        phases: dict[str, float],
    ) -> None:  # fmt: skip
        pgb = pgbackrest_of(b)
        # 1. restore
        ctx.step(ctx.t("drill.restoring", path=scratch), Progress.RUNNING)
        started = time.monotonic()
        try:
            pgb.restore(
                scratch, target_time=when, repo=b.pgbackrest.repos[0], timeout=b.pgbackrest.timeout_seconds,
                progress=Throttled(ctx, ctx.t("drill.restore_progress"), every=5.0),
            )  # fmt: skip
        except PgBackRestError as e:
            ctx.record("restored", outcome="error", detail=str(e), path=scratch)
            ctx.step(ctx.t("drill.restore_failed", error=str(e)), Progress.FAILED)
            raise OpError(key="drill.failed", phase="restore", error=str(e)) from None
        phases["restore"] = time.monotonic() - started
        ctx.record("restored", save={"phase": "recovery"}, path=scratch, seconds=round(phases["restore"], 3),
                   target_time=when.isoformat() if when else None)  # fmt: skip
        ctx.step(ctx.t("drill.restored", seconds=_seconds(phases["restore"], ctx.lang)), Progress.DONE)
        # 2. recovery: WAL replayed up to the target (or the end of the archive), then promoted
        ctx.step(ctx.t("drill.recovering", port=b.drill.port), Progress.RUNNING)
        started = time.monotonic()
        try:
            inst.start(timeout=b.drill.timeout_seconds)
            _wait_promoted(ctx, scratch_dsn(ctx.svc.config), b.drill.timeout_seconds)
        except (ScratchError, OpError) as e:
            ctx.record("opened", outcome="error", detail=str(e), port=b.drill.port)
            ctx.step(ctx.t("drill.recovery_failed", error=str(e)), Progress.FAILED)
            raise OpError(key="drill.failed", phase="recovery", error=str(e)) from None
        phases["recovery"] = time.monotonic() - started
        ctx.record(
            "opened", save={"phase": "verify"}, port=b.drill.port, seconds=round(phases["recovery"], 3)
        )
        ctx.step(ctx.t("drill.opened", seconds=_seconds(phases["recovery"], ctx.lang)), Progress.DONE)
        # 3. the integrity check (the guide's `npm run db:verify`)
        started = time.monotonic()
        if b.verify_command:
            cmd = " ".join(b.verify_command)
            ctx.step(ctx.t("op.restore.running", command=cmd), Progress.RUNNING)
            ok, tail = run_verify_command(
                list(b.verify_command), {"DATABASE_URL": scratch_dsn(ctx.svc.config)},
                timeout_s=b.verify_timeout_seconds,
            )  # fmt: skip
            last = tail.strip().splitlines()[-1] if tail.strip() else ctx.t("op.restart.no_output")
            phases["verify"] = time.monotonic() - started
            ctx.record("verify_command", outcome="ok" if ok else "failed", command=cmd, last_line=last,
                       seconds=round(phases["verify"], 3))  # fmt: skip
            if not ok:
                ctx.step(ctx.t("op.restore.verify_failed_step", command=cmd, last=last), Progress.FAILED)
                raise OpError(key="drill.failed", phase="verify", error=f"{cmd}: {last}")
            ctx.step(ctx.t("op.restore.verify_passed_step", command=cmd, last=last), Progress.DONE)
        else:
            phases["verify"] = time.monotonic() - started
            ctx.record("verify_command", outcome="skipped", command=None)
            ctx.step(ctx.t("op.restore.no_verify_step"), Progress.INFO)


def _wait_promoted(ctx: JobContext, dsn: str, timeout: float) -> None:
    """pg_ctl -w returns once connections are accepted, which a hot standby does while still replaying."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise OpError(key="drill.not_promoted", seconds=int(timeout))
        ctx.heartbeat()
        time.sleep(0.2)


# --- backup status ------------------------------------------------------------------------------


@dataclass
class RecoveryStatus:
    """What the team could recover right now, and how long a restore took last time."""

    checked_at: datetime
    pgbackrest_on: bool
    info: Info | None = None
    info_problem: str = ""
    archiver: Archiver | None = None
    archiver_problem: str = ""
    logical_at: datetime | None = None  # the newest pg_dump copy that was stored
    last_drill: dict[str, Any] = field(default_factory=dict)
    rpo_target: float = 3600.0
    rto_target: float = 14400.0

    def newest(self, *kinds: str) -> BackupSet | None:
        if self.info is None:
            return None
        sets = [b for b in self.info.backups if not b.error and b.kind in kinds]
        return max(sets, key=lambda b: b.stopped_at) if sets else None

    @property
    def recoverable_at(self) -> datetime | None:
        """The newest point a restore reaches: the newest backup, or beyond it the newest archived WAL."""
        points = []
        newest = self.newest(*KINDS)
        if newest is not None:
            points.append(newest.stopped_at)
            a = self.archiver
            if a is not None and a.last_archived_at is not None and not a.failing:
                points.append(a.last_archived_at)
        if self.logical_at is not None:
            points.append(self.logical_at)
        return max(points) if points else None

    @property
    def rpo_seconds(self) -> float:
        at = self.recoverable_at
        return max(0.0, (self.checked_at - at).total_seconds()) if at else float("inf")

    @property
    def rpo_ok(self) -> bool:
        return self.rpo_seconds <= self.rpo_target

    @property
    def archive_lag_seconds(self) -> float | None:
        a = self.archiver
        if a is None or a.last_archived_at is None:
            return None
        return max(0.0, (self.checked_at - a.last_archived_at).total_seconds())


_CACHE: dict[int, RecoveryStatus] = {}
_REFRESHED: dict[int, float] = {}


def _last_drill(svc: Services) -> dict[str, Any]:
    with svc.read_sessions() as s:
        job = s.scalars(
            select(Job)
            .where(
                Job.operation == "drill",
                Job.state.in_((JobState.SUCCEEDED, JobState.FAILED)),
                Job.dry_run.is_(False),
            )
            .order_by(Job.finished_at.desc())
            .limit(1)
        ).first()
    if job is None:
        return {}
    drill = dict((job.progress or {}).get("drill") or {})
    return {
        "job": job.id, "state": job.state, "finished_at": job.finished_at, "total_seconds": drill.get("total_seconds"),
        # Restored and checked, however long it took (the duration has its own metric and alert).
        "ok": bool(drill.get("ok")), "target_time": drill.get("target_time"),
    }  # fmt: skip


def _logical_at(svc: Services) -> datetime | None:
    with svc.read_sessions() as s:
        at = s.scalar(
            select(Job.finished_at)
            .where(Job.operation == "backup", Job.state == JobState.SUCCEEDED)
            .order_by(Job.finished_at.desc())
            .limit(1)
        )
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def compute_status(svc: Services) -> RecoveryStatus:
    """Read pgBackRest, pg_stat_archiver and the jobs table (network and subprocesses: off the ack path)."""
    b = svc.config.backup
    st = RecoveryStatus(
        checked_at=datetime.now(UTC), pgbackrest_on=bool(b.pgbackrest.stanza), logical_at=_logical_at(svc),
        last_drill=_last_drill(svc), rpo_target=b.rpo_minutes * 60.0, rto_target=b.rto_minutes * 60.0,
    )  # fmt: skip
    if st.last_drill.get("finished_at") is not None and st.last_drill["finished_at"].tzinfo is None:
        st.last_drill["finished_at"] = st.last_drill["finished_at"].replace(tzinfo=UTC)
    if not st.pgbackrest_on:
        return st
    try:
        st.info = pgbackrest_of(b).info()
        if st.info.broken:
            st.info_problem = st.info.status
    except PgBackRestError as e:
        st.info_problem = str(e)
    dsn = os.environ.get(b.dsn_env, "")
    if not dsn:
        st.archiver_problem = i18n.t_plain("rpo.dsn_unset", "en", name=b.dsn_env)
    else:
        try:
            st.archiver = archiver_status(dsn)
        except Exception as e:  # the server is down or refuses: shown, never raised
            st.archiver_problem = (
                f"{safe_dsn(dsn)}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            )
    return st


def refresh(svc: Services, force: bool = False) -> RecoveryStatus | None:
    """Recompute the status (at most once a minute unless forced) and export it as metrics."""
    key = id(svc)
    if not force and time.monotonic() - _REFRESHED.get(key, -1e9) < REFRESH_SECONDS:
        return _CACHE.get(key)
    _REFRESHED[key] = time.monotonic()
    st = compute_status(svc)
    _CACHE[key] = st
    export(st)
    return st


def cached(svc: Services) -> RecoveryStatus | None:
    return _CACHE.get(id(svc))


def export(st: RecoveryStatus) -> None:
    for kind in KINDS:
        newest = st.newest(kind)
        if newest is not None:
            metrics.BACKUP_LAST_SUCCESS.labels(kind).set(newest.stopped_at.timestamp())
    if st.logical_at is not None:
        metrics.BACKUP_LAST_SUCCESS.labels("logical").set(st.logical_at.timestamp())
    if st.archiver is not None and st.archiver.last_archived_at is not None:
        metrics.BACKUP_LAST_SUCCESS.labels("wal").set(st.archiver.last_archived_at.timestamp())
    metrics.BACKUP_RPO.set(st.rpo_seconds)
    drill = st.last_drill
    if drill:
        metrics.DRILL_SUCCESS.set(1 if drill["ok"] else 0)
        if drill.get("total_seconds") is not None:
            metrics.DRILL_SECONDS.set(float(drill["total_seconds"]))


# --- the schedule ------------------------------------------------------------------------------------


def due_slots(config: Config, now: datetime) -> list[tuple[str, datetime]]:
    """The newest slot of each timer at or before `now`: (full|incr|drill, slot time in UTC)."""
    sch = config.backup.schedule
    tz = ZoneInfo(sch.timezone)
    local = now.astimezone(tz)
    out: list[tuple[str, datetime]] = []
    h, m = (int(x) for x in sch.full_at.split(":"))
    full = local.replace(hour=h, minute=m, second=0, microsecond=0)
    if full > local:
        full -= timedelta(days=1)
    out.append(("full", full.astimezone(UTC)))
    if sch.incremental_minutes:
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        step = timedelta(minutes=sch.incremental_minutes)
        incr = midnight + step * ((local - midnight) // step)
        if incr != full:  # the full of the same moment covers it
            out.append(("incr", incr.astimezone(UTC)))
    if sch.drill_at:
        day, hhmm = sch.drill_at.split()
        dh, dm = (int(x) for x in hhmm.split(":"))
        drill = local.replace(hour=dh, minute=dm, second=0, microsecond=0)
        drill -= timedelta(days=(local.weekday() - DAYS.index(day)) % 7)
        if drill > local:
            drill -= timedelta(days=7)
        out.append(("drill", drill.astimezone(UTC)))
    return out


def slot_job_id(stanza: str, kind: str, slot: datetime) -> str:
    """The same slot gives the same job id on every replica: the primary key makes it exactly once."""
    return str(uuid.uuid5(SLOT_NAMESPACE, f"{stanza}:{kind}:{slot.astimezone(UTC).isoformat()}"))


def schedule_tick(svc: Services, now: datetime | None = None) -> list[str]:
    """Create the job of the first due slot that has none yet, while no backup or drill runs (a full
    before its incremental, the drill last).
    Safe on every replica at once: a second insert of the same id fails and is ignored."""
    b = svc.config.backup
    if not (b.schedule.enabled and b.pgbackrest.stanza):
        return []
    now = now or datetime.now(UTC)
    created: list[str] = []
    for kind, slot in due_slots(svc.config, now):
        job_id = slot_job_id(b.pgbackrest.stanza, kind, slot)
        operation = "drill" if kind == "drill" else "pitr_backup"
        with svc.read_sessions() as s:
            if s.get(Job, job_id) is not None:
                continue
        if _active(svc, "pitr_backup") is not None or _active(svc, "drill") is not None:
            return created  # one scheduled job at a time: this slot stays due until the running one ends
        params: dict[str, Any] = {"trigger": "schedule", "slot": slot.isoformat()}
        if operation == "pitr_backup":
            params |= {"action": "run", "kind": kind}
        else:
            params |= {"action": "drill"}
        t0 = datetime.now(UTC)
        channel = svc.config.slack.report_channel
        job = Job(
            id=job_id, operation=operation, environment="", params=params, state=JobState.VALIDATING,
            requested_by=SCHEDULE_ACTOR, requested_by_name=SCHEDULE_NAME, channel=channel, created_at=t0,
            updated_at=t0,
        )  # fmt: skip
        try:
            with svc.sessions.begin() as s:
                s.add(job)
                s.flush()
                audit.append(
                    s, actor_id=SCHEDULE_ACTOR, actor_name=SCHEDULE_NAME, action=f"{operation}.requested",
                    channel=channel, params=params, outcome="ok", job_id=job_id,
                )  # fmt: skip
        except IntegrityError:
            continue  # another replica created it a moment ago
        created.append(job_id)
        svc.runner.wake()
        break  # one at a time: the next slot is created when this one has finished
    return created


def install(svc: Services) -> None:
    """The schedule and the status refresh, on every replica's sweep (each is safe to run everywhere)."""

    def sweep() -> None:
        schedule_tick(svc)
        key = id(svc)
        if time.monotonic() - _REFRESHED.get(key, -1e9) >= REFRESH_SECONDS:
            _REFRESHED[key] = time.monotonic()
            svc.later(lambda: refresh(svc, force=True))

    svc.sweep_hooks.append(sweep)


# --- what people see -------------------------------------------------------------------------------


def _when(at: datetime | None, lang: str, now: datetime) -> Mrkdwn:
    if at is None:
        return t("rpo.none", lang)
    return t(
        "rpo.when",
        lang,
        time=blocks.slack_time(at),
        age=i18n.coarse_duration((now - at).total_seconds(), lang),
    )


def status_lines(st: RecoveryStatus, lang: str) -> list[Mrkdwn]:
    now = st.checked_at
    rpo = st.rpo_seconds
    rpo_text = i18n.duration(rpo, lang) if rpo != float("inf") else t("rpo.unbounded", lang)
    lines = [
        t("rpo.line", lang, icon="✅" if st.rpo_ok else "❌", rpo=rpo_text, target=i18n.duration(st.rpo_target, lang),
          at=_when(st.recoverable_at, lang, now)),
    ]  # fmt: skip
    drill = st.last_drill
    if not drill:
        lines.append(t("rpo.rto_never", lang, target=i18n.duration(st.rto_target, lang)))
    elif not drill["ok"] or drill.get("total_seconds") is None:
        lines.append(
            t("rpo.rto_failed", lang, at=_when(drill["finished_at"], lang, now), job=drill["job"][:8])
        )
    else:
        total = float(drill["total_seconds"])
        lines.append(
            t("rpo.rto_line", lang, icon="✅" if total <= st.rto_target else "❌", took=i18n.duration(total, lang),
              target=i18n.duration(st.rto_target, lang), margin=i18n.duration(abs(st.rto_target - total), lang),
              at=_when(drill["finished_at"], lang, now))
        )  # fmt: skip
    return lines


def status_reply(svc: Services, lang: str) -> Reply:
    """`/taisun backup status` (off the ack path: pgbackrest info and pg_stat_archiver are read)."""
    st = refresh(svc, force=True)
    assert st is not None
    now = st.checked_at
    head = status_lines(st, lang)
    body: list[Mrkdwn] = []
    if not st.pgbackrest_on:
        body.append(t("rpo.pgbackrest_off_line", lang))
    elif st.info_problem:
        body.append(t("rpo.info_problem", lang, error=st.info_problem))
    if st.pgbackrest_on and st.info is not None:
        for key, kinds in (("rpo.newest_full", ("full",)), ("rpo.newest_incr", ("incr", "diff"))):
            newest = st.newest(*kinds)
            if newest is None:
                body.append(t(key, lang, label="—", kind="", at=t("rpo.none", lang), repo=""))
            else:
                body.append(
                    t(key, lang, label=newest.label, kind=t(f"backup.kind.{newest.kind}", lang),
                      at=_when(newest.stopped_at, lang, now), repo=f"repo{newest.repo}")
                )  # fmt: skip
    body.append(t("rpo.logical", lang, at=_when(st.logical_at, lang, now)))
    if st.pgbackrest_on:
        a = st.archiver
        if a is None:
            body.append(t("rpo.archiver_problem", lang, error=st.archiver_problem or "?"))
        elif a.failing:
            body.append(
                t("rpo.archiver_failing", lang, wal=a.last_failed_wal, at=_when(a.last_failed_at, lang, now),
                  n=a.failed_count)
            )  # fmt: skip
        else:
            lag = st.archive_lag_seconds
            body.append(
                t("rpo.archiver_ok", lang, wal=a.last_archived_wal or "—", at=_when(a.last_archived_at, lang, now),
                  lag=i18n.duration(lag, lang) if lag is not None else "—", n=a.archived_count)
            )  # fmt: skip
    text = t("rpo.text", lang, rpo="✅" if st.rpo_ok else "❌")
    return Reply(
        text,
        [
            blocks.section(t("rpo.title", lang) + "\n" + Mrkdwn("\n").join(head)),
            blocks.section(Mrkdwn("\n").join(body)),
            blocks.context(t("rpo.how", lang)),
        ],
    )


def home_lines(svc: Services, lang: str) -> list[Mrkdwn]:
    """The Home tab's backup lines: from the status the sweep keeps (no network while rendering)."""
    st = cached(svc)
    if st is None:
        return [t("rpo.home_checking", lang)]
    return status_lines(st, lang)


def pitr_list_lines(svc: Services, lang: str) -> list[Mrkdwn]:
    """`/taisun backup list`: the pgBackRest backup sets, newest first (none when pgBackRest is off)."""
    b = svc.config.backup
    if not b.pgbackrest.stanza:
        return []
    try:
        info = pgbackrest_of(b).info()
    except PgBackRestError as e:
        return [t("rpo.info_problem", lang, error=str(e))]
    now = datetime.now(UTC)
    sets = sorted((x for x in info.backups if not x.error), key=lambda x: x.stopped_at, reverse=True)
    lines = [t("backup.list_title", lang, stanza=b.pgbackrest.stanza, n=len(sets))]
    for x in sets[:20]:
        lines.append(
            t("backup.list_line", lang, label=x.label, kind=t(f"backup.kind.{x.kind}", lang), repo=x.repo,
              at=_when(x.stopped_at, lang, now), size=human_bytes(x.repo_bytes))
        )  # fmt: skip
    return lines
