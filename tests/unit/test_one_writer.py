"""One writer per account, interleaved deterministically with in-memory fakes: an arrival and a move of one account,
two fleet workers on one account, and what a job may refuse to write whatever asked for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.adapters.lease import AccountBusyError, AccountLeases
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import Settings, parse_settings
from chalicelib.events import AccountDeparture
from chalicelib.fleet.service import Fleet
from chalicelib.onboarding.arrival import Onboarding
from chalicelib.onboarding.departure import Offboarding
from chalicelib.onboarding.outcome import AccountOutcome
from chalicelib.planning.executor import Executor
from chalicelib.planning.plan import CloudcraftIdentity
from tests.clocks import RecordingClock
from tests.fakes import FakeLedger, Reg
from tests.lease_fakes import FakeCloudcraft, FakeDirectory, FakeIam, FakeMember, MemoryLease

MANAGEMENT = "123456789012"
IDENTITY = CloudcraftIdentity("999999999999", "ext-1")
MEMBER = MemberAccount("222222222222", "data", ou_path="Workloads")
LEFT = "333333333333"  # an account no longer in the Organization
ROLE = "arn:aws:iam::{}:role/cloudcraft"
ARRIVAL = "CreateAccountResult event a-1"
MOVE = "MoveAccount event m-1"


@dataclass
class World:
    """What every job of the test shares: Cloudcraft, the member account's IAM, the ledger, the lease store."""

    settings: Settings = field(default_factory=lambda: parse_settings({}))
    cloudcraft: FakeCloudcraft = field(default_factory=FakeCloudcraft)
    iam: FakeIam = field(default_factory=FakeIam)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    lease: MemoryLease = field(default_factory=MemoryLease)
    directory: FakeDirectory = field(
        default_factory=lambda: FakeDirectory(
            [MEMBER, MemberAccount(MANAGEMENT, "root", is_management=True)], management=MANAGEMENT
        )
    )

    def member(self, account_id: str) -> FakeMember:
        return FakeMember(account_id, self.iam)

    def leases(self, clock: RecordingClock) -> AccountLeases:
        return AccountLeases(self.lease, clock, wait_seconds=60)

    def onboarding(self, clock: RecordingClock) -> Onboarding:
        return Onboarding(
            settings=self.settings,
            directory=self.directory,
            member_session=self.member,
            cloudcraft=self.cloudcraft,
            identity=lambda: IDENTITY,
            ledger=self.ledger,
            clock=clock,
            leases=self.leases(clock),
            jitter=lambda low, high: low,
        )

    def fleet(self, clock: RecordingClock) -> Fleet:
        return Fleet(
            settings=self.settings,
            directory=self.directory,
            member_session=self.member,  # type: ignore[arg-type]
            cloudcraft=self.cloudcraft,
            identity=lambda: IDENTITY,
            ledger=self.ledger,
            executor=Executor(self.cloudcraft, self.ledger, self.settings, clock, lambda low, high: low),
            leases=self.leases(clock),
        )

    def offboarding(self, clock: RecordingClock) -> Offboarding:
        return Offboarding(
            settings=self.settings,
            directory=self.directory,
            member_session=self.member,
            cloudcraft=self.cloudcraft,
            ledger=self.ledger,
            executor=Executor(self.cloudcraft, self.ledger, self.settings, clock, lambda low, high: low),
            leases=self.leases(clock),
        )


class Steps:
    """Named points two threads meet at: each wait is released by the other thread's step, never by time.
    (The bound on each wait only turns a bug into a failure instead of a hang.)"""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def reach(self, name: str) -> None:
        self._event(name).set()

    def wait(self, name: str) -> None:
        assert self._event(name).wait(60), f"step {name!r} never came"


class WaitingClock(RecordingClock):
    """The second job's clock: its first wait for the lease lasts until the first job has released it."""

    def __init__(self, steps: Steps) -> None:
        super().__init__()
        self._steps = steps

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self._steps.reach("second job waits for the lease")
        self._steps.wait("first job released the lease")


