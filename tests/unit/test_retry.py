from __future__ import annotations

import pytest

from chalicelib.core.retry import Backoff


def top(low: float, high: float) -> float:
    return high


def test_delays_double_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=5.0, attempts=6, jitter=top)

    assert [backoff.delay(attempt) for attempt in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_jitter_is_asked_for_the_upper_half_of_each_delay() -> None:
    asked: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        asked.append((low, high))
        return low

    backoff = Backoff(base=5.0, cap=40.0, attempts=5, jitter=record)

    assert [backoff.delay(attempt) for attempt in (1, 2, 3, 4, 5)] == [2.5, 5.0, 10.0, 20.0, 20.0]
    assert asked == [(2.5, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 40.0), (20.0, 40.0)]


def test_a_jitter_answer_outside_zero_and_the_delay_is_kept_within_them() -> None:
    quarter = Backoff(base=2.0, cap=15.0, jitter=lambda low, high: high / 4)
    too_long = Backoff(base=2.0, cap=15.0, jitter=lambda low, high: high * 10)
    negative = Backoff(base=2.0, cap=15.0, jitter=lambda low, high: -high)

    assert [quarter.delay(attempt) for attempt in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert [too_long.delay(attempt) for attempt in (1, 2, 4)] == [2.0, 4.0, 15.0]
    assert negative.delay(3) == 0.0


def test_the_default_jitter_spreads_waits_over_the_upper_half_of_the_delay() -> None:
    backoff = Backoff(base=5.0, cap=40.0, attempts=5)

    for attempt, ceiling in ((1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (9, 40.0)):
        waits = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 150  # spread, not one fixed value


def test_a_huge_attempt_number_waits_the_cap_instead_of_overflowing() -> None:
    backoff = Backoff(base=1.0, cap=20.0, jitter=top)

    assert backoff.delay(5000) == 20.0


def test_attempts_bound_the_retries() -> None:
    backoff = Backoff(base=1.0, cap=20.0, attempts=3)

    assert [backoff.exhausted(attempt) for attempt in (1, 2, 3, 4)] == [False, False, True, True]
    assert Backoff(base=1.0, cap=20.0).exhausted(1)  # one attempt by default: no retry


@pytest.mark.parametrize(
    ("base", "cap", "attempts", "message"),
    [
        (0.0, 10.0, 1, "0 < base <= cap"),
        (-1.0, 10.0, 1, "0 < base <= cap"),
        (20.0, 10.0, 1, "0 < base <= cap"),
        (1.0, 10.0, 0, "attempts >= 1"),
    ],
)
def test_a_backoff_that_could_not_work_is_refused(base: float, cap: float, attempts: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(base=base, cap=cap, attempts=attempts)
