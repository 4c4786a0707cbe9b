"""The client-side rate limit: one sliding window shared by every caller of one Cloudcraft key."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque

from chalicelib.core.clock import Clock

log = logging.getLogger("gatehouse.cloudcraft")


class RateLimiter:
    """Sliding-window limiter shared by every caller of one key: at most `max_requests` per `per_seconds`.

    Waiting goes through `clock.sleep`, so a virtual clock turns waits into exact numbers.
    """

    def __init__(self, max_requests: int = 20, per_seconds: float = 60.0, *, clock: Clock) -> None:
        if max_requests < 1 or per_seconds <= 0:
            raise ValueError("max_requests must be >= 1 and per_seconds > 0")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._blocked_until = float("-inf")

    def acquire(self) -> float:
        """Block until a request may be sent and claim its slot; returns the seconds waited."""
        return self._claim()[0]

    def reserve(self) -> float:
        """Like `acquire`, but returns the slot's timestamp, for `settle` once the request is answered."""
        return self._claim()[1]

    def settle(self, reserved_at: float) -> None:
        """Move a slot to now, when its request has been answered.

        The server counts a request when it arrives, later than the slot was claimed: counting from the answer
        keeps this window behind the server's, which matters once latency is a visible share of the window
        (a slow link).
        """
        with self._lock:
            # A slot that expired meanwhile is not there; its request may still sit in the server's window.
            with contextlib.suppress(ValueError):
                self._sent.remove(reserved_at)
            # Every slot was claimed at or before now, so appending keeps the window sorted.
            self._sent.append(self._clock.monotonic())

    def _claim(self) -> tuple[float, float]:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                while self._sent and self._sent[0] <= now - self.per_seconds:
                    self._sent.popleft()
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                elif len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    return waited, now
                else:
                    wait = self._sent[0] + self.per_seconds - now
            # Sleep outside the lock so callers that are not waiting (penalize, other acquires) are not stuck.
            log.debug("rate limiter: waiting %.2fs", wait)
            self._clock.sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        """Hold back every caller for `seconds` from now (after a 429: the server's window is full)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock.monotonic() + max(seconds, 0.0))
