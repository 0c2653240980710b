"""Feature modules that add HTTP routes or periodic work install themselves here."""

from __future__ import annotations

from bot.services import Services

# Each entry is a module path with an install(svc) function.
FEATURES: list[str] = [
    "bot.incidents",  # incidents and runbook runs (sender thread, nudges)
    "bot.alerts",  # POST /alerts/alertmanager
]


def install(svc: Services) -> None:
    import importlib

    for path in FEATURES:
        importlib.import_module(path).install(svc)
