"""The one backoff Gatehouse uses between attempts: capped exponential delays, spread by an injectable jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Picks a wait in [low, high]. Backoff asks for [delay / 2, delay] ("equal jitter": never zero, never over the
# delay) and keeps the answer within [0, delay]; tests pin it, e.g. `lambda low, high: high`.
Jitter = Callable[[float, float], float]

# 2 ** 62 times any sane base is already far past every cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class Backoff:
    """At most `attempts` tries of one operation; after failed attempt n (1-based) wait
    `jitter(delay / 2, delay)` seconds, where delay = min(cap, base * 2 ** (n - 1))."""

    base: float
    cap: float
    attempts: int = 1
    jitter: Jitter = random.uniform

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"a backoff needs 0 < base <= cap (got base={self.base}, cap={self.cap})")
        if self.attempts < 1:
            raise ValueError(f"a backoff needs attempts >= 1 (got {self.attempts})")

    def exhausted(self, attempt: int) -> bool:
        """True when `attempt` (1-based) was the last one allowed: no wait, no retry."""
        return attempt >= self.attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), before the next one."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT))
        return min(ceiling, max(0.0, self.jitter(ceiling / 2, ceiling)))
