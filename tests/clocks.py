"""A virtual clock that also lists the sleeps asked of it: for tests that count waits instead of waiting."""

from __future__ import annotations

import threading
from datetime import datetime

from chalicelib.core.clock import VirtualClock


class RecordingClock(VirtualClock):
    """`sleeps` holds every `sleep` call's argument, in call order (zero and negative ones included)."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self.sleeps: list[float] = []
        self._recording = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._recording:
            self.sleeps.append(seconds)
        super().sleep(seconds)
