"""The client-side rate limit: requests spaced evenly under a sliding window, shared by every caller of one key.

Within a container one `RateLimiter` paces every call. Across containers (every function of a deployment uses
one API key), an optional `SharedBudget` hands out send times from one record in DynamoDB, so the deployment as
a whole keeps to Cloudcraft's rate, evenly spaced, whichever function sends.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import deque
from typing import Protocol

from chalicelib.core.clock import Clock
from chalicelib.core.errors import GatehouseError

log = logging.getLogger("gatehouse.cloudcraft")


class RateLimitWait(GatehouseError):
    """The next free send time is further away than the caller may wait: nothing was claimed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the Cloudcraft rate budget is taken for the next {seconds:.1f} s")
        self.seconds = seconds


class SharedBudget(Protocol):
    """Send times for every container of a deployment: one request per `interval` seconds, never two at once."""

    def claim(self, *, now: float, interval: float, horizon: float) -> float:
        """Claim the first free send time at or after `now` (epoch seconds) and return it; raise RateLimitWait,
        claiming nothing, when it is more than `horizon` seconds away."""


class RateLimiter:
    """Paces the requests of one key: at most `max_requests` per `per_seconds`, one every `per_seconds /
    max_requests` seconds when `spacing` is on (bursts are what a token bucket or a second container turns into
    429s), and through `shared` when the deployment's containers share one budget.

    Waiting goes through `clock.sleep`, so a virtual clock turns waits into exact numbers.
    """

    def __init__(
        self,
        max_requests: int = 20,
        per_seconds: float = 60.0,
        *,
        clock: Clock,
        spacing: bool = True,
        shared: SharedBudget | None = None,
    ) -> None:
        if max_requests < 1 or per_seconds <= 0:
            raise ValueError("max_requests must be >= 1 and per_seconds > 0")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.interval = per_seconds / max_requests if spacing else 0.0
        self.shared = shared
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._blocked_until = float("-inf")
        self._next_free = float("-inf")

    def acquire(self, *, max_wait: float = math.inf) -> float:
        """Block until a request may be sent and claim its slot; returns the seconds waited."""
        return self._claim(max_wait)[0]

    def reserve(self, *, max_wait: float = math.inf) -> float:
        """Like `acquire`, but returns the slot's timestamp, for `settle` once the request is answered. Raises
        RateLimitWait, claiming nothing, when the slot is more than `max_wait` seconds away."""
        return self._claim(max_wait)[1]

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

    def _claim(self, max_wait: float) -> tuple[float, float]:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                while self._sent and self._sent[0] <= now - self.per_seconds:
                    self._sent.popleft()
                held = max(self._blocked_until, self._next_free)
                if now < held:
                    wait = held - now
                elif len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    self._next_free = now + self.interval
                    slot = now
                    break
                else:
                    wait = self._sent[0] + self.per_seconds - now
                if waited + wait > max_wait:
                    raise RateLimitWait(wait)
            # Sleep outside the lock so callers that are not waiting (penalize, other acquires) are not stuck.
            log.debug("rate limiter: waiting %.2fs", wait)
            self._clock.sleep(wait)
            waited += wait
        if self.shared is not None:
            waited += self._wait_for_shared(max(max_wait - waited, 0.0))
        return waited, slot

    def _wait_for_shared(self, max_wait: float) -> float:
        interval = self.interval or self.per_seconds / self.max_requests
        assert self.shared is not None
        wall = self._clock.now().timestamp()
        at = self.shared.claim(now=wall, interval=interval, horizon=max_wait)
        wait = max(at - wall, 0.0)
        if wait:
            log.debug("rate budget: waiting %.2fs for the deployment's next send time", wait)
            self._clock.sleep(wait)
        return wait

    def penalize(self, seconds: float) -> None:
        """Hold back every caller for `seconds` from now (after a 429: the server's window is full)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock.monotonic() + max(seconds, 0.0))
