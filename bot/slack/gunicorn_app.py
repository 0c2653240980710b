"""`taisun serve` in HTTP mode: gunicorn with threads, the app built in each worker."""

from __future__ import annotations

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
        # Runs in each worker after the fork: every worker has its own job threads and pool.
        setup_logging(self.settings.log_level)
        return self.build(self.settings)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def serve_http(
    settings: Settings,
    build: Callable[[Settings], Any],
    *,
    bind: str | None = None,
    workers: int = 2,
    threads: int = 8,
) -> None:
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="taisun-metrics-")
    TaisunGunicorn(
        settings,
        build,
        {
            "bind": bind or f"0.0.0.0:{settings.port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 60,
            "graceful_timeout": 20,
            "keepalive": 5,
            "accesslog": None,
            "loglevel": "warning",
            "child_exit": _child_exit,
            "proc_name": "taisun",
            # gunicorn 27's control socket lives in $HOME, which the service user cannot write
            # (the image's /app, systemd's ProtectSystem=strict): every start logged an ERROR.
            # Older gunicorn does not know the setting, and load_config skips it there.
            "control_socket_disable": True,
        },
    ).run()
