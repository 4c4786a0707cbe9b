"""The fleet worker against in-memory fakes: one SQS message, one account or orphan, at most once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited, CloudcraftServerError
from chalicelib.adapters.workqueue import registration_to_api, work_messages
from chalicelib.container import set_services
from chalicelib.core.errors import AccessRoleUnavailableError
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.fleet.worker import FleetWorker
from chalicelib.planning.plan import desired_role
from tests.fakes import FakeDirectory, FakeServices, LambdaContextStub, role_as_wanted

NEW = MemberAccount("222222222222", "new", ou_path="Workloads/Dev")
DRIFTED = MemberAccount("333333333333", "drifted", ou_path="Workloads/Prod")
GONE = "777777777777"
RUN = "run-1"


def world_with(*members: MemberAccount) -> FakeServices:
    settings = parse_settings({"scope_ous": ["Workloads"]})
    return FakeServices(settings, directory=FakeDirectory(*(members or (NEW, DRIFTED))))


def worker(world: FakeServices) -> FleetWorker:
    return FleetWorker(world, world.settings_document)  # type: ignore[arg-type]


def account_message(account: MemberAccount, registrations: list[Any] | None = None, run_id: str = RUN) -> str:
    body = {"kind": "account", "run_id": run_id, "account_id": account.account_id}
    body["registrations"] = [registration_to_api(r) for r in registrations or []]  # type: ignore[assignment]
    return json.dumps(body)


def deregister_message(registration_id: str, aws_account_id: str | None = GONE) -> str:
    body = {
        "kind": "deregister",
        "run_id": RUN,
        "registration_id": registration_id,
        "name": "gone",
        "aws_account_id": aws_account_id,
        "reason": "the AWS account is not a member of the Organization",
    }
    return json.dumps(body)


def drift(world: FakeServices, account: MemberAccount, **changes: Any) -> str:
    spec = desired_role(world.settings_document, world.cloudcraft_identity(world.settings_document))
    world.members.put(account.account_id, role_as_wanted(spec, **changes))
    registration = world.cloudcraft_client.add(account.account_id, name=f"{account.name} ({account.account_id})")
    world.ledger.records[account.account_id] = registration.id
    return registration.id


def test_the_worker_hands_rate_limits_back_to_the_queue_instead_of_waiting() -> None:
    world = world_with()

    worker(world)

    assert world.hand_back_rate_limits is True


# --- malformed messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", "{}", '{"run_id": "r"}', "null"],
    ids=["not-json", "a-list", "empty", "no-kind", "null"],
)
def test_a_message_that_is_not_a_work_item_fails_with_its_id(body: str) -> None:
    world = world_with()

    with pytest.raises(ValueError, match="message m-1 is not a Gatehouse work item"):
        worker(world).process(body, "receipt-1", "m-1")

    assert world.directory.described == []


def test_a_message_of_an_unknown_kind_fails_by_name() -> None:
    with pytest.raises(ValueError, match="message m-1 has an unknown kind 'reboot'"):
        worker(world_with()).process('{"kind": "reboot"}', "receipt-1", "m-1")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"kind": "account", "run_id": RUN}, "account_id is None, not a 12-digit AWS account ID"),
        ({"kind": "account", "account_id": "../etc"}, "account_id is '../etc', not a 12-digit AWS account ID"),
        (
            {"kind": "account", "account_id": NEW.account_id, "registrations": "cc-1"},
            "registrations must be a list of Cloudcraft account objects",
        ),
        (
            {"kind": "account", "account_id": NEW.account_id, "registrations": ["cc-1"]},
            "registrations must be a list of Cloudcraft account objects",
        ),
        ({"kind": "deregister", "run_id": RUN, "aws_account_id": GONE}, "registration_id is missing"),
    ],
    ids=["no-account-id", "bad-account-id", "registrations-not-a-list", "registration-not-an-object", "no-reg-id"],
)
def test_a_work_item_missing_its_fields_fails_by_name_and_changes_nothing(body: dict[str, Any], problem: str) -> None:
    world = world_with()

    with pytest.raises(ValueError, match=f"message m-1 is not a Gatehouse work item: {problem}"):
        worker(world).process(json.dumps(body), "receipt-1", "m-1")

    assert world.members.sessions == []
    assert world.cloudcraft_client.writes == []
    assert world.members.writes == []


# --- account messages ------------------------------------------------------------------------------------


def test_an_account_message_brings_the_account_in_line() -> None:
    world = world_with()

    done = worker(world).process(account_message(NEW), "receipt-1", "m-1")

    assert done["account_id"] == NEW.account_id
    assert (done["outcome"], done["actions"]) == ("applied", ["create role", "register"])
    assert (done["registration"], done["registration_id"]) == ("created", "cc-1")
    assert world.members.role(NEW.account_id) is not None
    assert world.ledger.records == {NEW.account_id: "cc-1"}
    assert world.cloudcraft_client.calls == [("create", f"arn:aws:iam::{NEW.account_id}:role/cloudcraft")]


def test_an_account_message_uses_the_registrations_it_carries_without_listing_cloudcraft() -> None:
    world = world_with()
    mine = drift(world, DRIFTED, max_session_seconds=43200)

    done = worker(world).process(account_message(DRIFTED, [world.cloudcraft_client.accounts[mine]]), "r", "m-1")

    assert (done["actions"], done["registration"]) == (["repair policy"], "unchanged")
    assert ("list",) not in world.cloudcraft_client.calls
    assert world.cloudcraft_client.writes == []


def test_a_duplicate_delivery_applies_once_and_returns_the_same_answer() -> None:
    world = world_with()
    the_worker = worker(world)

    first = the_worker.process(account_message(NEW), "receipt-1", "m-1")
    second = the_worker.process(account_message(NEW), "receipt-2", "m-2")

    assert second == first
    assert [call[0] for call in world.cloudcraft_client.writes] == ["create"]
    assert world.once.runs == [f"work#{RUN}#{NEW.account_id}"]


def test_a_message_without_a_run_id_is_keyed_by_its_message_id() -> None:
    world = world_with()
    body = json.dumps({"kind": "account", "account_id": NEW.account_id, "registrations": []})

    worker(world).process(body, "receipt-1", "m-1")

    assert world.once.runs == [f"work#m-1#{NEW.account_id}"]


def test_an_account_registered_since_the_plan_is_planned_on_fresh_data_and_not_registered_twice() -> None:
    world = world_with()
    message = account_message(NEW)  # planned when NEW had no registration
    worker(world).process(account_message(NEW, run_id="onboarding"), "r", "m-0")  # e.g. an arrival event

    done = worker(world).process(message, "receipt-1", "m-1")

    assert done["registration"] == "unchanged"
    assert [call[0] for call in world.cloudcraft_client.writes] == ["create"]
    assert ("list",) in world.cloudcraft_client.calls


@pytest.mark.parametrize(
    "account",
    [None, MemberAccount(NEW.account_id, "new", status="SUSPENDED"), MemberAccount(NEW.account_id, "new")],
    ids=["left-the-organization", "suspended", "moved-out-of-scope"],
)
def test_an_account_no_longer_in_scope_is_skipped_without_a_write(account: MemberAccount | None) -> None:
    world = world_with(*([account] if account else [DRIFTED]))

    done = worker(world).process(account_message(NEW), "receipt-1", "m-1")

    assert done == {"account_id": NEW.account_id, "outcome": "skipped", "reason": "no longer an in-scope member"}
    assert world.members.sessions == []
    assert world.cloudcraft_client.calls == []


def test_an_unreachable_account_fails_the_message_and_the_retry_runs_again() -> None:
    world = world_with()
    world.members.refuse.add(NEW.account_id)
    the_worker = worker(world)

    with pytest.raises(AccessRoleUnavailableError):
        the_worker.process(account_message(NEW), "receipt-1", "m-1")
    assert world.once.done == {}
    assert world.cloudcraft_client.writes == []

    world.members.refuse.clear()
    assert the_worker.process(account_message(NEW), "receipt-2", "m-1")["registration"] == "created"


def test_a_rate_limited_message_comes_back_after_retry_after_and_is_not_recorded() -> None:
    world = world_with()
    world.cloudcraft_client.script.fail_next("create", CloudcraftRateLimited("429", retry_after=42.0))
    the_worker = worker(world)

    with pytest.raises(CloudcraftRateLimited):
        the_worker.process(account_message(NEW), "receipt-1", "m-1")

    assert world.work_queue.deferred == [("receipt-1", 42.0)]
    assert world.once.done == {}
    assert world.clock.sleeps == []
    assert the_worker.process(account_message(NEW), "receipt-2", "m-1")["registration"] == "created"


def test_another_cloudcraft_failure_fails_the_message_without_deferring_it() -> None:
    world = world_with()
    world.cloudcraft_client.script.fail_next("create", CloudcraftServerError("502", status=502))

    with pytest.raises(CloudcraftServerError):
        worker(world).process(account_message(NEW), "receipt-1", "m-1")

    assert world.work_queue.deferred == []


# --- deregister messages ---------------------------------------------------------------------------------


def test_an_owned_orphan_is_deregistered_and_forgotten() -> None:
    world = world_with()
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id

    done = worker(world).process(deregister_message(gone.id), "receipt-1", "m-1")

    assert done == {"registration_id": gone.id, "outcome": "deregistered"}
    assert world.cloudcraft_client.accounts == {}
    assert world.ledger.records == {}


@pytest.mark.parametrize(
    ("owned", "aws_account_id"),
    [(None, GONE), ("cc-other", GONE), ("cc-gone", None)],
    ids=["never-owned", "owned-another-one-now", "no-aws-account"],
)
def test_ownership_is_checked_again_before_deleting(owned: str | None, aws_account_id: str | None) -> None:
    world = world_with()
    world.cloudcraft_client.add(GONE, registration_id="cc-gone")
    if owned:
        world.ledger.records[GONE] = owned

    done = worker(world).process(deregister_message("cc-gone", aws_account_id), "receipt-1", "m-1")

    assert done == {"registration_id": "cc-gone", "outcome": "skipped", "reason": "not owned by Gatehouse"}
    assert world.cloudcraft_client.writes == []
    assert world.ledger.writes == []


def test_a_rate_limited_deregistration_is_deferred() -> None:
    world = world_with()
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    world.cloudcraft_client.script.fail_next("delete", CloudcraftRateLimited("429", retry_after=7.0))

    with pytest.raises(CloudcraftRateLimited):
        worker(world).process(deregister_message(gone.id), "receipt-9", "m-9")

    assert world.work_queue.deferred == [("receipt-9", 7.0)]
    assert world.ledger.records == {GONE: gone.id}


# --- a batch: partial failures ---------------------------------------------------------------------------


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"receipt-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111111111111:gatehouse-work",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies, start=1)
        ]
    }


@pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
def test_a_batch_reports_only_the_failed_items_and_a_redelivery_retries_only_those() -> None:
    world = world_with()
    world.members.refuse.add(DRIFTED.account_id)
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    set_services(world)  # type: ignore[arg-type]
    event = sqs_event(account_message(NEW), account_message(DRIFTED), deregister_message(gone.id), "garbage")

    response = handlers.handle_work(event, LambdaContextStub())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-4"}]}
    assert world.ledger.records == {NEW.account_id: "cc-2"}
    writes_after_first = list(world.cloudcraft_client.writes)

    world.members.refuse.clear()
    again = handlers.handle_work(sqs_event(account_message(NEW), account_message(DRIFTED)), LambdaContextStub())

    assert again == {"batchItemFailures": []}
    assert world.cloudcraft_client.writes[: len(writes_after_first)] == writes_after_first
    assert [call[0] for call in world.cloudcraft_client.writes[len(writes_after_first) :]] == ["create"]
    assert world.ledger.records == {NEW.account_id: "cc-2", DRIFTED.account_id: "cc-3"}


def test_every_message_of_a_reconciliation_plan_is_applied_by_the_worker() -> None:
    world = world_with(NEW, DRIFTED)
    drift(world, DRIFTED, tags={})
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    plan = world.fleet(world.settings_document).plan()
    the_worker = worker(world)

    for n, message in enumerate(work_messages(plan, RUN)):
        the_worker.process(json.dumps(message), f"receipt-{n}", f"m-{n}")

    assert not world.fleet(world.settings_document).plan().changes
    assert GONE not in world.ledger.records


def test_an_orphan_whose_account_came_back_into_scope_is_not_deregistered() -> None:
    # Planned as an orphan; before the message was processed, the account moved back into scope and was onboarded.
    world = world_with(NEW, MemberAccount(GONE, "back", ou_path="Workloads/Dev"))
    mine = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = mine.id

    done = worker(world).process(deregister_message(mine.id), "receipt-1", "m-1")

    assert done == {"registration_id": mine.id, "outcome": "skipped", "reason": "the account is in scope again"}
    assert mine.id in world.cloudcraft_client.accounts
    assert world.ledger.records == {GONE: mine.id}


def test_an_orphan_still_out_of_scope_is_deregistered() -> None:
    world = world_with(NEW, MemberAccount(GONE, "lab", ou_path="Sandbox"))
    mine = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = mine.id

    done = worker(world).process(deregister_message(mine.id), "receipt-1", "m-1")

    assert done["outcome"] == "deregistered"
    assert world.cloudcraft_client.accounts == {}


def test_offboarding_switched_to_keep_since_the_plan_deregisters_nothing() -> None:
    world = FakeServices(parse_settings({"offboarding": "keep"}), directory=FakeDirectory(NEW))
    mine = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = mine.id

    done = worker(world).process(deregister_message(mine.id), "receipt-1", "m-1")

    assert done == {"registration_id": mine.id, "outcome": "skipped", "reason": "settings.offboarding is 'keep'"}
    assert world.cloudcraft_client.writes == []
    assert world.ledger.writes == []
