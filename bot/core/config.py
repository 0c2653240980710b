"""Settings from the environment (secrets) and the YAML config file (everything else)."""

from __future__ import annotations

import base64
import fnmatch
import os
import re
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("operator", "approver", "responder", "break_glass", "admin", "viewer")
RUNBOOKS_ENV_VAR = "TAISUN_RUNBOOKS"  # the directory of runbook YAML files
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "taisun.example.yml"


class ConfigError(Exception):
    """A config problem, phrased for the person who has to fix the file."""


class SlackUnreachable(Exception):
    """Slack (SLACK_API_URL) did not answer at all at start; the message says where and why."""


class Settings(BaseSettings):
    """Environment variables. Secrets only ever come from here."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: str = Field(
        "", description="Bot User OAuth Token (xoxb-…) the bot reads and posts with."
    )
    slack_signing_secret: str = Field(
        "", description="Verifies that HTTP requests come from Slack; required in HTTP mode."
    )
    slack_app_token: str = Field(
        "",
        description="App-level token (xapp-…, connections:write); when set, `taisun serve` uses Socket Mode.",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (tests point it at a local stand-in)."
    )
    github_token: str = Field(
        "",
        description="GitHub token for tags, dispatches and runs (actions:write, contents:read, deployments:write), "
        "and issues:write for the incident follow-ups' Open GitHub issue button.",
    )
    github_api_url: str = Field(
        "https://api.github.com",
        description="GitHub API base URL (GitHub Enterprise Server: https://HOST/api/v3).",
    )
    database_url: str = Field(
        "sqlite:///taisun.db",
        description="The bot's own database: SQLite for one replica, postgresql://… for several.",
    )
    redis_url: str = Field(
        "",
        description="Optional: the bot's own Redis, which makes the per-person command limit "
        "(defaults.commands_per_minute) one limit across all replicas. The environments' cache "
        "Redis servers are named by environments.<name>.cache.redis_url_env instead.",
    )
    aws_endpoint_url: str = Field(
        "", description="Another AWS endpoint for S3 and SSM (e.g. a local moto server); empty: AWS itself."
    )
    taisun_config: str = Field("./taisun.yml", description="Path of the YAML config file.")
    taisun_alert_token: str = Field(
        "", description="Bearer token Alertmanager must send to POST /alerts/alertmanager."
    )
    github_webhook_secret: str = Field(
        "",
        description="The secret of the repository's webhook: POST /github/webhook accepts only deliveries "
        "signed with it (X-Hub-Signature-256). Empty: the webhook answers 503 and only the poller "
        "(github.poll_seconds) sees deploys started outside the bot.",
    )
    port: int = Field(
        3000,
        description="HTTP port for /slack/events, /health, /metrics and /alerts (Socket Mode serves all but the first).",
    )
    log_level: str = Field(
        "INFO", description="Log level; logs are JSON, one object a line, secrets redacted."
    )
    taisun_workers: int = Field(
        4,
        description="Worker threads that run jobs (deploys, restarts...) in this process: `taisun serve` "
        "(TAISUN_JOBS=embedded) or `taisun worker`.",
    )
    taisun_worker_nice: int = Field(
        19,
        ge=0,
        le=19,
        description="CPU niceness `taisun worker` runs its jobs at, so the acks of `taisun serve` on the same host "
        "go first when both want the CPU (a job may wait a second; an ack may not). Set on its session's "
        "autogroup too when the worker leads its session (systemd, containers), where a process's own niceness "
        "would not rank it against other services. 19 (the default) lets it run at full speed whenever serve leaves "
        "the CPU idle and keeps a busy worker from lengthening serve's acks (paced at 100 requests/s with the "
        "worker preparing their jobs, ack p99 40–55 ms at 10, 20 ms at 19). 0: the same priority as serve.",
    )
    taisun_worker_idle_policy: bool = Field(
        True,
        description="`taisun worker`'s job threads, and what they start (pg_dump, pgbackrest, gzip), also take Linux's "
        "SCHED_IDLE policy: niceness sets shares, but a serve thread waking while a nice-19 job thread runs can still "
        "wait out that thread's time slice, on each of the wakeups an ack makes; under SCHED_IDLE it goes first "
        "(paced at 100 requests/s with the worker preparing their jobs, ack p99 22.8 ms at nice 19 alone, 15.1 ms "
        "with the idle policy). The lease heartbeat keeps the ordinary policy, so a busy host slows a job and its "
        "card but never lets its lease run out while it runs. false: niceness only.",
    )
    taisun_jobs: Literal["embedded", "worker"] = Field(
        "embedded",
        description="Where jobs run: `embedded`, in `taisun serve` itself; `worker`, in `taisun worker` processes "
        "(`taisun serve` then acks, renders and reads, and runs no job). With `worker`, serve wakes the workers "
        "through PostgreSQL's NOTIFY when the database is PostgreSQL, else through Redis (REDIS_URL) when set; "
        "a worker also polls every second.",
    )
    taisun_listener_threads: int = Field(
        16, description="Threads Bolt uses for listeners, so acks never queue behind slow work."
    )
    taisun_audit_key: str = Field(
        "",
        description="Secret (32 characters or more, e.g. `openssl rand -hex 32`) that makes the audit log an "
        "HMAC-SHA256 chain nobody without it can recompute. Never stored in the database; every replica and "
        "`taisun audit verify` need the same one. Empty: a plain SHA-256 chain, which anyone who can write the "
        "database can recompute after editing it.",
    )
    taisun_lease_seconds: float = Field(
        30.0,
        description="A worker holds a job this long between heartbeats; a dead worker's job is taken over after it.",
    )
    taisun_db_connections: int = Field(
        20,
        ge=4,
        le=500,
        description="PostgreSQL: the most connections one bot process opens to DATABASE_URL (its pool: half kept "
        "open, the rest opened under a burst and closed again). Each `taisun serve` gunicorn worker and each "
        "`taisun worker` is a process, and with TAISUN_JOBS=worker each also holds 2 for NOTIFY/LISTEN: "
        "(replicas × --workers + workers) × (this + 2), plus the CLI and backups, must stay under the server's "
        "max_connections; `taisun check` counts it against the server. A thread that finds the pool empty waits "
        "for a connection. Connections are named taisun-serve, taisun-worker, taisun-cli in pg_stat_activity.",
    )

    # --- security operations (#18): the bot's own secrets from AWS Secrets Manager ---
    slack_bot_token_secret_id: str = Field(
        "",
        description="AWS Secrets Manager secret (name or ARN; `NAME#KEY` for one key of a JSON secret) holding "
        "SLACK_BOT_TOKEN, read at start instead of the variable and read again when Slack rejects the token "
        "(a rotation). Needs secretsmanager:GetSecretValue.",
    )
    slack_signing_secret_secret_id: str = Field(
        "",
        description="As SLACK_BOT_TOKEN_SECRET_ID, for SLACK_SIGNING_SECRET (read again, at most once a minute, "
        "when a request's signature does not match).",
    )
    github_token_secret_id: str = Field(
        "",
        description="As SLACK_BOT_TOKEN_SECRET_ID, for GITHUB_TOKEN (read again when GitHub answers 401).",
    )
    taisun_alert_token_secret_id: str = Field(
        "",
        description="As SLACK_BOT_TOKEN_SECRET_ID, for TAISUN_ALERT_TOKEN (read again, at most once a minute, "
        "when Alertmanager's bearer token does not match).",
    )

    # The *_SECRET_ID secrets once read (bot.core.secrets.BotSecrets); None until load_secrets().
    _bot_secrets: Any = PrivateAttr(default=None)

    @property
    def bot_secrets(self) -> Any:
        return self._bot_secrets

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    @property
    def config_path(self) -> Path:
        """The config file: TAISUN_CONFIG, else ./taisun.yml (never the example: see shell_config_path)."""
        return Path(self.taisun_config or "./taisun.yml")

    @property
    def shell_config_path(self) -> Path:
        """The shell's config: as config_path, but the shipped example when neither is there."""
        path = self.config_path
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
    team_id: str = Field(
        "",
        description='The workspace (T…) the bot is installed in; `"*"` in a role means its members only, so '
        "people of another organisation in a Slack Connect channel act only where a role names them. "
        "Empty: learned from Slack (auth.test) at start, and `*` admits no one until Slack has answered.",
    )
    enterprise_id: str = Field(
        "",
        description="For an org-wide Enterprise Grid install: the organisation (E…) whose members, in any "
        "of its workspaces, `*` covers.",
    )
    ops_channel: str = Field(
        "#ops", description="Channel for approval cards, alerts and backup reports (ID or #name)."
    )
    report_channel: str = Field(
        "#ops", description="Channel where unattended jobs (cron backups) post their result."
    )
    ack_deadline_seconds: float = Field(
        2.5,
        gt=0,
        le=3,
        description="Slack stops waiting for an answer after 3 s and tells the user the command failed. "
        "A command or click that has waited longer than this for a free worker is not run, and the "
        "user is told so, so that nothing happens after Slack said it failed. The request's own "
        "database writes are held to the same deadline: if they would take effect later (a table "
        "locked by a migration), they are rolled back and the user is told.",
    )

    @field_validator("team_id")
    @classmethod
    def _team(cls, v: str) -> str:
        if v and not re.fullmatch(r"T[A-Z0-9]{2,}", v):
            raise ValueError(
                f"{v!r} is not a Slack workspace ID (T0123ABCD; `taisun check` shows the token's)"
            )
        return v

    @field_validator("enterprise_id")
    @classmethod
    def _enterprise(cls, v: str) -> str:
        if v and not re.fullmatch(r"E[A-Z0-9]{2,}", v):
            raise ValueError(f"{v!r} is not an Enterprise Grid organisation ID (E0123ABCD)")
        return v


