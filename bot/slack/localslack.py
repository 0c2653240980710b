"""A local stand-in for Slack's Web API on loopback, speaking its wire protocol.

The shell points the bot's SLACK_API_URL here to try everything without a workspace,
and the tests do the same to watch what the bot posts. It keeps messages, views and
user groups in memory, answers like Slack (`{"ok": true, ...}` / `{"ok": false,
"error": ...}`), accepts `response_url` posts, and can inject faults (429 with
Retry-After, 5xx, dropped connections) for the reliability tests.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str = "UBOT"
    thread_ts: str = ""
    ephemeral_to: str = ""  # set for ephemeral messages (postEphemeral and response_url replies)
    updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # ids of the files shared with it (files.uploadV2)


@dataclass
class Fault:
    method: str  # Web API method name or "respond"; "*" for any
    status: int  # 429, 500, 503... or 0 to drop the connection
    times: int = 1
    retry_after: int = 1
    error: str = ""  # ok:false error to answer with status 200 (e.g. "invalid_auth")


@dataclass
class HeldAnswer:
    """A call Slack has decided (`decided` is set) whose answer waits until `release` is set."""

    decided: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class LocalSlack:
    def __init__(self, token: str | None = None, app_token: str | None = None):
        self.token = token  # when set, calls with another token get invalid_auth
        self.app_token = app_token  # when set, the one app-level token (xapp-…) Socket Mode accepts
        self.socket_mode_url = ""  # when set, the WebSocket apps.connections.open hands out (a test's)
        self.messages: list[Message] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.usergroups: dict[str, set[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        # Uploaded files by id: name, title, length asked for, content (bytes, once uploaded), channels.
        self.files: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.delays: dict[str, float] = {}  # method -> seconds each call takes (a slow Slack)
        self.holds: dict[str, threading.Event] = {}  # method -> calls wait until it is set
        self.held_answers: dict[str, HeldAnswer] = {}  # method -> its next call's answer waits on the wire
        self.revoked = False
        self._hold_for = 60.0
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[str, Message | dict[str, Any]], None]] = []
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> LocalSlack:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                owner._handle(self)

            do_GET = do_POST  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="localslack", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalSlack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base(self) -> str:
        return self.url.removesuffix("api/")

    def response_url(self, key: str = "") -> str:
        return f"{self.base}respond/{key or next(self._ids)}"

    def on_change(self, fn: Callable[[str, Message | dict[str, Any]], None]) -> None:
        """fn(kind, obj): kind is posted, updated, ephemeral, view_opened, view_updated, home."""
        self._listeners.append(fn)

    def _emit(self, kind: str, obj: Any) -> None:
        for fn in list(self._listeners):
            fn(kind, obj)

    # -- test helpers ----------------------------------------------------------------
    def add_usergroup(self, handle: str, members: set[str]) -> None:
        with self._lock:
            self.usergroups[handle.lstrip("@")] = set(members)

    def add_user(self, user_id: str, name: str, tz: str = "Asia/Tokyo", locale: str = "ja-JP") -> None:
        with self._lock:
            self.users[user_id] = {"id": user_id, "name": name, "real_name": name, "tz": tz, "locale": locale}

    def fail(self, method: str, status: int, times: int = 1, retry_after: int = 1, error: str = "") -> None:
        with self._lock:
            self.faults.append(Fault(method, status, times, retry_after, error))

    def delay(self, method: str, seconds: float) -> None:
        """Answer every call of `method` `seconds` late, as a slow Slack would."""
        with self._lock:
            self.delays[method] = seconds

    def hold(self, method: str, at_most: float = 60.0) -> threading.Event:
        """Leave every call of `method` unanswered until the returned event is set (or `at_most` seconds
        have passed), as a Slack that has not answered yet: a test decides when Slack answers instead
        of guessing how slow the host running it is."""
        gate = threading.Event()
        with self._lock:
            self.holds[method] = gate
            self._hold_for = at_most
        return gate

    def channel_messages(self, channel: str | None = None) -> list[Message]:
        with self._lock:
            return [
                m for m in self.messages if not m.ephemeral_to and (channel is None or m.channel == channel)
            ]

    def ephemeral(self, user: str | None = None) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.ephemeral_to and (user is None or m.ephemeral_to == user)]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll until predicate() is truthy; returns its value or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError("local Slack: condition not met in time")

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.calls if m == method)

    # -- wire protocol ---------------------------------------------------------------
    def hold_answer(self, method: str) -> HeldAnswer:
        """Decide the next call of `method` as it arrives but keep its answer on the wire until the
        returned HeldAnswer is released: a slow answer that Slack's state has since overtaken."""
        held = HeldAnswer()
        with self._lock:
            self.held_answers[method] = held
        return held

    def _reply(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        held: HeldAnswer | None = getattr(h, "taisun_held_answer", None)
        if held is not None:
            held.decided.set()
            held.release.wait(60.0)
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _params(self, h: BaseHTTPRequestHandler) -> dict[str, Any]:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("Content-Type", "")
        if "json" in ctype:
            return json.loads(raw or b"{}")
        params: dict[str, Any] = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if "?" in h.path:
            params.update({k: v[0] for k, v in parse_qs(h.path.split("?", 1)[1]).items()})
        for key in ("blocks", "view", "attachments"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    def _fault_for(self, method: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.method in (method, "*") and f.times > 0:
                    f.times -= 1
                    if f.times == 0:
                        self.faults.remove(f)
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        if path.startswith("/upload/v1/"):
            self._upload(h, path.removeprefix("/upload/v1/"))
            return
        params = self._params(h)
        if path.startswith("/respond/"):
            method = "respond"
        elif path.startswith("/api/"):
            method = path.removeprefix("/api/")
        else:
            self._reply(h, 404, {"ok": False, "error": "unknown_method"})
            return
        with self._lock:
            self.calls.append((method, params))
            h.taisun_held_answer = self.held_answers.pop(method, None)  # type: ignore[attr-defined]
            slow = self.delays.get(method, 0.0)
            gate = self.holds.get(method)
        if slow:
            time.sleep(slow)
        if gate is not None:
            gate.wait(self._hold_for)
        fault = self._fault_for(method)
        if fault is not None:
            if fault.status == 0:
                h.close_connection = True
                h.connection.close()  # a connection reset, as a load balancer might do
                return
            if fault.error:
                self._reply(h, 200, {"ok": False, "error": fault.error})
                return
            headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
            self._reply(
                h,
                fault.status,
                {"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"},
                headers,
            )
            return
        if method == "respond":
            self._reply(h, 200, self._respond(path, params))
            return
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or params.get("token", "")
        if not token:
            self._reply(h, 200, {"ok": False, "error": "not_authed"})
            return
        if method == "apps.connections.open" or token.startswith("xapp-"):
            self._reply(h, 200, self._app_level(method, token))
            return
        if self.revoked or (self.token and token != self.token):
            self._reply(h, 200, {"ok": False, "error": "token_revoked" if self.revoked else "invalid_auth"})
            return
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            self._reply(h, 200, {"ok": False, "error": "unknown_method"})
            return
        try:
            self._reply(h, 200, handler(params))
        except KeyError as e:
            self._reply(h, 200, {"ok": False, "error": "invalid_arguments", "detail": f"missing {e}"})

    # -- methods ---------------------------------------------------------------------
    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _channel_id(self, channel: str) -> str:
        channel = str(channel)
        if channel.startswith("#"):
            return "C" + channel[1:].upper().replace("-", "")[:10]
        return channel

    def _respond(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        key = path.removeprefix("/respond/")
        with self._lock:
            if params.get("replace_original") in (True, "true") or params.get("delete_original") in (
                True,
                "true",
            ):
                for m in self.messages:
                    if m.ephemeral_to and m.ts == f"respond-{key}":
                        m.history.append({"text": m.text, "blocks": m.blocks})
                        m.text, m.blocks = params.get("text", ""), params.get("blocks") or []
                        self._emit("ephemeral", m)
                        return {"ok": True}
            user = key.split("-")[0] if "-" in key else key
            ephemeral = params.get("response_type", "ephemeral") != "in_channel"
            msg = Message(
                channel=params.get("channel", ""), ts=f"respond-{key}" if ephemeral else self._new_ts(),
                text=params.get("text", ""), blocks=params.get("blocks") or [], ephemeral_to=user if ephemeral else "",
            )  # fmt: skip
            self.messages.append(msg)
        self._emit("ephemeral" if ephemeral else "posted", msg)
        return {"ok": True}

    def api_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://local.slack/",
            "team": "Local",
            "user": "taisun",
            "team_id": "T0LOCAL",
            "user_id": "UBOT",
            "bot_id": "B0BOT",
        }

    def api_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(p["channel"])
        if channel in self.users or channel.startswith("U"):
            channel = "D" + channel  # a DM with that user
        msg = Message(
            channel=channel,
            ts=self._new_ts(),
            text=p.get("text", ""),
            blocks=p.get("blocks") or [],
            thread_ts=str(p.get("thread_ts", "")),
        )
        with self._lock:
            self.messages.append(msg)
        self._emit("posted", msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": {"text": msg.text, "ts": msg.ts}}

    def api_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = Message(channel=self._channel_id(p["channel"]), ts=self._new_ts(), text=p.get("text", ""),
                      blocks=p.get("blocks") or [], ephemeral_to=p["user"], thread_ts=str(p.get("thread_ts", "")))  # fmt: skip
        with self._lock:
            self.messages.append(msg)
        self._emit("ephemeral", msg)
        return {"ok": True, "message_ts": msg.ts}

    def api_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(p["channel"])
        with self._lock:
            for m in self.messages:
                if m.ts == p["ts"] and m.channel == channel:
                    m.history.append({"text": m.text, "blocks": m.blocks})
                    m.text, m.blocks = p.get("text", m.text), p.get("blocks") or m.blocks
                    m.updates += 1
                    break
            else:
                return {"ok": False, "error": "message_not_found"}
        self._emit("updated", m)
        return {"ok": True, "channel": channel, "ts": m.ts}

    def api_chat_getPermalink(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "permalink": f"https://local.slack/archives/{p['channel']}/p{str(p['message_ts']).replace('.', '')}",
        }

    def api_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        view_id = f"V{next(self._ids):08d}"
        view = dict(p["view"], id=view_id)
        with self._lock:
            self.views[view_id] = view
        self._emit("view_opened", view)
        return {"ok": True, "view": view}

    def api_views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        view_id = p["view_id"]
        with self._lock:
            if view_id not in self.views:
                return {"ok": False, "error": "not_found"}
            self.views[view_id] = dict(p["view"], id=view_id)
        self._emit("view_updated", self.views[view_id])
        return {"ok": True, "view": self.views[view_id]}

    def api_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.home[p["user_id"]] = p["view"]
        self._emit("home", {"user_id": p["user_id"], "view": p["view"]})
        return {"ok": True, "view": p["view"]}

    def api_usergroups_list(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            groups = [
                {"id": f"S{h.upper()[:8]}", "handle": h, "users": sorted(u)}
                for h, u in self.usergroups.items()
            ]
        return {"ok": True, "usergroups": groups}

    def api_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for h, members in self.usergroups.items():
                if f"S{h.upper()[:8]}" == p["usergroup"]:
                    return {"ok": True, "users": sorted(members)}
        return {"ok": False, "error": "no_such_subteam"}

    def api_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(p["user"])
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def api_conversations_create(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["name"]
        with self._lock:
            if any(c["name"] == name for c in self.channels.values()):
                return {"ok": False, "error": "name_taken"}
            cid = f"C{next(self._ids):08d}"
            self.channels[cid] = {"id": cid, "name": name, "members": set()}
        return {"ok": True, "channel": {"id": cid, "name": name}}

    def api_conversations_invite(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            ch = self.channels.get(p["channel"])
            if ch is None:
                return {"ok": False, "error": "channel_not_found"}
            ch["members"].update(u for u in str(p["users"]).split(",") if u)
        return {"ok": True, "channel": {"id": ch["id"], "name": ch["name"]}}

    def api_conversations_join(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": p["channel"]}}

    @staticmethod
    def _in_range(ts: str, p: dict[str, Any]) -> bool:
        inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
        value = float(ts)
        if p.get("oldest"):
            oldest = float(p["oldest"])
            if value < oldest or (value == oldest and not inclusive):
                return False
        if p.get("latest"):
            latest = float(p["latest"])
            if value > latest or (value == latest and not inclusive):
                return False
        return True

    @staticmethod
    def _wire(m: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "user": m.user}
        if m.blocks:
            out["blocks"] = m.blocks
        if m.thread_ts:
            out["thread_ts"] = m.thread_ts
        return out

    def api_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first (thread replies are not included)."""
        channel = self._channel_id(p["channel"])
        limit = int(p.get("limit") or 100)
        with self._lock:
            found = [
                self._wire(m) for m in self.messages
                if m.channel == channel and not m.ephemeral_to and m.ts[:1].isdigit()
                and (not m.thread_ts or m.thread_ts == m.ts) and self._in_range(m.ts, p)
            ]  # fmt: skip
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def api_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent first (always, like Slack), then the replies in the range asked."""
        channel = self._channel_id(p["channel"])
        ts = str(p["ts"])
        limit = int(p.get("limit") or 1000)
        with self._lock:
            msgs = [
                m for m in self.messages if m.channel == channel and not m.ephemeral_to and m.ts[:1].isdigit()
            ]
            hit = next((m for m in msgs if m.ts == ts), None)
            if hit is None:
                return {"ok": False, "error": "thread_not_found"}
            root = hit.thread_ts or hit.ts
            parent = next((m for m in msgs if m.ts == root), None)
            replies = [m for m in msgs if m.thread_ts == root and m.ts != root and self._in_range(m.ts, p)]
        replies.sort(key=lambda m: float(m.ts))
        out = ([self._wire(parent)] if parent else []) + [self._wire(m) for m in replies]
        return {"ok": True, "messages": out[:limit], "has_more": len(out) > limit}

    # -- files.uploadV2: getUploadURLExternal → POST the bytes to the URL → completeUploadExternal --
    def api_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(p.get("users", "")).split(",") if u]
        if len(users) != 1:
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "channel": {"id": "D" + users[0]}}

    def api_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        with self._lock:
            self.files[file_id] = {
                "id": file_id, "name": p["filename"], "length": int(p["length"]), "content": None, "channels": [],
            }  # fmt: skip
        return {"ok": True, "upload_url": f"{self.base}upload/v1/{file_id}", "file_id": file_id}

    def _upload(self, h: BaseHTTPRequestHandler, file_id: str) -> None:
        """The upload URL: the file's bytes as the POST body; Slack answers in plain text."""
        length = int(h.headers.get("Content-Length") or 0)
        data = h.rfile.read(length) if length else b""
        with self._lock:
            self.calls.append(("upload", {"file_id": file_id, "length": len(data)}))
        fault = self._fault_for("upload")
        with self._lock:
            entry = self.files.get(file_id)
            if fault is None and entry is not None and entry["length"] == len(data):
                entry["content"] = data
        status, text = (
            (fault.status or 500, "Internal Server Error") if fault else
            (404, "Not Found") if entry is None else
            (400, "length mismatch") if entry["length"] != len(data) else (200, f"OK - {len(data)}")
        )  # fmt: skip
        body = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _permalink(self, entry: dict[str, Any]) -> str:
        return f"https://local.slack/files/UBOT/{entry['id']}/{entry['name']}"

    def api_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        try:
            items = json.loads(p["files"]) if isinstance(p["files"], str) else p["files"]
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        channel = self._channel_id(p["channel_id"]) if p.get("channel_id") else ""
        with self._lock:
            entries = [self.files.get(str(item.get("id"))) for item in items]
            if not items or any(e is None or e["content"] is None for e in entries):
                return {"ok": False, "error": "file_not_found"}
            for item, entry in zip(items, entries, strict=True):
                assert entry is not None
                entry["title"] = item.get("title") or entry["name"]
                if channel:
                    entry["channels"].append(channel)
        if channel:
            msg = Message(
                channel=channel, ts=self._new_ts(), text=str(p.get("initial_comment") or ""), blocks=[],
                thread_ts=str(p.get("thread_ts") or ""), files=[e["id"] for e in entries if e],
            )  # fmt: skip
            with self._lock:
                self.messages.append(msg)
            self._emit("posted", msg)
        # As Slack: only each file's id and title (files.info has the rest).
        return {"ok": True, "files": [{"id": e["id"], "title": e["title"]} for e in entries if e]}

    def api_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry = self.files.get(str(p["file"]))
            if entry is None or entry["content"] is None:
                return {"ok": False, "error": "file_not_found"}
            info = {k: v for k, v in entry.items() if k not in ("content", "length")}
            info |= {"size": entry["length"], "permalink": self._permalink(entry), "mimetype": "text/plain"}
        return {"ok": True, "file": info}

    def api_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _app_level(self, method: str, token: str) -> dict[str, Any]:
        """Slack's answers where app-level tokens meet: only apps.connections.open takes one, and
        it takes nothing else."""
        if method != "apps.connections.open":
            return {"ok": False, "error": "not_allowed_token_type"}
        if token.startswith(("xoxb-", "xoxp-")):
            return {"ok": False, "error": "not_allowed_token_type"}
        if not token.startswith("xapp-") or (self.app_token and token != self.app_token):
            return {"ok": False, "error": "invalid_auth"}
        # A one-time WebSocket URL, as Slack gives it (nothing listens on the default one).
        host = self.base.removeprefix("http://").rstrip("/")
        base = self.socket_mode_url or f"ws://{host}/link/"
        return {"ok": True, "url": f"{base}?ticket={next(self._ids):08d}&app_id=A0TAISUN"}
