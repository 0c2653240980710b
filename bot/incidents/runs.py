"""Runbook runs: a runbook walked as a checklist in Slack, every step's state in the database.

A run is one checklist message; check results and action outcomes are replied in its
thread. Step states move only by conditional UPDATEs (a double click or two replicas
change a step once), each with an audit row — and, for a run tied to an incident, a
timeline entry — in the same transaction.

    manual: pending → done | skipped
    check:  pending → running → passed | failed   (runs by itself when its turn comes)
    action: pending → running (a job: roles, approval, locks) → done | failed
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core import audit, i18n
from bot.core.claims import Claim
from bot.core.config import Config, Environment
from bot.core.logs import redact
from bot.core.mrkdwn import Mrkdwn, mention, to_plain, trusted
from bot.core.ops import REGISTRY, OpError, Request
from bot.core.outbox import Managed, Syncer, claim_message, outbox
from bot.core.states import JobState, RunState, StepState
from bot.core.store.models import Incident, Job, RunbookRun, RunbookStep
from bot.incidents import messages as blocks_incident
from bot.incidents.messages import RunView, StepView
from bot.incidents.runbooks import (
    Check,
    Runbook,
    RunbookError,
    default_runbook_dir,
    load_runbook,
    resolve_runbook,
)
from bot.incidents.timeline import add_event, on_checklist_change

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)
# A step's job_state while its job is being requested (the job has no id yet): the step is taken.
REQUESTING = "requesting"
# Posting a run's checklist is claimed in the run's own columns (bot.core.claims).
MESSAGE_CLAIM = Claim(RunbookRun.message_claimed_at, RunbookRun.message_claimed_by)

CHECK_TIMEOUT_SECONDS = 10.0
SQL_STATEMENT_TIMEOUT_MS = 5000
SQL_MAX_ROWS = 20
# A check claimed by a replica that died is retried after this long.
STALE_CHECK = timedelta(minutes=2)


class RunbookRunError(OpError):
    """A runbook or step request that cannot be done; the message says why and what to do."""


def now() -> datetime:
    return datetime.now(UTC)


def subject(run_id: str) -> str:
    return f"run:{run_id}"


# --------------------------------------------------------------------------- the catalog


@dataclass
class Catalog:
    """The valid runbooks, and one RunbookError per file that is not (they are never run)."""

    runbooks: dict[str, Runbook] = field(default_factory=dict)
    errors: list[RunbookError] = field(default_factory=list)
    directory: Path | None = None

    def error_for(self, name: str) -> RunbookError | None:
        key = name.strip().lower().removesuffix(".yml").removesuffix(".yaml")
        return next((e for e in self.errors if e.path is not None and e.path.stem.lower() == key), None)


_catalog_cache: dict[str, tuple[tuple[Any, ...], Catalog]] = {}


def _signature(directory: Path) -> tuple[Any, ...]:
    try:
        return tuple(
            sorted(
                (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir() if p.is_file()
            )
        )
    except OSError:
        return ()


def load_catalog(directory: Path | str | None = None) -> Catalog:
    """Every runbooks/*.yml, valid or not; reloaded only when a file changed."""
    path = Path(directory) if directory is not None else default_runbook_dir()
    sig = _signature(path)
    hit = _catalog_cache.get(str(path))
    if hit and hit[0] == sig:
        return hit[1]
    catalog = Catalog(directory=path)
    if not path.is_dir():
        catalog.errors.append(
            RunbookError(f"{path}: runbook directory not found (set TAISUN_RUNBOOKS)", path=path)
        )
        return catalog
    files = sorted(
        p
        for p in path.iterdir()
        if p.suffix in (".yml", ".yaml") and not p.name.startswith(".") and p.is_file()
    )
    for file in files:
        try:
            book = load_runbook(file)
        except RunbookError as e:
            catalog.errors.append(e)
            continue
        if book.id in catalog.runbooks:
            catalog.errors.append(RunbookError(f"{file}: id {book.id!r} is defined twice", path=file))
            continue
        catalog.runbooks[book.id] = book
    catalog.runbooks = dict(sorted(catalog.runbooks.items()))
    _catalog_cache[str(path)] = (sig, catalog)
    return catalog


def find_runbook(name: str, catalog: Catalog | None = None) -> Runbook:
    """The runbook called `name`; a malformed file is refused with its file and step."""
    catalog = catalog or load_catalog()
    book = resolve_runbook(catalog.runbooks, name)
    if book is not None:
        return book
    bad = catalog.error_for(name)
    if bad is not None:
        raise RunbookRunError(key="rb.err.invalid", name=name, problems="\n".join(bad.problems[:10]))
    ids = ", ".join(f"`{i}`" for i in catalog.runbooks) or "none"
    raise RunbookRunError(key="rb.err.unknown", name=name, ids=ids)


def default_environment(config: Config) -> Environment | None:
    """Where incidents happen unless told otherwise: production (or prod), else the last one."""
    env = config.resolve_env("production") or config.resolve_env("prod")
    if env is not None:
        return env
    envs = list(config.environments.values())
    return envs[-1] if envs else None


def needs_environment(book: Runbook) -> bool:
    return any(s.kind != "manual" for s in book.steps)


# --------------------------------------------------------------------------- starting a run


def create_run(
    s: Session,
    book: Runbook,
    *,
    environment: str,
    user_id: str,
    user_name: str,
    channel: str,
    thread_ts: str = "",
    drill: bool = False,
    incident_id: int | None = None,
    alert_group_id: int | None = None,
) -> RunbookRun:
    """Add a run and its steps to the caller's transaction (with its audit row)."""
    t = now()
    run = RunbookRun(
        id=str(uuid.uuid4()),
        runbook_id=book.id,
        definition=book.model_dump(mode="json", exclude_none=True),
        environment=environment,
        drill=drill,
        incident_id=incident_id,
        alert_group_id=alert_group_id,
        started_by=user_id,
        started_by_name=user_name,
        channel=channel,
        thread_ts=thread_ts,
        created_at=t,
        updated_at=t,
    )
    s.add(run)
    s.flush()
    for position, step in enumerate(book.steps, 1):
        s.add(
            RunbookStep(
                run_id=run.id,
                step_id=step.id,
                position=position,
                kind=step.kind,
                phase=step.phase or "",
                updated_at=t,
            )
        )
    audit.append(
        s,
        actor_id=user_id,
        actor_name=user_name,
        action="runbook.started",
        environment=environment,
        channel=channel,
        params={"run": run.id, "runbook": book.id, "drill": drill, "incident_id": incident_id},
        outcome="ok",
    )
    return run


def start_run(
    svc: Services,
    book: Runbook,
    env: Environment | None,
    *,
    user_id: str,
    user_name: str,
    channel: str,
    thread_ts: str = "",
    drill: bool = False,
    incident_id: int | None = None,
    alert_group_id: int | None = None,
) -> RunbookRun:
    """Start a run in its own transaction; the checklist is posted by the sender thread."""
    if env is None and needs_environment(book):
        names = ", ".join(svc.config.environments)
        raise RunbookRunError(key="rb.err.needs_env", id=book.id, envs=names)
    with svc.sessions.begin() as s:
        run = create_run(
            s,
            book,
            environment=env.name if env else "",
            user_id=user_id,
            user_name=user_name,
            channel=channel,
            thread_ts=thread_ts,
            drill=drill,
            incident_id=incident_id,
            alert_group_id=alert_group_id,
        )
        if incident_id is not None:
            add_event(
                s,
                incident_id,
                "runbook",
                i18n.msg("inc.ev.runbook", title=book.title_for(svc.config.language)),
                user_id,
            )
    svc.outbox.mark(subject(run.id), *([f"inc:{incident_id}"] if incident_id else []))
    schedule_due_checks(svc, run.id)
    return run


# --------------------------------------------------------------------------- reading


@dataclass
class LoadedRun:
    run: RunbookRun
    book: Runbook
    steps: dict[str, RunbookStep]
    incident: Incident | None


def load_run(svc: Services, run_id: str) -> LoadedRun:
    with svc.sessions() as s:
        run = s.get(RunbookRun, run_id)
        if run is None:
            raise RunbookRunError(key="rb.err.run_gone")
        steps = {st.step_id: st for st in s.scalars(select(RunbookStep).where(RunbookStep.run_id == run_id))}
        incident = s.get(Incident, run.incident_id) if run.incident_id else None
    return LoadedRun(run, Runbook.model_validate(run.definition), steps, incident)


def is_flow(run: RunbookRun) -> bool:
    return run.definition.get("kind") == "incident-flow"


def run_view(loaded: LoadedRun) -> RunView:
    run = loaded.run
    return RunView(
        id=run.id,
        runbook=loaded.book,
        environment=run.environment,
        drill=run.drill,
        state=run.state,
        started_by=run.started_by,
        created_at=run.created_at,
        finished_at=run.finished_at,
        incident_ref=loaded.incident.ref if loaded.incident else "",
        current_phase=loaded.incident.phase if loaded.incident and is_flow(run) else "",
        steps={
            sid: StepView(
                state=st.state,
                actor_id=st.actor_id,
                reason=st.reason,
                result=st.result,
                job_id=st.job_id,
                job_state=st.job_state,
                updated_at=st.updated_at,
            )
            for sid, st in loaded.steps.items()
        },
    )


def _home(loaded_run: RunbookRun, incident: Incident | None) -> tuple[str, str] | None:
    """(channel, thread_ts) the checklist is posted into; None while that thread does not exist."""
    if loaded_run.channel:
        return loaded_run.channel, loaded_run.thread_ts
    if incident is not None and incident.channel and incident.header_ts:
        return incident.channel, incident.header_ts
    return None


# --------------------------------------------------------------------------- step changes


def _lock_run(s: Session, run_id: str) -> RunbookRun:
    """Serialise changes to one run (and its incident) so completion and phase moves are seen once."""
    run = s.scalars(select(RunbookRun).where(RunbookRun.id == run_id).with_for_update()).one_or_none()
    if run is None:
        raise RunbookRunError(key="rb.err.run_gone")
    if run.incident_id:
        s.execute(select(Incident.id).where(Incident.id == run.incident_id).with_for_update())
    return run


def _conflict(s: Session, run_id: str, step_id: str) -> RunbookRunError:
    st = s.scalars(
        select(RunbookStep).where(RunbookStep.run_id == run_id, RunbookStep.step_id == step_id)
    ).first()
    if st is None:
        return RunbookRunError(key="rb.err.no_step", step=step_id)
    user = mention(st.actor_id) if st.actor_id else ""
    if st.state in (StepState.DONE, StepState.SKIPPED):
        key = f"rb.err.{st.state}_by" if user else f"rb.err.{st.state}"
        return RunbookRunError(key=key, user=user, reason=st.reason)
    if st.state in (StepState.PASSED, StepState.RUNNING, StepState.FAILED, StepState.PENDING):
        return RunbookRunError(key=f"rb.err.{st.state}")
    return RunbookRunError(key="rb.err.state", state=st.state)


def _transition(
    svc: Services,
    run_id: str,
    step_id: str,
    *,
    from_states: tuple[StepState, ...],
    values: dict[str, Any],
    actor_id: str,
    actor_name: str,
    action: str,
    outcome: str = "ok",
    detail: str = "",
    timeline: i18n.Msg | None = None,
    thread_note: str = "",
    where_extra: tuple[Any, ...] = (),
    job_id: str = "",
) -> None:
    """Move one step in one transaction: conditional update, audit, timeline, thread note, phase."""
    t = now()
    with svc.sessions.begin() as s:
        run = _lock_run(s, run_id)
        res = s.execute(
            update(RunbookStep)
            .where(
                RunbookStep.run_id == run_id,
                RunbookStep.step_id == step_id,
                RunbookStep.state.in_(from_states),
                *where_extra,
            )
            .values(**values, updated_at=t)
        )
        if res.rowcount != 1:
            raise _conflict(s, run_id, step_id)
        audit.append(
            s,
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            environment=run.environment,
            channel=run.channel,
            params={"run": run_id, "runbook": run.runbook_id, "step": step_id, "drill": run.drill},
            outcome=outcome,
            detail=detail,
            job_id=job_id,
        )
        if run.incident_id and timeline:
            add_event(s, run.incident_id, "step", timeline, actor_id, at=t, data={"step": step_id})
        if thread_note:
            outbox(s, subject(run_id), thread_note)
        _after_change(svc, s, run, t)
    svc.outbox.mark(subject(run_id), *([f"inc:{run.incident_id}"] if run.incident_id else []))


def _after_change(svc: Services, s: Session, run: RunbookRun, t: datetime) -> None:
    """Complete the run when every step is finished; move the incident's phase."""
    s.flush()
    states = list(s.scalars(select(RunbookStep.state).where(RunbookStep.run_id == run.id)))
    run.updated_at = t
    if run.state == RunState.OPEN and states and all(st in StepState.TERMINAL for st in states):
        run.state, run.finished_at = RunState.COMPLETED, t
        audit.append(
            s,
            actor_id="taisun",
            actor_name="TAISUN",
            action="runbook.completed",
            environment=run.environment,
            channel=run.channel,
            params={"run": run.id, "runbook": run.runbook_id},
            outcome="ok",
        )
        outbox(s, subject(run.id), i18n.t("rb.msg.complete", svc.config.language))
    if run.incident_id and is_flow(run):
        on_checklist_change(svc, s, run.incident_id, run, t)


def _title(svc: Services, loaded: LoadedRun, step_id: str) -> str:
    return loaded.book.step(step_id).title_for(svc.config.language)


def complete_step(svc: Services, run_id: str, step_id: str, user_id: str, user_name: str) -> None:
    """Done: a person did it (also for a check or action done by hand)."""
    loaded = load_run(svc, run_id)
    title = _title(svc, loaded, step_id)
    _transition(
        svc, run_id, step_id, from_states=tuple(StepState.OPEN),
        values={"state": StepState.DONE, "actor_id": user_id},
        actor_id=user_id, actor_name=user_name, action="runbook.step_done",
        timeline=i18n.msg("inc.ev.step_done", title=title),
    )  # fmt: skip
    schedule_due_checks(svc, run_id)


def skip_step(svc: Services, run_id: str, step_id: str, user_id: str, user_name: str, reason: str) -> None:
    reason = reason.strip()
    if not reason:
        raise RunbookRunError(key="rb.err.skip_reason")
    loaded = load_run(svc, run_id)
    title = _title(svc, loaded, step_id)
    _transition(
        svc, run_id, step_id, from_states=tuple(StepState.OPEN),
        values={"state": StepState.SKIPPED, "actor_id": user_id, "reason": reason[:500]},
        actor_id=user_id, actor_name=user_name, action="runbook.step_skipped", outcome="skipped",
        detail=reason, timeline=i18n.msg("inc.ev.step_skipped", title=title, reason=reason),
    )  # fmt: skip
    schedule_due_checks(svc, run_id)


# --------------------------------------------------------------------------- checks


def schedule_due_checks(svc: Services, run_id: str) -> list[str]:
    """Claim the checks whose turn has come and run them off the ack path; returns their ids."""
    loaded = load_run(svc, run_id)
    if loaded.run.state != RunState.OPEN:
        return []
    due = due_checks(loaded)
    started = []
    for step_id in due:
        if _claim_check(svc, run_id, step_id, (StepState.PENDING,)):
            started.append(step_id)
            svc.later(lambda sid=step_id: run_check(svc, run_id, sid))  # type: ignore[misc]
    if started:
        svc.outbox.mark(subject(run_id))
    return started


def due_checks(loaded: LoadedRun) -> list[str]:
    """Pending checks whose turn has come.

    In an incident flow, a check runs when its phase is reached (the health check at
    declaration, the recovery checks at Recovery); elsewhere, when every step before it
    is finished (the health check after the restart).
    """
    book, steps = loaded.book, loaded.steps
    out = []
    if is_flow(loaded.run) and book.phases:
        phase = loaded.incident.phase if loaded.incident else book.phases[0]
        reached = book.phases[: book.phases.index(phase) + 1] if phase in book.phases else book.phases[:1]
        for step in book.steps:
            st = steps.get(step.id)
            if step.check is not None and st and st.state == StepState.PENDING and step.phase in reached:
                out.append(step.id)
        return out
    for step in book.steps:
        st = steps.get(step.id)
        if st is None:
            continue
        if step.check is not None and st.state == StepState.PENDING:
            out.append(step.id)
        if st.state not in StepState.TERMINAL:
            break
    return out


def _claim_check(
    svc: Services, run_id: str, step_id: str, from_states: tuple[StepState, ...], actor_id: str = ""
) -> bool:
    with svc.sessions.begin() as s:
        res = s.execute(
            update(RunbookStep)
            .where(RunbookStep.run_id == run_id, RunbookStep.step_id == step_id, RunbookStep.state.in_(from_states))
            .values(
                state=StepState.RUNNING, started_at=now(), updated_at=now(), attempts=RunbookStep.attempts + 1,
                job_id="", job_state="", **({"actor_id": actor_id} if actor_id else {}),
            )
        )  # fmt: skip
        return bool(res.rowcount == 1)


def recheck(svc: Services, run_id: str, step_id: str, user_id: str, user_name: str) -> None:
    """The Run check button: run (again) now."""
    loaded = load_run(svc, run_id)
    if loaded.book.step(step_id).check is None:
        raise RunbookRunError(key="rb.err.not_check")
    if not _claim_check(
        svc, run_id, step_id, (StepState.PENDING, StepState.FAILED, StepState.PASSED), actor_id=user_id
    ):
        with svc.sessions() as s:
            raise _conflict(s, run_id, step_id)
    svc.outbox.mark(subject(run_id))
    svc.later(lambda: run_check(svc, run_id, step_id, requested_by=user_id, requested_by_name=user_name))


def run_check(
    svc: Services, run_id: str, step_id: str, requested_by: str = "", requested_by_name: str = ""
) -> None:
    """Execute a claimed check and record passed/failed with what it saw."""
    loaded = load_run(svc, run_id)
    step = loaded.book.step(step_id)
    assert step.check is not None
    env = svc.config.environments.get(loaded.run.environment)
    started = time.monotonic()
    try:
        ok, text = execute_check(env, step.check, svc.config.language)
    except Exception as e:  # a check must end in a result, never stay "running"
        log.exception("check crashed", extra={"run": run_id, "step": step_id})
        ok, text = False, i18n.t("chk.crashed", svc.config.language, error=type(e).__name__)
    text = Mrkdwn(redact(text))  # rendered by t(): what the check saw is escaped in it
    took = f" ({int((time.monotonic() - started) * 1000)} ms)"
    title = step.title_for(svc.config.language)
    icon = "✅" if ok else "❌"
    note = i18n.t(
        "rb.msg.check_by" if requested_by else "rb.msg.check", svc.config.language,
        icon=icon, title=title, check=step.check.describe(), user=mention(requested_by), text=text, took=took,
    )  # fmt: skip
    try:
        _transition(
            svc, run_id, step_id, from_states=(StepState.RUNNING,),
            values={"state": StepState.PASSED if ok else StepState.FAILED, "result": text[:2000]},
            actor_id=requested_by or "taisun", actor_name=requested_by_name or "TAISUN",
            action="runbook.check_passed" if ok else "runbook.check_failed",
            outcome="ok" if ok else "error", detail=text[:500],
            timeline=i18n.msg("inc.ev.check_passed" if ok else "inc.ev.check_failed", title=title,
                              text=to_plain(text)[:300]),
            thread_note=note,
            where_extra=(RunbookStep.job_id == "",),
        )  # fmt: skip
    except RunbookRunError:
        return  # someone marked it done or skipped meanwhile
    schedule_due_checks(svc, run_id)


def execute_check(env: Environment | None, check: Check, lang: str = "en") -> tuple[bool, str]:
    """Run one check against an environment: (passed, what was seen in `lang`)."""
    if env is None:
        return False, i18n.t("chk.no_env", lang)
    if check.http is not None:
        return _http_check(env, check, lang)
    return _sql_check(env, check, lang)


def _json_subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _json_subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def _http_check(env: Environment, check: Check, lang: str) -> tuple[bool, str]:
    http = check.http
    assert http is not None
    if not env.url:
        return False, i18n.t("chk.no_url", lang, env=env.name)
    url = env.url + http.path
    try:
        with httpx.Client(timeout=CHECK_TIMEOUT_SECONDS, follow_redirects=False) as client:
            resp = client.get(url)
    except httpx.TimeoutException:
        return False, i18n.t("chk.http_timeout", lang, url=url, seconds=f"{CHECK_TIMEOUT_SECONDS:g}")
    except httpx.HTTPError as e:
        return False, i18n.t("chk.http_unreachable", lang, url=url, error=type(e).__name__)
    body = resp.text.strip().replace("\n", " ")[:200]
    fields = {"url": url, "status": resp.status_code, "body": body}
    if resp.status_code != http.expect_status:
        return False, i18n.t("chk.http_status", lang, expected=http.expect_status, **fields)
    if http.expect_json is not None:
        try:
            data = resp.json()
        except ValueError:
            return False, i18n.t("chk.http_not_json", lang, **fields)
        if not _json_subset(http.expect_json, data):
            return False, i18n.t("chk.http_json_mismatch", lang, expected=http.expect_json, **fields)
    return True, i18n.t("chk.http_ok", lang, **fields)


def _sql_check(env: Environment, check: Check, lang: str) -> tuple[bool, str]:
    """A read-only query: READ ONLY transaction, statement timeout, a few rows shown."""
    import psycopg

    sql = check.sql
    assert sql is not None
    if env.database is None:
        return False, i18n.t("chk.no_database", lang, env=env.name)
    dsn = os.environ.get(env.database.dsn_env, "")
    if not dsn:
        return False, i18n.t("chk.dsn_unset", lang, name=env.database.dsn_env, env=env.name)
    dsn = dsn.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {SQL_STATEMENT_TIMEOUT_MS}")
            cur = conn.execute(sql.query)  # type: ignore[arg-type]  # validated read-only at load time
            names = [c.name for c in cur.description or []]
            rows = cur.fetchmany(SQL_MAX_ROWS + 1) if cur.description else []
    except psycopg.errors.QueryCanceled:
        return False, i18n.t("chk.sql_timeout", lang, seconds=SQL_STATEMENT_TIMEOUT_MS // 1000)
    except psycopg.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, i18n.t("chk.sql_failed", lang, error=first)
    more = "\n…" if len(rows) > SQL_MAX_ROWS else ""
    table = "\n".join(" | ".join(str(v) for v in row) for row in rows[:SQL_MAX_ROWS])
    head = " | ".join(names)
    return True, i18n.t(
        "chk.sql_rows", lang, n=len(rows[:SQL_MAX_ROWS]), table=f"```{head}\n{table}{more}```"
    )


# --------------------------------------------------------------------------- actions


def request_action(
    svc: Services,
    run_id: str,
    step_id: str,
    user_id: str,
    user_name: str,
    *,
    channel: str = "",
    version: str = "",
) -> Job:
    """The Run button: the operation goes through the normal request path (roles, approval, locks)."""
    loaded = load_run(svc, run_id)
    run = loaded.run
    step = loaded.book.step(step_id)
    if step.action is None:
        raise RunbookRunError(key="rb.err.not_action")
    op = step.action.operation
    if op not in REGISTRY:
        raise RunbookRunError(key="rb.err.op_unavailable", op=op)
    env = svc.config.environments.get(run.environment)
    if env is None:
        raise RunbookRunError(key="rb.err.no_env", id=run.runbook_id)
    # The operation shapes its own parameters (and asks for a version now, in the step's form,
    # rather than failing the step after a click).
    params = REGISTRY[op].runbook_request(svc, step.action.resolved_params(), env, version)
    current = loaded.steps[step_id].state
    if current not in StepState.OPEN:
        with svc.sessions() as s:
            raise _conflict(s, run_id, step_id)
    with svc.sessions.begin() as s:
        res = s.execute(
            update(RunbookStep)
            .where(RunbookStep.run_id == run_id, RunbookStep.step_id == step_id, RunbookStep.state == current)
            .values(state=StepState.RUNNING, job_id="", job_state=REQUESTING, actor_id=user_id,
                    started_at=now(), updated_at=now(), attempts=RunbookStep.attempts + 1)
        )  # fmt: skip
        if res.rowcount != 1:
            raise _conflict(s, run_id, step_id)
    where = channel or run.channel or (loaded.incident.channel if loaded.incident else "")
    # Mirror the slash command: an operation without an environment (backup) gets none.
    job_env = env if REGISTRY[op].needs_env else None
    try:
        job = svc.jobs.request(
            Request(op, job_env, params, user_id, user_name, channel=where or svc.config.slack.ops_channel,
                    dry_run=run.drill)
        )  # fmt: skip
    except Exception:
        with svc.sessions.begin() as s:
            s.execute(
                update(RunbookStep)
                .where(RunbookStep.run_id == run_id, RunbookStep.step_id == step_id,
                       RunbookStep.state == StepState.RUNNING, RunbookStep.job_state == REQUESTING)
                .values(state=current, job_state="", updated_at=now())
            )  # fmt: skip
        raise
    title = step.title_for(svc.config.language)
    what = svc.describe(job)
    note = i18n.t(
        "rb.msg.action_dry" if job.dry_run else "rb.msg.action", svc.config.language,
        user=mention(user_id), title=title, what=what, job=job.id[:8],
    )  # fmt: skip
    _transition(
        svc, run_id, step_id, from_states=(StepState.RUNNING,),
        values={"job_id": job.id, "job_state": job.state},
        actor_id=user_id, actor_name=user_name, action="runbook.action_requested", job_id=job.id,
        detail=what,
        timeline=i18n.msg(
            "inc.ev.action_requested_dry" if job.dry_run else "inc.ev.action_requested",
            title=title, what=what, job=job.id[:8],
        ),
        thread_note=note,
        where_extra=(RunbookStep.job_state == REQUESTING,),
    )  # fmt: skip
    svc.outbox.tick_soon()
    return job


def poll_jobs(svc: Services) -> bool:
    """Follow the jobs action steps started; True while any is still going."""
    with svc.sessions() as s:
        rows = s.execute(
            select(RunbookStep, Job.state, Job.result, Job.approved_by)
            .join(Job, Job.id == RunbookStep.job_id)
            .where(RunbookStep.state == StepState.RUNNING, RunbookStep.job_id != "")
        ).all()
    waiting = False
    for step, job_state, job_result, approved_by in rows:
        if job_state not in JobState.FINAL:
            waiting = True
        if job_state == step.job_state:
            continue
        if job_state in JobState.FINAL:
            _finish_action(svc, step, job_state, job_result or "", approved_by or "")
        else:
            with svc.sessions.begin() as s:
                s.execute(
                    update(RunbookStep)
                    .where(RunbookStep.id == step.id, RunbookStep.job_state == step.job_state)
                    .values(job_state=job_state)
                )
            svc.outbox.mark(subject(step.run_id))
    return waiting


def _finish_action(svc: Services, step: RunbookStep, job_state: str, result: str, approved_by: str) -> None:
    loaded = load_run(svc, step.run_id)
    title = _title(svc, loaded, step.step_id)
    # A simulation ran to its end: the step is done, and it says that nothing was changed (the
    # job's own result would only repeat it; its card says why).
    ok = job_state in (JobState.SUCCEEDED, JobState.SIMULATED)
    icon = "🧪" if job_state == JobState.SIMULATED else "✅" if ok else "❌"
    shown = "" if job_state == JobState.SIMULATED else result
    lang = svc.config.language
    key = "rb.action.ended" + ("_approved" if approved_by else "") + ("_result" if shown else "")
    state = i18n.t(f"rb.job_final.{job_state}", lang) if job_state in JobState.FINAL else job_state
    # The job's result is mrkdwn the bot stored (like the step's result): shown as it is.
    text = i18n.t(key, lang, state=state, user=mention(approved_by), result=trusted(shown))
    try:
        _transition(
            svc, step.run_id, step.step_id, from_states=(StepState.RUNNING,),
            values={"state": StepState.DONE if ok else StepState.FAILED, "job_state": job_state, "result": text[:2000]},
            actor_id="taisun", actor_name="TAISUN", action="runbook.action_finished",
            outcome="ok" if ok else "error", detail=text[:500], job_id=step.job_id,
            timeline=i18n.msg(
                "inc.ev.action_ended_approved" if approved_by else "inc.ev.action_ended",
                state=i18n.msg(f"rb.job_final.{job_state}") if job_state in JobState.FINAL else job_state,
                title=title, job=step.job_id[:8], user=f"@{approved_by}", result=to_plain(result)[:300],
            ),
            thread_note=i18n.t("rb.msg.action_ended", lang, icon=icon, title=title, job=step.job_id[:8], text=text),
            where_extra=(RunbookStep.job_id == step.job_id, RunbookStep.job_state == step.job_state),
        )  # fmt: skip
    except RunbookRunError:
        return
    schedule_due_checks(svc, step.run_id)


# --------------------------------------------------------------------------- Slack messages


def _messages(svc: Services, key: str) -> list[Managed] | None:
    try:
        loaded = load_run(svc, key.split(":", 1)[1])
    except RunbookRunError:
        return None
    home = _home(loaded.run, loaded.incident)
    if home is None:
        return []
    view = run_view(loaded)
    lang = svc.config.language
    return [
        Managed(
            slot="checklist",
            channel=home[0],
            thread_ts=home[1],
            ts=loaded.run.message_ts,
            text=blocks_incident.checklist_text(view, lang),
            blocks=blocks_incident.checklist_blocks(view, lang),
            fallback_channel=svc.config.slack.ops_channel,
        )
    ]


def _store(svc: Services, key: str, slot: str, channel: str, ts: str) -> None:
    run_id = key.split(":", 1)[1]
    with svc.sessions.begin() as s:
        run = s.get(RunbookRun, run_id)
        if run is None:
            return
        run.message_ts = ts
        run.message_claimed_at, run.message_claimed_by = None, ""
        if ts and not run.channel:
            # An incident checklist: remember where it is so replies never depend on the header again.
            incident = s.get(Incident, run.incident_id) if run.incident_id else None
            run.channel = channel
            run.thread_ts = incident.header_ts if incident else ""
        elif ts and not run.thread_ts:
            run.channel = channel  # Slack's id for a #name, or the fallback channel it went to


def _thread(svc: Services, key: str) -> tuple[str, str] | None:
    with svc.sessions() as s:
        run = s.get(RunbookRun, key.split(":", 1)[1])
    if run is None or not run.message_ts or not run.channel:
        return None
    return run.channel, run.thread_ts or run.message_ts


def sweep(svc: Services) -> None:
    """Recover what a dead replica left: stale check claims, unfollowed jobs, unsent replies."""
    sync = svc.outbox
    t = now()
    with svc.sessions() as s:
        stale = list(
            s.execute(
                select(RunbookStep.run_id, RunbookStep.step_id).where(
                    RunbookStep.state == StepState.RUNNING,
                    RunbookStep.kind == "check",
                    RunbookStep.job_id == "",
                    RunbookStep.started_at < t - STALE_CHECK,
                )
            )
        )
        jobs_waiting = s.scalar(
            select(RunbookStep.id)
            .where(RunbookStep.state == StepState.RUNNING, RunbookStep.job_id != "")
            .limit(1)
        )
        open_runs = list(s.scalars(select(RunbookRun.id).where(RunbookRun.state == RunState.OPEN).limit(200)))
    for run_id, step_id in stale:
        with svc.sessions.begin() as s:
            s.execute(
                update(RunbookStep)
                .where(RunbookStep.run_id == run_id, RunbookStep.step_id == step_id, RunbookStep.state == StepState.RUNNING,
                       RunbookStep.started_at < t - STALE_CHECK)
                .values(state=StepState.PENDING, updated_at=t)
            )  # fmt: skip
        schedule_due_checks(svc, run_id)
    if jobs_waiting:
        sync.tick_soon()
    # Re-render open checklists: overdue marks appear, and a restart's missed edits are made.
    sync.mark(*(subject(r) for r in open_runs), *(k for k in sync.pending_subjects() if k.startswith("run:")))


def install(svc: Services) -> None:
    sync = svc.outbox
    if "run" in sync.syncers:
        return
    sync.register(
        Syncer(
            prefix="run",
            messages=lambda key: _messages(svc, key),
            claim=lambda key, slot: claim_message(
                svc.sessions, RunbookRun.message_ts, MESSAGE_CLAIM, RunbookRun.id == key.split(":", 1)[1]
            ),
            store=lambda key, slot, channel, ts: _store(svc, key, slot, channel, ts),
            thread=lambda key: _thread(svc, key),
        )
    )
    sync.add_ticker(lambda: poll_jobs(svc))
    svc.sweep_hooks.append(lambda: sweep(svc))
