"""Time as a dependency: real in Lambda, compressed in the sandbox, pinned in tests."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (the scale of `sleep`)."""

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """Runs `factor` times faster than real time: `sleep(60)` with factor 1000 takes 60 ms.

    Every party of a sandbox (client, emulators) shares one instance, so their views of time agree.
    """

    def __init__(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._origin_real = time.monotonic()
        self._origin_wall = datetime.now(UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin_real) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)

    def now(self) -> datetime:
        return self._origin_wall + timedelta(seconds=self.monotonic())


class FakeClock:
    """A clock that only moves when slept on: for tests that count waits instead of waiting."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = start
        self._wall_origin = datetime.now(UTC)  # near real time, so real credential expiries make sense
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._t += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds

    def now(self) -> datetime:
        return self._wall_origin + timedelta(seconds=self.monotonic())
