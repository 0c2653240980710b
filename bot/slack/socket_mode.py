"""`taisun serve` in Socket Mode: Slack's events over a WebSocket, /health, /metrics and the
alert webhook still over HTTP."""

from __future__ import annotations

import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.core.config import Settings
from bot.slack.server import WsgiApp


class _Quiet(WSGIRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass


def serve_socket_mode(settings: Settings, wsgi: WsgiApp) -> int:
    """Serve the HTTP routes on PORT in a thread and Slack's events over Socket Mode (blocks)."""
    # /health, /metrics and /alerts still come over HTTP in Socket Mode.
    httpd = make_server("0.0.0.0", settings.port, wsgi, handler_class=_Quiet)  # noqa: S104
    threading.Thread(target=httpd.serve_forever, name="taisun-http", daemon=True).start()
    SocketModeHandler(wsgi.bolt_app, settings.slack_app_token).start()  # type: ignore[attr-defined]
    return 0
