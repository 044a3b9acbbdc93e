"""Cancellation and progress reporting shared by long-running work (no threads here)."""

from __future__ import annotations

import threading
from collections.abc import Callable

Progress = Callable[[int, int], None]  # (done, total)


class Cancelled(Exception):
    """Raised inside work that noticed its CancelToken was set."""


class CancelToken:
    """Set by the user (or a test); checked by the work between units."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def no_progress(done: int, total: int) -> None:
    """Progress sink for callers that do not display progress."""
