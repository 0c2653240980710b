"""Settings from the environment (secrets) and the YAML config file (everything else)."""

from __future__ import annotations

import os
import re
from datetime import datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("operator", "approver", "responder", "break_glass", "admin")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "taisun.example.yml"


class ConfigError(Exception):
    """A config problem, phrased for the person who has to fix the file."""


class Settings(BaseSettings):
    """Environment variables. Secrets only ever come from here."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = "https://slack.com/api/"
    github_token: str = ""
    github_api_url: str = "https://api.github.com"
    database_url: str = "sqlite:///taisun.db"
    redis_url: str = ""
    aws_endpoint_url: str = ""
    taisun_config: str = "./taisun.yml"
    taisun_alert_token: str = ""
    port: int = 3000
    log_level: str = "INFO"
    # Worker threads that run jobs (deploys, restarts...) in this process.
    taisun_workers: int = 4
    # Threads Bolt uses for listeners; acks never queue behind slow work.
    taisun_listener_threads: int = 16
    # A worker holds a job for this long between heartbeats; a dead worker's job is taken over after it.
    taisun_lease_seconds: float = 30.0

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    @property
    def config_path(self) -> Path:
        """The config file: TAISUN_CONFIG, else ./taisun.yml, else the shipped example."""
        path = Path(self.taisun_config or "./taisun.yml")
        if not path.exists() and not os.environ.get("TAISUN_CONFIG"):
            return EXAMPLE_CONFIG
        return path


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Member = str  # U0123ABCD, @group-handle or "*"


def _check_members(members: list[str]) -> list[str]:
    for m in members:
        if m != "*" and not m.startswith("@") and not re.fullmatch(r"[UW][A-Z0-9]{2,}", m):
            raise ValueError(f"{m!r} is not a Slack user ID (U0123ABCD), a user group (@handle) or '*'")
    return members


class SlackConfig(Strict):
    ops_channel: str = "#ops"
    report_channel: str = "#ops"


class GithubConfig(Strict):
    repository: str = "owner/repo"
    workflow: str = "cd.yml"
    ref: str = "main"
    tag_pattern: str = r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"
    inputs: dict[str, str] = Field(
        default_factory=lambda: {"environment": "{environment}", "version": "{version}"}
    )
    create_deployment: bool = False
    # Ask GitHub for the run id in the dispatch answer (github.com; some GHES versions refuse it).
    return_run_details: bool = False
    # When cd.yml sets `run-name` from an input (e.g. the job id), the text every run title
    # contains, e.g. "{job_id}": the bot then never mistakes another deploy's run for its own.
    run_title: str = ""

    @field_validator("repository")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", v):
            raise ValueError(f"{v!r} should look like owner/name")
        return v

    @field_validator("tag_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
        return v


class Roles(Strict):
    operator: list[Member] = Field(default_factory=lambda: ["*"])
    approver: list[Member] = Field(default_factory=list)
    responder: list[Member] = Field(default_factory=lambda: ["*"])
    break_glass: list[Member] = Field(default_factory=list)
    admin: list[Member] = Field(default_factory=list)

    @field_validator(*ROLES)
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        return _check_members(v)


class Defaults(Strict):
    approval_expiry_minutes: int = Field(30, ge=1, le=24 * 60)
    lock_expiry_minutes: int = Field(240, ge=1)
    lock_reminder_minutes: int = Field(15, ge=0)
    verify_timeout_seconds: float = Field(300, gt=0)
    verify_interval_seconds: float = Field(10, gt=0)
    workflow_timeout_minutes: float = Field(60, gt=0)
    # Slash commands one person may send per minute (a stuck key or a runaway script stops here).
    commands_per_minute: int = Field(30, ge=1)
    # How long to look for the workflow run a dispatch started before giving up.
    find_run_timeout_seconds: float = Field(60, gt=0)


class WeekTime(Strict):
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    time: str

    @field_validator("time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            time.fromisoformat(v)
        except ValueError as e:
            raise ValueError(f"{v!r} is not a time like 18:00") from e
        return v

    def minute_of_week(self) -> int:
        t = time.fromisoformat(self.time)
        return DAYS.index(self.day) * 24 * 60 + t.hour * 60 + t.minute


class FreezeWindow(Strict):
    name: str = "freeze"
    start: WeekTime
    end: WeekTime

    def contains(self, when: datetime, tz: ZoneInfo) -> bool:
        """True when `when` (aware) falls inside this weekly window in `tz`."""
        local = when.astimezone(tz)
        minute = local.weekday() * 24 * 60 + local.hour * 60 + local.minute
        start, end = self.start.minute_of_week(), self.end.minute_of_week()
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end  # wraps over the week's end


class InstanceTag(Strict):
    key: str
    value: str


class RestartConfig(Strict):
    backend: Literal["local", "ssm"] = "local"
    instance_tag: InstanceTag | None = None
    # Seconds to wait for each SSM invocation (and for each local systemctl call).
    invocation_timeout_seconds: float = 120
    # backend local: the systemctl argument prefix, e.g. ["sudo", "-n", "systemctl"].
    systemctl: list[str] = Field(default_factory=lambda: ["systemctl"], min_length=1)
    # After each instance's restart, /health is tried this many times, this far apart.
    health_attempts: int = Field(6, ge=1)
    health_interval_seconds: float = Field(5.0, gt=0)
    # How often an SSM invocation's status is polled.
    poll_seconds: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _ssm_needs_tag(self) -> RestartConfig:
        if self.backend == "ssm" and self.instance_tag is None:
            raise ValueError("backend ssm needs instance_tag: {key: ..., value: ...} to select instances")
        return self


class CacheConfig(Strict):
    redis_url_env: str = ""
    mode: Literal["flushdb", "prefix", "flushall"] = "flushdb"
    prefix: str = ""
    allow_flushall: bool = False
    app_endpoint: str = ""
    app_token_env: str = ""
    app_command: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CacheConfig:
        if self.mode == "prefix" and not self.prefix:
            raise ValueError("mode prefix needs a non-empty prefix")
        if self.mode == "flushall" and not self.allow_flushall:
            raise ValueError("mode flushall needs allow_flushall: true (it empties every database)")
        return self


class DatabaseTarget(Strict):
    dsn_env: str
    # Fractions are allowed (0.5 = 30 s), for drills and tests.
    idle_age_minutes: float = Field(60.0, gt=0)


class Environment(Strict):
    name: str = ""
    aliases: list[str] = Field(default_factory=list)
    branch: str = ""
    url: str = ""
    approval_required: bool = False
    approvers: list[Member] = Field(default_factory=list)
    approval_expiry_minutes: int | None = None
    auto_rollback: bool = False
    services: list[str] = Field(default_factory=list)
    restart: RestartConfig = Field(default_factory=RestartConfig)
    cache: CacheConfig | None = None
    database: DatabaseTarget | None = None
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    # Per-environment role overrides, e.g. {operator: ["@sre"]} for production.
    roles: dict[str, list[Member]] = Field(default_factory=dict)

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, v: list[str]) -> list[str]:
        return _check_members(v)

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, members in v.items():
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
            _check_members(members)
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"https?://", v):
            raise ValueError(f"{v!r} should start with http:// or https://")
        return v.rstrip("/")


class BackupConfig(Strict):
    bucket: str = "taisun-backups"
    prefix: str = "db/"
    dsn_env: str = "BACKUP_DATABASE_URL"
    retention_days: int = Field(30, ge=1)
    memory_paths: list[str] = Field(default_factory=list)
    verify_command: list[str] = Field(default_factory=list)
    # Where `backup restore <id>` (without an environment) restores into, by env var name;
    # empty: the backed-up database itself (dsn_env), as the guide's `psql $DATABASE_URL < backup.sql`.
    restore_dsn_env: str = ""
    # PostgreSQL client programs (a versioned path when the server is newer than the default client).
    pg_dump: str = "pg_dump"
    psql: str = "psql"
    # Seconds the verify_command may run.
    verify_timeout_seconds: float = Field(600.0, gt=0)


class Nudges(Strict):
    no_commander_minutes: int = 5
    no_status_minutes: int = 30


class IncidentConfig(Strict):
    severities: list[str] = Field(default_factory=lambda: ["sev1", "sev2", "sev3", "sev4"])
    dedicated_channel_severities: list[str] = Field(default_factory=lambda: ["sev1", "sev2"])
    responders: list[Member] = Field(default_factory=list)
    contacts: dict[str, str] = Field(default_factory=dict)
    nudges: Nudges = Field(default_factory=Nudges)


class AlertConfig(Strict):
    channel: str = "#alerts"
    runbooks: dict[str, str] = Field(default_factory=dict)
    auto_declare_severity: str = ""


class Config(Strict):
    """The YAML config file."""

    language: Literal["ja", "en"] = "ja"
    timezone: str = "Asia/Tokyo"
    slack: SlackConfig = Field(default_factory=SlackConfig)
    github: GithubConfig = Field(default_factory=GithubConfig)
    roles: Roles = Field(default_factory=Roles)
    defaults: Defaults = Field(default_factory=Defaults)
    environments: dict[str, Environment]
    backup: BackupConfig = Field(default_factory=BackupConfig)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)
    alerts: AlertConfig = Field(default_factory=AlertConfig)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown timezone {v!r} (use an IANA name like Asia/Tokyo)") from e
        return v

    @model_validator(mode="after")
    def _names_and_aliases(self) -> Config:
        if not self.environments:
            raise ValueError("environments: at least one environment is needed")
        seen: dict[str, str] = {}
        for name, env in self.environments.items():
            env.name = name
            for key in [name, *env.aliases]:
                if key in seen:
                    raise ValueError(f"environments: {key!r} names both {seen[key]} and {name}")
                seen[key] = name
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def resolve_env(self, name: str) -> Environment | None:
        """The environment a name or alias refers to (case-insensitive), or None."""
        key = name.strip().lower()
        for env in self.environments.values():
            if key == env.name.lower() or key in (a.lower() for a in env.aliases):
                return env
        return None

    def env_names(self) -> list[str]:
        return list(self.environments)

    def approval_expiry(self, env: Environment) -> int:
        return env.approval_expiry_minutes or self.defaults.approval_expiry_minutes


def _location(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML config; every problem is a ConfigError naming file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found. Copy taisun.example.yml to taisun.yml or set TAISUN_CONFIG."
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file should be a mapping of settings, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting (check the spelling against taisun.example.yml)"
            lines.append(f"  {_location(err['loc'])}: {msg}")
        raise ConfigError(f"{path}: {len(lines)} problem(s) in the config:\n" + "\n".join(lines)) from None
