"""`taisun serve` in Socket Mode: Slack's events over a WebSocket; /health, /metrics and the alert
webhook over HTTP from the same gunicorn server as HTTP mode, in its one worker process."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.core.config import Settings
from bot.slack.gunicorn_app import serve_one
from bot.slack.server import StartResponse, WsgiApp


class SocketModeApp:
    """The WSGI app for the HTTP routes, with the Socket Mode connection of the same process."""

    def __init__(self, wsgi: WsgiApp, handler: SocketModeHandler):
        self.wsgi = wsgi
        self.svc = wsgi.svc
        self.handler = handler

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.wsgi(environ, start_response)

    def stop(self) -> None:
        self.handler.close()
        self.wsgi.stop()


def serve_socket_mode(
    settings: Settings, build: Callable[[Settings], WsgiApp], *, bind: str | None = None, threads: int = 8
) -> int:
    """Serve Socket Mode (blocks): one gunicorn worker builds the bot, connects the WebSocket (a failed
    connection fails the worker's boot, and `taisun serve` exits non-zero for its supervisor to restart
    it) and answers the HTTP routes on PORT."""

    def build_and_connect(s: Settings) -> SocketModeApp:
        wsgi = build(s)
        handler = SocketModeHandler(wsgi.bolt_app, s.slack_app_token)  # type: ignore[attr-defined]
        handler.connect()
        return SocketModeApp(wsgi, handler)

    serve_one(settings, build_and_connect, bind=bind, threads=threads)
    return 0