class GithubConfig(Strict):
    repository: str = Field(
        "owner/repo", description="owner/name of the repository whose workflow deploys the service."
    )
    workflow: str = Field(
        "cd.yml",
        description="The GitHub Actions workflow file that deploys (the guide's `gh workflow run cd.yml`).",
    )
    ref: str = Field("main", description="Git ref the workflow is dispatched on.")
    tag_pattern: str = Field(
        r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$",
        description="Regular expression a release tag must match to be accepted as a version.",
    )
    inputs: dict[str, str] = Field(
        default_factory=lambda: {"environment": "{environment}", "version": "{version}"},
        description="Workflow inputs sent with every dispatch; only inputs the workflow declares (else GitHub answers 422). Values may use {environment} {version} {rollback} {requested_by} {approved_by} {job_id}.",
    )
    create_deployment: bool = Field(
        False,
        description="Record a GitHub Deployment with statuses (shown on the repository's environments page).",
    )
    return_run_details: bool = Field(
        False,
        description="Ask for the run id in the dispatch answer (github.com supports it; older GHES answer 422).",
    )
    run_title: str = Field(
        "",
        description='When cd.yml sets run-name from an input: text every run title contains (e.g. "{job_id}"), so concurrent deploys never mix up runs.',
    )
    users: dict[str, str] = Field(
        default_factory=dict,
        description="GitHub login → Slack user ID: a deploy someone started on GitHub (a push, a tag, "
        "`gh workflow run`) is shown and audited as theirs. Logins not listed are shown as @login.",
    )
    poll_seconds: float = Field(
        0,
        ge=0,
        description="Look for deploy workflow runs started outside the bot this often (one conditional "
        "request per environment; an unchanged answer costs no rate limit), for a bot GitHub cannot "
        "reach with webhooks. 0: webhooks only. Checked at most every 15 s.",
    )
    run_name_pattern: str = Field(
        "",
        description="A regular expression with a named group `environment` (and optionally `version`) "
        "matched against a run's title: how a run started with `gh workflow run` names its environment "
        "when cd.yml sets `run-name:` from its inputs. Empty: such runs are attributed only through "
        "GitHub deployments.",
    )

    @field_validator("users")
    @classmethod
    def _users(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for login, user in v.items():
            if not re.fullmatch(r"[UW][A-Z0-9]{2,}", user):
                raise ValueError(f"{login}: {user!r} is not a Slack user ID (U0123ABCD)")
            out[login.lower()] = user
        return out

    @field_validator("run_name_pattern")
    @classmethod
    def _run_name(cls, v: str) -> str:
        if not v:
            return v
        try:
            pattern = re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
        if "environment" not in pattern.groupindex:
            raise ValueError("needs a named group (?P<environment>...)")
        return v

    def slack_user(self, login: str) -> str:
        """The Slack user a GitHub login maps to, or ""."""
        return self.users.get((login or "").lower(), "")

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
    operator: list[Member] = Field(
        default_factory=lambda: ["*"],
        description="May request deploy, rollback, restart, cache-clear, backup and take locks.",
    )
    approver: list[Member] = Field(
        default_factory=list,
        description="May approve other people's requests where the environment requires approval.",
    )
    responder: list[Member] = Field(
        default_factory=lambda: ["*"], description="May declare and drive incidents."
    )
    break_glass: list[Member] = Field(
        default_factory=list,
        description="May deploy inside a freeze window with --force <reason> (still needs approval).",
    )
    admin: list[Member] = Field(
        default_factory=list, description="May cancel stuck jobs and release anyone's lock."
    )
    viewer: list[Member] = Field(
        default_factory=lambda: ["*"], description="May read metrics, SLOs, logs and traces (read-only)."
    )

    @field_validator(*ROLES)
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        return _check_members(v)


class Defaults(Strict):
    approval_expiry_minutes: int = Field(
        30, ge=1, le=24 * 60, description="How long an approval card stays valid."
    )
    lock_expiry_minutes: int = Field(240, ge=1, description="How long a manual lock lasts before it expires.")
    lock_reminder_minutes: int = Field(
        15, ge=0, description="The lock holder is reminded this long before the lock expires."
    )
    verify_timeout_seconds: float = Field(
        300,
        gt=0,
        description="After a deploy, GET <url>/health and <url>/version are retried until this deadline.",
    )
    verify_interval_seconds: float = Field(
        10, gt=0, description="Pause between post-deploy verification attempts."
    )
    workflow_timeout_minutes: float = Field(
        60, gt=0, description="How long a deploy's workflow run may take before the bot stops following it."
    )
    commands_per_minute: int = Field(
        30,
        ge=1,
        description="Slash commands one person may send per minute (stops a stuck key or a runaway script).",
    )
    find_run_timeout_seconds: float = Field(
        60, gt=0, description="How long to look for the workflow run a dispatch started before giving up."
    )


class WeekTime(Strict):
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(description="Day of the week.")
    time: str = Field(description="Time of day (HH:MM) in the config's timezone.")

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
    name: str = Field("freeze", description="Name shown when a deploy is refused.")
    start: WeekTime = Field(description="When the window starts each week.")
    end: WeekTime = Field(description="When it ends; may wrap over the week's end (Friday to Monday).")

    def contains(self, when: datetime, tz: ZoneInfo) -> bool:
        """True when `when` (aware) falls inside this weekly window in `tz`."""
        local = when.astimezone(tz)
        minute = local.weekday() * 24 * 60 + local.hour * 60 + local.minute
        start, end = self.start.minute_of_week(), self.end.minute_of_week()
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end  # wraps over the week's end


class InstanceTag(Strict):
    key: str = Field(description="EC2 tag key.")
    value: str = Field(description="EC2 tag value.")


class RestartConfig(Strict):
    backend: Literal["local", "ssm"] = Field(
        "local",
        description="local: systemctl on the bot's host; ssm: rolling restart through SSM Run Command.",
    )
    instance_tag: InstanceTag | None = Field(
        None, description="backend ssm: the EC2 tag that selects the environment's instances."
    )
    invocation_timeout_seconds: float = Field(
        120, description="Seconds to wait for each SSM invocation (and each local systemctl call)."
    )
    systemctl: list[str] = Field(
        default_factory=lambda: ["systemctl"],
        min_length=1,
        description="backend local: the systemctl command as an argument list, e.g. [sudo, -n, systemctl].",
    )
    health_attempts: int = Field(
        6, ge=1, description="After each instance's restart, /health is tried this many times."
    )
    health_interval_seconds: float = Field(5.0, gt=0, description="Pause between those /health attempts.")
    poll_seconds: float = Field(2.0, gt=0, description="How often an SSM invocation's status is polled.")

    @model_validator(mode="after")
    def _ssm_needs_tag(self) -> RestartConfig:
        if self.backend == "ssm" and self.instance_tag is None:
            raise ValueError("backend ssm needs instance_tag: {key: ..., value: ...} to select instances")
        return self


class CacheConfig(Strict):
    redis_url_env: str = Field("", description="Env var holding the environment's cache Redis URL.")
    mode: Literal["flushdb", "prefix", "flushall"] = Field(
        "flushdb",
        description="flushdb: the URL's database; prefix: keys under prefix; flushall: every database.",
    )
    prefix: str = Field("", description="mode prefix: the key prefix whose keys are deleted.")
    allow_flushall: bool = Field(
        False, description="FLUSHALL is refused unless this is true (it empties every database)."
    )
    app_endpoint: str = Field("", description="URL POSTed to clear the application cache.")
    app_token_env: str = Field("", description="Env var holding the bearer token sent to app_endpoint.")
    app_command: list[str] = Field(
        default_factory=list,
        description="Command (argument list) that clears the application cache, when there is no app_endpoint.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CacheConfig:
        if self.mode == "prefix" and not self.prefix:
            raise ValueError("mode prefix needs a non-empty prefix")
        if self.mode == "flushall" and not self.allow_flushall:
            raise ValueError("mode flushall needs allow_flushall: true (it empties every database)")
        return self


class DatabaseTarget(Strict):
    dsn_env: str = Field(
        description="Env var holding the application database's DSN (never the bot's DATABASE_URL)."
    )
    idle_age_minutes: float = Field(
        60.0,
        gt=0,
        description="The DB connection reset terminates idle connections older than this (0.5 = 30 s).",
    )


# --- observability (#16): the monitoring stack per environment, the guide's metrics and SLOs ---

# A query's placeholders: $selector (the environment's label matchers) and $window (a range like 5m).
_HTTP = "http_request_duration_seconds"
_REAL_FS = 'fstype!~"tmpfs|overlay|squashfs|ramfs"'
# The guide's key metrics (監視・アラート → 主要メトリクス), each in the unit its thresholds are written in.
DEFAULT_METRICS: dict[str, dict[str, object]] = {
    "p99_latency": {
        "query": f"1000 * histogram_quantile(0.99, sum by (le) (rate({_HTTP}_bucket{{$selector}}[$window])))",
        "unit": "ms", "warning": 500, "critical": 1000, "decimals": 0,
    },
    "error_rate": {
        "query": f'100 * sum(rate({_HTTP}_count{{status_code=~"5..",$selector}}[$window]))'
        f" / sum(rate({_HTTP}_count{{$selector}}[$window]))",
        "unit": "%", "warning": 1, "critical": 5, "decimals": 2,
    },
    "request_rate": {
        "query": f"60 * sum(rate({_HTTP}_count{{$selector}}[$window]))",
        "unit": "/min", "warning": 10, "below": True, "decimals": 0,
    },
    "cpu": {
        "query": '100 * max(1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",$selector}[$window])))',
        "unit": "%", "warning": 70, "critical": 90,
    },
    "memory": {
        "query": "100 * max(1 - node_memory_MemAvailable_bytes{$selector} / node_memory_MemTotal_bytes{$selector})",
        "unit": "%", "warning": 80, "critical": 95,
    },
    "disk": {
        "query": f"100 * max(1 - node_filesystem_avail_bytes{{{_REAL_FS},$selector}}"
        f" / node_filesystem_size_bytes{{{_REAL_FS},$selector}})",
        "unit": "%", "warning": 80,
    },
}  # fmt: skip
# The guide's SLO table (SLO/SLI): each as the share of bad events over $window, 0..1.
DEFAULT_SLOS: dict[str, dict[str, object]] = {
    "api_availability": {
        "objective": 99.9,
        "error_ratio": f'sum(rate({_HTTP}_count{{status_code=~"5..",$selector}}[$window]))'
        f" / sum(rate({_HTTP}_count{{$selector}}[$window]))",
    },
    # p99 < 500 ms: at least 99 % of requests answered within 500 ms (the histogram's le="0.5" bucket).
    "api_latency": {
        "objective": 99.0,
        "error_ratio": f'1 - sum(rate({_HTTP}_bucket{{le="0.5",$selector}}[$window]))'
        f" / sum(rate({_HTTP}_count{{$selector}}[$window]))",
    },
    "database_availability": {
        "objective": 99.95,
        "error_ratio": "1 - avg(avg_over_time(pg_up{$selector}[$window]))",
    },
}
_DURATION = re.compile(r"(\d+)([smhd])")


def duration_seconds(text: str) -> int:
    """'15m' → 900 (one number and one unit of s, m, h or d); ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not m or int(m[1]) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 6h or 7d")
    return int(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def _merged(defaults: dict[str, dict[str, object]], given: object) -> object:
    """The defaults with each given entry laid over the one of the same name (null removes it)."""
    if not isinstance(given, dict):
        return given
    out: dict[str, object] = {k: dict(v) for k, v in defaults.items()}
    for name, entry in given.items():
        if entry is None:
            out.pop(name, None)
        elif isinstance(entry, dict) and isinstance(out.get(name), dict):
            out[name] = {**out[name], **entry}  # type: ignore[dict-item]
        else:
            out[name] = entry
    return out


class Endpoint(Strict):
    url: str = Field(
        "",
        description="Base URL: Prometheus http://prometheus:9090, Loki http://loki:3100, Jaeger http://jaeger-query:16686.",
    )
    url_env: str = Field(
        "", description="Env var holding the URL instead (it wins when set), e.g. PROD_PROMETHEUS_URL."
    )
    token_env: str = Field(
        "", description="Env var holding a bearer token sent as `Authorization: Bearer …`."
    )
    username: str = Field("", description="Basic auth user name (its password from password_env).")
    password_env: str = Field("", description="Env var holding the basic auth password.")
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="How long one request may take.")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and not re.match(r"https?://", v):
            raise ValueError(f"{v!r} should start with http:// or https://")
        return v.rstrip("/")

    def resolved_url(self) -> str:
        """The URL: the env var named by url_env when it is set, else url."""
        return (os.environ.get(self.url_env, "") if self.url_env else "").rstrip("/") or self.url

    def headers(self) -> dict[str, str]:
        """The Authorization header from the env vars named here (none when they are unset)."""
        token = os.environ.get(self.token_env, "") if self.token_env else ""
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username:
            pw = os.environ.get(self.password_env, "") if self.password_env else ""
            raw = base64.b64encode(f"{self.username}:{pw}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}


class PrometheusEndpoint(Endpoint):
    selector: str = Field(
        "",
        description="Label matchers that pick this environment's series, put where a query says $selector, e.g. "
        '`env="production"`; empty when this Prometheus watches this environment only.',
    )


class LokiEndpoint(Endpoint):
    selector: str = Field(
        '{app="taisun"}',
        description="LogQL stream selector of this environment's application logs (searches start from it).",
    )
    tenant: str = Field("", description="X-Scope-OrgID for a multi-tenant Loki; empty: none sent.")

    @field_validator("selector")
    @classmethod
    def _stream(cls, v: str) -> str:
        if not re.fullmatch(r"\{.*\}", v.strip(), re.S):
            raise ValueError(f'{v!r} is not a LogQL stream selector like {{app="taisun"}}')
        return v.strip()


class JaegerEndpoint(Endpoint):
    ui_url: str = Field(
        "", description="Where people open a trace (<ui_url>/trace/<id>), when not url (the API's)."
    )


class EnvObservability(Strict):
    prometheus: PrometheusEndpoint | None = Field(
        None,
        description="Prometheus HTTP API of this environment (`metrics`, `slo`, the SLO line on status and Home).",
    )
    loki: LokiEndpoint | None = Field(None, description="Loki of this environment (`logs`).")
    jaeger: JaegerEndpoint | None = Field(
        None, description="Jaeger query service of this environment (`trace`)."
    )
    grafana_url: str = Field(
        "", description="Grafana dashboard of this environment, linked from metrics and SLOs."
    )


class MetricQuery(Strict):
    query: str = Field(description="PromQL giving one number ($selector and $window are filled in).")
    title: str = Field("", description="Name shown; empty: the guide's name for its metrics, else the key.")
    unit: str = Field("", description="Unit the query's number is in, shown after it (ms, %, /min).")
    warning: float | None = Field(None, description="Warning beyond this value (the query's unit).")
    critical: float | None = Field(None, description="Critical beyond this value (the query's unit).")
    below: bool = Field(
        False, description="true: lower is worse (warning/critical when the value falls under them)."
    )
    decimals: int = Field(1, ge=0, le=6, description="Decimals shown.")

    @model_validator(mode="after")
    def _order(self) -> MetricQuery:
        if self.warning is None or self.critical is None:
            return self
        if (self.critical > self.warning) if self.below else (self.critical < self.warning):
            raise ValueError("critical should be beyond warning (further from the good side)")
        return self


class SloSpec(Strict):
    objective: float = Field(gt=0, lt=100, description="Target in percent of good events (99.9).")
    error_ratio: str = Field(
        description="PromQL giving the share of bad events over $window, 0 to 1 ($selector is filled in too)."
    )
    title: str = Field("", description="Name shown; empty: the guide's name for its SLOs, else the key.")


# The watch after a deploy: which metrics it compares with their pre-deploy baseline, and how far
# they may move (in the metric's own unit) before a measurement fails. Argo Rollouts' analysis
# templates say the same thing per metric; these are the guide's two that a bad release moves first.
DEFAULT_WATCH_METRICS: dict[str, dict[str, float]] = {
    "error_rate": {"factor": 2.0, "margin": 1.0},  # over 2× the baseline and at least 1 point above it
    "p99_latency": {"factor": 1.5, "margin": 250.0},  # over 1.5× the baseline and at least 250 ms above
}


class WatchLimit(Strict):
    factor: float = Field(
        2.0, ge=1, description="A measurement fails when the value is over this many times its baseline…"
    )
    margin: float = Field(
        1.0,
        ge=0,
        description="…and at least this much above it, in the metric's unit (both must hold, so a tiny "
        "baseline's noise is no breach). For a metric where lower is worse: under baseline ÷ factor and "
        "this much below it.",
    )


class WatchConfig(Strict):
    interval: str = Field(
        "1m", description="Time between two measurements of the watch (Argo Rollouts' `interval`)."
    )
    window: str = Field(
        "2m",
        description="The $window of each measurement's rates: twice the interval, so every request is seen "
        "by two measurements, and at least four scrapes at a 30 s scrape interval.",
    )
    baseline_window: str = Field(
        "30m", description="The $window of the baseline, measured just before the deploy is dispatched."
    )
    failure_limit: int = Field(
        3,
        ge=1,
        le=60,
        description="This many failing measurements in a row are a breach (one bad sample is not); a "
        "watch with fewer measurements needs all of them to fail.",
    )
    error_limit: int = Field(
        3,
        ge=1,
        le=60,
        description="This many measurements in a row that Prometheus did not answer end the watch: the "
        "deploy stays verified but is marked not watched (Argo Rollouts' consecutiveErrorLimit).",
    )
    metrics: dict[str, WatchLimit] = Field(
        default_factory=lambda: {k: WatchLimit.model_validate(v) for k, v in DEFAULT_WATCH_METRICS.items()},
        description="The metrics watched (names under observability.metrics), each failing a measurement "
        "beyond its critical threshold or beyond its baseline by factor and margin. Entries given here are "
        "laid over the defaults of the same name; null removes one.",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_over_defaults(cls, v: object) -> object:
        return _merged(DEFAULT_WATCH_METRICS, v)  # type: ignore[arg-type]

    @field_validator("interval", "window", "baseline_window")
    @classmethod
    def _duration(cls, v: str) -> str:
        duration_seconds(v)
        return v.strip().lower()

    @property
    def interval_seconds(self) -> int:
        return duration_seconds(self.interval)


class ObservabilityConfig(Strict):
    metrics: dict[str, MetricQuery] = Field(
        default_factory=lambda: {k: MetricQuery.model_validate(v) for k, v in DEFAULT_METRICS.items()},
        description="`metrics`: the guide's key metrics by name, PromQL and thresholds (docs/observability.md). "
        "Entries given here are laid over the defaults of the same name; null removes one.",
    )
    metrics_window: str = Field("5m", description="The $window of the metrics' rates.")
    slos: dict[str, SloSpec] = Field(
        default_factory=lambda: {k: SloSpec.model_validate(v) for k, v in DEFAULT_SLOS.items()},
        description="`slo`: the guide's SLO table by name; laid over the defaults like metrics.",
    )
    slo_window_days: int = Field(30, ge=1, le=90, description="The SLOs' rolling window.")
    budget_warning_percent: float = Field(
        25, ge=0, lt=100, description="An SLO shows ⚠️ when less of its error budget than this is left."
    )
    cache_seconds: float = Field(
        30, ge=0, description="SLO states on status and the Home tab are reused for this long."
    )
    logs_since: str = Field("15m", description="How far back `logs` looks without --since.")
    logs_max_since: str = Field("7d", description="The longest --since `logs` accepts.")
    logs_limit: int = Field(500, ge=1, le=5000, description="The most lines one `logs` fetches.")
    logs_inline_lines: int = Field(
        15, ge=1, le=50, description="Up to this many lines are shown in the reply; more go up as a file."
    )
    watch: WatchConfig = Field(
        default_factory=WatchConfig,
        description="The watch after a deploy or rollback verifies, where environments.<name>.watch_minutes "
        "is set (docs/observability.md).",
    )

    @model_validator(mode="after")
    def _watched_metrics_exist(self) -> ObservabilityConfig:
        for name in self.watch.metrics:
            if name not in self.metrics:
                raise ValueError(
                    f"watch.metrics names {name!r}, which is not under observability.metrics "
                    f"({', '.join(self.metrics) or 'none'})"
                )
        return self

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_over_defaults(cls, v: object) -> object:
        return _merged(DEFAULT_METRICS, v)

    @field_validator("slos", mode="before")
    @classmethod
    def _slos_over_defaults(cls, v: object) -> object:
        return _merged(DEFAULT_SLOS, v)

    @field_validator("metrics_window", "logs_since", "logs_max_since")
    @classmethod
    def _duration(cls, v: str) -> str:
        duration_seconds(v)
        return v.strip().lower()


# --- end of observability (#16) ---


class DeployTriggers(Strict):
    branches: list[str] = Field(
        default_factory=list,
        description="A push to one of these branches (globs allowed) runs the deploy workflow for this "
        "environment (the guide: develop → staging).",
    )
    tags: bool = Field(
        False,
        description="A pushed release tag (github.tag_pattern) runs the deploy workflow for this environment "
        "(the guide: `git push origin v1.2.3` → production).",
    )

    def matches_branch(self, branch: str) -> bool:
        return any(fnmatch.fnmatchcase(branch, pattern) for pattern in self.branches)


class SmokeCheck(Strict):
    path: str = Field(description="Path under the environment's url, e.g. /api/ping.")
    status: int = Field(200, ge=100, le=599, description="The HTTP status the check expects.")
    json_subset: dict[str, Any] | None = Field(
        None,
        description="Keys and values the JSON answer must contain (nested mappings compared the same way).",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} should start with /")
        return v


class SmokeConfig(Strict):
    workflow: str = Field(
        "",
        description="A GitHub Actions workflow dispatched after verification (the guide's "
        "`npm run test:smoke -- --env=production`), e.g. smoke.yml; its conclusion is the smoke test's.",
    )
    ref: str = Field("", description="Ref the smoke workflow is dispatched on; empty: github.ref.")
    inputs: dict[str, str] = Field(
        default_factory=lambda: {"environment": "{environment}"},
        description="Inputs sent with the smoke dispatch (only what the workflow declares); values may use "
        "{environment} {version} {job_id}.",
    )
    timeout_minutes: float = Field(
        15, gt=0, description="How long the smoke workflow may take before the smoke test counts as failed."
    )
    checks: list[SmokeCheck] = Field(
        default_factory=list,
        description="Instead of a workflow: HTTP GETs against the environment, each with the status and "
        "JSON it must answer.",
    )
    timeout_seconds: float = Field(10, gt=0, description="Timeout of each HTTP check.")

    @model_validator(mode="after")
    def _one_kind(self) -> SmokeConfig:
        if bool(self.workflow) == bool(self.checks):
            raise ValueError("give either workflow (a smoke workflow to dispatch) or checks (HTTP checks)")
        return self


class Environment(Strict):
    name: str = Field("", description="Filled in from the key under environments; leave it out.")
    aliases: list[str] = Field(
        default_factory=list, description="Other names commands accept for this environment (prod, stg, dev)."
    )
    branch: str = Field("", description="Branch the environment follows (shown by status).")
    url: str = Field(
        "", description="Base URL; /health and /version are checked there after deploys and restarts."
    )
    approval_required: bool = Field(False, description="Changes here need another person's approval.")
    approvers: list[Member] = Field(
        default_factory=list, description="Who may approve here; empty: roles.approver."
    )
    approval_expiry_minutes: int | None = Field(
        None, description="Overrides defaults.approval_expiry_minutes here."
    )
    auto_rollback: bool = Field(
        False,
        description="Roll back automatically when post-deploy verification or the smoke test fails.",
    )
    triggers: DeployTriggers = Field(
        default_factory=DeployTriggers,
        description="What starts the deploy workflow for this environment outside the bot, so those runs "
        "join its deploy timeline (seen by POST /github/webhook or the poller).",
    )
    smoke: SmokeConfig | None = Field(
        None,
        description="A smoke test after /health and /version are verified; a failure fails the deploy "
        "(and rolls back where auto_rollback is true). Absent: none.",
    )
    services: list[str] = Field(
        default_factory=list, description="Services `restart` may restart; the first is the default."
    )
    restart: RestartConfig = Field(
        default_factory=RestartConfig, description="How `restart` restarts the services."
    )
    cache: CacheConfig | None = Field(
        None, description="What `cache-clear` clears; absent: no cache to clear here."
    )
    database: DatabaseTarget | None = Field(
        None, description="The application's database, for the DB connection reset runbook."
    )
    freeze_windows: list[FreezeWindow] = Field(
        default_factory=list,
        description="Weekly windows when deploys are refused unless forced (break_glass).",
    )
    roles: dict[str, list[Member]] = Field(
        default_factory=dict, description='Per-environment role overrides, e.g. {operator: ["@sre"]}.'
    )
    observability: EnvObservability | None = Field(
        None, description="Prometheus, Loki, Jaeger and Grafana of this environment; absent: none."
    )
    watch_minutes: float = Field(
        0,
        ge=0,
        le=24 * 60,
        description="After a deploy or rollback verifies, watch error rate and p99 this long against the "
        "guide's critical thresholds and the pre-deploy baseline (observability.watch); a breach fails "
        "the deploy, or rolls it back where auto_rollback is true. 0: no watch.",
    )

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

    @model_validator(mode="after")
    def _watch_needs_prometheus(self) -> Environment:
        if self.watch_minutes and not (self.observability and self.observability.prometheus):
            raise ValueError(
                "watch_minutes needs this environment's Prometheus (observability.prometheus) to watch with"
            )
        return self


class PgBackRestConfig(Strict):
    """pgBackRest (physical backups with WAL archiving): the bot runs it, the server side is documented
    in docs/backups.md. An empty stanza turns pgBackRest off: `backup run` is the pg_dump copy alone."""

    stanza: str = Field("", description="pgBackRest stanza of the database; empty: pgBackRest is not used.")
    command: list[str] = Field(
        default_factory=lambda: ["pgbackrest"], description="The pgbackrest program (argument list)."
    )
    run_as: list[str] = Field(
        default_factory=list,
        description="Argument list put before pgbackrest and pg_ctl so they run as the cluster's OS user, "
        'e.g. ["sudo", "-n", "-u", "postgres"]; empty: as the bot\'s own user.',
    )
    config_path: str = Field(
        "", description="pgbackrest.conf to use (--config); empty: pgBackRest's default."
    )
    repos: list[int] = Field(
        default_factory=lambda: [1],
        description="Repositories each backup is taken to, in order (repo1 posix, repo2 S3, ...).",
    )
    timeout_seconds: float = Field(21600.0, gt=0, description="Seconds one pgbackrest backup may run.")


class DrillConfig(Strict):
    """Restore drills: the newest backup (or a point in time) restored into a scratch instance."""

    pg_bin: str = Field(
        "/usr/lib/postgresql/15/bin", description="Directory of the PostgreSQL server programs (pg_ctl)."
    )
    scratch_dir: str = Field(
        "/var/lib/taisun/drill",
        description="Parent directory of the scratch data directories (never the live data directory).",
    )
    port: int = Field(55439, gt=0, lt=65536, description="Port the scratch instance listens on (127.0.0.1).")
    database: str = Field(
        "", description="Database the integrity check connects to; empty: the one backup.dsn_env names."
    )
    timeout_seconds: float = Field(
        3600.0, gt=0, description="Seconds the scratch instance may take to replay WAL and open."
    )


class BackupSchedule(Strict):
    """The guide's timers, run by the bot itself: each slot exactly once across replicas and restarts."""

    enabled: bool = Field(True, description="Run the schedule (only while backup.pgbackrest.stanza is set).")
    full_at: str = Field(
        "02:00", description="Daily full backup, HH:MM in `timezone` (the guide's 02:00 JST)."
    )
    incremental_minutes: int = Field(
        60, ge=0, description="An incremental backup every this many minutes (0: none)."
    )
    drill_at: str = Field(
        "sun 04:00", description="Weekly restore drill, `<day> HH:MM` in `timezone`; empty: no drill."
    )
    timezone: str = Field("Asia/Tokyo", description="Timezone of full_at and drill_at.")
    quiet: list[Literal["full", "diff", "incr", "drill"]] = Field(
        default_factory=lambda: ["incr"],
        description="Scheduled runs of these kinds post their card only when they fail: the hourly "
        "incremental would post 24 cards a day. Their successes still show in `/taisun backup status`, the "
        "Home tab, the audit log and the metrics. `[]`: every scheduled run posts a card.",
    )

    @field_validator("full_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError(f"{v!r}: expected HH:MM, e.g. 02:00")
        return v

    @field_validator("drill_at")
    @classmethod
    def _day_hhmm(cls, v: str) -> str:
        m = re.fullmatch(r"(\w{3}) ([01]\d|2[0-3]):([0-5]\d)", v.strip().lower())
        if v and (m is None or m[1] not in DAYS):
            raise ValueError(f"{v!r}: expected `<day> HH:MM`, e.g. sun 04:00 (days: {', '.join(DAYS)})")
        return v.strip().lower()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown timezone {v!r} (use an IANA name like Asia/Tokyo)") from e
        return v


class BackupConfig(Strict):
    bucket: str = Field("taisun-backups", description="S3 bucket backups are written to.")
    prefix: str = Field("db/", description="Key prefix; keys look like db/backup_20261128_020000.sql.gz.")
    dsn_env: str = Field(
        "BACKUP_DATABASE_URL",
        description="Env var holding the DSN of the database to back up (the guide's $DATABASE_URL).",
    )
    retention_days: int = Field(
        30, ge=1, description="Backups older than this are deleted (the newest is always kept)."
    )
    memory_paths: list[str] = Field(
        default_factory=list,
        description="Paths tarred next to the dump as memory/memory_<ts>.tar.gz (the guide's memory system).",
    )
    verify_command: list[str] = Field(
        default_factory=list,
        description="Integrity check after a restore (argument list), run with DATABASE_URL set to the restored database.",
    )
    restore_dsn_env: str = Field(
        "", description="Env var of the database `backup restore <id>` restores into; empty: dsn_env."
    )
    pg_dump: str = Field(
        "pg_dump",
        description="pg_dump program; a versioned path when the server is newer than the default client.",
    )
    psql: str = Field(
        "psql", description="psql program; a versioned path when the server is newer than the default client."
    )
    verify_timeout_seconds: float = Field(600.0, gt=0, description="Seconds verify_command may run.")
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description=(
            "CPU niceness added to a backup's and a drill's own work (pg_dump and its compression, "
            "pgBackRest, the drill's scratch PostgreSQL), so they yield the CPU to the bot's acks on a "
            "shared host. 0: the bot's own priority. A restore you run is never niced."
        ),
    )
    max_rate_mib_per_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Read the pg_dump copy at most this fast (MiB a second, before compression), as pg_basebackup's "
            "--max-rate does. pg_dump's server backend streams the tables at the database server's ordinary "
            "priority, which `nice` cannot reach: a cap leaves that server its CPU for its other queries (a "
            "2-core host, BENCHMARKS.md §6i: a plain commit's p99 while a 1 GB dump streamed, 160 ms uncapped, "
            "25-40 ms at 32 MiB/s). A capped dump takes longer and holds its snapshot open longer (vacuum waits for it). 0: no cap."
        ),
    )
    # --- RPO/RTO (#17) ---
    rpo_minutes: int = Field(
        60, gt=0, description="Recovery point objective: the most data the team may lose."
    )
    rto_minutes: int = Field(
        240, gt=0, description="Recovery time objective: a restore drill must finish within it."
    )
    pgbackrest: PgBackRestConfig = Field(
        default_factory=PgBackRestConfig, description="Full, differential and incremental backups with WAL."
    )
    drill: DrillConfig = Field(
        default_factory=DrillConfig, description="Restore drills into a scratch instance."
    )
    schedule: BackupSchedule = Field(
        default_factory=BackupSchedule, description="Daily full, hourly incremental, weekly drill."
    )