def run_in_thread(job: Callable[[], Any], into: dict[str, Any], name: str) -> threading.Thread:
    def target() -> None:
        try:
            into[name] = job()
        except Exception as exc:
            into[name] = exc

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def interleave(world: World, first: Callable[[], Any], second: Callable[[RecordingClock], Any]) -> dict[str, Any]:
    """The first job gets the lease and POSTs; while it is inside that POST the second job starts, finds the
    lease held and waits; then the first job finishes and releases; then the second job goes on."""
    steps = Steps()
    results: dict[str, Any] = {}

    def inside_first_post() -> None:
        steps.reach("first job is writing")
        steps.wait("second job waits for the lease")

    world.cloudcraft.on_post = inside_first_post
    world.lease.on_release = lambda account, holder: steps.reach("first job released the lease")
    one = run_in_thread(first, results, "first")
    steps.wait("first job is writing")
    two = run_in_thread(lambda: second(WaitingClock(steps)), results, "second")
    one.join(60)
    two.join(60)
    assert not one.is_alive()
    assert not two.is_alive()
    return results


# --- the races ---------------------------------------------------------------------------------------------
def test_arrival_and_move_of_one_account_post_once_and_neither_fails() -> None:
    world = World()

    results = interleave(
        world,
        lambda: world.onboarding(RecordingClock()).converge(MEMBER, trigger=ARRIVAL),
        lambda clock: world.onboarding(clock).converge(MEMBER, trigger=MOVE),
    )

    arrival, move = results["first"], results["second"]
    assert isinstance(arrival, AccountOutcome), results
    assert isinstance(move, AccountOutcome), results
    assert arrival.outcome == "onboarded"
    assert move.outcome == "unchanged"  # re-planned from live state after the wait: nothing left to do
    assert world.cloudcraft.posts == [ROLE.format(MEMBER.account_id)]
    assert world.iam.writes == 1
    # The move found the lease held once, then took it: it never read or wrote while the arrival held it.
    move_attempts = [acquired for _, holder, acquired in world.lease.attempts if holder.startswith(MOVE)]
    assert move_attempts == [False, True]


def test_two_fleet_workers_on_one_account_post_once() -> None:
    world = World()

    results = interleave(
        world,
        lambda: world.fleet(RecordingClock()).converge_account(MEMBER.account_id, job="fleet_worker run-1"),
        lambda clock: world.fleet(clock).converge_account(MEMBER.account_id, job="fleet_worker run-2"),
    )

    assert (results["first"].outcome, results["second"].outcome) == ("applied", "unchanged"), results
    assert world.cloudcraft.posts == [ROLE.format(MEMBER.account_id)]
    assert world.ledger.lookup(MEMBER.account_id) == "cc-1"


def test_a_worker_and_an_arrival_on_one_account_post_once() -> None:
    world = World()

    results = interleave(
        world,
        lambda: world.fleet(RecordingClock()).converge_account(MEMBER.account_id, job="fleet_worker run-1"),
        lambda clock: world.onboarding(clock).converge(MEMBER, trigger=ARRIVAL),
    )

    assert results["first"].outcome == "applied"
    assert results["second"].outcome == "unchanged"
    assert len(world.cloudcraft.posts) == 1


def test_a_job_that_cannot_get_the_lease_hands_back_without_writing_and_its_retry_finds_nothing_to_do() -> None:
    # Single-threaded: the move runs to its end inside the arrival's POST, while the arrival holds the lease.
    world = World()
    handed_back: list[AccountBusyError] = []
    move_clock = RecordingClock()

    def move_meanwhile() -> None:
        with pytest.raises(AccountBusyError) as raised:
            world.onboarding(move_clock).converge(MEMBER, trigger=MOVE)
        handed_back.append(raised.value)

    world.cloudcraft.on_post = move_meanwhile
    arrival = world.onboarding(RecordingClock()).converge(MEMBER, trigger=ARRIVAL)
    retried = world.onboarding(RecordingClock()).converge(MEMBER, trigger=MOVE)  # the platform's retry, later

    assert [str(error) for error in handed_back]
    assert ARRIVAL in str(handed_back[0])
    assert sum(move_clock.sleeps) == pytest.approx(60)  # waited the bound, on its clock
    assert (arrival.outcome, retried.outcome) == ("onboarded", "unchanged")
    assert len(world.cloudcraft.posts) == 1


def test_apply_of_a_stale_plan_lists_again_when_the_ledger_says_another_job_registered() -> None:
    # The operator's plan saw no registration; an arrival registered the account before apply reached it.
    world = World()
    plan = world.fleet(RecordingClock()).plan()
    assert [p.actions() for p in plan.accounts if p.changes] == [["create role", "register"]]
    world.onboarding(RecordingClock()).converge(MEMBER, trigger=ARRIVAL)

    report = world.fleet(RecordingClock()).apply(plan, requests_per_minute=20)

    assert report.unchanged == [MEMBER.account_id]
    assert report.applied == []
    assert report.failed == {}
    assert len(world.cloudcraft.posts) == 1


