"""Every HTTP listener of the bot is gunicorn (gthread workers), the app built in each worker after the fork:
`taisun serve` in HTTP mode, `taisun serve` in Socket Mode (/health, /metrics and the alert webhook beside
the WebSocket) and `taisun worker` (/health and /metrics beside the job threads)."""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from bot.core.config import Settings
from bot.core.logs import setup_logging


class TaisunGunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, build: Callable[[Settings], Any], options: dict[str, Any]):
        self.settings = settings
        self.build = build
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after the fork: every worker has its own threads and pool.
        setup_logging(self.settings.log_level)
        app = self.build(self.settings)
        freeze_heap()
        return app


def freeze_heap() -> None:
    """Move everything built so far (modules, the app, its services) out of the garbage collector's
    sight. A full collection walks every tracked object while holding the GIL: with the app built,
    one took 80-170 ms, and the process's acks waited as long; frozen, it walks only what was made
    since. Objects that die later are still freed by reference counting; the frozen ones are the
    process's furniture and live as long as it does."""
    gc.collect()
    gc.freeze()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server: Any, worker: Any) -> None:
    """In the worker process, once it has stopped serving HTTP: let the app stop its own threads
    (`taisun worker` hands back or finishes its jobs; Socket Mode closes its WebSocket)."""
    stop = getattr(getattr(worker, "wsgi", None), "stop", None)
    if callable(stop):
        stop()


def _options(
    settings: Settings, bind: str | None, workers: int, threads: int, graceful: float
) -> dict[str, Any]:
    return {
        "bind": bind or f"0.0.0.0:{settings.port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": graceful,
        "keepalive": 5,
        "accesslog": None,
        "loglevel": "warning",
        "child_exit": _child_exit,
        "worker_exit": _worker_exit,
        "proc_name": "taisun",
        # gunicorn 27's control socket lives in $HOME, which the service user cannot write
        # (the image's /app, systemd's ProtectSystem=strict): every start logged an ERROR.
        # Older gunicorn does not know the setting, and load_config skips it there.
        "control_socket_disable": True,
    }


def serve_http(
    settings: Settings,
    build: Callable[[Settings], Any],
    *,
    bind: str | None = None,
    workers: int = 2,
    threads: int = 8,
    graceful_timeout: int = 30,
) -> None:
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="taisun-metrics-")
    TaisunGunicorn(settings, build, _options(settings, bind, workers, threads, graceful_timeout)).run()


def serve_one(
    settings: Settings,
    build: Callable[[Settings], Any],
    *,
    bind: str | None = None,
    threads: int = 4,
    graceful_timeout: int = 20,
) -> None:
    """One gunicorn worker: a process that must exist once (Socket Mode's WebSocket, a job worker),
    restarted by gunicorn's arbiter should it die, drained on SIGTERM within graceful_timeout."""
    TaisunGunicorn(settings, build, _options(settings, bind, 1, threads, graceful_timeout)).run()
