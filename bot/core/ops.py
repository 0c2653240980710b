"""What every operation module provides, and the context a running job gets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from bot.core.commands import Spec, register_command
from bot.core.config import Environment
from bot.core.i18n import Msg, render, t
from bot.core.mrkdwn import Mrkdwn, escape
from bot.core.policy import Attempt
from bot.core.replies import Refusal
from bot.core.states import Progress

if TYPE_CHECKING:
    from bot.core.services import Services
    from bot.core.store.models import Job


def simulated_why(job: Job, lang: str) -> str:
    """Why the job is a labelled simulation, in `lang` (job.params["simulated"] holds i18n messages)."""
    return render(job.params.get("simulated"), lang)


class OpError(Refusal):
    """An operation failed or was refused; the message is shown to the user as is.

    Raised with `key=` (and named fields) instead of a text, it is shown in each reader's language.
    """

    def __init__(self, message: str = "", *, key: str = "", **fields: Any):
        self.key, self.fields = key, fields
        super().__init__(message or t(key, "en", **{name: render(v, "en") for name, v in fields.items()}))


class OpRefused(OpError):
    """Prepare found the request invalid (a missing tag, say): the job ends `invalid`, nothing ran."""


class NeedsVersion(OpError):
    """A runbook step cannot request its operation without a version (a deploy step without one, a
    rollback step whose target cannot be inferred): the step's form asks for it; the message says why."""


@dataclass
class Request:
    """What the user asked for, after parsing."""

    operation: str
    env: Environment | None
    params: dict[str, Any]
    user_id: str
    user_name: str = ""
    channel: str = ""
    response_url: str = ""
    dry_run: bool = False

    def attempt(self) -> Attempt:
        """This request as the policy audits its refusal (`<operation>.refused`)."""
        params = self.params | ({"dry_run": True} if self.dry_run else {})
        return Attempt(self.operation, self.user_name, self.channel, params)


@dataclass(frozen=True)
class AuditNote:
    """An audit row `<operation>.<event>` a job writes in the transaction of a progress save."""

    event: str
    facts: dict[str, Any]
    outcome: str = "ok"
    detail: str | Msg = ""  # plain text (an outside system's words), or a catalogue message


@dataclass
class JobContext:
    """Handed to prepare/run: the job, the services, and ways to record progress durably."""

    job: Job
    svc: Services
    env: Environment | None
    # Saves progress values and writes the audit notes, all in one transaction.
    save_progress: Callable[[dict[str, Any], tuple[AuditNote, ...]], None]
    heartbeat: Callable[[], None]
    log: list[str] = field(default_factory=list)

    @property
    def progress(self) -> dict[str, Any]:
        return self.job.progress

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def dry_run(self) -> bool:
        return self.job.dry_run

    def save(self, **values: Any) -> None:
        """Persist progress at once (before the next side effect), so a resumed job never repeats it."""
        self.save_progress(_escaped_progress(values, self.progress), ())

    def record(
        self,
        event: str,
        outcome: str = "ok",
        detail: str | Msg = "",
        save: dict[str, Any] | None = None,
        **facts: Any,
    ) -> None:
        """Audit a side effect or a check as `<operation>.<event>` with `facts`, in one transaction
        with the progress `save` that records the same step (call it before the next side effect)."""
        self.save_progress(
            _escaped_progress(dict(save or {}), self.progress), (AuditNote(event, facts, outcome, detail),)
        )

    def simulated(self, result: str) -> None:
        """End as a simulation: nothing was changed, so the job ends `simulated`, never `succeeded`.

        `result` (why nothing was changed) is kept for the audit log, the CLI and runbook steps."""
        self.save(result=result, simulated=True)

    @property
    def lang(self) -> str:
        """The workspace language, in which steps, fields and results are stored."""
        return self.svc.config.language

    def t(self, key: str, **fields: Any) -> Mrkdwn:
        """A catalogue text in the workspace language: steps, fields and results are stored as shown."""
        return t(key, self.svc.config.language, **fields)

    def step(self, text: str, status: Progress = Progress.DONE) -> None:
        """Add a visible line to the job's card; a RUNNING line is replaced by the next one."""
        steps = list(self.progress.get("steps", []))
        if steps and steps[-1]["status"] == Progress.RUNNING:
            steps.pop()
        steps.append({"text": escape(text), "status": status, "at": datetime.now(UTC).isoformat()})
        self.save(steps=steps[-30:])


