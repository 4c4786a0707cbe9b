"""The planner in the operator's words: actions per account, orphans, summaries and write counts (pure)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import pytest

from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.planning import plan as planning
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import CloudcraftIdentity, FleetPlan, MemberView, desired_role, plan_orphans
from chalicelib.planning.role import PERMISSIONS_BOUNDARY_ARN, READ_ONLY_ACCESS_ARN, ObservedRole
from tests.fakes import Reg

IDENTITY = CloudcraftIdentity("999999999999", "ext-1")
SETTINGS = parse_settings({"scope_ous": ["Workloads"]})
ACCOUNT = MemberAccount("222222222222", "data", ou_path="Workloads/Dev")
OUTSIDE = MemberAccount("333333333333", "lab", ou_path="Sandbox")
ORGANIZATION = OrganizationIds("123456789012", frozenset({"222222222222", "333333333333"}))
plan_account = partial(planning.plan_account, organization=ORGANIZATION)


def role(identity: CloudcraftIdentity = IDENTITY, **changes: object) -> ObservedRole:
    spec = desired_role(SETTINGS, identity, ORGANIZATION)
    values: dict[str, object] = {
        "role_name": "cloudcraft",
        "trust_policy": spec.trust_policy(),
        "max_session_seconds": 3600,
        "managed_policy_arns": (READ_ONLY_ACCESS_ARN,),
        "tags": {"gatehouse:managed": "true"},
        "permissions_boundary": PERMISSIONS_BOUNDARY_ARN,
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
    stranger = role(trust_policy={"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}}]})
    plan = plan_account(ACCOUNT, SETTINGS, IDENTITY, MemberView("x", stranger), registrations=[MINE], owned={})
    assert plan.actions() == ["repair trust (principal)", "repair trust (external ID)"]  # `*` narrowed: no hold


def test_a_new_cloudcraft_account_is_held_for_existing_roles_until_the_settings_pin_it() -> None:
    moved = CloudcraftIdentity("888888888888", "ext-1")
    plan = plan_account(ACCOUNT, SETTINGS, moved, MemberView("x", role()), registrations=[MINE], owned={})
    assert plan.actions() == ["principal change held"]
    assert "trusts 999999999999 but Cloudcraft now answers 888888888888" in plan.held
    assert "set cloudcraft_aws_account_id to 888888888888" in plan.held
    assert not plan.changes
    assert plan.cloudcraft_writes == 0
    assert FleetPlan(accounts=[plan]).held == {"222222222222": plan.held}
    assert FleetPlan(accounts=[plan]).summary() == {"principal change held": 1}

    pinned = parse_settings({"scope_ous": ["Workloads"], "cloudcraft_aws_account_id": "888888888888"})
    plan = plan_account(ACCOUNT, pinned, moved, MemberView("x", role()), registrations=[MINE], owned={})
    assert plan.actions() == ["repair trust (principal)"]

    # A new role may take a validated answer when no role trusts another account yet...
    fresh = plan_account(ACCOUNT, SETTINGS, moved, MemberView("x"), registrations=[], owned={})
    assert fresh.actions() == ["create role", "register"]
    # ...but not once Gatehouse's roles trust one: the move waits for the pin on new roles too.
    recorded = replace(moved, recorded_account_id="999999999999")
    fresh = plan_account(ACCOUNT, SETTINGS, recorded, MemberView("x"), registrations=[], owned={})
    assert "not 999999999999, the account every role Gatehouse wrote so far trusts" in fresh.refused
    assert not fresh.changes


@pytest.mark.parametrize(
    ("identity", "settings", "why"),
    [
        (CloudcraftIdentity("123456789012", "ext-1"), {}, "management account"),
        (CloudcraftIdentity("333333333333", "ext-1"), {}, "an account of this Organization"),
        (CloudcraftIdentity("222222222222", "ext-1"), {}, "an account of this Organization"),  # the account itself
        (CloudcraftIdentity("*", "ext-1"), {}, "not a 12-digit AWS account ID"),
        (CloudcraftIdentity("999999999999", "   "), {}, "not a usable external ID"),
        (CloudcraftIdentity("999999999999", "ext-1"), {"cloudcraft_aws_account_id": "968898580625"}, "pinned"),
        (
            CloudcraftIdentity("999999999999", "ext-1", {"Statement": [{"Effect": "Allow", "Action": "*"}]}),
            {"permission_mode": "custom"},
            "custom policy document is refused",
        ),
        (CloudcraftIdentity("999999999999", "ext-1"), {"permission_mode": "minimal"}, "Cloudcraft sent none"),
    ],
)
def test_a_refused_answer_plans_nothing_for_the_account(
    identity: CloudcraftIdentity, settings: dict[str, Any], why: str
) -> None:
    plan = plan_account(
        ACCOUNT,
        parse_settings({"scope_ous": ["Workloads"], **settings}),
        identity,
        MemberView("x", role()),
        registrations=[],
        owned={},
    )
    assert why in plan.refused
    assert plan.actions() == ["refused"]
    assert (plan.changes, plan.spec, plan.registration, plan.cloudcraft_writes) == (False, None, None, 0)
    assert FleetPlan(accounts=[plan]).summary() == {"refused": 1}


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


def test_planning_against_the_index_is_planning_against_the_list() -> None:
    from chalicelib.planning.registration import RegistrationIndex

    accounts = [MemberAccount(f"2222222222{n:02d}", f"a{n}", ou_path="Workloads/Dev") for n in range(12)]
    registrations = [
        Reg(f"r{n}", f"a{n % 8} ({accounts[n % 8].account_id})", f"arn:aws:iam::{accounts[n % 8].account_id}:role/x")
        for n in range(20)  # some accounts registered twice or three times, some not at all
    ] + [Reg("foreign", "elsewhere", "arn:aws:iam::999000000001:role/cloudcraft")]
    index = RegistrationIndex(registrations)
    organization = ORGANIZATION.including(a.account_id for a in accounts)

    for account in accounts:
        view = MemberView("OrganizationAccountAccessRole")
        by_list = planning.plan_account(
            account, SETTINGS, IDENTITY, view, registrations=registrations, owned={}, organization=organization
        )
        by_index = planning.plan_account(
            account, SETTINGS, IDENTITY, view, registrations=index, owned={}, organization=organization
        )
        assert by_index == by_list
        assert by_index.registration == by_list.registration
