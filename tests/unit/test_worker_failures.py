"""What the fleet worker tells ops about a batch: failed items once, deferrals and twins never."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from chalicelib.adapters.cloudcraft.errors import CloudcraftBadRequest, CloudcraftRateLimited
from chalicelib.core.errors import AccessRoleUnavailableError
from chalicelib.fleet.failures import BatchFailures, batch_failure_notification, describe_item

ITEM = json.dumps({"action": "onboard", "account_id": "222222222222", "first_seen": "2026-11-23T09:00:00+00:00"})


def test_failures_are_reported_on_their_first_delivery_only() -> None:
    failures = BatchFailures()
    failures.add("m-1", ITEM, "1", AccessRoleUnavailableError("no access role could be assumed"))
    failures.add("m-2", ITEM, "3", CloudcraftBadRequest("role not verifiable", status=400))
    failures.add("m-3", "{", None, KeyError("secret-looking detail"))

    reported = failures.to_report()

    assert [item.message_id for item in reported] == ["m-1", "m-3"]
    assert reported[0].item == "onboard 222222222222"
    assert reported[0].reason == "AccessRoleUnavailableError: no access role could be assumed"
    assert reported[1].item == "not a work item"
    assert "secret-looking detail" not in reported[1].reason
    assert reported[1].reason.startswith("KeyError (unexpected")


def test_deferrals_and_twins_at_work_are_not_failures() -> None:
    failures = BatchFailures()
    failures.add("m-1", ITEM, "1", CloudcraftRateLimited("429", retry_after=30))
    failures.add("m-2", ITEM, "1", IdempotencyAlreadyInProgressError("twin"))
    assert failures.to_report() == []


def test_the_batch_message_lists_every_failed_item() -> None:
    failures = BatchFailures()
    for i in range(3):
        failures.add(f"m-{i}", ITEM, "1", AccessRoleUnavailableError(f"refused {i}"))
    note = batch_failure_notification(failures.to_report(), batch_size=5, request_id="req-9")
    assert note.attributes == {"event_kind": "fleet-work", "outcome": "failed"}
    assert note.subject == "Gatehouse: fleet worker FAILED 3 of 5 work items"
    assert [item["message_id"] for item in note.body["failed"]] == ["m-0", "m-1", "m-2"]
    assert all(f"refused {i}" in note.text for i in range(3))


def test_item_descriptions_are_read_defensively() -> None:
    assert describe_item(json.dumps({"kind": "account", "account_id": "2222\u202e22222222"})) == "account 2222?22222222"
    assert describe_item(json.dumps({"action": 5})) == "a work item naming no action"
    assert describe_item("x" * 10_000) == "not a work item"
