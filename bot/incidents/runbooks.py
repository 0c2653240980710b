"""Runbooks: bilingual, validated YAML procedures (the incident flow, runbooks, troubleshooting).

A runbook is one file `runbooks/<id>.yml`. Every step is exactly one of:

- ``manual``: text to read and, optionally, a command to copy (never executed);
- ``check``: an HTTP GET against the environment's URL, or a read-only SQL query;
- ``action``: one of the bot's operations (rollback, restart, cache-clear, ...).

The schema is strict: unknown fields, write SQL, unknown operations and parameters are
refused at load time with a message naming the file, the step and the field.
See runbooks/README.md for the authoring guide.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.core.config import RUNBOOKS_ENV_VAR
from bot.core.mrkdwn import key_values

__all__ = [
    "ACTION_PARAMS",
    "INCIDENT_PHASES",
    "KINDS",
    "OPERATIONS",
    "PHASE_INFO",
    "RUNBOOK_URL_PREFIX",
    "Action",
    "Bilingual",
    "Check",
    "HttpCheck",
    "Manual",
    "ParamSpec",
    "PhaseInfo",
    "Runbook",
    "RunbookError",
    "SqlCheck",
    "Step",
    "check_read_only_sql",
    "default_runbook_dir",
    "load_runbook",
    "load_runbooks",
    "resolve_runbook",
    "runbook_id_from_url",
]

Kind = Literal["incident-flow", "runbook", "troubleshooting"]
StepKind = Literal["manual", "check", "action"]
KINDS: tuple[str, ...] = ("incident-flow", "runbook", "troubleshooting")
INCIDENT_PHASES: tuple[str, ...] = (
    "Detection",
    "Triage",
    "Containment",
    "Eradication",
    "Recovery",
    "Post-Mortem",
    "Improvement",
)
RUNBOOK_URL_PREFIX = "taisun://runbook/"
ENV_VAR = RUNBOOKS_ENV_VAR

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]*")


class RunbookError(Exception):
    """A runbook problem, phrased for the person who has to fix the file.

    ``problems`` holds one line per problem, each starting with the file name;
    for :func:`load_runbooks`, ``errors`` holds one RunbookError per bad file.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        problems: list[str] | None = None,
        errors: list[RunbookError] | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.problems = problems if problems is not None else [message]
        self.errors = errors or []


# --------------------------------------------------------------------------- models


