"""``StopSignals``: SIGTERM and SIGINT become an event the scheduler's main loop waits on.

The handler only sets flags (it may interrupt the main thread anywhere); the main loop then stops
the runner. A second signal sets ``runner.hurry``: running crawls are killed without waiting.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

    from crawler.scheduling.runner import JobRunner

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self.event = threading.Event()
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received > 1:
            self.runner.hurry = True
        self.event.set()
