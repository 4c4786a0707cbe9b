"""The account lease: one holder at a time, bounded waits on the injected clock, expiry, release of one's own only."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chalicelib.adapters.lease import AccountBusyError, AccountLeases
from tests.clocks import RecordingClock
from tests.lease_fakes import MemoryLease

ACCOUNT = "222222222222"


def leases(store: MemoryLease, clock: RecordingClock, **options: float) -> AccountLeases:
    return AccountLeases(store, clock, wait_seconds=options.get("wait", 60.0), ttl_seconds=int(options.get("ttl", 300)))


def test_a_free_lease_is_taken_at_once_and_released_at_the_end() -> None:
    store, clock = MemoryLease(), RecordingClock()

    with leases(store, clock).hold(ACCOUNT, "arrival") as hold:
        holder, expires_at = store.records[ACCOUNT]
        assert holder == hold.holder
        assert holder.startswith("arrival [")
        assert expires_at == int(clock.now().timestamp()) + 300
        assert hold.waited is False

    assert store.records == {}
    assert clock.sleeps == []


def test_a_held_lease_is_waited_for_on_the_clock_then_handed_back() -> None:
    store, clock = MemoryLease(), RecordingClock()
    store.records[ACCOUNT] = ("fleet_worker apply [abcd]", int(clock.now().timestamp()) + 3600)
    body_ran = False

    with pytest.raises(AccountBusyError) as raised, leases(store, clock, wait=60).hold(ACCOUNT, "move"):
        body_ran = True

    assert not body_ran
    assert "fleet_worker apply [abcd]" in str(raised.value)
    assert "Nothing was changed" in str(raised.value)
    assert sum(clock.sleeps) == pytest.approx(60)  # bounded, and on the injected clock: no real sleep
    assert clock.sleeps[:4] == [1.0, 2.0, 4.0, 5.0]
    assert store.records[ACCOUNT][0] == "fleet_worker apply [abcd]"  # still the other job's


def test_a_lease_freed_during_the_wait_is_taken_and_the_hold_says_it_waited() -> None:
    store, clock = MemoryLease(), RecordingClock()
    store.records[ACCOUNT] = ("arrival [1111]", int(clock.now().timestamp()) + 3600)

    class FreeingClock(RecordingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if len(self.sleeps) == 3:
                store.release(ACCOUNT, holder="arrival [1111]")  # the other job ends

    freeing = FreeingClock()
    with leases(store, freeing).hold(ACCOUNT, "move") as hold:
        assert hold.waited is True
        assert store.records[ACCOUNT][0] == hold.holder

    assert len(freeing.sleeps) == 3


def test_an_expired_lease_is_taken_over() -> None:
    store, clock = MemoryLease(), RecordingClock()
    store.records[ACCOUNT] = ("a job that died [dead]", int(clock.now().timestamp()) - 1)

    with leases(store, clock).hold(ACCOUNT, "arrival") as hold:
        assert hold.waited is False
        assert store.records[ACCOUNT][0] == hold.holder


def test_release_never_frees_another_holders_lease() -> None:
    store, clock = MemoryLease(), RecordingClock()
    with leases(store, clock, ttl=10).hold(ACCOUNT, "slow job"):
        clock.advance(11)  # past its expiry: another job takes the account over
        now = int(clock.now().timestamp())
        assert store.try_acquire(ACCOUNT, holder="next job [2222]", now=now, expires_at=now + 300).acquired
    assert store.records[ACCOUNT][0] == "next job [2222]"  # the slow job's release left the new holder's lease


def test_the_lease_expires_with_the_invocation() -> None:
    @dataclass
    class Context:
        remaining_ms: int

        def get_remaining_time_in_millis(self) -> int:
            return self.remaining_ms

    lease = leases(MemoryLease(), RecordingClock())
    lease.register_lambda_context(Context(120_000))
    assert lease.ttl_seconds == 150  # the invocation's remaining time plus a margin
    lease.register_lambda_context(Context(3_600_000))
    assert lease.ttl_seconds == 930  # never beyond the longest invocation


def test_the_body_failing_still_releases() -> None:
    store, clock = MemoryLease(), RecordingClock()
    with pytest.raises(RuntimeError), leases(store, clock).hold(ACCOUNT, "arrival"):
        raise RuntimeError("Cloudcraft said no")
    assert store.records == {}