class _Strict(BaseModel):
    """Immutable, no unknown fields; unknown keys are reported with the allowed ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"should be a mapping (key: value), got {_yaml_type(data)}")
        unknown = [str(k) for k in data if k not in cls.model_fields]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise ValueError(
                f"unknown field{'s' if len(unknown) > 1 else ''} {names}; allowed here: {', '.join(cls.model_fields)}"
            )
        return data


class Bilingual(_Strict):
    """A text in English and Japanese; both are required and non-empty."""

    en: str
    ja: str

    @field_validator("en", "ja")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    def get(self, lang: str | None = "en") -> str:
        """The text in `lang` ("ja", "ja-JP", "en"...); anything but Japanese gets English."""
        if lang and lang.lower().startswith("ja") and self.ja:
            return self.ja
        return self.en


class PhaseInfo(_Strict):
    """Display name and goal of an incident phase (from the guide's flow diagram)."""

    name: Bilingual
    goal: Bilingual


PHASE_INFO: dict[str, PhaseInfo] = {
    name: PhaseInfo(name=Bilingual(en=name, ja=ja), goal=Bilingual(en=goal_en, ja=goal_ja))
    for name, ja, goal_en, goal_ja in [
        ("Detection", "検知", "Monitoring Alerts", "監視アラート"),
        ("Triage", "トリアージ", "Severity Assessment", "重大度の評価"),
        ("Containment", "封じ込め", "Isolate Resources", "リソースの隔離"),
        ("Eradication", "根絶", "Fix Root Cause", "根本原因の修正"),
        ("Recovery", "復旧", "Restore Service", "サービスの復旧"),
        ("Post-Mortem", "ポストモーテム", "Document Findings", "調査結果の文書化"),
        ("Improvement", "改善", "Update Runbooks", "ランブックの更新"),
    ]
}


class Manual(_Strict):
    """Something a person does: text, and optionally a command to copy (never executed)."""

    text: Bilingual
    command: str | None = None

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip("\n").rstrip()
        if not v.strip():
            raise ValueError("must not be empty (leave it out instead)")
        if "```" in v:
            raise ValueError("must not contain ``` (it is shown inside a code block)")
        return v


class HttpCheck(_Strict):
    """GET <environment url><path>; passes on `expect_status` and, if given, `expect_json`.

    `expect_json` is a subset match: every key must be in the response's JSON object
    with an equal value (nested mappings are matched the same way).
    """

    path: str
    expect_status: int = Field(200, ge=100, le=599, strict=True)
    expect_json: dict[str, Any] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if "://" in v or not v.startswith("/") or v.startswith("//"):
            raise ValueError(f"{v!r} should be a path like /health; it is run against the environment's URL")
        if any(c.isspace() for c in v):
            raise ValueError(f"{v!r} should not contain spaces")
        return v


class SqlCheck(_Strict):
    """A single read-only statement (SELECT/WITH/SHOW/EXPLAIN) on the environment's database.

    `dsn: env` (the only value) means the environment's `database.dsn_env` from taisun.yml.
    """

    query: str
    dsn: Literal["env"] = "env"

    @field_validator("query")
    @classmethod
    def _read_only(cls, v: str) -> str:
        return check_read_only_sql(v)


class Check(_Strict):
    """Exactly one of `http` or `sql`."""

    http: HttpCheck | None = None
    sql: SqlCheck | None = None

    @model_validator(mode="after")
    def _one(self) -> Check:
        if (self.http is None) == (self.sql is None):
            raise ValueError("a check has exactly one of http or sql")
        return self

    def describe(self) -> str:
        """One line: `GET /health → 200` or `SQL: SELECT ...`."""
        if self.http is not None:
            extra = f" + JSON {self.http.expect_json}" if self.http.expect_json else ""
            return f"GET {self.http.path} → {self.http.expect_status}{extra}"
        assert self.sql is not None
        return "SQL: " + " ".join(self.sql.query.split())


@dataclass(frozen=True)
class ParamSpec:
    """One allowed parameter of an action: its type, constraints and default."""

    type: type
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    default: str | int | bool | None = None
    required: bool = False

    def check(self, name: str, value: Any) -> str | None:
        """A problem with `value`, or None when it is acceptable."""
        if self.type is bool:
            return (
                None
                if isinstance(value, bool)
                else f"params.{name} should be true or false, got {_yaml_type(value)}"
            )
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"params.{name} should be a whole number, got {_yaml_type(value)}"
            if self.minimum is not None and value < self.minimum:
                return f"params.{name} should be at least {self.minimum}, got {value}"
            return None
        if not isinstance(value, str):
            return f"params.{name} should be text, got {_yaml_type(value)}"
        if self.choices and value not in self.choices:
            return f"params.{name} {value!r} is not allowed; use one of: {', '.join(self.choices)}"
        if not self.choices and not _TOKEN.fullmatch(value):
            return f"params.{name} {value!r} should be a single word (letters, digits, . _ + @ -)"
        return None


# The operations a runbook may trigger, and the parameters each accepts. The bot still
# applies its policy (roles, approvals, locks, freeze windows) when an action runs.
ACTION_PARAMS: dict[str, dict[str, ParamSpec]] = {
    "backup": {},
    "cache-clear": {
        "target": ParamSpec(str, "which cache to clear", choices=("redis", "app", "all"), default="all"),
    },
    "db-connection-reset": {
        "idle_age_minutes": ParamSpec(
            int,
            "terminate connections idle for longer than this (default: the environment's setting)",
            minimum=1,
        ),
        "restart": ParamSpec(
            bool, "restart the app afterwards as part of this step (default: true)", default=True
        ),
    },
    "deploy": {
        "version": ParamSpec(str, "release tag to deploy (default: asked when the step runs)"),
    },
    "restart": {
        "service": ParamSpec(str, "service to restart (default: the environment's first service)"),
    },
    "rollback": {
        "version": ParamSpec(str, "release tag to roll back to (default: the previous release)"),
    },
}
OPERATIONS: tuple[str, ...] = tuple(sorted(ACTION_PARAMS))


class Action(_Strict):
    """One of the bot's operations, with parameters from ACTION_PARAMS."""

    operation: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("operation")
    @classmethod
    def _operation(cls, v: str) -> str:
        if v not in ACTION_PARAMS:
            raise ValueError(f"action operation {v!r} is unknown; use one of: {', '.join(OPERATIONS)}")
        return v

    @model_validator(mode="after")
    def _params(self) -> Action:
        specs = ACTION_PARAMS[self.operation]
        problems = []
        for name, value in self.params.items():
            spec = specs.get(name)
            if spec is None:
                allowed = ", ".join(specs) if specs else "none"
                problems.append(f"params.{name} is not a parameter of {self.operation}; allowed: {allowed}")
            elif (problem := spec.check(name, value)) is not None:
                problems.append(problem)
        problems += [
            f"params.{n} is required for {self.operation}"
            for n, s in specs.items()
            if s.required and n not in self.params
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def resolved_params(self) -> dict[str, Any]:
        """The params with the table's defaults filled in (None defaults are left out)."""
        out: dict[str, Any] = {
            n: s.default for n, s in ACTION_PARAMS[self.operation].items() if s.default is not None
        }
        out.update(self.params)
        return out

    def describe(self) -> str:
        """One line: `cache-clear target=redis`, `db-connection-reset restart=false`."""
        return f"{self.operation} {key_values(self.params, sep=' ')}".strip()


class Step(_Strict):
    """One step: id, title, optional phase/overdue/note, and exactly one of manual/check/action.

    `overdue_minutes` counts from the start of the run (the incident's declaration for the
    incident flow): a step still open after that long is shown as overdue.
    """

    id: str
    title: Bilingual
    phase: str | None = None
    overdue_minutes: int | None = Field(None, ge=1, strict=True)
    note: Bilingual | None = None
    manual: Manual | None = None
    check: Check | None = None
    action: Action | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            present = [k for k in ("manual", "check", "action") if data.get(k) is not None]
            if not present:
                raise ValueError("a step needs exactly one of manual, check or action")
            if len(present) > 1:
                raise ValueError(
                    f"a step has both {' and '.join(present)}; a step is exactly one of manual, check or action "
                    "(split it into separate steps)"
                )
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.fullmatch(v):
            raise ValueError(f"{v!r} should be kebab-case: lowercase letters, digits and single hyphens")
        return v

    @field_validator("phase")
    @classmethod
    def _phase(cls, v: str | None) -> str | None:
        if v is not None and v not in INCIDENT_PHASES:
            raise ValueError(f"phase {v!r} is unknown; use one of: {', '.join(INCIDENT_PHASES)}")
        return v

    @property
    def kind(self) -> StepKind:
        """manual, check or action."""
        if self.manual is not None:
            return "manual"
        return "check" if self.check is not None else "action"

    def title_for(self, lang: str | None = "en") -> str:
        return self.title.get(lang)

    def text_for(self, lang: str | None = "en") -> str:
        """The manual text, or the note; empty when there is neither."""
        if self.manual is not None:
            return self.manual.text.get(lang)
        return self.note.get(lang) if self.note else ""

    def describe(self) -> str:
        """A one-line technical description of what the step does (language-neutral)."""
        if self.check is not None:
            return self.check.describe()
        if self.action is not None:
            return self.action.describe()
        assert self.manual is not None
        return self.manual.command.splitlines()[0] if self.manual.command else ""


_LABELS = {
    "symptoms": Bilingual(en="Symptoms", ja="症状"),
    "causes": Bilingual(en="Causes", ja="原因"),
    "steps": Bilingual(en="Steps", ja="手順"),
    "overdue": Bilingual(en="due within {n} min", ja="{n} 分以内"),
    "manual": Bilingual(en="manual", ja="手作業"),
    "check": Bilingual(en="check", ja="確認"),
    "action": Bilingual(en="action", ja="操作"),
}


class Runbook(_Strict):
    """A validated runbook file. `id` equals the file name stem."""

    id: str
    title: Bilingual
    summary: Bilingual | None = None
    kind: Kind
    symptoms: list[Bilingual] = Field(default_factory=list)
    causes: list[Bilingual] = Field(default_factory=list)
    phases: list[str] | None = None
    steps: list[Step] = Field(min_length=1)
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.fullmatch(v):
            raise ValueError(f"{v!r} should be kebab-case: lowercase letters, digits and single hyphens")
        return v

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        for name in v:
            if name not in INCIDENT_PHASES:
                raise ValueError(f"phase {name!r} is unknown; use some of: {', '.join(INCIDENT_PHASES)}")
        if len(set(v)) != len(v):
            raise ValueError("a phase is listed twice")
        if v != sorted(v, key=INCIDENT_PHASES.index):
            raise ValueError(f"phases should be in the flow's order: {' → '.join(INCIDENT_PHASES)}")
        if not v:
            raise ValueError("an incident flow needs at least one phase")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Runbook:
        problems: list[str] = _duplicate_step_ids([{"id": s.id} for s in self.steps])
        if self.kind == "incident-flow":
            problems += self._check_flow()
        else:
            if self.phases is not None:
                problems.append(f"phases: only an incident-flow has phases (this is kind {self.kind})")
            problems += [
                f"step {n} ({s.id}): phase: only steps of an incident-flow have a phase"
                for n, s in enumerate(self.steps, 1)
                if s.phase is not None
            ]
        if self.kind == "troubleshooting":
            problems += [
                f"{f}: a troubleshooting runbook lists at least one {f[:-1]}"
                for f in ("symptoms", "causes")
                if not getattr(self, f)
            ]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _check_flow(self) -> list[str]:
        if not self.phases:
            return ["phases: an incident-flow lists its phases in order, e.g. " + ", ".join(INCIDENT_PHASES)]
        problems, last = [], 0
        for n, step in enumerate(self.steps, 1):
            where = f"step {n} ({step.id})"
            if step.phase is None:
                problems.append(f"{where}: phase: every step of an incident-flow needs a phase")
            elif step.phase not in self.phases:
                problems.append(f"{where}: phase {step.phase!r} is not in phases ({', '.join(self.phases)})")
            else:
                index = self.phases.index(step.phase)
                if index < last:
                    problems.append(
                        f"{where}: phase {step.phase!r} comes after {self.phases[last]!r}; keep steps in phase order"
                    )
                last = max(last, index)
        used = {s.phase for s in self.steps}
        problems += [f"phases: phase {p!r} has no step" for p in self.phases if p not in used]
        return problems

    # ----------------------------------------------------------------- helpers

    @property
    def path(self) -> Path | None:
        """The file this runbook was loaded from, if any."""
        return self._path

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError if there is none)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def step_number(self, step_id: str) -> int:
        """The 1-based position of a step (KeyError if there is none)."""
        ids = self.step_ids
        if step_id not in ids:
            raise KeyError(step_id)
        return ids.index(step_id) + 1

    def title_for(self, lang: str | None = "en") -> str:
        return self.title.get(lang)

    def summary_for(self, lang: str | None = "en") -> str:
        return self.summary.get(lang) if self.summary else ""

    def step_titles(self, lang: str | None = "en") -> list[str]:
        return [s.title.get(lang) for s in self.steps]

    def symptoms_for(self, lang: str | None = "en") -> list[str]:
        return [s.get(lang) for s in self.symptoms]

    def causes_for(self, lang: str | None = "en") -> list[str]:
        return [c.get(lang) for c in self.causes]

    def steps_by_phase(self) -> dict[str | None, list[Step]]:
        """Steps grouped by phase, in order; a runbook without phases has one group, None."""
        if not self.phases:
            return {None: list(self.steps)}
        return {p: [s for s in self.steps if s.phase == p] for p in self.phases}

    @staticmethod
    def phase_title(phase: str, lang: str | None = "en") -> str:
        """e.g. "Detection — Monitoring Alerts" or "検知 — 監視アラート"."""
        info = PHASE_INFO.get(phase)
        return f"{info.name.get(lang)} — {info.goal.get(lang)}" if info else phase

    def text(self, lang: str | None = "en") -> str:
        """The whole runbook as plain text (for the terminal shell or a fallback message)."""
        lines = [self.title_for(lang)]
        if self.summary:
            lines.append(self.summary.get(lang))
        for field in ("symptoms", "causes"):
            items: list[Bilingual] = getattr(self, field)
            if items:
                lines += ["", _LABELS[field].get(lang) + ":"] + [f"  - {i.get(lang)}" for i in items]
        lines += ["", _LABELS["steps"].get(lang) + ":"]
        number = 0
        for phase, steps in self.steps_by_phase().items():
            if phase is not None:
                lines.append(f"[{self.phase_title(phase, lang)}]")
            for step in steps:
                number += 1
                due = (
                    f" ({_LABELS['overdue'].get(lang).format(n=step.overdue_minutes)})"
                    if step.overdue_minutes
                    else ""
                )
                lines.append(f"  {number}. [{_LABELS[step.kind].get(lang)}] {step.title_for(lang)}{due}")
                if step.manual is not None:
                    lines.append(f"     {step.manual.text.get(lang)}")
                    lines += [f"     $ {c}" for c in (step.manual.command or "").splitlines()]
                else:
                    lines.append(f"     {step.describe()}")
                if step.note is not None:
                    lines.append(f"     {step.note.get(lang)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- SQL guard

_READ_ONLY_STARTS = ("select", "with", "show", "explain")
# Keywords that only appear in statements that write or change the schema (or that
# create a table, like SELECT ... INTO).
_WRITE_WORDS_TEXT = (
    "insert update delete merge upsert drop create alter truncate grant revoke copy into call "
    "vacuum reindex cluster refresh notify"
)
_WRITE_WORDS = frozenset(_WRITE_WORDS_TEXT.split())
# Functions that change server state although called from a SELECT.
_WRITE_FUNCTIONS_TEXT = (
    "pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_switch_wal "
    "pg_create_restore_point pg_promote set_config setval nextval lo_import lo_export lo_unlink "
    "lo_create lo_from_bytea lo_put dblink dblink_exec pg_read_file pg_read_binary_file pg_ls_dir "
    "pg_file_write query_to_xml query_to_xml_and_xmlschema pg_logical_emit_message"
)
_WRITE_FUNCTIONS = frozenset(_WRITE_FUNCTIONS_TEXT.split())
_WRITE_FUNCTION_PREFIXES = (
    "pg_advisory",
    "pg_try_advisory",
    "pg_stat_reset",
    "pg_create_",
    "pg_drop_",
    "pg_replication_",
    "pg_wal_replay_",
    "dblink_",
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\s*\(")
_ROW_LOCK = re.compile(r"\bfor\s+(?:no\s+key\s+update|update|key\s+share|share)\b", re.I)
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _sql_skeleton(query: str) -> str:
    """The query with comments removed and string literals / quoted identifiers blanked."""
    out: list[str] = []
    i, n = 0, len(query)

    def word_before(k: int) -> bool:
        return k > 0 and (query[k - 1].isalnum() or query[k - 1] in "_$")

    while i < n:
        c = query[i]
        if query.startswith("--", i):
            end = query.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif query.startswith("/*", i):
            depth, j = 1, i + 2
            while depth:
                if j >= n:
                    raise ValueError("the query has an unterminated /* comment")
                if query.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif query.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(" ")
            i = j
        elif c == "'":
            escapes = i > 0 and query[i - 1] in "eE" and not word_before(i - 1)
            j = i + 1
            while True:
                if j >= n:
                    raise ValueError("the query has an unterminated string literal")
                if escapes and query[j] == "\\" or query[j] == "'" and query.startswith("''", j):
                    j += 2
                elif query[j] == "'":
                    break
                else:
                    j += 1
            out.append("''")
            i = j + 1
        elif c == '"':
            j = i + 1
            while True:
                if j >= n:
                    raise ValueError('the query has an unterminated "quoted identifier"')
                if query.startswith('""', j):
                    j += 2
                elif query[j] == '"':
                    break
                else:
                    j += 1
            out.append(" _quoted_ ")
            i = j + 1
        elif c == "$" and not word_before(i) and (m := _DOLLAR.match(query, i)):
            end = query.find(m.group(0), m.end())
            if end < 0:
                raise ValueError(f"the query has an unterminated {m.group(0)} string")
            out.append("''")
            i = end + len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_read_only_sql(query: str) -> str:
    """Return the query (stripped) if it is one read-only statement, else raise ValueError.

    A guard against mistakes, not a sandbox: whoever runs the query should still run it
    in a READ ONLY transaction with a statement timeout.
    """
    q = query.strip()
    body = _sql_skeleton(q).strip()
    if body.endswith(";"):
        body = body[:-1].rstrip()
    words = _WORD.findall(body)
    if not words:
        raise ValueError("the query is empty")
    if ";" in body:
        raise ValueError("a check query must be a single statement (found ';' before the end)")
    if words[0].lower() not in _READ_ONLY_STARTS:
        raise ValueError(
            f"a check query must be read-only: start with SELECT, WITH, SHOW or EXPLAIN, not {words[0].upper()}"
        )
    for w in words:
        if w.lower() in _WRITE_WORDS:
            raise ValueError(f"a check query must be read-only: {w.upper()} is not allowed")
    if m := _ROW_LOCK.search(body):
        raise ValueError(f"a check query must be read-only: {m.group(0).upper()} takes row locks")
    for name in (f.lower() for f in _CALL.findall(body)):
        if name in _WRITE_FUNCTIONS or name.startswith(_WRITE_FUNCTION_PREFIXES):
            hint = " (use an action step: db-connection-reset)" if name == "pg_terminate_backend" else ""
            raise ValueError(f"a check query must be read-only: {name}() changes the server{hint}")
    return q


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        except TypeError:  # unhashable key: construct_mapping reports it
            pass
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_type(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean; quote it if you meant text)"
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _parse(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


def _line_of(node: yaml.Node | None, loc: Iterable[str | int]) -> int | None:
    """The YAML line (1-based) of the deepest node that `loc` reaches."""
    if node is None:
        return None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


def _describe_loc(loc: tuple[str | int, ...], data: Any) -> str:
    """("steps", 2, "action", "operation") → "step 3 (flush): action.operation"."""
    parts: list[str] = []
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "steps" and isinstance(rest[1], int):
        index = rest[1]
        raw = data.get("steps") if isinstance(data, dict) else None
        step = raw[index] if isinstance(raw, list) and index < len(raw) else None
        step_id = step.get("id") if isinstance(step, dict) else None
        parts.append(f"step {index + 1} ({step_id})" if isinstance(step_id, str) else f"step {index + 1}")
        rest = rest[2:]
    field = ""
    for p in rest:
        if isinstance(p, int):
            field += f" item {p + 1}"
        else:
            field += ("." if field else "") + str(p)
    if field:
        parts.append(field.strip())
    return ": ".join(parts)


def _messages(err: Any) -> list[str]:
    loc = err["loc"]
    kind = err["type"]
    if kind == "missing":
        last = loc[-1] if loc else ""
        if last == "ja":
            return ["the Japanese text (ja) is missing"]
        if last == "en":
            return ["the English text (en) is missing"]
        return ["is required"]
    if kind == "extra_forbidden":
        return ["unknown field"]
    if kind in ("string_type", "int_type", "dict_type", "list_type"):
        want = {
            "string_type": "text",
            "int_type": "a whole number",
            "dict_type": "a mapping",
            "list_type": "a list",
        }
        return [f"should be {want[kind]}, got {_yaml_type(err.get('input'))}"]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return [f"{err.get('input')!r} is not allowed; use {ctx.get('expected', 'one of the listed values')}"]
    if kind == "too_short":
        return [f"needs at least {ctx.get('min_length', 1)} item(s)"]
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = "at least" if kind == "greater_than_equal" else "at most"
        return [f"should be {bound} {ctx.get('ge', ctx.get('le'))}, got {err.get('input')!r}"]
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.split("\n")


def _problems(exc: ValidationError, data: Any, root: yaml.Node | None) -> list[str]:
    out: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        where = _describe_loc(loc, data)
        line = _line_of(root, loc) if loc else None
        suffix = f" (line {line})" if line else ""
        for msg in _messages(err):
            text = f"{where}: {msg}" if where else msg
            field = where.rpartition(": ")[2]
            if field and msg.startswith(field.replace(".", " ") + " "):
                # "action.operation: action operation 'x' is unknown" → say it once
                text = f"{where.rpartition(': ')[0]}: {msg}".removeprefix(": ")
            out.append(text + suffix)
    return out


def _duplicate_step_ids(steps: Any) -> list[str]:
    """Duplicate ids in the raw steps (reported even when other fields are invalid)."""
    seen: dict[str, int] = {}
    problems = []
    for n, step in enumerate(steps if isinstance(steps, list) else [], 1):
        step_id = step.get("id") if isinstance(step, dict) else None
        if not isinstance(step_id, str):
            continue
        if step_id in seen:
            problems.append(_duplicate_message(n, step_id, seen[step_id]))
        else:
            seen[step_id] = n
    return problems


def _duplicate_message(n: int, step_id: str, first: int) -> str:
    return f"step {n} ({step_id}): id {step_id!r} is already used by step {first}"


def load_runbook(path: Path | str) -> Runbook:
    """Read and validate one runbook file; every problem is a RunbookError naming file and step."""
    path = Path(path)
    shown = _display(path)

    def fail(problems: list[str]) -> RunbookError:
        lines = [f"{shown}: {p}" for p in problems]
        return RunbookError("\n".join(lines), path=path, problems=lines)

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(["file not found"]) from None
    except UnicodeDecodeError:
        raise fail(["not UTF-8 text"]) from None
    except OSError as e:
        raise fail([f"cannot read the file: {e.strerror}"]) from None
    try:
        data, root = _parse(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise fail([f"{where}not valid YAML: {problem}"]) from None
    if data is None:
        raise fail(["the file is empty"])
    if not isinstance(data, dict):
        raise fail([f"a runbook is a mapping (id: ..., title: ..., steps: ...), got {_yaml_type(data)}"])
    problems: list[str] = []
    if isinstance(data.get("id"), str) and data["id"] != path.stem:
        problems.append(f"id: {data['id']!r} must equal the file name {path.stem!r} (rename one of them)")
    problems += _duplicate_step_ids(data.get("steps"))
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as e:
        raise fail(list(dict.fromkeys(problems + _problems(e, data, root)))) from None
    if problems:
        raise fail(problems)
    runbook._path = path
    return runbook


def load_runbooks(directory: Path | str | None = None) -> dict[str, Runbook]:
    """Load every runbooks/*.yml (and *.yaml), sorted by id; raise one RunbookError listing every bad file."""
    directory = Path(directory) if directory is not None else default_runbook_dir()
    if not directory.is_dir():
        raise RunbookError(
            f"{_display(directory)}: runbook directory not found (set {ENV_VAR} to point at it)"
        )
    files = sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yml", ".yaml") and not p.name.startswith(".") and p.is_file()
    )
    runbooks: dict[str, Runbook] = {}
    errors: list[RunbookError] = []
    for path in files:
        try:
            runbook = load_runbook(path)
        except RunbookError as e:
            errors.append(e)
            continue
        if runbook.id in runbooks:
            other = runbooks[runbook.id].path
            errors.append(
                RunbookError(f"{_display(path)}: id {runbook.id!r} is also defined by {other}", path=path)
            )
            continue
        runbooks[runbook.id] = runbook
    if errors:
        header = f"{len(errors)} of {len(files)} runbook files in {_display(directory)} are invalid:"
        problems = [line for e in errors for line in e.problems]
        raise RunbookError("\n".join([header, *problems]), path=directory, problems=problems, errors=errors)
    return dict(sorted(runbooks.items()))


def default_runbook_dir() -> Path:
    """Where runbooks live: $TAISUN_RUNBOOKS if set, else the repo's runbooks/ next to bot/, else ./runbooks."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser()
    beside = Path(__file__).resolve().parents[2] / "runbooks"
    if beside.is_dir():
        return beside
    return Path.cwd() / "runbooks"


def runbook_id_from_url(url: str | None) -> str | None:
    """`taisun://runbook/<id>` → `<id>`; None for anything else (e.g. an https:// wiki link)."""
    if not url or not url.strip().startswith(RUNBOOK_URL_PREFIX):
        return None
    rest = url.strip()[len(RUNBOOK_URL_PREFIX) :].strip("/")
    return rest if _ID.fullmatch(rest) else None


def resolve_runbook(runbooks: dict[str, Runbook], name: str) -> Runbook | None:
    """Find a runbook by id, `<id>.yml` or `taisun://runbook/<id>` (case-insensitive)."""
    key = runbook_id_from_url(name) or name.strip().lower()
    for suffix in (".yml", ".yaml"):
        key = key.removesuffix(suffix)
    return runbooks.get(key)
