"""`taisun shell`: try the bot in a terminal, no Slack workspace needed.

It drives the same Bolt app through the same signed-request path Slack uses (the
WSGI app, signature check included), with the bot's Web API calls landing on a local
Slack on loopback whose messages are drawn here, buttons numbered and clickable.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot import signing
from bot.config import Settings, load_config
from bot.localslack import LocalSlack, Message
from bot.mrkdwn import to_plain

LOCAL_TOKEN = "xoxb-local-shell"  # noqa: S105 (not a secret: the local Slack's own token)
USERS = {
    "alice": ("U0ALICE", "alice"),
    "bob": ("U0BOB", "bob"),
    "carol": ("U0CAROL", "carol"),
}
# Everyone but alice is in every user group the config names, so alice asks and bob approves.
GROUP_MEMBERS = {"U0BOB", "U0CAROL"}
CHANNEL = "C0OPS"
HELP = """\
Type a slash command as you would in Slack:   /taisun help
  /as bob          act as another user (alice, bob, carol; bob and carol are approvers)
  /click N         click button [N] (or just type N)
  /submit k=v ...  submit the open form, e.g. /submit env=production version=v1.2.3
  /wait            wait until running jobs settle
  /quit            leave (Ctrl-D works too)"""


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

    def __init__(self, out: IO[str], tz: ZoneInfo, names: dict[str, str]):
        self.out = out
        self.tz = tz
        self.names = names
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
                choice = f" (one of: {', '.join(opts[:12])})" if opts else ""
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
    def __init__(self, settings: Settings, out: IO[str], as_user: str = "alice"):
        self.out = out
        self.slack = LocalSlack(token=LOCAL_TOKEN).start()
        self.settings = settings.model_copy(
            update={
                "slack_api_url": self.slack.url,
                "slack_bot_token": LOCAL_TOKEN,
                "slack_signing_secret": secrets.token_hex(16),
                "slack_app_token": "",
            }
        )
        self.config = load_config(self.settings.config_path)
        for name, (uid, _) in USERS.items():
            self.slack.add_user(uid, name)
        for handle in self._group_handles():
            self.slack.add_usergroup(handle, GROUP_MEMBERS)
        names = {uid: name for name, (uid, _) in USERS.items()} | {"UBOT": "taisun"}
        self.renderer = Renderer(out, self.config.tz, names)
        self.user = as_user if as_user in USERS else "alice"
        self.modal: dict[str, Any] | None = None
        self._last_event = time.monotonic()
        self.slack.on_change(self._on_slack)

        from bot.store.db import make_engine, migrate

        engine = make_engine(self.settings.database_url)
        migrate(engine)
        engine.dispose()
        from bot.server import build_wsgi

        self.wsgi = build_wsgi(self.settings)
        self.svc = self.wsgi.svc
        # Learn the workspace before the first command: `*` in a role admits its members only.
        self.wsgi.auth.check()

    def _group_handles(self) -> set[str]:
        members: list[str] = []
        for role in ("operator", "approver", "responder", "break_glass", "admin"):
            members += getattr(self.config.roles, role)
        for env in self.config.environments.values():
            members += env.approvers
            for ms in env.roles.values():
                members += ms
        members += self.config.incidents.responders
        return {m.lstrip("@") for m in members if m.startswith("@")}

    # -- drawing ---------------------------------------------------------------------
    def _on_slack(self, kind: str, obj: Message | dict[str, Any]) -> None:
        self._last_event = time.monotonic()
        if isinstance(obj, Message):
            if obj.ephemeral_to and obj.ephemeral_to != USERS[self.user][0]:
                who = f"taisun → only {self.renderer.names.get(obj.ephemeral_to, obj.ephemeral_to)}"
            elif obj.ephemeral_to:
                who = "taisun (only you)"
            else:
                who = f"#{obj.channel.lower().removeprefix('c0')} taisun"
            note = " (edited)" if kind == "updated" else ""
            if obj.thread_ts:
                note += " (in thread)"
            ctx = {"channel": obj.channel, "ts": obj.ts}
            self.renderer.show(who, obj.text, obj.blocks, ctx, note)
        elif kind in ("view_opened", "view_updated"):
            self.modal = obj  # type: ignore[assignment]
            title = obj.get("title", {}).get("text", "form")
            self.renderer.show(f"form: {title}", "", obj.get("blocks", []), {"view": obj["id"]},
                               "  — fill it with /submit key=value ...")  # fmt: skip

    # -- acting ----------------------------------------------------------------------
    def _post(self, body: str, ctype: str) -> tuple[int, bytes]:
        headers = signing.sign(self.settings.slack_signing_secret, body) | {"Content-Type": ctype}
        return wsgi_post(self.wsgi, body, headers)

    def command(self, text: str) -> None:
        uid, name = USERS[self.user]
        body, ctype = signing.slash_command(
            text, user_id=uid, user_name=name, channel_id=CHANNEL,
            response_url=self.slack.response_url(f"{uid}-{secrets.token_hex(4)}"),
        )  # fmt: skip
        status, data = self._post(body, ctype)
        self._show_ack(status, data)

    def click(self, n: int, interactive: bool) -> None:
        b = self.renderer.buttons.get(n)
        if b is None:
            self.out.write(f"  no button [{n}]\n")
            return
        if b.get("confirm"):
            title = b["confirm"]["title"]["text"]
            if interactive:
                answer = input(f"  {title} {self.renderer.mrkdwn(b['confirm']['text']['text'])} [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    self.out.write("  not clicked\n")
                    return
            else:
                self.out.write(f"  ({title} — confirmed)\n")
        uid, name = USERS[self.user]
        self.out.write(f"  {name} clicks [{n}] {b['text']}\n")
        body, ctype = signing.block_action(
            b["action_id"], b["value"], user_id=uid, user_name=name, channel_id=b.get("channel", CHANNEL),
            message_ts=b.get("ts", ""), block_id=b["block_id"],
            response_url=self.slack.response_url(f"{uid}-{secrets.token_hex(4)}"),
        )  # fmt: skip
        self._show_ack(*self._post(body, ctype))

    def submit(self, pairs: list[str]) -> None:
        if self.modal is None:
            self.out.write("  no form is open\n")
            return
        given = dict(p.split("=", 1) for p in pairs if "=" in p)
        values: dict[str, Any] = {}
        for b in self.modal.get("blocks", []):
            if b.get("type") != "input":
                continue
            el = b["element"]
            v = given.get(b["block_id"], "")
            state = (
                {"type": el["type"], "selected_option": {"value": v}}
                if el["type"] == "static_select"
                else {"type": el["type"], "value": v}
            )
            values[b["block_id"]] = {el["action_id"]: state}
        uid, name = USERS[self.user]
        body, ctype = signing.view_submission(self.modal, values, user_id=uid, user_name=name)
        status, data = self._post(body, ctype)
        reply = json.loads(data or b"{}") if data else {}
        if reply.get("response_action") == "errors":
            for k, v in reply.get("errors", {}).items():
                self.out.write(f"  form error in {k}: {v}\n")
            return
        self.modal = None
        self.out.write("  form submitted\n")

    def _show_ack(self, status: int, data: bytes) -> None:
        if status != 200:
            self.out.write(f"  Slack would show an error: HTTP {status}\n")
            return
        if not data:
            return
        try:
            reply = json.loads(data)
        except ValueError:
            return
        if reply.get("text") or reply.get("blocks"):
            # An in_channel answer (a lock, an unlock) is what everyone in the channel sees.
            who = "#ops taisun" if reply.get("response_type") == "in_channel" else "taisun (only you)"
            self.renderer.show(who, reply.get("text", ""), reply.get("blocks") or [], {"channel": CHANNEL})

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until jobs stop moving and messages stop arriving (used when reading a script)."""
        from bot.store.models import Job

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.svc.sessions() as s:
                busy = s.scalar(
                    select(Job.id).where(Job.state.in_(("validating", "queued", "running"))).limit(1)
                )
            self.svc.notifier.flush(2)
            if not busy and not self.svc.pending_background and time.monotonic() - self._last_event > 0.6:
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
    as_user: str = "alice",
    database_url: str | None = None,
    stdin: IO[str] | None = None,
    out: IO[str] | None = None,
) -> int:
    from bot.logs import setup_logging

    stdin, out = stdin or sys.stdin, out or sys.stdout
    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    # The bot's JSON log lines would interleave with the conversation: they go to a file.
    log_path = _log_path(settings.database_url)
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the shell's lifetime)
    setup_logging("INFO", stream=log_file)
    interactive = stdin.isatty()
    shell = Shell(settings, out, as_user)
    simulated = [] if settings.github_token else ["GitHub"]
    out.write(
        f"TAISUN ChatOps shell — config {settings.config_path}, database {settings.database_url}, "
        f"log {log_path}\n"
        f"You are {shell.user}. "
        + (
            f"No credentials for {', '.join(simulated)}: those operations run as labelled simulations.\n"
            if simulated
            else "\n"
        )
        + ("Type /taisun help, or /help for shell commands.\n" if interactive else "")
    )
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
            if line in ("/quit", "/exit"):
                break
            if line == "/help":
                out.write(HELP + "\n")
            elif line.startswith("/as"):
                name = line.split()[1] if len(line.split()) > 1 else ""
                if name in USERS:
                    shell.user = name
                    out.write(f"  you are now {name}\n")
                else:
                    out.write(f"  unknown user {name!r}; choose {', '.join(USERS)}\n")
            elif line.startswith("/click") or line.isdigit():
                n = line.split()[-1]
                if n.isdigit():
                    shell.click(int(n), interactive)
                else:
                    out.write("  usage: /click N\n")
            elif line.startswith("/submit"):
                shell.submit(line.split()[1:])
            elif line.startswith("/wait"):
                shell.settle()
            elif line.startswith("/taisun") or line.startswith("taisun "):
                shell.command(line.split(maxsplit=1)[1] if " " in line else "")
            else:
                out.write("  Commands start with /taisun (try /taisun help); /help lists shell commands.\n")
            if not interactive:
                shell.settle()
    finally:
        shell.close()
        logging.getLogger().handlers.clear()
        log_file.close()
    return 0
