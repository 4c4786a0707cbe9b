"""Offboarding against in-memory fakes: each mode, what Gatehouse owns and what it must leave alone."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.adapters.cloudcraft.errors import CloudcraftNotFound, CloudcraftServerError
from chalicelib.container import set_services
from chalicelib.core.errors import AwsError
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.events import AccountDeparture
from chalicelib.onboarding.outcome import AccountOutcome
from chalicelib.planning.plan import desired_role
from tests.fakes import FakeDirectory, FakeServices, LambdaContextStub, role_as_wanted

ACCOUNT_ID = "222222222222"
DEPARTURE = AccountDeparture("e-1", "RemoveAccountFromOrganization", ACCOUNT_ID, "SUCCEEDED")
WHY = "the account left the Organization"


def world_with(offboarding: str = "deregister", *members: MemberAccount) -> FakeServices:
    settings = parse_settings({"offboarding": offboarding, "scope_ous": ["Workloads"]})
    return FakeServices(settings, directory=FakeDirectory(*members))


def offboard(world: FakeServices) -> AccountOutcome:
    result: AccountOutcome = world.offboarding(world.settings_document).offboard(
        DEPARTURE, trigger="RemoveAccountFromOrganization event e-1", why=WHY
    )
    return result


def owned_registration(world: FakeServices) -> str:
    mine = world.cloudcraft_client.add(ACCOUNT_ID, name="data")
    world.ledger.records[ACCOUNT_ID] = mine.id
    return mine.id


def gatehouse_role(world: FakeServices, **changes: Any) -> None:
    spec = desired_role(world.settings_document, world.cloudcraft_identity(world.settings_document))
    world.members.put(ACCOUNT_ID, role_as_wanted(spec, **changes))


# --- keep ------------------------------------------------------------------------------------------------


def test_keep_mode_keeps_everything_and_reads_nothing() -> None:
    world = world_with("keep")
    owned_registration(world)
    gatehouse_role(world)

    result = offboard(world)

    assert (result.outcome, result.reason) == ("kept", f"{WHY}; settings.offboarding is 'keep'")
    assert result.event_kind == "account-offboarding"
    assert world.cloudcraft_client.calls == []
    assert world.members.sessions == []
    assert world.ledger.writes == []


# --- deregister ------------------------------------------------------------------------------------------


def test_deregister_mode_removes_gatehouses_registration_and_leaves_the_role() -> None:
    world = world_with("deregister")
    mine = owned_registration(world)
    gatehouse_role(world)

    result = offboard(world)

    assert (result.outcome, result.reason) == ("offboarded", WHY)
    assert result.deregistered == [mine]
    assert result.role_deleted is False
    assert world.cloudcraft_client.accounts == {}
    assert world.ledger.records == {}
    assert world.members.sessions == []
    assert world.members.role(ACCOUNT_ID) is not None


def test_a_registration_gatehouse_does_not_own_is_left_alone_and_named() -> None:
    world = world_with("deregister")
    foreign = world.cloudcraft_client.add(ACCOUNT_ID, name="via Datadog", role_name="DatadogRole")

    result = offboard(world)

    assert result.outcome == "unchanged"
    assert result.reason == (
        f"{WHY}; registration {foreign.id} (via Datadog) is not Gatehouse's: left alone; "
        "no Cloudcraft registration of Gatehouse's to remove"
    )
    assert foreign.id in world.cloudcraft_client.accounts
    assert world.cloudcraft_client.writes == []


def test_only_the_owned_one_of_several_registrations_is_removed() -> None:
    world = world_with("deregister")
    foreign = world.cloudcraft_client.add(ACCOUNT_ID, name="by hand")
    mine = owned_registration(world)

    result = offboard(world)

    assert result.deregistered == [mine]
    assert set(world.cloudcraft_client.accounts) == {foreign.id}
    assert f"registration {foreign.id} (by hand) is not Gatehouse's: left alone" in result.reason


def test_an_ownership_record_naming_another_accounts_registration_deletes_nothing() -> None:
    world = world_with("deregister")
    elsewhere = world.cloudcraft_client.add("333333333333")
    world.ledger.records[ACCOUNT_ID] = elsewhere.id

    result = offboard(world)

    assert result.outcome == "unchanged"
    assert elsewhere.id in world.cloudcraft_client.accounts
    assert world.cloudcraft_client.writes == []


def test_an_account_without_registrations_is_unchanged() -> None:
    world = world_with("deregister")

    result = offboard(world)

    assert (result.outcome, result.reason) == (
        "unchanged",
        f"{WHY}; no Cloudcraft registration of Gatehouse's to remove",
    )


def test_a_registration_deleted_meanwhile_counts_as_removed() -> None:
    world = world_with("deregister")
    mine = owned_registration(world)
    world.cloudcraft_client.script.fail_next("delete", CloudcraftNotFound("404", status=404))

    result = offboard(world)

    assert (result.outcome, result.deregistered) == ("offboarded", [mine])
    assert world.ledger.records == {}


def test_a_failed_deletion_raises_and_keeps_the_ownership_record() -> None:
    world = world_with("deregister")
    mine = owned_registration(world)
    world.cloudcraft_client.script.fail_next("delete", CloudcraftServerError("503", status=503))

    with pytest.raises(CloudcraftServerError):
        offboard(world)

    assert world.ledger.records == {ACCOUNT_ID: mine}


def test_an_unreadable_cloudcraft_list_raises_before_anything_is_written() -> None:
    world = world_with("deregister-and-delete-role")
    owned_registration(world)
    gatehouse_role(world)
    world.cloudcraft_client.script.fail_next("list", CloudcraftServerError("500", status=500))

    with pytest.raises(CloudcraftServerError):
        offboard(world)

    assert world.cloudcraft_client.writes == []
    assert world.ledger.writes == []
    assert world.members.writes == []


# --- deregister-and-delete-role --------------------------------------------------------------------------


def test_delete_role_mode_removes_the_registration_and_gatehouses_role() -> None:
    world = world_with("deregister-and-delete-role")
    mine = owned_registration(world)
    gatehouse_role(world)

    result = offboard(world)

    assert (result.outcome, result.deregistered, result.role_deleted) == ("offboarded", [mine], True)
    assert result.reason == f"{WHY}; role cloudcraft deleted"
    assert world.members.role(ACCOUNT_ID) is None


def test_a_role_gatehouse_does_not_own_is_left_alone() -> None:
    world = world_with("deregister-and-delete-role")
    gatehouse_role(world, tags={})

    result = offboard(world)

    assert result.outcome == "unchanged"
    assert result.reason.endswith("role cloudcraft is not tagged as Gatehouse's: left alone")
    assert world.members.role(ACCOUNT_ID) is not None
    assert world.members.writes == []


def test_a_missing_role_is_noted() -> None:
    world = world_with("deregister-and-delete-role")
    mine = owned_registration(world)

    result = offboard(world)

    assert (result.outcome, result.deregistered, result.role_deleted) == ("offboarded", [mine], False)
    assert result.reason.endswith("no role cloudcraft in the account")


def test_deleting_only_the_role_is_an_offboarding() -> None:
    world = world_with("deregister-and-delete-role")
    gatehouse_role(world)

    result = offboard(world)

    assert (result.outcome, result.deregistered, result.role_deleted) == ("offboarded", [], True)


@pytest.mark.parametrize(
    ("break_it", "why"),
    [
        (lambda w: w.members.refuse.add(ACCOUNT_ID), f"no access role could be assumed in {ACCOUNT_ID}"),
        (lambda w: w.members.script.fail_next(f"delete:{ACCOUNT_ID}", AwsError("DeleteConflict")), "DeleteConflict"),
        (lambda w: w.members.script.fail_next(f"read:{ACCOUNT_ID}", AwsError("iam throttled")), "iam throttled"),
    ],
    ids=["unreachable", "delete-refused", "read-failed"],
)
def test_a_role_that_cannot_be_deleted_is_reported_and_the_registration_still_removed(break_it: Any, why: str) -> None:
    world = world_with("deregister-and-delete-role")
    mine = owned_registration(world)
    gatehouse_role(world)
    break_it(world)

    result = offboard(world)

    assert (result.outcome, result.deregistered, result.role_deleted) == ("offboarded", [mine], False)
    assert result.reason.endswith(f"role cloudcraft not deleted: {why}")


# --- the departure handler -------------------------------------------------------------------------------


def departure_event(name: str = "RemoveAccountFromOrganization", **detail: Any) -> dict[str, Any]:
    return {
        "id": "e-9",
        "source": "aws.organizations",
        "detail": {"eventName": name, "requestParameters": {"accountId": ACCOUNT_ID}, **detail},
    }


def handle(world: FakeServices, event: dict[str, Any]) -> dict[str, Any]:
    set_services(world)  # type: ignore[arg-type]
    return handlers.handle_account_departure(event, LambdaContextStub())


@pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")  # the duplicate only replays
def test_a_departure_is_offboarded_and_notified_once() -> None:
    world = world_with("deregister")
    mine = owned_registration(world)

    first = handle(world, departure_event())
    second = handle(world, departure_event())

    assert first == second
    assert (first["outcome"], first["deregistered"]) == ("offboarded", [mine])
    [note] = world.notifier.sent
    assert note.subject == f"Gatehouse: {ACCOUNT_ID} disconnected from Cloudcraft"
    assert note.attributes == {"event_kind": "account-offboarding", "outcome": "offboarded", "account_id": ACCOUNT_ID}
    assert "Trigger: RemoveAccountFromOrganization event e-9" in note.text


def test_keep_mode_notifies_that_the_connection_was_kept() -> None:
    world = world_with("keep")

    outcome = handle(world, departure_event())

    assert outcome["outcome"] == "kept"
    assert [n.attributes["outcome"] for n in world.notifier.sent] == ["kept"]


def test_a_failed_offboarding_is_one_failed_notification_of_the_offboarding_kind() -> None:
    world = world_with("deregister")
    world.cloudcraft_client.script.fail_next("list", CloudcraftServerError("500", status=500))

    outcome = handle(world, departure_event())

    assert (outcome["outcome"], outcome["event_kind"]) == ("failed", "account-offboarding")
    [note] = world.notifier.sent
    assert note.attributes["event_kind"] == "account-offboarding"


@pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
def test_a_refused_api_call_changes_nothing_and_says_nothing() -> None:
    world = world_with("deregister")
    owned_registration(world)

    outcome = handle(world, departure_event(errorCode="AccessDenied"))

    assert outcome["outcome"] == "ignored"
    assert world.notifier.sent == []
    assert world.cloudcraft_client.calls == []


def test_a_move_within_scope_converges_like_an_arrival_and_deregisters_nothing() -> None:
    inside = MemberAccount(ACCOUNT_ID, "data", ou_path="Workloads/Prod")
    world = world_with("deregister", inside)
    mine = owned_registration(world)

    outcome = handle(world, departure_event("MoveAccount"))

    assert (outcome["event_kind"], outcome["outcome"]) == ("account-onboarding", "onboarded")
    assert (outcome["registration"], outcome["cloudcraft_id"]) == ("updated", mine)
    assert set(world.cloudcraft_client.accounts) == {mine}
    assert len(world.notifier.sent) == 1


def test_a_move_out_of_scope_offboards() -> None:
    outside = MemberAccount(ACCOUNT_ID, "data", ou_path="Sandbox")
    world = world_with("deregister", outside)
    mine = owned_registration(world)

    outcome = handle(world, departure_event("MoveAccount"))

    assert (outcome["outcome"], outcome["deregistered"]) == ("offboarded", [mine])
    assert outcome["reason"] == "the account moved out of the OUs in scope"
