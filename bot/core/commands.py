"""The /taisun command grammar: text in, a Command or a UsageError with what to type instead."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.core.config import Config, Environment
from bot.core.i18n import Msg, msg, t
from bot.core.replies import Refusal

MAX_TEXT = 2000


# A subcommand's parser: (the words after its name, the config, its usage) -> Command or UsageError.
Parser = Callable[[list[str], Config, str], "Command"]


@dataclass(frozen=True)
class Spec:
    """One subcommand: its usage and help line, the role it needs, how its words are parsed.

    Operations declare theirs (Operation.command) and registering the operation registers it;
    `rank` orders the help."""

    name: str
    usage: str
    en: str
    ja: str
    role: str | None = None  # the role needed; None = anyone
    parse: Parser | None = None  # None: the subcommand takes no words
    rank: int = 1000
    aliases: tuple[str, ...] = ()
    raw: bool = False  # the words keep their quotes (a LogQL query's own)


class UsageError(Refusal):
    """The text could not be understood; the message says what was wrong and what to type.

    Raised with `key=` and named fields, it is shown in the reader's language; `guess` becomes
    the catalogue's "Did you mean …?" in that language.
    """

    def __init__(self, message: str = "", *, key: str = "", guess: str = "", **fields: Any):
        self.key, self.guess, self.fields = key, guess, fields
        super().__init__(message or self.message("en"))

    def message(self, lang: str) -> str:
        if not self.key:
            return str(self)
        hint = t("err.did_you_mean", lang, what=self.guess) if self.guess else ""
        return t(self.key, lang, hint=hint, **self.fields)

    def stored(self) -> Msg | str:
        """The same as a stored message (an audit detail), shown later in each reader's language."""
        if not self.key:
            return str(self)
        return msg(
            self.key, hint=msg("err.did_you_mean", what=self.guess) if self.guess else "", **self.fields
        )


@dataclass
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    env: Environment | None = None


def closest(word: str, options: list[str]) -> str | None:
    found = difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.5)
    return found[0] if found else None


def _straight_quotes(text: str) -> str:
    return text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'").replace("\u3000", " ")


def _tokens(text: str) -> list[str]:
    text = _straight_quotes(text)
    try:
        return shlex.split(text)
    except ValueError:
        raise UsageError(
            'A quote is not closed. Put the text in matching quotes, e.g. "API p99 over 1s".'
        ) from None


def env_arg(config: Config, word: str | None, usage: str) -> Environment:
    if not word:
        raise UsageError(key="err.which_env", usage=usage, envs=_env_list(config))
    env = config.resolve_env(word)
    if env is None:
        names = [n for e in config.environments.values() for n in (e.name, *e.aliases)]
        guess = closest(word, names)
        guessed = config.resolve_env(guess) if guess else None
        raise UsageError(
            key="err.unknown_env", word=word, envs=_env_list(config), guess=guessed.name if guessed else ""
        )
    return env


def _env_list(config: Config) -> str:
    return ", ".join(
        f"{e.name} ({', '.join(e.aliases)})" if e.aliases else e.name for e in config.environments.values()
    )


def pop_flag(tokens: list[str], flag: str, takes_value: bool = False) -> str | bool | None:
    if flag not in tokens:
        return None
    i = tokens.index(flag)
    tokens.pop(i)
    if not takes_value:
        return True
    if i >= len(tokens) or tokens[i].startswith("--"):
        raise UsageError(key="err.flag_value", flag=flag)
    return tokens.pop(i)


def reject_unknown_flags(tokens: list[str], usage: str) -> None:
    for token in tokens:
        if token.startswith("--"):
            raise UsageError(key="err.unknown_option", token=token, usage=usage)


def no_more(tokens: list[str], usage: str) -> None:
    if tokens:
        raise UsageError(key="err.unexpected", words=" ".join(tokens), usage=usage)


_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def parse(text: str, config: Config) -> Command:
    """Parse the text after `/taisun`. Raises UsageError with a specific message."""
    if len(text) > MAX_TEXT:
        raise UsageError(key="err.too_long", n=len(text), limit=MAX_TEXT)
    tokens = _tokens(text.strip())
    if not tokens:
        return Command("help")
    word = tokens.pop(0).lower()
    name = _ALIASES.get(word, word)
    if name not in _COMMANDS:
        guess = closest(name, list(_COMMANDS))
        raise UsageError(
            key="err.unknown_command",
            word=word,
            guess=f"/taisun {_COMMANDS[guess].usage}" if guess else "",
        )
    spec = _COMMANDS[name]
    if spec.raw:
        tokens = shlex.split(_straight_quotes(text.strip()), posix=False)[1:]
    if spec.parse is None:
        no_more(tokens, spec.usage)
        return Command(name)
    return spec.parse(tokens, config, spec.usage)


def _parse_status(tokens: list[str], config: Config, usage: str) -> Command:
    env = env_arg(config, tokens.pop(0), usage) if tokens else None
    no_more(tokens, usage)
    return Command("status", env=env)


