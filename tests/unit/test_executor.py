"""The Executor against in-memory fakes: what it writes, in which order, and how it waits for a fresh role."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.adapters.cloudcraft.errors import CloudcraftAuthError, CloudcraftBadRequest, CloudcraftServerError
from chalicelib.adapters.cloudcraft.models import CloudcraftAccount
from chalicelib.core.errors import AwsError, RoleNotVerifiableYet
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import Settings, parse_settings
from chalicelib.planning.executor import PROPAGATION_WAIT, Executor
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import AccountPlan, CloudcraftIdentity, MemberView, OrphanPlan, desired_role, plan_account
from tests.fakes import FakeCloudcraft, FakeLedger, FakeMembers, RecordingClock, role_as_wanted, top_of_range

ACCOUNT = MemberAccount("222222222222", "data", ou_path="Workloads/Dev")
IDENTITY = CloudcraftIdentity("999999999999", "ext-1")
SETTINGS = parse_settings({})
NAME = "data (222222222222)"
ROLE_ARN = "arn:aws:iam::222222222222:role/cloudcraft"


class World:
    def __init__(self, settings: Settings = SETTINGS, *registrations: CloudcraftAccount) -> None:
        self.settings = settings
        self.cloudcraft = FakeCloudcraft(*registrations)
        self.ledger = FakeLedger()
        self.members = FakeMembers()
        self.clock = RecordingClock()
        self.jitter_ranges: list[tuple[float, float]] = []

        def jitter(low: float, high: float) -> float:
            self.jitter_ranges.append((low, high))
            return top_of_range(low, high)

        self.executor = Executor(self.cloudcraft, self.ledger, settings, self.clock, jitter)

    def wanted_role(self) -> None:
        self.members.put(ACCOUNT.account_id, role_as_wanted(desired_role(self.settings, IDENTITY, OrganizationIds())))

    def plan(self, account: MemberAccount = ACCOUNT, view: MemberView | None = None) -> AccountPlan:
        if view is None:
            view = MemberView("OrganizationAccountAccessRole", self.members.role(account.account_id))
        return plan_account(
            account,
            self.settings,
            IDENTITY,
            view,
            registrations=list(self.cloudcraft.accounts.values()),
            owned=dict(self.ledger.records),
            organization=OrganizationIds(),
        )

    def execute(self, plan: AccountPlan) -> Any:
        return self.executor.execute(plan, self.members.session(plan.account.account_id).iam())

    def nothing_written(self) -> bool:
        return not self.cloudcraft.writes and not self.ledger.writes and not self.members.writes


# --- nothing is written for a plan that says so ----------------------------------------------------------


def test_a_plan_that_could_not_read_the_account_writes_nothing() -> None:
    world = World()
    plan = world.plan(view=MemberView(error="AccessDenied"))

    result = world.execute(plan)

    assert (result.registration, result.registration_id, result.role_changes) == ("none", None, [])
    assert world.nothing_written()


def test_an_out_of_scope_plan_writes_nothing() -> None:
    world = World()
    suspended = MemberAccount(ACCOUNT.account_id, "old", status="SUSPENDED")
    plan = plan_account(
        suspended, world.settings, IDENTITY, None, registrations=[], owned={}, organization=OrganizationIds()
    )

    result = world.execute(plan)

    assert result.registration == "none"
    assert world.nothing_written()


# --- a new account ---------------------------------------------------------------------------------------


def test_a_new_account_gets_its_role_then_its_registration_then_the_ledger_record() -> None:
    world = World()
    seen_at_create: list[Any] = []
    original_create = world.cloudcraft.create_account

    def create_checking_role(**fields: Any) -> CloudcraftAccount:
        # Cloudcraft verifies the role on POST: it must exist by then, and nothing is owned yet.
        seen_at_create.append((world.members.role(ACCOUNT.account_id), dict(world.ledger.records)))
        return original_create(**fields)

    world.cloudcraft.create_account = create_checking_role  # type: ignore[method-assign]

    result = world.execute(world.plan())

    assert result.role_changes == ["create-role"]
    assert (result.registration, result.registration_id) == ("created", "cc-1")
    role_then, ledger_then = seen_at_create[0]
    assert role_then is not None
    assert role_then.owned
    assert ledger_then == {}
    assert world.cloudcraft.accounts["cc-1"].name == NAME
    assert world.cloudcraft.accounts["cc-1"].role_arn == ROLE_ARN
    assert world.ledger.writes == [("record", ACCOUNT.account_id, "cc-1")]
    assert world.ledger.principal_of_record == "999999999999"  # the account the written trust policy names
    assert world.clock.sleeps == []


def test_a_second_execution_of_a_fresh_plan_changes_nothing() -> None:
    world = World()
    world.execute(world.plan())
    writes_before = (len(world.cloudcraft.writes), len(world.members.writes))

    again = world.plan()
    result = world.execute(again)

    assert again.actions() == []
    assert (result.registration, result.registration_id) == ("unchanged", "cc-1")
    assert (len(world.cloudcraft.writes), len(world.members.writes)) == writes_before


def test_registering_a_fresh_role_waits_for_cloudcraft_to_see_it_with_growing_waits() -> None:
    world = World()
    not_yet = [CloudcraftBadRequest("role cannot be assumed", status=400) for _ in range(4)]
    world.cloudcraft.script.fail_next("create", *not_yet)

    result = world.execute(world.plan())

    assert result.registration == "created"
    assert world.clock.sleeps == [5.0, 10.0, 20.0, 40.0]
    assert world.jitter_ranges == [(2.5, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 40.0)]
    assert [call[0] for call in world.cloudcraft.writes] == ["create"] * 5
    assert world.ledger.records == {ACCOUNT.account_id: result.registration_id}


def test_the_wait_between_register_attempts_is_capped_at_forty_seconds() -> None:
    world = World(parse_settings({"register_attempts": 7}))
    world.cloudcraft.script.fail_next("create", *[CloudcraftBadRequest("not yet", status=400) for _ in range(6)])

    world.execute(world.plan())

    assert world.clock.sleeps == [5.0, 10.0, 20.0, 40.0, 40.0, 40.0]


def test_registering_gives_up_after_register_attempts_and_records_nothing() -> None:
    world = World(parse_settings({"register_attempts": 3}))
    world.cloudcraft.script.fail_next("create", *[CloudcraftBadRequest("not yet", status=400) for _ in range(3)])

    with pytest.raises(CloudcraftBadRequest):
        world.execute(world.plan())

    assert world.clock.sleeps == [5.0, 10.0]
    assert world.cloudcraft.accounts == {}
    assert world.ledger.writes == []
    assert world.members.role(ACCOUNT.account_id) is not None  # the role stays: the next run only registers


def test_a_role_that_was_already_in_order_gets_one_register_attempt() -> None:
    world = World()
    world.wanted_role()
    world.cloudcraft.script.fail_next("create", CloudcraftBadRequest("bad request", status=400))

    with pytest.raises(CloudcraftBadRequest):
        world.execute(world.plan())

    assert world.cloudcraft.writes == [("create", ROLE_ARN)]
    assert world.clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [CloudcraftServerError("502", status=502), CloudcraftAuthError("401", status=401)],
    ids=["server-error", "auth-error"],
)
def test_only_a_400_is_waited_out_when_registering(error: Exception) -> None:
    world = World()
    world.cloudcraft.script.fail_next("create", error)

    with pytest.raises(type(error)):
        world.execute(world.plan())

    assert len(world.cloudcraft.writes) == 1
    assert world.clock.sleeps == []
    assert world.ledger.writes == []


def test_an_iam_failure_stops_before_cloudcraft_is_touched() -> None:
    world = World()
    world.members.script.fail_next(f"apply:{ACCOUNT.account_id}", AwsError("iam:CreateRole AccessDenied"))

    with pytest.raises(AwsError):
        world.execute(world.plan())

    assert world.cloudcraft.writes == []
    assert world.ledger.writes == []


# --- existing registrations ------------------------------------------------------------------------------


def test_an_update_keeps_team_access_gatehouse_does_not_manage() -> None:
    world = World()
    world.wanted_role()
    old = world.cloudcraft.add(ACCOUNT.account_id, name="old name", read_access=("team/a",), write_access=())

    result = world.execute(world.plan())

    assert (result.registration, result.registration_id) == ("updated", old.id)
    updated = world.cloudcraft.accounts[old.id]
    assert (updated.name, updated.read_access, updated.write_access) == (NAME, ("team/a",), ())
    assert world.ledger.records == {ACCOUNT.account_id: old.id}


def test_an_update_sets_the_teams_settings_name() -> None:
    world = World(parse_settings({"read_access_teams": ["t1"], "write_access_teams": ["t2"]}))
    world.wanted_role()
    old = world.cloudcraft.add(ACCOUNT.account_id, name=NAME, read_access=("team/a",))

    world.execute(world.plan())

    updated = world.cloudcraft.accounts[old.id]
    assert (updated.read_access, updated.write_access) == (("team/t1",), ("team/t2",))


def test_a_registration_in_order_is_adopted_without_a_cloudcraft_write() -> None:
    world = World()
    world.wanted_role()
    mine = world.cloudcraft.add(ACCOUNT.account_id, name=NAME)

    result = world.execute(world.plan())

    assert (result.registration, result.registration_id) == ("unchanged", mine.id)
    assert world.cloudcraft.writes == []
    assert world.members.writes == []
    assert world.ledger.writes == [("record", ACCOUNT.account_id, mine.id)]


def test_duplicates_of_gatehouses_own_role_are_deleted_and_foreign_ones_left_alone() -> None:
    world = World()
    world.wanted_role()
    kept = world.cloudcraft.add(ACCOUNT.account_id, name=NAME)
    copy = world.cloudcraft.add(ACCOUNT.account_id, name="copy")
    foreign = world.cloudcraft.add(ACCOUNT.account_id, name="via Datadog", role_name="DatadogRole")

    result = world.execute(world.plan())

    assert result.deleted_duplicates == [copy.id]
    assert set(world.cloudcraft.accounts) == {kept.id, foreign.id}
    assert world.ledger.records == {ACCOUNT.account_id: kept.id}


def test_a_failed_duplicate_deletion_leaves_the_ledger_unwritten() -> None:
    world = World()
    world.wanted_role()
    world.cloudcraft.add(ACCOUNT.account_id, name=NAME)
    world.cloudcraft.add(ACCOUNT.account_id, name="copy")
    world.cloudcraft.script.fail_next("delete", CloudcraftServerError("503", status=503))

    with pytest.raises(CloudcraftServerError):
        world.execute(world.plan())

    assert world.ledger.writes == []


# --- deregistration --------------------------------------------------------------------------------------


def orphan(registration_id: str, aws_account_id: str | None = ACCOUNT.account_id) -> OrphanPlan:
    return OrphanPlan(registration_id, "gone", aws_account_id, True, "left the Organization")


def test_deregistering_deletes_the_registration_and_forgets_it() -> None:
    world = World()
    mine = world.cloudcraft.add(ACCOUNT.account_id)
    world.ledger.records[ACCOUNT.account_id] = mine.id

    world.executor.deregister(orphan(mine.id))

    assert world.cloudcraft.accounts == {}
    assert world.ledger.records == {}


def test_deregistering_a_registration_already_gone_still_forgets_it() -> None:
    world = World()
    world.ledger.records[ACCOUNT.account_id] = "cc-gone"

    world.executor.deregister(orphan("cc-gone"))

    assert world.cloudcraft.writes == [("delete", "cc-gone")]
    assert world.ledger.records == {}


def test_a_failed_deregistration_keeps_the_ownership_record() -> None:
    world = World()
    mine = world.cloudcraft.add(ACCOUNT.account_id)
    world.ledger.records[ACCOUNT.account_id] = mine.id
    world.cloudcraft.script.fail_next("delete", CloudcraftServerError("500", status=500))

    with pytest.raises(CloudcraftServerError):
        world.executor.deregister(orphan(mine.id))

    assert world.ledger.records == {ACCOUNT.account_id: mine.id}


def test_deregistering_an_orphan_without_an_aws_account_touches_no_record() -> None:
    world = World()
    world.ledger.records["333333333333"] = "cc-other"

    world.executor.deregister(orphan("cc-odd", aws_account_id=None))

    assert world.ledger.writes == []
    assert world.cloudcraft.writes == [("delete", "cc-odd")]


def test_an_executor_that_hands_waits_back_registers_a_role_written_just_now_on_the_next_run() -> None:
    world = World()
    world.executor = Executor(world.cloudcraft, world.ledger, SETTINGS, world.clock, top_of_range, hand_back_waits=True)

    with pytest.raises(RoleNotVerifiableYet) as caught:
        world.execute(world.plan())

    assert caught.value.retry_after == PROPAGATION_WAIT
    assert world.members.role(ACCOUNT.account_id) is not None  # the role is written...
    assert world.cloudcraft.writes == []  # ...and not POSTed while Cloudcraft cannot verify it
    assert world.clock.sleeps == []

    result = world.execute(world.plan())  # the next delivery: the role is in place

    assert (result.role_changes, result.registration) == ([], "created")
    assert [call[0] for call in world.cloudcraft.writes] == ["create"]  # one POST


def test_an_executor_that_hands_waits_back_does_not_retry_a_400_in_place() -> None:
    world = World()
    world.wanted_role()
    world.executor = Executor(world.cloudcraft, world.ledger, SETTINGS, world.clock, top_of_range, hand_back_waits=True)
    world.cloudcraft.script.fail_next("create", CloudcraftBadRequest("400 unable to verify", status=400))

    with pytest.raises(CloudcraftBadRequest):
        world.execute(world.plan())

    assert world.clock.sleeps == []  # the item comes back after its visibility timeout instead
    assert world.ledger.writes == []
