"""The actors' dependencies: installed by `serve` (embedded mode) and tests, else built on first use."""

from __future__ import annotations

import threading

from config import Settings
from usecases.deps import Deps

_current: Deps | None = None
_guard = threading.Lock()


def install(deps: Deps | None) -> None:
    global _current
    with _guard:
        _current = deps


def current() -> Deps:
    """The installed dependencies, or ones built from the environment (worker processes)."""
    global _current
    with _guard:
        if _current is None:
            settings = Settings.from_env()
            settings.check_service()
            _current = Deps.from_settings(settings, threads=settings.worker_threads)
        return _current
