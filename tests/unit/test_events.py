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