class Nudges(Strict):
    no_commander_minutes: int = Field(
        5, description="Nudge the incident channel when no commander is assigned after this long."
    )
    no_status_minutes: int = Field(
        30, description="Nudge when no status update has been posted for this long."
    )


class IncidentConfig(Strict):
    severities: list[str] = Field(
        default_factory=lambda: ["sev1", "sev2", "sev3", "sev4"], description="Severities, most severe first."
    )
    dedicated_channel_severities: list[str] = Field(
        default_factory=lambda: ["sev1", "sev2"],
        description="These severities get a dedicated incident channel at once.",
    )
    responders: list[Member] = Field(
        default_factory=list,
        description="Invited to dedicated incident channels (the guide's on-call contacts).",
    )
    contacts: dict[str, str] = Field(
        default_factory=dict, description="Named contacts (oncall, infra, security) shown to responders."
    )
    nudges: Nudges = Field(default_factory=Nudges, description="Reminders while an incident is open.")


class AlertConfig(Strict):
    channel: str = Field("#alerts", description="Channel where Alertmanager alerts are posted.")
    runbooks: dict[str, str] = Field(
        default_factory=dict,
        description="alertname → runbook id, for alerts without a runbook_url annotation.",
    )
    auto_declare_severity: str = Field(
        "", description="Critical alerts declare an incident of this severity; empty: they join the open one."
    )


