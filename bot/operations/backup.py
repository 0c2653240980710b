"""Backups: the guide's "バックアップ・リカバリ" — pg_dump to S3 daily, 30 days kept, restore with psql.

    backup run       pg_dump → gzip → S3 (streamed), the memory system's tar next to it,
                     retention, then a check that the new backup is listed with its checksum
    backup list      newest first: age, size, checksum
    backup restore   download → SHA-256 verified → psql in one transaction → verify command

Backups and restores take no environment lock (a backup changes no environment) but
one pseudo-lock, BACKUP_LOCK, held for the duration of the run: two backups, or a
backup and a restore, never run at once. The lock is held by the job, so the engine
releases it however the job ends. `taisun backup run` (cron, the systemd timer) runs
the same operation in the calling process and posts the result to slack.report_channel.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import or_, select

from bot.backends import aws
from bot.backends.backup import (
    BackupError,
    BackupNotFound,
    ChecksumMismatch,
    MiB,
    abort_stale_uploads,
    apply_retention,
    backup_key,
    backup_memory,
    list_backups,
    parse_id,
    resolve_key,
    restore_backup,
    run_backup,
    run_verify_command,
)
from bot.backends.pgconn import safe_dsn
from bot.core import audit, blocks, i18n, locks
from bot.core.commands import (
    Command,
    Spec,
    UsageError,
    closest,
    env_arg,
    no_more,
    pop_flag,
    reject_unknown_flags,
)
from bot.core.config import BackupConfig, Config, Environment
from bot.core.i18n import msg, render, t
from bot.core.jobs import audit_refusal
from bot.core.locks import EnvironmentLocked
from bot.core.logs import redact
from bot.core.mrkdwn import mention, to_plain
from bot.core.ops import (
    REGISTRY,
    JobContext,
    Operation,
    OpError,
    OpRefused,
    Request,
    Throttled,
    flag_for,
    human_bytes,
    label_for,
    simulated_why,
)
from bot.core.replies import Refused, Reply
from bot.core.states import JobState, Progress
from bot.core.store.db import ensure_migrated, ensure_not_shell_database
from bot.core.store.models import Job
from bot.operations import messages
from bot.operations.restart import aws_credentials_problem

if TYPE_CHECKING:
    from bot.core.services import Services

BACKUP_LOCK = "backup"
CLI_ACTOR = "taisun-cli"
CLI_NAME = "taisun backup run"
BACKUP_OPERATIONS = ("backup", "restore")


# --- shared pieces ----------------------------------------------------------------------------


def memory_prefix(prefix: str) -> str:
    """The memory tarballs' folder, a sibling of the dumps': db/ -> memory/, prod/db/ -> prod/memory/."""
    parts = prefix.strip("/").rsplit("/", 1)
    return (parts[0] + "/" if len(parts) == 2 else "") + "memory/"


def running_backup(svc: Services, exclude: str = "") -> Job | None:
    """A backup or restore that is queued or running on a live worker (a dead one's lease has run out)."""
    now = datetime.now(UTC)
    with svc.sessions() as s:
        q = select(Job).where(
            Job.operation.in_(BACKUP_OPERATIONS),
            Job.state.in_(JobState.UNDER_WAY),
            or_(Job.state == JobState.QUEUED, Job.lease_expires_at.is_(None), Job.lease_expires_at > now),
            Job.id != exclude,
        )
        job = s.scalars(q.order_by(Job.created_at)).first()
        if job is None:
            held = locks.current(s, BACKUP_LOCK)
            if held is not None and held.job_id and held.job_id != exclude:
                job = s.get(Job, held.job_id)
        return job


def _busy(job: Job) -> OpError:
    what = "restore" if job.operation == "restore" else "backup"
    if job.requested_by == CLI_ACTOR:
        return OpError(key=f"op.backup.busy_{what}_nightly", job=job.id[:8])
    return OpError(key=f"op.backup.busy_{what}", job=job.id[:8], who=mention(job.requested_by))


def take_backup_lock(ctx: JobContext, what: str) -> None:
    """The pseudo-lock; released by the engine with the job's other locks when it ends."""
    job = ctx.job
    try:
        with ctx.svc.sessions.begin() as s:
            locks.acquire(
                s, BACKUP_LOCK, holder_id=job.requested_by, holder_name=job.requested_by_name,
                reason=what, job_id=job.id, channel=job.channel,
            )  # fmt: skip
    except EnvironmentLocked as e:
        other = None
        if e.info.job_id:
            with ctx.svc.sessions() as s:
                other = s.get(Job, e.info.job_id)
        raise (_busy(other) if other else OpError(e.message(ctx.lang))) from None


def s3_error(exc: BaseException) -> str:
    """'AccessDenied: …' from a botocore error, secrets masked."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return redact(f"{err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": "))
    return redact(f"{type(exc).__name__}: {exc}")


def _id_of(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.split("_", 1)[1].split(".", 1)[0] if "_" in name else name


# --- backup run ---------------------------------------------------------------------------------


def parse_backup(tokens: list[str], config: Config, usage: str) -> Command:
    dry_run = bool(pop_flag(tokens, "--dry-run"))
    reject_unknown_flags(tokens, usage)
    action = (tokens.pop(0) if tokens else "").lower()
    if action == "run" and tokens:  # run full|diff|incr: pgBackRest (bot.operations.pitr)
        kind = tokens.pop(0).lower()
        if kind not in ("full", "diff", "incr"):
            raise UsageError(key="backup.bad_kind", kind=kind)
        no_more(tokens, usage)
        return Command("backup", {"action": "run", "kind": kind, "dry_run": dry_run})
    if action in ("run", "list", "status"):
        no_more(tokens, usage)
        return Command("backup", {"action": action, "dry_run": dry_run})
    if action == "drill":  # drill [time]: the rest of the words are the point in time
        return Command("backup", {"action": "drill", "time": " ".join(tokens), "dry_run": dry_run})
    if action == "restore":
        if not tokens:
            raise UsageError(key="err.which_backup")
        backup_id = tokens.pop(0)
        env = env_arg(config, tokens.pop(0), usage) if tokens else None
        no_more(tokens, usage)
        return Command("backup", {"action": "restore", "id": backup_id, "dry_run": dry_run}, env)
    hint = closest(action, ["run", "list", "restore", "status", "drill"]) if action else None
    raise UsageError(key="err.backup_action", action=action, guess=hint or "")


BACKUP_COMMAND = Spec(
    "backup", "backup run [full|diff|incr]|list|status|drill [time]|restore <id>",
    "Database backups (S3, pgBackRest), RPO/RTO and restore drills",
    "データベースバックアップ（S3・pgBackRest）、RPO/RTO、リストア訓練", "operator",
    parse=parse_backup, rank=60,
)  # fmt: skip


class Backup(Operation):
    command = BACKUP_COMMAND
    name = "backup"
    title: ClassVar[dict[str, str]] = {"en": "Database backup", "ja": "データベースバックアップ"}
    needs_env = False
    needs_lock = False
    # A backup that died mid-way is simply taken again (a new key); a finished one is not.
    resumable = True

    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Environment, version: str = ""
    ) -> dict[str, Any]:
        return {"action": "run"}

    def check_request(self, svc: Services, req: Request) -> None:
        b = svc.config.backup
        busy = running_backup(svc)
        if busy is not None:
            raise _busy(busy)
        problems = []
        if aws_problem := aws_credentials_problem():
            problems.append(msg("op.sim.no_upload", problem=aws_problem))
        if not os.environ.get(b.dsn_env):
            problems.append(msg("op.sim.unset_dump", name=b.dsn_env))
        req.params["action"] = "run"
        req.params.pop("simulated", None)
        if problems:
            req.params["simulated"] = problems

    def describe(self, job: Job, lang: str = "en") -> str:
        if lang == "ja":
            return "データベースを S3 にバックアップ"
        return "Back up the database to S3"

    def prepare(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        dsn = os.environ.get(b.dsn_env, "")
        fields = [
            (ctx.t("op.field.database"), safe_dsn(dsn) if dsn else ctx.t("op.cache.not_set", name=b.dsn_env)),
            (ctx.t("op.field.destination"), f"s3://{b.bucket}/{b.prefix}"),
            (ctx.t("op.field.retention"), ctx.t("op.backup.retention_value", days=b.retention_days)),
        ]
        if b.max_rate_mib_per_s:  # why today's dump may take longer than the last uncapped one
            rate = f"{human_bytes(b.max_rate_mib_per_s * MiB)}/s"
            fields.append((ctx.t("op.field.read_rate"), ctx.t("op.backup.read_rate_value", rate=rate)))
        if b.memory_paths:
            fields.append(
                (
                    ctx.t("op.field.memory_system"),
                    f"{', '.join(b.memory_paths)} → s3://{b.bucket}/{memory_prefix(b.prefix)}",
                )
            )
        ctx.save(fields=fields, flag=flag_for(ctx.job, ctx.svc.config.language))

    def run(self, ctx: JobContext) -> None:
        try:
            self._run(ctx)
        except OpError as e:
            # `taisun backup run` prints the outcome in English, whatever the workspace language.
            ctx.save(cli_result=to_plain(i18n.user_message(e, "en")))
            raise

    @staticmethod
    def _result(ctx: JobContext, key: str, **fields: Any) -> None:
        """The result for the card (workspace language) and for the command line (English)."""
        ctx.save(result=ctx.t(key, **fields), cli_result=i18n.t_plain(key, "en", **fields))

    def _run(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        if ctx.dry_run or ctx.params.get("simulated"):
            self._simulate(ctx, b)
            return
        take_backup_lock(ctx, "database backup")
        dsn = os.environ.get(b.dsn_env, "")
        if not dsn:
            raise OpError(key="op.backup.dsn_unset", name=b.dsn_env)
        s3 = aws.client("s3")
        if not self._finished_before(ctx, s3, b):
            self._dump(ctx, s3, b, dsn)
        self._memory(ctx, s3, b)
        deleted = self._retention(ctx, s3, b)
        self._verify(ctx, s3, b)
        p = ctx.progress
        stored = {
            "id": p["backup_id"], "size": human_bytes(p["size_bytes"]), "sha": p["sha256"][:12],
            "seconds": f"{p['seconds']:.1f}", "days": b.retention_days,
        }  # fmt: skip
        if deleted:
            self._result(ctx, "op.backup.result_deleted", n=len(deleted), **stored)
        else:
            self._result(ctx, "op.backup.result", **stored)

    def _simulate(self, ctx: JobContext, b: BackupConfig) -> None:
        label = label_for(ctx.job, ctx.svc.config.language)
        dsn = os.environ.get(b.dsn_env, "")
        source = safe_dsn(dsn) if dsn else f"${b.dsn_env}"
        key = backup_key(b.prefix, datetime.now(UTC))
        ctx.step(ctx.t("op.backup.sim_dump", source=source, bucket=b.bucket, object=key), Progress.INFO)
        if b.memory_paths:
            ctx.step(
                ctx.t("op.backup.sim_memory", paths=", ".join(b.memory_paths), bucket=b.bucket,
                      prefix=memory_prefix(b.prefix)),
                Progress.INFO,
            )  # fmt: skip
        ctx.step(ctx.t("op.backup.sim_retention", days=b.retention_days), Progress.INFO)
        ctx.step(ctx.t("op.backup.sim_check"), Progress.INFO)
        why = ctx.t("op.why.dry_run") if ctx.dry_run else simulated_why(ctx.job, ctx.lang)
        why_en = i18n.t("op.why.dry_run", "en") if ctx.dry_run else simulated_why(ctx.job, "en")
        # The terminal's line is English, like the rest of the CLI; the card's is the workspace's.
        ctx.save(
            cli_result=i18n.t_plain("op.backup.sim_result", "en", label=label_for(ctx.job, "en"), why=why_en)
        )
        ctx.simulated(ctx.t("op.backup.sim_result", label=label, why=why))

    def _finished_before(self, ctx: JobContext, s3: Any, b: BackupConfig) -> bool:
        """Resumed after the upload had completed: do not take a second backup."""
        if ctx.progress.get("sha256"):
            return True
        key = ctx.progress.get("key")
        if not key:
            return False
        try:
            head = s3.head_object(Bucket=b.bucket, Key=key)
        except (ClientError, BotoCoreError):
            head = {}
        sha = head.get("Metadata", {}).get("sha256")
        if not sha:
            ctx.step(ctx.t("op.backup.resumed_unfinished", object=key), Progress.INFO)
            return False
        ctx.step(ctx.t("op.backup.resumed_stored", object=key), Progress.INFO)
        size = int(head.get("ContentLength", 0))
        # The worker that stored it may have died before its audit row: record what is in S3.
        ctx.record(
            "stored", save={"backup_id": _id_of(key), "size_bytes": size, "sha256": sha, "seconds": 0.0},
            bucket=b.bucket, key=key, size_bytes=size, sha256=sha, found_on_resume=True,
        )  # fmt: skip
        return True

    def _dump(self, ctx: JobContext, s3: Any, b: BackupConfig, dsn: str) -> None:
        now = datetime.now(UTC)
        key = backup_key(b.prefix, now)
        ctx.save(key=key, backup_started_at=now.isoformat())  # before the upload starts
        ctx.step(ctx.t("op.backup.dumping", dsn=safe_dsn(dsn), bucket=b.bucket, object=key), Progress.RUNNING)
        progress = Throttled(ctx, ctx.t("op.backup.progress_upload"))
        try:
            res = run_backup(
                dsn=dsn,
                s3=s3,
                bucket=b.bucket,
                prefix=b.prefix,
                now=now,
                progress=progress,
                pg_dump=b.pg_dump,
                nice=b.nice,
                max_rate=b.max_rate_mib_per_s * MiB,
            )
        except BackupError as e:
            ctx.record("stored", outcome="error", detail=str(e), bucket=b.bucket, key=key)
            ctx.step(ctx.t("op.backup.failed_step", error=e), Progress.FAILED)
            raise OpError(key="op.backup.failed", error=str(e)) from None
        except (ClientError, BotoCoreError) as e:  # e.g. no credentials after all: nothing was stored
            ctx.record("stored", outcome="error", detail=s3_error(e), bucket=b.bucket, key=key)
            ctx.step(ctx.t("op.backup.failed_step", error=s3_error(e)), Progress.FAILED)
            raise OpError(key="op.backup.failed_nothing", error=s3_error(e)) from None
        throughput = f"{human_bytes(res.throughput_bytes_per_s)}/s"
        size, raw = human_bytes(res.size_bytes), human_bytes(res.raw_bytes)
        ctx.step(
            ctx.t("op.backup.stored", bucket=b.bucket, object=res.key, size=size, raw=raw,
                  seconds=f"{res.seconds:.1f}", throughput=throughput),
            Progress.DONE,
        )  # fmt: skip
        fields = list(ctx.progress.get("fields", []))
        fields += [
            (ctx.t("op.field.backup"), f"`{_id_of(res.key)}`"),
            (ctx.t("op.field.size"), ctx.t("op.backup.size_value", size=size, raw=raw)),
            (ctx.t("op.field.sha256"), f"`{res.sha256}`"),
            (ctx.t("op.field.duration"), f"{res.seconds:.1f} s · {throughput}"),
        ]
        save = {
            "backup_id": _id_of(res.key), "size_bytes": res.size_bytes, "raw_bytes": res.raw_bytes,
            "sha256": res.sha256, "seconds": res.seconds, "throughput_bytes_per_s": res.throughput_bytes_per_s,
            "fields": fields,
        }  # fmt: skip
        ctx.record(
            "stored", save=save, bucket=b.bucket, key=res.key, size_bytes=res.size_bytes, raw_bytes=res.raw_bytes,
            sha256=res.sha256, seconds=round(res.seconds, 3),
        )  # fmt: skip

    def _memory(self, ctx: JobContext, s3: Any, b: BackupConfig) -> None:
        if not b.memory_paths or ctx.progress.get("memory_done"):
            return
        try:
            res = backup_memory(
                list(b.memory_paths), s3, b.bucket, memory_prefix(b.prefix), datetime.now(UTC),
                progress=Throttled(ctx, ctx.t("op.backup.memory_progress")),
            )  # fmt: skip
        except BackupError as e:
            ctx.record(
                "memory_stored", outcome="error", detail=str(e), bucket=b.bucket, paths=list(b.memory_paths)
            )
            ctx.step(ctx.t("op.backup.memory_failed_step", error=e), Progress.FAILED)
            raise OpError(key="op.backup.memory_failed", id=ctx.progress["backup_id"], error=str(e)) from None
        save = {"memory_done": True, "memory_key": res.key if res else ""}
        if res is None:
            ctx.record("memory_stored", outcome="skipped", save=save, paths=list(b.memory_paths), key=None)
            ctx.step(ctx.t("op.backup.memory_none", paths=", ".join(b.memory_paths)), Progress.SKIPPED)
        else:
            ctx.record(
                "memory_stored", save=save, bucket=b.bucket, key=res.key, size_bytes=res.size_bytes,
                sha256=res.sha256, paths=list(b.memory_paths),
            )  # fmt: skip
            size = human_bytes(res.size_bytes)
            ctx.step(
                ctx.t("op.backup.memory_done", bucket=b.bucket, object=res.key, size=size), Progress.DONE
            )

    def _retention(self, ctx: JobContext, s3: Any, b: BackupConfig) -> list[str]:
        now = datetime.now(UTC)
        prefixes = [b.prefix] + ([memory_prefix(b.prefix)] if b.memory_paths else [])
        deleted: list[str] = []
        aborted: list[str] = []
        try:
            for prefix in prefixes:
                deleted += apply_retention(s3, b.bucket, prefix, b.retention_days, now)
                aborted += abort_stale_uploads(s3, b.bucket, prefix, now)
        except BackupError as e:
            ctx.record(
                "retention_applied", outcome="error", detail=str(e), bucket=b.bucket, days=b.retention_days,
                deleted=deleted, aborted_uploads=aborted,
            )  # fmt: skip
            ctx.step(ctx.t("op.backup.retention_failed_step", error=e), Progress.FAILED)
            raise OpError(
                key="op.backup.retention_failed", id=ctx.progress["backup_id"], error=str(e)
            ) from None
        names = ", ".join(f"`{_id_of(k)}`" for k in deleted[:10]) + (" …" if len(deleted) > 10 else "")
        if deleted:
            ctx.step(
                ctx.t("op.backup.retention_deleted", n=len(deleted), days=b.retention_days, names=names),
                Progress.DONE,
            )
        else:
            ctx.step(ctx.t("op.backup.retention_nothing", days=b.retention_days), Progress.DONE)
        fields = list(ctx.progress.get("fields", []))
        fields.append(
            (
                ctx.t("op.field.retention"),
                ctx.t("op.backup.retention_field", n=len(deleted), days=b.retention_days),
            )
        )
        ctx.record(
            "retention_applied", save={"retention_deleted": deleted, "fields": fields}, bucket=b.bucket,
            days=b.retention_days, deleted=deleted, aborted_uploads=aborted,
        )  # fmt: skip
        return deleted

    def _verify(self, ctx: JobContext, s3: Any, b: BackupConfig) -> None:
        """The backup's own check: listed in S3 with the checksum that was computed while uploading."""
        backup_id, sha = ctx.progress["backup_id"], ctx.progress["sha256"]
        try:
            found = [
                i
                for i in list_backups(s3, b.bucket, b.prefix)
                if i.id == backup_id and i.key.endswith(".sql.gz")
            ]
        except BackupError as e:
            raise OpError(key="op.backup.list_failed", id=backup_id, error=str(e)) from None
        listed = {
            "id": backup_id,
            "sha256": sha,
            "listed": bool(found),
            "listed_sha256": found[0].sha256 if found else None,
        }
        if not found or found[0].sha256 != sha:
            ctx.record("checked", outcome="failed", **listed)
            ctx.step(ctx.t("op.backup.check_failed_step", id=backup_id, sha=sha[:12]), Progress.FAILED)
            raise OpError(key="op.backup.check_failed", id=backup_id, bucket=b.bucket, prefix=b.prefix)
        ctx.record("checked", **listed)
        ctx.step(ctx.t("op.backup.checked", id=backup_id, sha=sha[:12]), Progress.DONE)


# --- restore --------------------------------------------------------------------------------------


def restore_target(svc: Services, env: Environment | None) -> str:
    """The name of the variable holding the DSN to restore into."""
    b = svc.config.backup
    if env is not None:
        if env.database is None:
            raise OpError(key="op.restore.no_db", env=env.name)
        return env.database.dsn_env
    return b.restore_dsn_env or b.dsn_env


class Restore(Operation):
    name = "restore"
    title: ClassVar[dict[str, str]] = {"en": "Database restore", "ja": "データベースリストア"}
    needs_env = False
    # With an environment named, that environment is locked while its database is replaced.
    needs_lock = True
    destructive = True
    resumable = False  # psql ran in one transaction: after a crash, a person decides whether to run it again

    def check_request(self, svc: Services, req: Request) -> None:
        b = svc.config.backup
        backup_id = str(req.params.get("id") or "")
        try:
            key = resolve_key(backup_id, b.prefix)
        except BackupNotFound:
            raise OpError(key="op.restore.bad_id", id=backup_id, prefix=b.prefix) from None
        var = restore_target(svc, req.env)
        if var.upper() == "DATABASE_URL":
            raise OpError(key="op.restore.own_db")
        dsn = os.environ.get(var, "")
        if dsn and dsn == svc.settings.database_url:
            raise OpError(key="op.restore.same_dsn", name=var)
        busy = running_backup(svc)
        if busy is not None:
            raise _busy(busy)
        problems = []
        if aws_problem := aws_credentials_problem():
            problems.append(msg("op.sim.no_download", problem=aws_problem))
        if not dsn:
            problems.append(msg("op.sim.unset_restore", name=var))
        req.params.update(action="restore", id=_id_of(key), key=key, target_env=var)
        req.params.pop("simulated", None)
        if problems:
            req.params["simulated"] = problems

    def approval_required(self, svc: Services, job: Job, env: Environment | None) -> bool:
        return not job.dry_run  # always: it replaces a database's contents

    def describe(self, job: Job, lang: str = "en") -> str:
        where = job.environment or job.params.get("target_env", "")
        if lang == "ja":
            return f"バックアップ {job.params.get('id', '?')} を {where} にリストア"
        return f"Restore backup {job.params.get('id', '?')} into {where}"

    def prepare(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        var = ctx.params["target_env"]
        dsn = os.environ.get(var, "")
        key = ctx.params["key"]
        fields: list[tuple[str, str]] = [
            (ctx.t("op.field.backup"), f"`{ctx.params['id']}` (s3://{b.bucket}/{key})")
        ]
        extra: dict[str, Any] = {}
        if not ctx.params.get("simulated"):
            s3 = aws.client("s3")
            try:
                head = s3.head_object(Bucket=b.bucket, Key=key)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise self._not_found(s3, b, ctx.params["id"]) from None
                raise OpError(
                    key="op.restore.read_failed", bucket=b.bucket, object=key, error=s3_error(e)
                ) from None
            except BotoCoreError as e:
                raise OpError(
                    key="op.restore.read_failed", bucket=b.bucket, object=key, error=s3_error(e)
                ) from None
            sha = head.get("Metadata", {}).get("sha256")
            if not sha:
                raise OpRefused(key="op.restore.no_sha", id=ctx.params["id"])
            try:
                taken = blocks.slack_time(parse_id(ctx.params["id"]))
            except ValueError:
                taken = "?"
            fields += [
                (ctx.t("op.field.taken"), taken),
                (ctx.t("op.field.size"), human_bytes(int(head.get("ContentLength", 0)))),
                (ctx.t("op.field.sha256"), ctx.t("op.restore.sha_value", sha=sha)),
            ]
            extra["expected_sha256"] = sha
        into = safe_dsn(dsn) if dsn else ctx.t("op.restore.not_set")
        fields.append((ctx.t("op.field.restore_into"), f"{into} — ${var}"))
        verify = ctx.svc.config.backup.verify_command
        then = f"`{' '.join(verify)}`" if verify else ctx.t("op.restore.no_verify")
        fields.append((ctx.t("op.field.then"), then))
        ctx.save(fields=fields, flag=flag_for(ctx.job, ctx.svc.config.language), **extra)

    def _not_found(self, s3: Any, b: BackupConfig, backup_id: str) -> OpRefused:
        try:
            latest = [
                i.id
                for i in list_backups(s3, b.bucket, b.prefix, with_checksums=False)
                if i.key.endswith(".sql.gz")
            ]
        except BackupError:
            latest = []
        shown = ", ".join(f"`{i}`" for i in latest[:5]) or "none"
        return OpRefused(
            key="op.restore.not_found", id=backup_id, bucket=b.bucket, prefix=b.prefix, latest=shown
        )

    def run(self, ctx: JobContext) -> None:
        b = ctx.svc.config.backup
        var, key = ctx.params["target_env"], ctx.params["key"]
        if ctx.dry_run or ctx.params.get("simulated"):
            label = label_for(ctx.job, ctx.svc.config.language)
            ctx.step(ctx.t("op.restore.sim_download", bucket=b.bucket, object=key), Progress.INFO)
            ctx.step(ctx.t("op.restore.sim_replay", var=var), Progress.INFO)
            if b.verify_command:
                ctx.step(ctx.t("op.restore.sim_verify", command=" ".join(b.verify_command)), Progress.INFO)
            why = ctx.t("op.why.dry_run") if ctx.dry_run else simulated_why(ctx.job, ctx.lang)
            ctx.simulated(ctx.t("op.restore.sim_result", label=label, why=why))
            return
        take_backup_lock(ctx, f"restore of {ctx.params['id']}")
        dsn = os.environ.get(var, "")
        if not dsn:
            raise OpError(key="op.restore.dsn_unset", name=var)
        ctx.step(ctx.t("op.restore.downloading", bucket=b.bucket, object=key), Progress.RUNNING)
        progress = Throttled(ctx, ctx.t("op.restore.progress"))
        try:
            res = restore_backup(
                backup_id_or_key=key, s3=aws.client("s3"), bucket=b.bucket, prefix=b.prefix, dsn=dsn,
                progress=progress, psql=b.psql,
            )  # fmt: skip
        except ChecksumMismatch as e:
            ctx.record(
                "restored", outcome="refused", detail=str(e), bucket=b.bucket, key=key, into=safe_dsn(dsn)
            )
            ctx.step(ctx.t("op.restore.checksum_failed_step", error=e), Progress.FAILED)
            raise OpError(key="op.restore.checksum_failed", error=str(e)) from None
        except BackupError as e:
            ctx.record(
                "restored", outcome="error", detail=str(e), bucket=b.bucket, key=key, into=safe_dsn(dsn)
            )
            ctx.step(ctx.t("op.restore.failed_step", error=e), Progress.FAILED)
            raise OpError(key="op.restore.failed", error=str(e)) from None
        expected = ctx.progress.get("expected_sha256")
        if expected and expected != res.sha256:  # the object changed after approval: it was still verified
            ctx.step(ctx.t("op.restore.changed", before=expected[:12], after=res.sha256[:12]), Progress.INFO)
        ctx.step(ctx.t("op.restore.checksum_ok", sha=res.sha256[:12]), Progress.DONE)
        seconds = f"{res.seconds:.1f}"
        ctx.step(ctx.t("op.restore.restored", dsn=safe_dsn(dsn), seconds=seconds), Progress.DONE)
        ctx.record(
            "restored", save={"restored_sha256": res.sha256, "seconds": res.seconds}, bucket=b.bucket, key=key,
            sha256=res.sha256, expected_sha256=expected, into=safe_dsn(dsn), seconds=round(res.seconds, 3),
        )  # fmt: skip
        check = self._verify(ctx, b, dsn)
        ctx.save(
            result=ctx.t("op.restore.result", id=ctx.params["id"], dsn=safe_dsn(dsn), sha=res.sha256[:12],
                         seconds=seconds, check=check)
        )  # fmt: skip

    def _verify(self, ctx: JobContext, b: BackupConfig, dsn: str) -> str:
        """The guide's `npm run db:verify`, run with DATABASE_URL pointing at the restored database."""
        if not b.verify_command:
            ctx.step(ctx.t("op.restore.no_verify_step"), Progress.INFO)
            return ctx.t("op.restore.no_verify_result")
        cmd = " ".join(b.verify_command)
        ctx.step(ctx.t("op.restore.running", command=cmd), Progress.RUNNING)
        ok, tail = run_verify_command(
            list(b.verify_command), {"DATABASE_URL": dsn}, timeout_s=b.verify_timeout_seconds
        )
        last = tail.strip().splitlines()[-1] if tail.strip() else ctx.t("op.restart.no_output")
        ctx.record("verify_command", outcome="ok" if ok else "failed", command=cmd, last_line=last)
        if not ok:
            ctx.step(ctx.t("op.restore.verify_failed_step", command=cmd, last=last), Progress.FAILED)
            raise OpError(key="op.restore.verify_failed", command=cmd, last=last)
        ctx.step(ctx.t("op.restore.verify_passed_step", command=cmd, last=last), Progress.DONE)
        return ctx.t("op.restore.verify_passed", command=cmd)


# --- backup list ------------------------------------------------------------------------------------


def list_reply(svc: Services, lang: str = "en") -> Reply:
    """`/taisun backup list`: read the list from S3 (off the ack path) and show it; Refused when
    S3 would not answer."""
    b = svc.config.backup
    where = f"s3://{b.bucket}/{b.prefix}"
    problem = render(aws_credentials_problem(), lang)
    if problem:
        return messages.backup_list_cannot(where, problem, lang)
    try:
        items = [i for i in list_backups(aws.client("s3"), b.bucket, b.prefix) if i.key.endswith(".sql.gz")]
    except BackupError as e:
        raise Refused(t("op.backup.list.failed", lang, error=e)) from None
    except (ClientError, BotoCoreError) as e:
        raise Refused(t("op.backup.list.failed_in", lang, where=where, error=s3_error(e))) from None
    if not items:
        return messages.backup_list_empty(where, lang)
    return messages.backup_list(items, where, b.retention_days, lang)


# --- taisun backup run (cron / systemd timer) -----------------------------------------------------------


def _supersede_dead_cli_jobs(svc: Services) -> None:
    """A cron backup killed mid-way leaves a job whose lease ran out; with no server to resume it
    it would block every later run. Cancel those (audited) before starting."""
    now = datetime.now(UTC)
    with svc.sessions() as s:
        dead = list(
            s.scalars(
                select(Job.id).where(
                    Job.operation == "backup", Job.requested_by == CLI_ACTOR,
                    Job.state.in_(JobState.FOR_WORKERS),
                    Job.lease_expires_at.is_not(None), Job.lease_expires_at < now - timedelta(seconds=5),
                )
            )
        )  # fmt: skip
    for job_id in dead:
        # OpError: a server replica picked it up meanwhile; the busy check then reports it.
        with contextlib.suppress(OpError):
            svc.jobs.cancel(
                job_id, CLI_ACTOR, CLI_NAME, reason="its process stopped; superseded by a new run"
            )


def _start_cli_job(svc: Services) -> Job:
    channel = svc.config.slack.report_channel
    req = Request("backup", None, {"action": "run", "trigger": "cli"}, CLI_ACTOR, CLI_NAME, channel)
    op = REGISTRY["backup"]
    try:
        op.check_request(svc, req)
    except OpError as e:
        audit_refusal(svc, req, e)
        raise
    t = datetime.now(UTC)
    job = Job(
        id=str(uuid.uuid4()), operation="backup", environment="", params=req.params, state=JobState.VALIDATING,
        requested_by=CLI_ACTOR, requested_by_name=CLI_NAME, channel=channel, created_at=t, updated_at=t,
        # Leased to this process from the start: no server replica takes it while it runs here.
        lease_owner=svc.runner.owner, lease_expires_at=t + svc.runner.lease, attempts=1,
    )  # fmt: skip
    with svc.sessions.begin() as s:
        s.add(job)
        s.flush()
        audit.append(
            s, actor_id=CLI_ACTOR, actor_name=CLI_NAME, action="backup.requested", channel=channel,
            params=job.params, outcome="ok", job_id=job.id,
        )  # fmt: skip
    return job


def cli_summary(job: Job) -> dict[str, Any]:
    """What `taisun backup run --json` prints: `state` is the backup's outcome (succeeded, failed,
    simulated, ...) and `job_state` the same job state (kept for scripts that read it); `ok` is
    true only when a backup was stored."""
    p = job.progress or {}
    # A simulated nightly backup backed nothing up: its job ends `simulated`, and for cron that is
    # a failure to notice ("ok": false).
    return {
        "ok": job.state == JobState.SUCCEEDED,
        "job_id": job.id,
        "state": job.state,
        "job_state": job.state,
        # The command line speaks English (the card keeps the workspace language).
        "result": p.get("cli_result") or to_plain(job.result or ""),
        "simulated": simulated_why(job, "en") or None,
        "id": p.get("backup_id"),
        "key": p.get("key"),
        "size_bytes": p.get("size_bytes"),
        "raw_bytes": p.get("raw_bytes"),
        "sha256": p.get("sha256"),
        "seconds": p.get("seconds"),
        "throughput_bytes_per_s": p.get("throughput_bytes_per_s"),
        "retention_deleted": p.get("retention_deleted", []),
        "memory_key": p.get("memory_key") or None,
    }


def run_cli_backup(svc: Services, *, json_output: bool = False) -> int:
    """`taisun backup run`: the backup operation in this process (`svc` built with no job workers),
    its result on stdout (and in Slack). Stops the services it was given when done.

    Exit code 0 when the backup was stored ("ok": true, "state": "succeeded"), 1 otherwise: failed,
    refused, or "simulated" (credentials or the DSN variable missing: nothing was backed up)."""
    try:
        ensure_migrated(svc.engine)
        ensure_not_shell_database(svc.engine)  # its report would go to the real report channel
        _supersede_dead_cli_jobs(svc)
        try:
            job = _start_cli_job(svc)
        except OpError as e:
            _print({"ok": False, "state": JobState.REFUSED, "result": str(e)}, json_output, error=True)
            return 1
        svc.runner.start()  # with no workers: only the lease heartbeat for this job
        progress = sys.stderr.isatty() and not json_output
        if progress:
            svc.outbox.job_hooks.append(lambda: _show_progress(svc, job.id))
        svc.runner.execute(job.id)
        if progress:
            print(file=sys.stderr)
        job = svc.jobs.get(job.id)
        summary = cli_summary(job)
        _print(summary, json_output, error=not summary["ok"])
        if svc.settings.slack_bot_token:
            text, body = messages.report_blocks(job, summary, svc.config.language)
            try:
                svc.slack.chat_postMessage(channel=svc.config.slack.report_channel, text=text, blocks=body)
            except Exception as e:  # the backup's outcome stands; say the report did not go out
                print(f"taisun: could not post the result to Slack: {type(e).__name__}: {e}", file=sys.stderr)
        return 0 if summary["ok"] else 1
    finally:
        svc.runner.stop()
        svc.background.shutdown(wait=False)
        svc.engine.dispose()


def _show_progress(svc: Services, job_id: str) -> None:
    """On a terminal, the job's newest step on one line that rewrites itself (bytes so far...)."""
    with svc.sessions() as s:
        job = s.get(Job, job_id)
    steps = (job.progress.get("steps") or []) if job else []
    if steps:
        line = to_plain(steps[-1]["text"]).replace("`", "").replace("*", "")
        print(f"\r\033[K{line[:150]}", end="", file=sys.stderr, flush=True)


def _print(summary: dict[str, Any], json_output: bool, error: bool) -> None:
    if json_output:
        print(json.dumps(summary, ensure_ascii=False))
        return
    print(summary["result"] or summary["state"], file=sys.stderr if error else sys.stdout)