def _parse_lock(tokens: list[str], config: Config, usage: str) -> Command:
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    reason = " ".join(tokens).strip()
    return Command("lock", {"reason": reason[:500]}, env)


def _parse_unlock(tokens: list[str], config: Config, usage: str) -> Command:
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    no_more(tokens, usage)
    return Command("unlock", env=env)


def _parse_audit(tokens: list[str], config: Config, usage: str) -> Command:
    env, n = None, 10
    for token in tokens:
        if token.isdigit():
            n = int(token)
        else:
            env = env_arg(config, token, usage)
    if not 1 <= n <= 100:
        raise UsageError(key="err.audit_n")
    return Command("audit", {"n": n}, env)


def _parse_jobs(tokens: list[str], config: Config, usage: str) -> Command:
    if not tokens:
        return Command("jobs", {"action": "list"})
    action = tokens.pop(0).lower()
    if action == "cancel" and len(tokens) == 1:
        return Command("jobs", {"action": "cancel", "id": tokens[0]})
    raise UsageError(key="err.jobs_usage")


_INCIDENT_ACTIONS = ("declare", "list", "status", "assign", "severity", "promote", "resolve")
_INCIDENT_ROLES = ("commander", "scribe", "comms")


def _parse_incident(tokens: list[str], config: Config, usage: str) -> Command:
    action = (tokens.pop(0) if tokens else "").lower()
    sevs = config.incidents.severities
    if action == "declare":
        env_word = pop_flag(tokens, "--env", takes_value=True)
        env = env_arg(config, str(env_word), usage) if env_word else None
        if not tokens:
            return Command("incident", {"action": "declare", "modal": True}, env)
        sev = tokens.pop(0).lower()
        if sev not in sevs:
            raise UsageError(key="err.unknown_severity", severity=sev, choices=", ".join(sevs))
        title = " ".join(tokens).strip()
        if not title:
            raise UsageError(key="err.incident_title")
        return Command("incident", {"action": "declare", "severity": sev, "title": title[:200]}, env)
    if action in ("list", "promote", "resolve"):
        no_more(tokens, usage)
        return Command("incident", {"action": action})
    if action == "status":
        return Command("incident", {"action": "status", "text": " ".join(tokens).strip()[:2000]})
    if action == "severity":
        sev = tokens.pop(0).lower() if tokens else ""
        if sev not in sevs:
            raise UsageError(key="err.usage", usage=f"incident severity <{'|'.join(sevs)}>")
        no_more(tokens, usage)
        return Command("incident", {"action": "severity", "severity": sev})
    if action == "assign":
        if len(tokens) != 2 or tokens[0].lower() not in _INCIDENT_ROLES or not _USER.fullmatch(tokens[1]):
            raise UsageError(key="err.usage", usage=f"incident assign <{'|'.join(_INCIDENT_ROLES)}> @someone")
        return Command(
            "incident", {"action": "assign", "role": tokens[0].lower(), "user": _USER.fullmatch(tokens[1])[1]}
        )
    guess = closest(action, list(_INCIDENT_ACTIONS)) if action else None
    raise UsageError(
        key="err.incident_action" if action else "err.usage", action=action, usage=usage, guess=guess or ""
    )


def _parse_runbook(tokens: list[str], config: Config, usage: str) -> Command:
    drill = bool(pop_flag(tokens, "--drill"))
    reject_unknown_flags(tokens, usage)
    action = (tokens.pop(0) if tokens else "list").lower()
    if action == "list":
        no_more(tokens, usage)
        return Command("runbook", {"action": "list"})
    if action == "run":
        if not tokens:
            raise UsageError(key="err.which_runbook")
        name = tokens.pop(0)
        env = env_arg(config, tokens.pop(0), usage) if tokens else None
        no_more(tokens, usage)
        return Command("runbook", {"action": "run", "name": name, "drill": drill}, env)
    raise UsageError(key="err.usage", usage=usage)


# --- observability (#16): read-only answers from the monitoring stack ---
def _parse_metrics(tokens: list[str], config: Config, usage: str) -> Command:
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    no_more(tokens, usage)
    return Command("metrics", env=env)


def _parse_slo(tokens: list[str], config: Config, usage: str) -> Command:
    env = env_arg(config, tokens.pop(0), usage) if tokens else None
    no_more(tokens, usage)
    return Command("slo", env=env)


def _parse_logs(tokens: list[str], config: Config, usage: str) -> Command:
    """`logs <env> [words or LogQL] [--since 15m] [--level error]`; the words keep their quotes."""
    for flag, example in (("--since", "15m"), ("--level", "error")):
        at = tokens.index(flag) if flag in tokens else -1
        if at >= 0 and (at + 1 == len(tokens) or tokens[at + 1].startswith("--")):
            raise UsageError(key="logs.flag_value", flag=flag, example=example)
    since, level = pop_flag(tokens, "--since", True), pop_flag(tokens, "--level", True)
    env = env_arg(config, tokens.pop(0) if tokens else None, usage)
    reject_unknown_flags(tokens, usage)  # a LogQL `--` is inside a quoted string, one word with its quotes
    return Command("logs", {"words": tokens, "since": str(since or ""), "level": str(level or "")}, env)


