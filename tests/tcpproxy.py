"""A TCP forwarder on loopback that a test can cut and restore, to take a server away mid-request.

    with TcpProxy("127.0.0.1", 5432) as proxy:   # point the bot at 127.0.0.1:proxy.port
        proxy.cut()       # every open connection drops; new ones are accepted and closed at once
        proxy.restore()   # connections work again (the server behind never noticed)

"Cut" is what a network partition or a database failover looks like from the client: reads
end with EOF, connects fail. Nothing is delayed, so the client's own timeouts do not matter.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> TcpProxy:
        t = threading.Thread(target=self._accept_loop, name="tcpproxy-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones until restore()."""
        self._cut.set()
        self._close_all()

    def restore(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self._stop.set()
        self._close_all()
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._cut.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst), name="tcpproxy-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _close(s)
                with self._lock:
                    self._open.discard(s)

    def _close_all(self) -> None:
        with self._lock:
            doomed, self._open = self._open, set()
        for s in doomed:
            _close(s)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
