"""The planner in the operator's words: actions per account, orphans, summaries and write counts (pure)."""

from __future__ import annotations

from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.planning.plan import CloudcraftIdentity, FleetPlan, MemberView, desired_role, plan_account, plan_orphans
from chalicelib.planning.role import READ_ONLY_ACCESS_ARN, ObservedRole
from tests.fakes import Reg

IDENTITY = CloudcraftIdentity("999999999999", "ext-1")
SETTINGS = parse_settings({"scope_ous": ["Workloads"]})
ACCOUNT = MemberAccount("222222222222", "data", ou_path="Workloads/Dev")
OUTSIDE = MemberAccount("333333333333", "lab", ou_path="Sandbox")


def role(**changes: object) -> ObservedRole:
    spec = desired_role(SETTINGS, IDENTITY)
    values: dict[str, object] = {
        "role_name": "cloudcraft",
        "trust_policy": spec.trust_policy(),
        "max_session_seconds": 3600,
        "managed_policy_arns": (READ_ONLY_ACCESS_ARN,),
        "tags": {"gatehouse:managed": "true"},
    }
    values.update(changes)
    return ObservedRole(**values)  # type: ignore[arg-type]


MINE = Reg("r1", "data (222222222222)", "arn:aws:iam::222222222222:role/cloudcraft")


def test_new_account_creates_role_and_registers() -> None:
    plan = plan_account(
        ACCOUNT, SETTINGS, IDENTITY, MemberView("OrganizationAccountAccessRole"), registrations=[], owned={}
    )
    assert plan.actions() == ["create role", "register"]
    assert plan.changes
    assert plan.cloudcraft_writes == 1


def test_account_in_order_needs_nothing() -> None:
    plan = plan_account(ACCOUNT, SETTINGS, IDENTITY, MemberView("x", role()), registrations=[MINE], owned={})
    assert plan.actions() == []
    assert not plan.changes
    assert plan.cloudcraft_writes == 0


def test_trust_drift_is_named_by_what_drifted() -> None:
    rotated = CloudcraftIdentity("999999999999", "ext-2")
    plan = plan_account(ACCOUNT, SETTINGS, rotated, MemberView("x", role()), registrations=[MINE], owned={})
    assert plan.actions() == ["repair trust (external ID)"]
    other = CloudcraftIdentity("888888888888", "ext-1")
    plan = plan_account(ACCOUNT, SETTINGS, other, MemberView("x", role()), registrations=[MINE], owned={})
    assert plan.actions() == ["repair trust (principal)"]


def test_duplicates_deleted_only_when_gatehouses() -> None:
    copy_of_mine = Reg("r2", "data again", MINE.role_arn, created_at="2027")
    foreign = Reg("r3", "via Datadog", "arn:aws:iam::222222222222:role/DatadogRole")
    plan = plan_account(
        ACCOUNT, SETTINGS, IDENTITY, MemberView("x", role()), registrations=[MINE, copy_of_mine, foreign], owned={}
    )
    assert plan.deletable_duplicates == ("r2",)
    assert plan.foreign_duplicates == ("r3",)
    assert plan.actions() == ["delete duplicate registration"]
    owned = plan_account(
        ACCOUNT,
        SETTINGS,
        IDENTITY,
        MemberView("x", role()),
        registrations=[MINE, foreign],
        owned={"222222222222": "r3"},
    )
    assert owned.deletable_duplicates == ("r3",)


def test_unreachable_and_out_of_scope_accounts_change_nothing() -> None:
    error = plan_account(ACCOUNT, SETTINGS, IDENTITY, MemberView(error="refused"), registrations=[], owned={})
    assert error.actions() == ["error: refused"]
    assert not error.changes
    outside = plan_account(OUTSIDE, SETTINGS, IDENTITY, None, registrations=[], owned={})
    assert outside.actions() == []
    assert not outside.scope.in_scope


def test_orphans_and_the_fleet_summary() -> None:
    gone = Reg("g1", "gone", "arn:aws:iam::777777777777:role/cloudcraft")
    lab = Reg("l1", "lab", "arn:aws:iam::333333333333:role/cloudcraft")
    orphans = plan_orphans([ACCOUNT, OUTSIDE], SETTINGS, [MINE, gone, lab], {"777777777777": "g1"})
    assert [(o.registration_id, o.owned) for o in orphans] == [("g1", True), ("l1", False)]
    assert "not a member" in orphans[0].reason
    assert "outside settings.scope_ous" in orphans[1].reason

    fleet = FleetPlan(
        accounts=[
            plan_account(ACCOUNT, SETTINGS, IDENTITY, MemberView("x"), registrations=[], owned={}),
            plan_account(OUTSIDE, SETTINGS, IDENTITY, None, registrations=[], owned={}),
        ],
        orphans=orphans,
    )
    assert fleet.summary() == {"create role": 1, "register": 1, "out of scope": 1, "deregister orphan": 1}
    assert fleet.cloudcraft_writes() == 2
    assert fleet.changes
    kept = FleetPlan(accounts=[], orphans=orphans, offboarding="keep")
    assert kept.deregistrations == []
    assert not kept.changes