def _parse_trace(tokens: list[str], config: Config, usage: str) -> Command:
    if not tokens:
        raise UsageError(key="err.usage", usage=usage)
    trace_id = tokens.pop(0)
    env = env_arg(config, tokens.pop(0), usage) if tokens else None
    no_more(tokens, usage)
    return Command("trace", {"id": trace_id}, env)


OBSERVE = (
    Spec("metrics", "metrics <env>", "The guide's key metrics now, from Prometheus", "主要メトリクスの現在値（Prometheus）",
         "viewer", parse=_parse_metrics, rank=20),
    Spec("slo", "slo [env]", "SLOs over 30 days: SLI, error budget, burn rate", "SLO（30 日）: SLI・エラーバジェット・バーンレート",
         "viewer", parse=_parse_slo, rank=21),
    Spec("logs", "logs <env> [words or LogQL] [--since 15m] [--level error]", "Search the logs (Loki)",
         "ログを検索（Loki）", "viewer", parse=_parse_logs, rank=22, raw=True),
    Spec("trace", "trace <id> [env]", "A trace's root span, duration and Jaeger link", "トレースのルートスパン・所要時間・Jaeger リンク",
         "viewer", parse=_parse_trace, rank=23),
)  # fmt: skip
# --- end of observability (#16) ---
# --- security operations (#18) ---
_SECURITY_ACTIONS = ("list", "done", "snooze", "scan", "review", "secrets")


def _parse_security(tokens: list[str], config: Config, usage: str) -> Command:
    action = (tokens.pop(0) if tokens else "list").lower()
    if action in ("list", "scan", "review", "secrets"):
        no_more(tokens, usage)
        return Command("security", {"action": action})
    if action in ("done", "snooze"):
        known = [task.id for task in config.security.all_tasks()]
        task = tokens.pop(0).lower() if tokens else ""
        if task not in known:
            raise UsageError(
                key="security.usage.task", task=task, tasks=", ".join(known), guess=closest(task, known) or ""
            )
        if action == "done":
            return Command(
                "security", {"action": "done", "task": task, "note": " ".join(tokens).strip()[:500]}
            )
        hours = tokens.pop(0) if tokens else ""
        no_more(tokens, usage)
        if hours and not (hours.isdigit() and 1 <= int(hours) <= 24 * 30):
            raise UsageError(key="security.usage.hours", hours=hours)
        return Command("security", {"action": "snooze", "task": task, "hours": int(hours) if hours else None})
    guess = closest(action, list(_SECURITY_ACTIONS)) if action else None
    raise UsageError(key="security.usage.action", action=action, usage=usage, guess=guess or "")


# The subcommands that are no operation; each operation's own comes with it (bot.core.ops.register).
_COMMANDS: dict[str, Spec] = {}
_ALIASES: dict[str, str] = {}


def register_command(spec: Spec) -> None:
    """Add a subcommand to the grammar and the help (again with the same name: replaced)."""
    _COMMANDS[spec.name] = spec
    _ALIASES.update({alias: spec.name for alias in spec.aliases})


def specs() -> list[Spec]:
    """Every subcommand, in the help's order."""
    return sorted(_COMMANDS.values(), key=lambda s: s.rank)


for _spec in (
    Spec("help", "help", "Show this help", "このヘルプを表示", rank=0, aliases=("h", "?")),
    Spec("status", "status [env]", "Live health and version of each environment", "各環境のヘルスとバージョン",
         parse=_parse_status, rank=10, aliases=("st",)),
    Spec("lock", "lock <env> [reason]", "Stop changes to an environment", "環境への変更をロック", "operator",
         parse=_parse_lock, rank=70),
    Spec("unlock", "unlock <env>", "Release your lock", "ロックを解除", "operator", parse=_parse_unlock, rank=80),
    Spec("audit", "audit [env] [n]", "Recent audit log entries", "最近の監査ログ", parse=_parse_audit, rank=90),
    Spec("jobs", "jobs [cancel <id>]", "Running and stuck jobs", "実行中・停止中のジョブ", parse=_parse_jobs, rank=100),
    Spec("incident", "incident declare <sev> <title> [--env <env>] | list | status <text> | assign <role> <@user> | severity <sev> | promote | resolve",
         "Incident response", "インシデント対応", "responder", parse=_parse_incident, rank=110),
    Spec("runbook", "runbook list | run <name> [env] [--drill]", "Guided runbooks", "ランブックを実行", "responder",
         parse=_parse_runbook, rank=120),
    *OBSERVE,
    Spec("security", "security [list] | done <task> [note or link] | snooze <task> [hours] | scan | review | secrets",
         "Security tasks: the cadence, the scan, access review, secret ages", "定期セキュリティタスク（スキャン・アクセス権レビュー・シークレット）",
         parse=_parse_security, rank=130),
):  # fmt: skip
    register_command(_spec)
