"""Parsing account events: the real shapes, their quirks, and clear errors for everything else."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from chalicelib.core.errors import EventParseError
from chalicelib.events import parse_arrival, parse_departure, parse_timestamp
from gatehouse.sandbox import samples
from tests.conftest import load_event


def test_create_account_result_redacted_name_and_non_iso_timestamps() -> None:
    arrival = parse_arrival(load_event("create-account-result"))

    assert arrival.kind == "CreateAccountResult"
    assert arrival.account_id == "222222222222"
    assert arrival.account_name is None  # "****" means: look it up in Organizations
    assert arrival.succeeded
    assert arrival.completed_at == datetime(2026, 11, 20, 14, 2, 9, tzinfo=UTC)
    assert arrival.event_id == "5c0f3d1a-8d3b-4e5f-9a7b-2f4c6e8a1b3d"


def test_control_tower_event_carries_name_and_ou() -> None:
    arrival = parse_arrival(load_event("control-tower-create-managed-account"))

    assert (arrival.kind, arrival.account_id, arrival.account_name) == (
        "CreateManagedAccount",
        "333333333333",
        "payments-prod",
    )
    assert arrival.ou_id == "ou-ab12-cd34ef56"
    assert arrival.completed_at == datetime(2026, 11, 21, 9, 15, 39, tzinfo=UTC)


def test_update_managed_account_is_an_arrival() -> None:
    arrival = parse_arrival(samples.managed_account("444444444444", "payments-dev", update=True))
    assert (arrival.kind, arrival.account_id) == ("UpdateManagedAccount", "444444444444")


def test_failed_creation_keeps_reason_and_has_no_account() -> None:
    arrival = parse_arrival(samples.create_account_result(None, state="FAILED", failure="EMAIL_ALREADY_EXISTS"))
    assert not arrival.succeeded
    assert arrival.account_id is None
    assert arrival.failure_reason == "EMAIL_ALREADY_EXISTS"


def test_unknown_extra_fields_are_tolerated() -> None:
    event = load_event("create-account-result")
    event["detail"]["somethingNew"] = {"nested": [1, 2]}
    event["detail"]["serviceEventDetails"]["createAccountStatus"]["extra"] = "x"
    assert parse_arrival(event).account_id == "222222222222"


def test_account_joined_found_wherever_the_id_sits() -> None:
    event = samples.create_account_result("222222222222")
    event["detail"]["eventName"] = "AccountJoinedOrganization"
    event["detail"]["serviceEventDetails"] = {"accountJoinedOrganizationDetails": {"accountId": "666666666666"}}
    arrival = parse_arrival(event)
    assert (arrival.kind, arrival.account_id) == ("AccountJoinedOrganization", "666666666666")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("detail"), "no 'detail'"),
        (lambda e: e["detail"].pop("eventName"), "eventName"),
        (lambda e: e["detail"].update(eventName="DeleteOrganization"), "not an account arrival"),
        (lambda e: e["detail"]["serviceEventDetails"].pop("createAccountStatus"), "createAccountStatus"),
        (lambda e: e["detail"]["serviceEventDetails"]["createAccountStatus"].update(accountId="12"), "12-digit"),
        (lambda e: e["detail"]["serviceEventDetails"]["createAccountStatus"].update(state="WEIRD"), "state"),
    ],
)
def test_malformed_events_raise_a_named_error(mutate: object, message: str) -> None:
    event = copy.deepcopy(load_event("create-account-result"))
    mutate(event)  # type: ignore[operator]
    with pytest.raises(EventParseError, match=message):
        parse_arrival(event)


def test_non_object_event_is_rejected() -> None:
    with pytest.raises(EventParseError, match="JSON object"):
        parse_arrival(["not", "an", "event"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sep 16, 2020 9:20:50 PM", datetime(2020, 9, 16, 21, 20, 50, tzinfo=UTC)),
        ("2019-11-15T11:45:18+0000", datetime(2019, 11, 15, 11, 45, 18, tzinfo=UTC)),
        ("2026-11-20T14:02:10Z", datetime(2026, 11, 20, 14, 2, 10, tzinfo=UTC)),
        (1_600_000_000_000, datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)),
        ("yesterday-ish", None),
        (None, None),
    ],
)
def test_timestamps_in_every_format_aws_sends(text: object, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_departure_events() -> None:
    event = samples.create_account_result("222222222222")
    event["detail"]["eventName"] = "CloseAccountResult"
    event["detail"]["serviceEventDetails"] = {"closeAccountStatus": {"accountId": "222222222222", "state": "SUCCEEDED"}}
    assert parse_departure(event).account_id == "222222222222"

    move = samples.create_account_result("222222222222")
    move["detail"].update(
        eventName="MoveAccount",
        requestParameters={"accountId": "333333333333", "sourceParentId": "ou-a", "destinationParentId": "ou-b"},
    )
    parsed = parse_departure(move)
    assert (parsed.account_id, parsed.source_parent_id, parsed.destination_parent_id) == (
        "333333333333",
        "ou-a",
        "ou-b",
    )


# --- whose account: the member's, from where AWS documents it, never the caller's -----------------------------
MANAGEMENT = samples.MANAGEMENT  # what userIdentity.accountId and recipientAccountId say in these events


def membership_event(name: str, **detail: object) -> dict[str, object]:
    event = samples.create_account_result("222222222222")
    event["detail"]["eventName"] = name
    event["detail"].pop("serviceEventDetails")
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize(
    ("name", "parse"),
    [("AccountJoinedOrganization", parse_arrival), ("AccountDepartedOrganization", parse_departure)],
)
def test_membership_events_never_take_the_callers_account(name: str, parse: object) -> None:
    # The member's ID where the parser does not look; the caller (the management account) where it used to.
    event = membership_event(
        name, serviceEventDetails={"joinedMethod": "Invited"}, additionalEventData={"accountId": "666666666666"}
    )
    assert event["detail"]["userIdentity"]["accountId"] == MANAGEMENT  # type: ignore[index]

    with pytest.raises(EventParseError, match=r"names no member account.*caller's identity is never used"):
        parse(event)  # type: ignore[operator]


@pytest.mark.parametrize(
    "detail",
    [
        {"serviceEventDetails": {"accountId": "666666666666", "departedMethod": "Left"}},
        {"serviceEventDetails": {"accountDepartedOrganizationDetails": {"accountId": "666666666666"}}},
        {"requestParameters": {"accountId": "666666666666"}},
    ],
)
def test_account_departed_names_its_member_in_a_documented_place(detail: dict[str, object]) -> None:
    departure = parse_departure(membership_event("AccountDepartedOrganization", **detail))
    assert departure.account_id == "666666666666"


def test_two_different_accounts_in_one_event_are_not_guessed_between() -> None:
    event = membership_event(
        "AccountJoinedOrganization",
        serviceEventDetails={"accountId": "666666666666"},
        requestParameters={"accountId": "777777777777"},
    )
    with pytest.raises(EventParseError, match="more than one account"):
        parse_arrival(event)


def test_api_call_departures_read_only_the_request() -> None:
    event = samples.organizations_api_call("RemoveAccountFromOrganization", {})
    event["detail"]["responseElements"] = {"accountId": "666666666666"}
    with pytest.raises(EventParseError, match=r"requestParameters\.accountId"):
        parse_departure(event)


@pytest.mark.parametrize("digits", ["٢٢٢٢٢٢٢٢٢٢٢٢", "\uff12" * 12, "222222222222\n", "22222222222"])
def test_account_ids_in_other_digits_are_malformed(digits: str) -> None:
    with pytest.raises(EventParseError, match="not a 12-digit AWS account ID"):
        parse_arrival(samples.create_account_result(digits))
    with pytest.raises(EventParseError, match="not a 12-digit AWS account ID"):
        parse_departure(samples.move_account(digits, "ou-a", "ou-b"))


# --- bounded: a 10,000-deep event is malformed, not a RecursionError -------------------------------------------
def deep(depth: int = 10_000) -> dict[str, object]:
    root: dict[str, object] = {}
    current = root
    for _ in range(depth):
        current["x"] = {}
        current = current["x"]  # type: ignore[assignment]
    return root


@pytest.mark.parametrize("where", ["detail", "top"])
def test_deeply_nested_events_are_malformed(where: str) -> None:
    from chalicelib.adapters.proton import parse_status_change

    arrival = samples.create_account_result("222222222222")
    departure = samples.move_account("222222222222", "ou-a", "ou-b")
    proton = samples.proton_connection_change("00000001-aaaa-4bbb-8ccc-dddddddddddd")
    for event in (arrival, departure, proton):
        if where == "detail":
            event["detail"]["extra"] = deep()
        else:
            event["extra"] = deep()
    for parse, event in ((parse_arrival, arrival), (parse_departure, departure), (parse_status_change, proton)):
        with pytest.raises(EventParseError, match="nested more than 32 levels deep"):
            parse(event)
