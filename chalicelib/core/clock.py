"""Time as a dependency: real in Lambda, virtual in the sandbox and in tests."""

from __future__ import annotations

import math
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


class VirtualClock:
    """A discrete-event clock: only sleeps (and `advance`) move it; real elapsed time never does.

    `sleep(60)` returns at once and moves the clock 60 s on, so a run takes the same virtual time, and reads the
    same times, however busy the machine is. Every party of a sandbox (client code, emulators, moto, the world's
    Lambda retries) shares one instance, so their views of time agree.

    Threads: each thread has a position on the clock, the time it last read (`monotonic`, `now`) or woke up at
    (a thread that has not used the clock yet stands at the clock's current time). A sleep of `d` that starts
    at a thread's position `t` ends at `t + d`, leaves the thread there, and moves the clock to
    `max(clock, t + d)`: sleeps of concurrent threads overlap, as on a real clock, instead of adding up. Reads
    return the clock itself, which never goes back, so every thread sees it monotonic. All of it under one lock.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """`start`: the wall-clock time at virtual time 0 (timezone-aware); by default the real time now."""
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware (e.g. datetime(2026, 1, 1, tzinfo=UTC))")
        self.start = (start or datetime.now(UTC)).astimezone(UTC)
        self._lock = threading.Lock()
        self._now = 0.0
        self._positions = threading.local()

    def monotonic(self) -> float:
        with self._lock:
            self._positions.at = self._now
            return self._now

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def sleep(self, seconds: float) -> None:
        with self._lock:
            begin: float = getattr(self._positions, "at", self._now)
            if not seconds > 0:  # zero, negative, NaN: no time passes
                self._positions.at = begin
                return
            if seconds == math.inf:
                raise ValueError("a virtual sleep must end: got an infinite number of seconds")
            end = begin + seconds
            self._positions.at = end
            self._now = max(self._now, end)

    def advance(self, seconds: float) -> None:
        """Time passes with nobody asleep (a test's "an hour later"): the clock and this thread move on."""
        if not 0 <= seconds < math.inf:
            raise ValueError(f"advance takes a finite number of seconds >= 0 (got {seconds})")
        with self._lock:
            self._now += seconds
            self._positions.at = self._now