def _escaped_progress(values: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Progress texts as the card shows them: mrkdwn, with a plain text among them escaped once.

    The card shows `result`, `flag` and each field's value as they are stored; a value built as a
    plain string (an f-string holding a version, or what /version answered) is escaped here. A value
    read back from the database and saved again is stored already, so it is left as it is.
    """
    out = dict(values)
    for key in ("result", "flag"):
        if isinstance(out.get(key), str) and out[key] != stored.get(key):
            out[key] = escape(out[key])
    if "fields" in out:
        before = {tuple(f) for f in stored.get("fields") or []}
        out["fields"] = [f if tuple(f) in before else (f[0], escape(f[1])) for f in out["fields"]]
    return out


class Operation:
    """Base for modules in bot/operations/ and bot/deploys/. Subclasses override what differs."""

    name: ClassVar[str]
    title: ClassVar[dict[str, str]]  # {"en": "Deploy", "ja": "デプロイ"}
    role: ClassVar[str] = "operator"
    needs_env: ClassVar[bool] = True
    needs_lock: ClassVar[bool] = True
    # Safe to run again after a crash mid-run (it records its side effects in progress).
    resumable: ClassVar[bool] = False
    # The approve button gets a confirm dialog; so does the request card.
    destructive: ClassVar[bool] = False
    # Its `/taisun` subcommand (usage, help line, role, parser), or None (runbook steps only).
    command: ClassVar[Spec | None] = None

    def check_request(self, svc: Services, req: Request) -> None:
        """Fast checks on the ack path (no network). Raise OpError to refuse."""

    def approval_required(self, svc: Services, job: Job, env: Environment | None) -> bool:
        return bool(env and env.approval_required) and not job.dry_run

    def takes_lock(self, job: Job) -> bool:
        """Whether this job holds its environment's lock while it runs (a deploy someone started on
        GitHub is followed whoever holds the lock: it happens anyway)."""
        return self.needs_lock and not job.dry_run

    def prepare(self, ctx: JobContext) -> None:
        """Slow validation in a worker (GitHub lookups...). Raise OpRefused to end the job as invalid.

        It only reads — no side effect: what it saves and records commits with the job's next state
        (awaiting approval, queued) in one transaction (JobRunner._prepare), before the card is posted."""

    def run(self, ctx: JobContext) -> None:
        """Do the work, recording steps. Raise OpError on failure."""
        raise OpError(f"{self.name} has no run step")

    def posts_card(self, svc: Services, job: Job) -> bool:
        """Whether the job's card goes to the channel yet (a quiet scheduled run: only when it fails)."""
        return True

    def describe(self, job: Job, lang: str = "en") -> str:
        """One line: what this job does, e.g. `deploy v1.2.3 to production`."""
        title = self.title.get(lang) or self.title["en"]
        return f"{title} · {job.environment}" if job.environment else title

    def keep_lock_after(self, job: Job, lang: str = "en") -> str | None:
        """A reason (in `lang`) to leave the environment locked after success (rollback does), or None."""
        return None

    # -- as a runbook step ------------------------------------------------------------
    def runbook_request(
        self, svc: Services, params: dict[str, Any], env: Environment, version: str = ""
    ) -> dict[str, Any]:
        """The parameters a runbook step's action (its YAML params, defaults filled in) gives this
        operation, shaped as its slash command would send them. `version` is what the step's form
        asked for. Raise NeedsVersion when one must be asked for first."""
        return dict(params)

    # -- on its card --------------------------------------------------------------------
    # A failed job's card offers a one-click rollback to the version before it (deploy does).
    offers_rollback: ClassVar[bool] = False


REGISTRY: dict[str, Operation] = {}


def register(op: Operation) -> Operation:
    """Make an operation known to the job engine, the runbooks, and (with its command) the grammar."""
    REGISTRY[op.name] = op
    if op.command is not None:
        register_command(op.command)
    return op


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def flag_for(job: Job, lang: str = "en") -> str:
    """The card's red line for dry runs and simulations."""
    if job.dry_run:
        return ""  # the card header already says DRY RUN
    if job.params.get("simulated"):
        return t("op.flag.simulated", lang, why=simulated_why(job, lang))
    return ""


def label_for(job: Job, lang: str = "en") -> str:
    return t("op.label.dry_run" if job.dry_run else "op.label.simulated", lang)


class Throttled:
    """A backend progress callback that shows the newest line as the running step, at most once a second."""

    def __init__(self, ctx: JobContext, prefix: str, every: float = 1.0) -> None:
        self.ctx, self.prefix, self.every = ctx, prefix, every
        self.last = 0.0
        self.line = ""

    def __call__(self, line: str) -> None:
        self.line = line
        self.ctx.heartbeat()
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.ctx.step(f"{self.prefix}: {line}", Progress.RUNNING)
