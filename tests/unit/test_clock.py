"""The virtual clock: only sleeps move it, concurrent sleeps overlap, it never goes back, and it is thread-safe."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.core.clock import VirtualClock
from tests.clocks import RecordingClock

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HANG_GUARD = 120.0  # seconds: only a hung test waits this long


def run_threads(count: int, target: Callable[[int], None], before: Callable[[], object] = lambda: None) -> None:
    """Start `count` threads; each runs `before`, waits for all the others to have run it too, then `target`."""
    barrier = threading.Barrier(count, timeout=HANG_GUARD)
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        try:
            before()
            barrier.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_GUARD)
        assert not thread.is_alive()
    assert errors == []


def test_sleep_returns_at_once_and_advances_the_clock_by_exactly_its_length() -> None:
    clock = VirtualClock(START)
    assert clock.monotonic() == 0.0
    assert clock.now() == START

    started = time.monotonic()
    clock.sleep(3600)
    clock.sleep(0.25)
    assert time.monotonic() - started < 60  # a hang guard: an hour of virtual sleep is no real wait

    assert clock.monotonic() == 3600.25
    assert clock.now() == START + timedelta(hours=1, milliseconds=250)


def test_real_time_never_moves_it() -> None:
    clock = VirtualClock(START)
    time.sleep(0.01)  # real time passes (what it is does not matter: none of it may show)
    assert clock.monotonic() == 0.0
    assert clock.now() == START


def test_zero_negative_and_nan_sleeps_pass_no_time_and_an_endless_one_is_refused() -> None:
    clock = VirtualClock(START)
    for seconds in (0.0, -5.0, math.nan):
        clock.sleep(seconds)
    assert clock.monotonic() == 0.0
    with pytest.raises(ValueError, match="infinite"):
        clock.sleep(math.inf)


def test_advance_moves_the_clock_and_refuses_to_go_back() -> None:
    clock = VirtualClock(START)
    clock.advance(90)
    assert clock.now() == START + timedelta(seconds=90)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            clock.advance(bad)
    assert clock.monotonic() == 90.0


def test_it_starts_at_the_given_time_or_the_real_time_now() -> None:
    before = datetime.now(UTC)
    default = VirtualClock()
    after = datetime.now(UTC)
    assert before <= default.now() <= after
    assert VirtualClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC).astimezone()).start == START + timedelta(hours=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2026, 11, 23, 9, 0))  # a naive time


def test_a_threads_second_sleep_follows_its_first() -> None:
    clock = VirtualClock(START)
    clock.sleep(10)
    clock.sleep(5)
    assert clock.monotonic() == 15.0


def test_concurrent_sleeps_overlap_instead_of_adding_up() -> None:
    clock = VirtualClock(START)

    # Three threads that stand at 0 (they read the clock before any of them sleeps) and sleep 60 s each: the clock
    # is a minute on, not three.
    run_threads(3, lambda _: clock.sleep(60), before=clock.monotonic)
    assert clock.monotonic() == 60.0

    # Sleeps of different lengths from one start (60): the clock ends at the longest.
    run_threads(4, lambda index: clock.sleep(10 * (index + 1)), before=clock.monotonic)
    assert clock.monotonic() == 100.0


def test_a_thread_that_never_read_the_clock_starts_its_sleep_at_the_clocks_time() -> None:
    clock = VirtualClock(START)
    clock.advance(50)
    run_threads(1, lambda _: clock.sleep(10))
    assert clock.monotonic() == 60.0


def test_a_sleep_starts_where_its_thread_last_read_the_clock() -> None:
    clock = VirtualClock(START)
    position = threading.Event()
    moved = threading.Event()
    seen: list[float] = []

    def sleeper() -> None:
        seen.append(clock.monotonic())  # this thread stands at 0
        position.set()
        assert moved.wait(HANG_GUARD)
        clock.sleep(30)  # 0 + 30 ends before the clock's 100: the clock stays; the thread then reads 100
        seen.append(clock.monotonic())

    thread = threading.Thread(target=sleeper)
    thread.start()
    assert position.wait(HANG_GUARD)
    clock.sleep(100)  # another thread's sleep, meanwhile
    moved.set()
    thread.join(HANG_GUARD)
    assert not thread.is_alive()

    assert seen == [0.0, 100.0]
    assert clock.monotonic() == 100.0


def test_many_threads_sleeping_and_reading_at_once() -> None:
    clock = VirtualClock(START)
    sleepers, readers, sleeps = 24, 8, 200
    standing = threading.Barrier(sleepers, timeout=HANG_GUARD)
    backwards: list[tuple[float, float]] = []

    def work(index: int) -> None:
        if index >= sleepers:  # a reader: every value it sees is at least the one before
            last = 0.0
            for step in range(sleeps * 5):
                now = clock.monotonic() if step % 2 else (clock.now() - START).total_seconds()
                if now < last:
                    backwards.append((last, now))
                last = now
            return
        clock.monotonic()  # every sleeper stands at 0 before any of them sleeps
        standing.wait()  # (the readers are not in this one)
        for _ in range(sleeps):
            clock.sleep(0.5 + index % 4)  # each sleep starts where this thread's previous one ended

    run_threads(sleepers + readers, work)

    assert backwards == []
    # The chains of sleeps overlap: the clock ends at the longest, 200 x 3.5 s, not at the sum of them all.
    assert clock.monotonic() == sleeps * 3.5


def test_one_thread_at_a_time_loses_no_sleep() -> None:
    clock = VirtualClock(START)
    lock = threading.Lock()

    def work(_: int) -> None:
        for _ in range(100):
            with lock:  # serialised: each sleep starts where the previous one ended, so they add up exactly
                clock.monotonic()
                clock.sleep(1.0)

    run_threads(16, work)
    assert clock.monotonic() == 1600.0


def test_the_recording_clock_lists_every_sleep_in_order() -> None:
    clock = RecordingClock(START)
    for seconds in (1.0, 0.0, 2.5, -1.0):
        clock.sleep(seconds)
    assert clock.sleeps == [1.0, 0.0, 2.5, -1.0]
    assert clock.monotonic() == 3.5
