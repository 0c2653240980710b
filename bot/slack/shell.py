"""`taisun shell`: try the bot in a terminal, no Slack workspace needed.

It drives the same Bolt app through the same signed-request path Slack uses (the
WSGI app, signature check included), with the bot's Web API calls landing on a local
Slack on loopback whose messages are drawn here, buttons numbered and clickable.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from bot.core.config import ROLES, Settings, load_config
from bot.core.i18n import lang_of_locale, t_plain
from bot.core.mrkdwn import to_plain
from bot.slack import signing
from bot.slack.localslack import LocalSlack, Message
from bot.slack.server import WsgiApp

# Builds the whole bot as a WSGI app (bot.wiring.build_wsgi: the composition root hands it in).
BuildWsgi = Callable[[Settings], WsgiApp]

LOCAL_TOKEN = "xoxb-local-shell"  # noqa: S105 (not a secret: the local Slack's own token)
USERS = {
    "alice": ("U0ALICE", "alice"),
    "bob": ("U0BOB", "bob"),
    "carol": ("U0CAROL", "carol"),
}
# Everyone but alice is in every user group the config names, so alice asks and bob approves.
GROUP_MEMBERS = {"U0BOB", "U0CAROL"}
CHANNEL = "C0OPS"
TEAM = "T0LOCAL"  # the local Slack's workspace (its auth.test says so)
# The shell's own database and log, apart from the real bot's (DATABASE_URL, default ./taisun.db).
SHELL_DATABASE = "sqlite:///.taisun/shell.db"
LOCALES = {"en": "en-US", "ja": "ja-JP"}
# `@bob` as a person types it in Slack; not an e-mail address, not already a mention.
_AT_NAME = re.compile(r"(?<![\w<@|])@([A-Za-z][\w.-]*)")


def wsgi_post(
    app: Callable[..., Any], body: str, headers: dict[str, str], path: str = "/slack/events"
) -> tuple[int, bytes]:
    """One POST through the WSGI app, in process (the shell's and the tests' way in)."""
    data = body.encode()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
        "CONTENT_TYPE": headers.get("Content-Type", "application/x-www-form-urlencoded"),
        "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data), "SERVER_NAME": "localhost",
        "SERVER_PORT": "0", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
    }  # fmt: skip
    for k, v in headers.items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    status: list[str] = []
    chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
    return int(status[0].split()[0]), b"".join(chunks)


class Renderer:
    """Draws Slack messages as text; numbers every button so it can be clicked."""

    def __init__(self, out: IO[str], tz: ZoneInfo, names: dict[str, str], lang: Callable[[], str]):
        self.out = out
        self.tz = tz
        self.names = names
        self.lang = lang  # the shell's language right now (the person at the keyboard's)
        self.buttons: dict[int, dict[str, Any]] = {}
        self._numbers: dict[tuple[Any, ...], int] = {}
        self._next = 1
        self._lock = threading.Lock()

    def mrkdwn(self, text: str) -> str:
        """Slack's markup drawn for a terminal: a person's escaped `&lt;!channel&gt;` reads as they typed it."""

        def date(timestamp: int, fallback: str) -> str:
            return datetime.fromtimestamp(timestamp, UTC).astimezone(self.tz).strftime("%m-%d %H:%M")

        return to_plain(text, names=self.names, date=date)

    def blocks(self, blocks: list[dict[str, Any]], ctx: dict[str, Any]) -> list[str]:
        lines: list[str] = []
        for b in blocks:
            kind = b.get("type")
            if kind in ("section", "header"):
                text = b.get("text", {}).get("text", "")
                lines.extend(self.mrkdwn(text).splitlines())
                for f in b.get("fields", []):
                    lines.append(self.mrkdwn(f.get("text", "")))
                acc = b.get("accessory")
                if acc and acc.get("type") == "button":
                    lines.append(self._button(acc, b, ctx))
            elif kind == "context":
                lines.append("  " + "  ".join(self.mrkdwn(e.get("text", "")) for e in b.get("elements", [])))
            elif kind == "actions":
                lines.append(
                    "  ".join(
                        self._button(e, b, ctx) for e in b.get("elements", []) if e.get("type") == "button"
                    )
                )
            elif kind == "divider":
                lines.append("-" * 40)
            elif kind == "input":
                label = b.get("label", {}).get("text", "")
                el = b.get("element", {})
                opts = [o["value"] for o in el.get("options", [])]
                choice = t_plain("shell.one_of", self.lang(), options=", ".join(opts[:12])) if opts else ""
                lines.append(f"  {b.get('block_id')}: {label}{choice}")
        return lines

    def _button(self, el: dict[str, Any], block: dict[str, Any], ctx: dict[str, Any]) -> str:
        # The same button on an edited message keeps its number.
        key = (ctx.get("channel"), ctx.get("ts"), ctx.get("view"), el["action_id"], el.get("value", ""))
        with self._lock:
            n = self._numbers.get(key) or self._next
            if n == self._next:
                self._next += 1
                self._numbers[key] = n
            self.buttons[n] = {**ctx, "action_id": el["action_id"], "value": el.get("value", ""),
                               "block_id": block.get("block_id", "b"), "confirm": el.get("confirm"),
                               "text": el["text"]["text"]}  # fmt: skip
        return f"[{n}] {el['text']['text']}"

    def show(
        self, who: str, text: str, blocks: list[dict[str, Any]], ctx: dict[str, Any], note: str = ""
    ) -> None:
        body = self.blocks(blocks, ctx) if blocks else self.mrkdwn(text).splitlines()
        with self._lock:
            self.out.write(f"\n── {who}{note} " + "─" * max(4, 50 - len(who) - len(note)) + "\n")
            for line in body:
                self.out.write(f"  {line}\n")
            self.out.flush()


class Shell:
    def __init__(self, settings: Settings, out: IO[str], build: BuildWsgi, as_user: str = "alice"):
        self.out = out
        self.slack = LocalSlack(token=LOCAL_TOKEN).start()
        self.settings = settings.model_copy(
            update={
                "slack_api_url": self.slack.url,
                "slack_bot_token": LOCAL_TOKEN,
                "slack_signing_secret": secrets.token_hex(16),
                "slack_app_token": "",
                "taisun_config": str(settings.shell_config_path),
            }
        )
        self.config = load_config(self.settings.config_path)
        # No locale: the workspace `language` applies to everyone until /lang sets one.
        for name, (uid, _) in USERS.items():
            self.slack.add_user(uid, name, locale="")
        for handle in self._group_handles():
            self.slack.add_usergroup(handle, GROUP_MEMBERS)
        names = {uid: name for name, (uid, _) in USERS.items()} | {"UBOT": "taisun"}
        self.renderer = Renderer(out, self.config.tz, names, lambda: self.lang)
        self.user = as_user if as_user in USERS else "alice"
        self.modal: dict[str, Any] | None = None
        self._last_event = time.monotonic()
        self._held: list[tuple[str, Any]] | None = None
        self._hold_lock = threading.Lock()
        self.slack.on_change(self._on_slack)

        from bot.core.store.db import ensure_shell_database, make_engine, mark_shell_database, migrate

        engine = make_engine(self.settings.database_url)
        try:
            ensure_shell_database(engine)  # never the demo in a real bot's database
            migrate(engine)
            mark_shell_database(engine)  # and `taisun serve` never on the demo's
        finally:
            engine.dispose()
        self.wsgi = build(self.settings)
        self.svc = self.wsgi.svc
        # Learn the workspace before the first command: `*` in a role admits its members only.
        self.wsgi.auth.check()
        for uid, _ in USERS.values():
            self.svc.policy.workspaces.saw(uid, TEAM)

    def _group_handles(self) -> set[str]:
        members: list[str] = []
        for role in ROLES:
            members += getattr(self.config.roles, role)
        for env in self.config.environments.values():
            members += env.approvers
            for ms in env.roles.values():
                members += ms
        members += self.config.incidents.responders
        return {m.lstrip("@") for m in members if m.startswith("@")}

    # -- language and people ---------------------------------------------------------
    @property
    def lang(self) -> str:
        """The language the bot answers the person at the keyboard in; the shell's own lines use it too."""
        locale = self.slack.users.get(USERS[self.user][0], {}).get("locale", "")
        if self.config.use_user_locale and locale:
            return lang_of_locale(locale, self.config.language)
        return self.config.language

    def say(self, key: str, **fields: Any) -> None:
        self.out.write("  " + t_plain(key, self.lang, **fields) + "\n")

    def set_language(self, code: str) -> None:
        """/lang en|ja: the person's Slack locale, as they would change it in Slack's preferences."""
        uid, name = USERS[self.user]
        if code not in LOCALES:
            self.say("shell.lang_usage", current=self.lang)
            return
        self.slack.users[uid]["locale"] = LOCALES[code]
        # As Slack tells the bot of a changed profile (a user_change event): it answers in it at once.
        self.svc.people.heard(uid, LOCALES[code], name)
        self.say("shell.lang_set", name=name, language=t_plain(f"shell.lang.{code}", self.lang))
        if not self.config.use_user_locale:
            self.say("shell.lang_ignored", current=self.config.language)

    def with_mentions(self, text: str) -> str:
        """`@bob` becomes the mention Slack sends for it (`<@U0BOB|bob>`); other words stay as typed."""

        def mention(m: re.Match[str]) -> str:
            person = USERS.get(m.group(1).lower())
            return f"<@{person[0]}|{person[1]}>" if person else m.group(0)

        return _AT_NAME.sub(mention, text)

    def roles_of(self, user_id: str) -> str:
        """The roles the config gives a person, and where, as the bot's policy decides them."""
        envs = list(self.config.environments.values())
        held: list[str] = []
        for role in ROLES:
            where = [e.name for e in envs if self.svc.policy.has_role(user_id, role, e)]
            if len(where) == len(envs):
                held.append(role)
            elif where:
                held.append(t_plain("shell.role_in_envs", self.lang, role=role, envs=", ".join(where)))
        return ", ".join(held) or t_plain("shell.no_roles", self.lang)

    def help(self) -> None:
        self.out.write(t_plain("shell.help", self.lang) + "\n" + t_plain("shell.people", self.lang) + "\n")
        for name, (uid, _) in USERS.items():
            self.out.write(f"  {name:<6} {uid:<8} {self.roles_of(uid)}\n")

    # -- drawing ---------------------------------------------------------------------
    def _on_slack(self, kind: str, obj: Message | dict[str, Any]) -> None:
        self._last_event = time.monotonic()
        with self._hold_lock:
            if self._held is not None:
                # Drawn once the request's own answer is: a copy, as the message is now.
                self._held.append((kind, copy.copy(obj)))
                return
        self._draw(kind, obj)

    @contextmanager
    def _answer_first(self) -> Iterator[None]:
        """Slack shows a request's own answer (the ack) before what the bot posts meanwhile: so does the shell."""
        with self._hold_lock:
            self._held = []
        try:
            yield
        finally:
            with self._hold_lock:
                held, self._held = self._held or [], None
                for kind, obj in held:
                    self._draw(kind, obj)

    def _draw(self, kind: str, obj: Message | dict[str, Any]) -> None:
        if isinstance(obj, Message):
            if obj.ephemeral_to and obj.ephemeral_to != USERS[self.user][0]:
                name = self.renderer.names.get(obj.ephemeral_to, obj.ephemeral_to)
                who = t_plain("shell.only_other", self.lang, name=name)
            elif obj.ephemeral_to:
                who = t_plain("shell.only_you", self.lang)
            else:
                who = f"#{obj.channel.lower().removeprefix('c0')} taisun"
            note = t_plain("shell.edited", self.lang) if kind == "updated" else ""
            if obj.thread_ts:
                note += t_plain("shell.in_thread", self.lang)
            ctx = {"channel": obj.channel, "ts": obj.ts}
            self.renderer.show(who, obj.text, obj.blocks, ctx, note)
        elif kind in ("view_opened", "view_updated"):
            self.modal = obj  # type: ignore[assignment]
            title = t_plain("shell.form_title", self.lang, title=obj.get("title", {}).get("text", ""))
            self.renderer.show(title, "", obj.get("blocks", []), {"view": obj["id"]},
                               t_plain("shell.form_hint", self.lang))  # fmt: skip

    # -- acting ----------------------------------------------------------------------
    def _post(self, body: str, ctype: str) -> tuple[int, bytes]:
        headers = signing.sign(self.settings.slack_signing_secret, body) | {"Content-Type": ctype}
        return wsgi_post(self.wsgi, body, headers)

    def command(self, text: str) -> None:
        uid, name = USERS[self.user]
        body, ctype = signing.slash_command(
            self.with_mentions(text), user_id=uid, user_name=name, channel_id=CHANNEL, team_id=TEAM,
            response_url=self.slack.response_url(f"{uid}-{secrets.token_hex(4)}"),
        )  # fmt: skip
        with self._answer_first():
            self._show_ack(*self._post(body, ctype))

    def click(self, n: int, interactive: bool) -> None:
        b = self.renderer.buttons.get(n)
        if b is None:
            self.say("shell.no_button", n=n)
            return
        if b.get("confirm"):
            title = b["confirm"]["title"]["text"]
            if interactive:
                answer = input(f"  {title} {self.renderer.mrkdwn(b['confirm']['text']['text'])} [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    self.say("shell.not_clicked")
                    return
            else:
                self.say("shell.confirmed", title=title)
        uid, name = USERS[self.user]
        self.say("shell.clicks", name=name, n=n, label=b["text"])
        body, ctype = signing.block_action(
            b["action_id"], b["value"], user_id=uid, user_name=name, channel_id=b.get("channel", CHANNEL),
            message_ts=b.get("ts", ""), block_id=b["block_id"],
            response_url=self.slack.response_url(f"{uid}-{secrets.token_hex(4)}"),
        )  # fmt: skip
        with self._answer_first():
            self._show_ack(*self._post(body, ctype))

    def submit(self, pairs: list[str]) -> None:
        if self.modal is None:
            self.say("shell.no_form")
            return
        given = dict(p.split("=", 1) for p in pairs if "=" in p)
        values: dict[str, Any] = {}
        for b in self.modal.get("blocks", []):
            if b.get("type") != "input":
                continue
            el = b["element"]
            v = self.with_mentions(given.get(b["block_id"], ""))
            state = (
                {"type": el["type"], "selected_option": {"value": v}}
                if el["type"] == "static_select"
                else {"type": el["type"], "value": v}
            )
            values[b["block_id"]] = {el["action_id"]: state}
        uid, name = USERS[self.user]
        body, ctype = signing.view_submission(self.modal, values, user_id=uid, user_name=name)
        with self._answer_first():
            status, data = self._post(body, ctype)
            reply = json.loads(data or b"{}") if data else {}
            if reply.get("response_action") == "errors":
                for k, v in reply.get("errors", {}).items():
                    self.say("shell.form_error", field=k, error=v)
                return
            self.modal = None
            self.say("shell.form_submitted")

    def _show_ack(self, status: int, data: bytes) -> None:
        if status != 200:
            self.say("shell.http_error", status=status)
            return
        if not data:
            return
        try:
            reply = json.loads(data)
        except ValueError:
            return
        if reply.get("text") or reply.get("blocks"):
            # An in_channel answer (a lock, an unlock) is what everyone in the channel sees.
            who = (
                "#ops taisun"
                if reply.get("response_type") == "in_channel"
                else t_plain("shell.only_you", self.lang)
            )
            self.renderer.show(who, reply.get("text", ""), reply.get("blocks") or [], {"channel": CHANNEL})

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until jobs stop moving and messages stop arriving (used when reading a script)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.svc.quiet(2) and time.monotonic() - self._last_event > 0.6:
                return
            time.sleep(0.1)

    def close(self) -> None:
        self.settle(10)
        self.svc.stop()
        self.slack.stop()


def _log_path(database_url: str) -> Path:
    """taisun-shell.log beside the SQLite file (the current directory for another database)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).with_name("taisun-shell.log")
    return Path("taisun-shell.log")


def run_shell(
    build: BuildWsgi,
    as_user: str = "alice",
    database_url: str | None = None,
    stdin: IO[str] | None = None,
    out: IO[str] | None = None,
) -> int:
    """The shell on its own database (--database, else .taisun/shell.db): never DATABASE_URL's."""
    from bot.core.logs import setup_logging

    stdin, out = stdin or sys.stdin, out or sys.stdout
    # The shell is one process: its jobs run here, whatever TAISUN_JOBS says for the real bot.
    settings = Settings().model_copy(
        update={"database_url": database_url or SHELL_DATABASE, "taisun_jobs": "embedded"}
    )
    # The bot's JSON log lines would interleave with the conversation: they go to a file.
    log_path = _log_path(settings.database_url)
    log_path.parent.mkdir(parents=True, exist_ok=True)  # .taisun/ on the first run
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the shell's lifetime)
    setup_logging("INFO", stream=log_file)
    interactive = stdin.isatty()
    try:
        shell = Shell(settings, out, build, as_user)
    except BaseException:
        logging.getLogger().handlers.clear()
        log_file.close()
        raise
    simulated = [] if settings.github_token else ["GitHub"]
    lang = shell.lang
    out.write(
        t_plain(
            "shell.banner",
            lang,
            config=shell.settings.config_path,
            database=settings.database_url,
            log=log_path,
        )
        + "\n"
    )
    if os.environ.get("DATABASE_URL"):
        out.write(t_plain("shell.own_database", lang) + "\n")
    out.write(t_plain("shell.you_are", lang, name=shell.user) + "\n")
    if simulated:
        out.write(t_plain("shell.simulated", lang, what=", ".join(simulated)) + "\n")
    if interactive:
        out.write(t_plain("shell.type_help", lang) + "\n")
    try:
        while True:
            if interactive:
                out.write(f"\n{shell.user}> ")
                out.flush()
            line = stdin.readline()
            if not line:
                break
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not interactive:
                out.write(f"\n{shell.user}> {line}\n")
            words = line.split()
            if line in ("/quit", "/exit"):
                break
            if line == "/help":
                shell.help()
            elif words[0] == "/as":
                name = words[1] if len(words) > 1 else ""
                if name in USERS:
                    shell.user = name
                    shell.say("shell.you_are_now", name=name)
                else:
                    shell.say("shell.unknown_person", name=name, names=", ".join(USERS))
            elif words[0] == "/lang":
                shell.set_language(words[1] if len(words) > 1 else "")
            elif words[0] == "/click" or line.isdigit():
                n = words[-1]
                if n.isdigit():
                    shell.click(int(n), interactive)
                else:
                    shell.say("shell.click_usage")
            elif words[0] == "/submit":
                shell.submit(words[1:])
            elif words[0] == "/wait":
                shell.settle()
            elif words[0] in ("/taisun", "taisun"):
                shell.command(line.split(maxsplit=1)[1] if len(words) > 1 else "")
            else:
                shell.say("shell.not_a_command")
            if not interactive:
                shell.settle()
    finally:
        shell.close()
        logging.getLogger().handlers.clear()
        log_file.close()
    return 0