# --- the management account, whatever asks ------------------------------------------------------------------
def test_the_management_account_is_refused_on_every_path() -> None:
    world = World()
    clock = RecordingClock()

    admitted = world.onboarding(clock).admit(MANAGEMENT, trigger=ARRIVAL)
    departed = world.offboarding(clock).offboard(
        AccountDeparture("e-1", "AccountDepartedOrganization", MANAGEMENT, "SUCCEEDED"), trigger="t", why="left"
    )
    applied = world.fleet(clock).converge_account(MANAGEMENT, job="fleet_worker")
    deregistered = world.fleet(clock).deregister_orphan(MANAGEMENT, job="fleet_worker")

    for outcome in (admitted, departed, applied, deregistered):
        assert outcome.outcome == "refused", outcome  # type: ignore[union-attr]
        assert "management account" in outcome.reason  # type: ignore[union-attr]
    assert world.lease.attempts == []  # refused before anything was read or locked
    assert world.cloudcraft.posts == []
    assert world.cloudcraft.deleted == []


def test_the_management_account_registration_survives_its_departure_event() -> None:
    world = World()
    world.cloudcraft.registrations.append(Reg("cc-mgmt", "root", ROLE.format(MANAGEMENT)))
    world.ledger.record(MANAGEMENT, "cc-mgmt")  # even were it Gatehouse's

    result = world.offboarding(RecordingClock()).offboard(
        AccountDeparture("e-1", "RemoveAccountFromOrganization", MANAGEMENT, "SUCCEEDED"), trigger="t", why="left"
    )

    assert result.outcome == "refused"
    assert world.cloudcraft.deleted == []


# --- orphans: only what the ledger says is Gatehouse's, and that still exists ---------------------------------
def test_an_owned_orphan_is_deregistered_under_the_lease() -> None:
    world = World()
    world.cloudcraft.registrations.append(Reg("cc-9", "left", ROLE.format(LEFT)))
    world.ledger.record(LEFT, "cc-9")

    work = world.fleet(RecordingClock()).deregister_orphan(LEFT, job="fleet_worker")

    assert (work.outcome, work.deregistered) == ("deregistered", "cc-9")
    assert world.cloudcraft.deleted == ["cc-9"]
    assert world.ledger.lookup(LEFT) is None
    assert [acquired for account, _, acquired in world.lease.attempts if account == LEFT] == [True]


def test_a_registration_gatehouse_does_not_own_is_never_deleted() -> None:
    world = World()
    world.cloudcraft.registrations.append(Reg("cc-datadog", "via Datadog", ROLE.format(LEFT)))

    work = world.fleet(RecordingClock()).deregister_orphan(LEFT, job="fleet_worker (forged)")

    assert work.outcome == "refused"
    assert "cc-datadog" in work.reason
    assert "not Gatehouse's" in work.reason
    assert world.cloudcraft.deleted == []


def test_an_owned_registration_now_naming_another_account_is_not_deleted() -> None:
    world = World()
    world.cloudcraft.registrations += [
        Reg("cc-9", "repointed", ROLE.format("444444444444")),
        Reg("cc-other", "someone's", ROLE.format(LEFT)),
    ]
    world.ledger.record(LEFT, "cc-9")

    work = world.fleet(RecordingClock()).deregister_orphan(LEFT, job="fleet_worker")

    assert work.outcome == "refused"
    assert world.cloudcraft.deleted == []


def test_an_owned_registration_already_gone_deletes_nothing() -> None:
    world = World()
    world.ledger.record(LEFT, "cc-gone")

    work = world.fleet(RecordingClock()).deregister_orphan(LEFT, job="fleet_worker")

    assert work.outcome == "unchanged"
    assert world.cloudcraft.deleted == []


def test_an_in_scope_member_is_never_deregistered_as_an_orphan() -> None:
    world = World()
    world.cloudcraft.registrations.append(Reg("cc-1", "data", ROLE.format(MEMBER.account_id)))
    world.ledger.record(MEMBER.account_id, "cc-1")

    work = world.fleet(RecordingClock()).deregister_orphan(MEMBER.account_id, job="fleet_worker (stale)")

    assert work.outcome == "skipped"
    assert world.cloudcraft.deleted == []