class AuditAnchorConfig(Strict):
    interval_minutes: float = Field(
        60,
        gt=0,
        description="How often the chain's head (seq and MAC) is written outside the database, when rows "
        "were added since the last time. Rows after the newest anchor can be deleted unnoticed.",
    )
    s3_bucket: str = Field(
        "",
        description="S3 bucket each anchor is written to as an object (turn on Object Lock with a default "
        "retention to make anchored history immutable); `taisun audit verify` reads the newest. Empty: none.",
    )
    s3_prefix: str = Field("audit-anchors/", description="Key prefix of the anchor objects.")
    slack_channel: str = Field(
        "",
        description="Channel (ID or #name) each anchor is posted to as a short message everyone there can read; "
        "`taisun audit verify --anchor SEQ:MAC` checks the log against one. Empty: none.",
    )


class AuditConfig(Strict):
    anchor: AuditAnchorConfig = Field(
        default_factory=AuditAnchorConfig,
        description="Anchors: the chain's head written where the database's writers cannot rewrite it.",
    )


# --- security operations (#18) -----------------------------------------------------------------------

CADENCES = ("weekly", "monthly", "quarterly", "yearly")
# When a task left undone counts as overdue, by cadence (security.tasks[].overdue_after_days).
OVERDUE_AFTER_DAYS = {"weekly": 2.0, "monthly": 7.0, "quarterly": 14.0, "yearly": 30.0}


