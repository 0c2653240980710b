"""Slack's Socket Mode endpoint on loopback: the WebSocket a bot opens with the URL apps.connections.open
gave it. It says hello, sends envelopes (events, slash commands, interactions) and keeps the bot's acks,
answers pings with pongs, as Slack does (RFC 6455 framing, text frames, no extensions).

    ws = FakeSocketMode().start()
    slack.socket_mode_url = ws.url          # apps.connections.open hands it out
    ws.wait_connected()
    ws.send_envelope("e1", "slash_commands", {...})
    ack = ws.wait_ack("e1")                 # {"envelope_id": "e1", "payload": {...}}
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload  # a server's frames are not masked


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    b0, b1 = _read_exact(sock, 2)
    opcode, masked, n = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(sock, 8))[0]
    mask = _read_exact(sock, 4) if masked else b"\0\0\0\0"
    data = _read_exact(sock, n)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class FakeSocketMode:
    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections = 0
        self.closed = 0
        self._conn: socket.socket | None = None
        self._cond = threading.Condition()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._server.getsockname()[1]}/link/"

    def start(self) -> FakeSocketMode:
        self._server.listen(8)
        threading.Thread(target=self._accept, name="fake-socket-mode", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.close()
        with self._cond:
            if self._conn is not None:
                self._conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = next(
                line.split(":", 1)[1].strip()
                for line in request.decode("latin-1").split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()  # noqa: S324 (RFC 6455)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0TAISUN"},
                     "debug_info": {"host": "fake", "approximate_connection_time": 3600}}  # fmt: skip
            with self._cond:
                self._conn = conn
                self.connections += 1
                conn.sendall(_frame(0x1, json.dumps(hello).encode()))
                self._cond.notify_all()
            while True:
                opcode, data = _read_frame(conn)
                if opcode == 0x9:  # ping → pong with the same payload
                    with self._cond:
                        conn.sendall(_frame(0xA, data))
                elif opcode == 0x8:  # close
                    with self._cond:
                        conn.sendall(_frame(0x8, data[:2]))
                    return
                elif opcode == 0x1:
                    message = json.loads(data)
                    if "envelope_id" in message:
                        with self._cond:
                            self.acks[message["envelope_id"]] = message
                            self._cond.notify_all()
        except (ConnectionError, OSError, StopIteration):
            return
        finally:
            with self._cond:
                self.closed += 1
                self._cond.notify_all()
            conn.close()

    def wait_connected(self, timeout: float = 30.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._conn is not None, timeout):
                raise TimeoutError("no Socket Mode connection")

    def send_envelope(self, envelope_id: str, kind: str, payload: dict[str, Any]) -> None:
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": True,
        }
        with self._cond:
            assert self._conn is not None
            self._conn.sendall(_frame(0x1, json.dumps(envelope).encode()))

    def wait_ack(self, envelope_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no ack for envelope {envelope_id}")
                self._cond.wait(left)
            return self.acks[envelope_id]

    def wait_closed(self, timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.closed >= self.connections > 0, timeout)