class SecurityTask(Strict):
    id: str = Field(
        description="The task's key (a-z, 0-9, _ and -): the guide's four are dependency_scan, secret_rotation, "
        "access_review and penetration_test; an entry with one of their ids changes only the keys it sets."
    )
    title: str = Field(
        "", description="Name shown in Slack; empty: the guide's name for its four tasks, else the id."
    )
    kind: Literal["dependency_scan", "secret_rotation", "access_review", "manual"] = Field(
        "manual",
        description="What the bot does when it is due: dependency_scan dispatches the scan workflow and posts its "
        "report; secret_rotation posts the watched secrets' ages; access_review starts a review; manual posts it.",
    )
    mode: Literal["automatic", "manual", "external"] = Field(
        "manual",
        description="Who carries it out (the guide's 担当): automatic (the bot), manual (the owners), external "
        "(a vendor the owners engage).",
    )
    cadence: Literal["weekly", "monthly", "quarterly", "yearly"] = Field(
        "monthly", description="How often it is due (required for a task of your own)."
    )
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="weekly: the day it is due."
    )
    day: int = Field(
        1,
        ge=1,
        le=31,
        description="monthly, quarterly, yearly: the day of the month (past a month's end: its last day).",
    )
    month: int = Field(
        1, ge=1, le=12,
        description="yearly: the month; quarterly: the first quarter's month (1, 2 or 3), repeated every three months.",
    )  # fmt: skip
    time: str = Field("09:00", description="Time of day (HH:MM) in the config's timezone.")
    owners: list[Member] = Field(
        default_factory=list,
        description="Who does it and may mark it done or snooze it (user IDs, @groups); empty: roles.admin.",
    )
    channel: str = Field(
        "", description="Where it is posted when due (ID or #name); empty: security.channel."
    )
    overdue_after_days: float | None = Field(
        None,
        gt=0,
        description="Days after it is due that it counts as overdue and owners are nudged; empty: weekly 2, "
        "monthly 7, quarterly 14, yearly 30.",
    )
    enabled: bool = Field(
        True, description="false: the task is never posted (a guide task you do elsewhere)."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", v):
            raise ValueError(f"{v!r} should be lower-case letters, digits, _ or - (at most 40)")
        return v

    @field_validator("time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            time.fromisoformat(v)
        except ValueError as e:
            raise ValueError(f"{v!r} is not a time like 09:00") from e
        return v

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        return _check_members(v)

    @property
    def overdue_days(self) -> float:
        return self.overdue_after_days or OVERDUE_AFTER_DAYS[self.cadence]


# The guide's セキュリティ運用 table: the tasks a config without security.tasks gets.
GUIDE_TASKS: tuple[SecurityTask, ...] = (
    SecurityTask(id="dependency_scan", kind="dependency_scan", mode="automatic", cadence="weekly",
                 weekday="mon", time="09:00"),
    SecurityTask(id="secret_rotation", kind="secret_rotation", mode="manual", cadence="monthly", day=1,
                 time="10:00"),
    SecurityTask(id="access_review", kind="access_review", mode="manual", cadence="quarterly", month=1, day=1,
                 time="10:00"),
    SecurityTask(id="penetration_test", kind="manual", mode="external", cadence="yearly", month=4, day=1,
                 time="10:00"),
)  # fmt: skip


class ScanConfig(Strict):
    workflow: str = Field(
        "security-scan.yml",
        description="The GitHub Actions workflow that runs the scan (the guide's `npm run security:scan`) and "
        "uploads its report as an artifact; it needs `on: workflow_dispatch`.",
    )
    ref: str = Field("", description="Git ref the scan is dispatched on; empty: github.ref.")
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Workflow inputs sent with the dispatch (only inputs it declares)."
    )
    artifact: str = Field("security-report", description="Name of the run's artifact that holds the report.")
    report_file: str = Field(
        "security-report.json",
        description="The report inside the artifact: JSON with `vulnerabilities`, a list (or npm audit's map) of "
        "findings with a `severity` (the guide's `jq '.vulnerabilities | group_by(.severity)'`).",
    )
    timeout_minutes: float = Field(
        30, gt=0, description="How long the scan run may take before the bot stops following it."
    )
    poll_seconds: float = Field(5, gt=0, description="How often the scan run's state is read.")
    issue_severities: list[str] = Field(
        default_factory=lambda: ["critical", "high"],
        description="Findings of these severities get a GitHub issue each (once per finding, never twice).",
    )
    issue_labels: list[str] = Field(
        default_factory=lambda: ["security"],
        description="Labels of those issues; the first also finds the bot's earlier issues after a database restore.",
    )
    max_issues_per_scan: int = Field(
        20,
        ge=0,
        description="At most this many issues are opened per scan; the rest follow with the next scans.",
    )


class WatchedSecret(Strict):
    name: str = Field(
        description="The secret's name (an AWS Secrets Manager name or ARN, or a GitHub secret's name)."
    )
    source: Literal["aws", "github"] = Field(
        "aws",
        description="aws: Secrets Manager (LastRotatedDate, else LastChangedDate); github: the repository's Actions "
        "secrets (updated_at).",
    )
    region: str = Field("", description="aws: the secret's region; empty: AWS_DEFAULT_REGION.")
    max_age_days: int | None = Field(
        None, ge=1, description="Flagged when older than this; empty: security.secrets.max_age_days."
    )


class SecretsConfig(Strict):
    max_age_days: int = Field(
        35,
        ge=1,
        description="A watched secret not rotated for longer is flagged (a month and the task's grace).",
    )
    watch: list[WatchedSecret] = Field(
        default_factory=list,
        description="The secrets the monthly rotation watches, by name only (the bot never reads their values).",
    )


class AccessReviewConfig(Strict):
    reviewers: list[Member] = Field(
        default_factory=list,
        description="Who may decide Keep or Remove (never on their own access); empty: roles.admin.",
    )
    inactive_days: int = Field(
        90,
        ge=1,
        description="Someone with no audit log entry for this long is marked inactive in the review.",
    )

    @field_validator("reviewers")
    @classmethod
    def _reviewers(cls, v: list[str]) -> list[str]:
        return _check_members(v)


class SecurityConfig(Strict):
    channel: str = Field(
        "",
        description="The owners' channel, where due tasks are posted (ID or #name); empty: slack.ops_channel.",
    )
    tasks: list[SecurityTask] = Field(
        default_factory=list,
        description="The recurring tasks; the guide's four (dependency_scan, secret_rotation, access_review, "
        "penetration_test) are always there unless disabled, and an entry with one of their ids changes them.",
    )
    snooze_hours: float = Field(24, gt=0, description="How long Snooze quiets a task's reminders.")
    nudge_every_hours: float = Field(
        24, gt=0, description="An overdue task's owners are reminded this often."
    )
    scan: ScanConfig = Field(default_factory=ScanConfig, description="The weekly dependency scan.")
    secrets: SecretsConfig = Field(default_factory=SecretsConfig, description="The monthly secret rotation.")
    access_review: AccessReviewConfig = Field(
        default_factory=AccessReviewConfig, description="The quarterly access review."
    )

    @model_validator(mode="after")
    def _tasks(self) -> SecurityConfig:
        seen: set[str] = set()
        guide = {t.id for t in GUIDE_TASKS}
        for task in self.tasks:
            if task.id in seen:
                raise ValueError(f"tasks: {task.id!r} is listed twice")
            seen.add(task.id)
            if task.id not in guide and "cadence" not in task.model_fields_set:
                raise ValueError(f"tasks: {task.id!r} needs a cadence (weekly, monthly, quarterly or yearly)")
        for task in self.all_tasks():
            if task.cadence == "quarterly" and task.month > 3:
                raise ValueError(
                    f"tasks: {task.id!r} is quarterly: its month is the first quarter's, 1, 2 or 3"
                )
        return self

    def all_tasks(self) -> list[SecurityTask]:
        """The guide's four (changed by entries with their ids) and the config's own, enabled or not."""
        given = {t.id: t for t in self.tasks}
        out = []
        for base in GUIDE_TASKS:
            mine = given.pop(base.id, None)
            out.append(
                base.model_copy(update={f: getattr(mine, f) for f in mine.model_fields_set}) if mine else base
            )
        return out + list(given.values())

    def task(self, task_id: str) -> SecurityTask | None:
        return next((t for t in self.all_tasks() if t.id == task_id), None)


class Config(Strict):
    """The YAML config file."""

    language: Literal["ja", "en"] = Field(
        "ja",
        description="The workspace language: channel cards, and replies when a user's Slack locale is unknown.",
    )
    use_user_locale: bool = Field(
        True,
        description="Reply to each person in their Slack locale (ja or en); false: always use `language`.",
    )
    timezone: str = Field(
        "Asia/Tokyo",
        description="Timezone used when the user's Slack timezone is unknown, for freeze windows, and for "
        "the times in postmortem drafts.",
    )
    slack: SlackConfig = Field(default_factory=SlackConfig, description="Where the bot posts.")
    github: GithubConfig = Field(
        default_factory=GithubConfig, description="The repository and workflow that deploy the service."
    )
    roles: Roles = Field(
        default_factory=Roles, description="Who may do what in every environment (environments may override)."
    )
    defaults: Defaults = Field(
        default_factory=Defaults, description="Timeouts and limits for every environment."
    )
    environments: dict[str, Environment] = Field(
        description="The environments by name (the guide's development, staging, production)."
    )
    backup: BackupConfig = Field(
        default_factory=BackupConfig,
        description="Backups: pg_dump to S3, pgBackRest with WAL, restore drills.",
    )
    incidents: IncidentConfig = Field(default_factory=IncidentConfig, description="Incident response.")
    alerts: AlertConfig = Field(
        default_factory=AlertConfig, description="Alertmanager alerts received at POST /alerts/alertmanager."
    )
    audit: AuditConfig = Field(default_factory=AuditConfig, description="The audit log's anchors.")
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig,
        description="The metrics, SLOs and log searches the environments' monitoring stacks answer.",
    )
    security: SecurityConfig = Field(
        default_factory=SecurityConfig, description="Security operations: the guide's periodic tasks."
    )

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
            f"{path}: config file not found ({path.resolve()}). Copy taisun.example.yml to taisun.yml and edit it "
            "(cp taisun.example.yml taisun.yml), or set TAISUN_CONFIG to your config's path. "
            "Only `taisun shell` falls back to the example."
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
