"""The fleet worker against in-memory fakes: one SQS message, one account or orphan, at most once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited, CloudcraftServerError
from chalicelib.adapters.workqueue import work_messages
from chalicelib.container import set_services
from chalicelib.core.errors import AccessRoleUnavailableError, RoleNotVerifiableYet
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.fleet.worker import LIST_REUSE_SECONDS, FleetWorker
from chalicelib.planning.executor import PROPAGATION_WAIT
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import desired_role
from tests.fakes import FakeDirectory, FakeServices, LambdaContextStub, role_as_wanted

NEW = MemberAccount("222222222222", "new", ou_path="Workloads/Dev")
DRIFTED = MemberAccount("333333333333", "drifted", ou_path="Workloads/Prod")
OTHER = MemberAccount("444444444444", "other", ou_path="Workloads/Prod")
GONE = "777777777777"
RUN = "run-1"


def world_with(*members: MemberAccount) -> FakeServices:
    settings = parse_settings({"scope_ous": ["Workloads"]})
    return FakeServices(settings, directory=FakeDirectory(*(members or (NEW, DRIFTED))))


def worker(world: FakeServices) -> FleetWorker:
    return FleetWorker(world, world.settings_document)  # type: ignore[arg-type]


def account_message(account: MemberAccount, run_id: str = RUN) -> str:
    """An apply item: it names the account only; the worker reads the registrations itself."""
    return json.dumps({"action": "apply", "account_id": account.account_id, "run_id": run_id})


def deregister_message(aws_account_id: str | None = GONE) -> str:
    """A deregister item: it names the account only; the worker finds the registration it owns."""
    return json.dumps({"action": "deregister", "account_id": aws_account_id, "run_id": RUN})


def with_role(world: FakeServices, *accounts: MemberAccount) -> None:
    """The Cloudcraft role already in place (written by an earlier delivery): the item only registers it."""
    spec = desired_role(world.settings_document, world.cloudcraft_identity(world.settings_document), OrganizationIds())
    for account in accounts:
        world.members.put(account.account_id, role_as_wanted(spec))


def drift(world: FakeServices, account: MemberAccount, **changes: Any) -> str:
    spec = desired_role(world.settings_document, world.cloudcraft_identity(world.settings_document), OrganizationIds())
    world.members.put(account.account_id, role_as_wanted(spec, **changes))
    registration = world.cloudcraft_client.add(account.account_id, name=f"{account.name} ({account.account_id})")
    world.ledger.records[account.account_id] = registration.id
    return registration.id


def test_the_worker_hands_rate_limits_back_to_the_queue_instead_of_waiting() -> None:
    world = world_with()

    worker(world)

    assert world.hand_back_rate_limits is True


# --- account messages ------------------------------------------------------------------------------------


def test_a_new_account_gets_its_role_then_its_registration_on_the_next_delivery_without_sleeping() -> None:
    world = world_with()

    with pytest.raises(RoleNotVerifiableYet):
        worker(world).process(account_message(NEW), "receipt-1", "m-1")

    # The role is written; its registration waits for IAM to propagate it, in the queue, not in Lambda.
    assert world.members.role(NEW.account_id) is not None
    assert world.work_queue.deferred == [("receipt-1", PROPAGATION_WAIT)]
    assert world.clock.sleeps == []
    assert world.cloudcraft_client.writes == []
    assert world.once.done == {}  # not done: the next delivery carries on

    done = worker(world).process(account_message(NEW), "receipt-2", "m-1")  # the next batch

    assert done["account_id"] == NEW.account_id
    assert (done["outcome"], done["actions"]) == ("applied", ["register"])
    assert (done["registration"], done["registration_id"]) == ("created", "cc-1")
    assert world.ledger.records == {NEW.account_id: "cc-1"}
    # No list while the role was missing (nothing could be registered then); listed live when registering (the
    # message carries no registrations); one POST, which Cloudcraft could verify.
    create = ("create", f"arn:aws:iam::{NEW.account_id}:role/cloudcraft")
    assert world.cloudcraft_client.calls == [("list",), create]


def test_the_container_reuses_its_cloudcraft_list_for_two_minutes() -> None:
    world = world_with(NEW, DRIFTED, OTHER)
    with_role(world, NEW, DRIFTED, OTHER)

    for n, account in enumerate((NEW, DRIFTED)):  # two batches, within the minute
        assert worker(world).process(account_message(account), f"r-{n}", f"m-{n}")["registration"] == "created"
    world.clock.advance(LIST_REUSE_SECONDS + 1)
    assert worker(world).process(account_message(OTHER), "r-3", "m-3")["registration"] == "created"

    assert [call[0] for call in world.cloudcraft_client.calls] == ["list", "create", "create", "list", "create"]


def test_an_account_message_repairs_from_live_state_and_keeps_the_registration_it_owns() -> None:
    world = world_with()
    drift(world, DRIFTED, max_session_seconds=43200)

    done = worker(world).process(account_message(DRIFTED), "r", "m-1")

    assert (done["outcome"], done["actions"], done["registration"]) == ("applied", ["repair policy"], "unchanged")
    assert ("list",) in world.cloudcraft_client.calls
    assert world.cloudcraft_client.writes == []


def test_a_message_that_carries_registrations_is_rejected_without_a_read_or_write() -> None:
    world = world_with()
    forged = json.dumps(
        {"action": "apply", "account_id": NEW.account_id, "run_id": RUN, "registrations": [{"id": "cc-x"}]}
    )

    done = worker(world).process(forged, "r", "m-1")

    assert (done["outcome"], done["message_id"]) == ("rejected", "m-1")
    assert "unknown field(s) 'registrations'" in done["reason"]
    assert world.members.sessions == []
    assert world.cloudcraft_client.calls == []
    assert [n.attributes["outcome"] for n in world.notifier.sent] == ["rejected"]


def test_a_duplicate_delivery_applies_once_and_returns_the_same_answer() -> None:
    world = world_with()
    the_worker = worker(world)

    with_role(world, NEW)
    first = the_worker.process(account_message(NEW), "receipt-1", "m-1")
    second = the_worker.process(account_message(NEW), "receipt-2", "m-2")

    assert second == first
    assert [call[0] for call in world.cloudcraft_client.writes] == ["create"]
    assert world.once.runs == [f"work#{RUN}#{NEW.account_id}#apply"]


def test_an_account_registered_since_the_plan_is_planned_on_fresh_data_and_not_registered_twice() -> None:
    world = world_with()
    with_role(world, NEW)
    message = account_message(NEW)  # planned when NEW had no registration
    worker(world).process(account_message(NEW, run_id="onboarding"), "r", "m-0")  # e.g. an arrival event

    done = worker(world).process(message, "receipt-1", "m-1")

    assert done["registration"] == "unchanged"
    assert [call[0] for call in world.cloudcraft_client.writes] == ["create"]
    assert ("list",) in world.cloudcraft_client.calls


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        (None, "not a member of this Organization (any more)"),
        (MemberAccount(NEW.account_id, "new", status="SUSPENDED"), "the account's status is SUSPENDED, not ACTIVE"),
        (MemberAccount(NEW.account_id, "new"), "the account sits in the root, outside settings.scope_ous"),
    ],
    ids=["left-the-organization", "suspended", "moved-out-of-scope"],
)
def test_an_account_no_longer_in_scope_is_skipped_without_a_write(account: MemberAccount | None, reason: str) -> None:
    world = world_with(*([account] if account else [DRIFTED]))

    done = worker(world).process(account_message(NEW), "receipt-1", "m-1")

    assert (done["account_id"], done["outcome"], done["reason"]) == (NEW.account_id, "skipped", reason)
    assert world.members.sessions == []
    assert world.cloudcraft_client.calls == []


def test_an_unreachable_account_fails_the_message_and_the_retry_runs_again() -> None:
    world = world_with()
    with_role(world, NEW)
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
    with_role(world, NEW)
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
    with_role(world, NEW)
    world.cloudcraft_client.script.fail_next("create", CloudcraftServerError("502", status=502))

    with pytest.raises(CloudcraftServerError):
        worker(world).process(account_message(NEW), "receipt-1", "m-1")

    assert world.work_queue.deferred == []


# --- deregister messages ---------------------------------------------------------------------------------


def test_an_owned_orphan_is_deregistered_and_forgotten() -> None:
    world = world_with()
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id

    done = worker(world).process(deregister_message(), "receipt-1", "m-1")

    assert (done["outcome"], done["registration_id"]) == ("deregistered", gone.id)
    assert world.cloudcraft_client.accounts == {}
    assert world.ledger.records == {}


@pytest.mark.parametrize("owned", [None, "cc-other"], ids=["never-owned", "owned-another-one-now"])
def test_ownership_is_checked_again_before_deleting(owned: str | None) -> None:
    world = world_with()
    world.cloudcraft_client.add(GONE, registration_id="cc-gone")
    if owned:
        world.ledger.records[GONE] = owned

    done = worker(world).process(deregister_message(), "receipt-1", "m-1")

    assert done["outcome"] == "refused"
    assert "cc-gone" in done["reason"]
    assert "nothing deleted" in done["reason"]
    assert world.cloudcraft_client.writes == []
    assert world.ledger.writes == []
    assert [(n.attributes["outcome"], n.body["account_id"]) for n in world.notifier.sent] == [("refused", GONE)]


def test_a_deregister_item_without_an_account_is_rejected_and_reported() -> None:
    world = world_with()
    world.cloudcraft_client.add(GONE, registration_id="cc-gone")
    world.ledger.records[GONE] = "cc-gone"

    done = worker(world).process(deregister_message(None), "receipt-1", "m-1")

    assert done["outcome"] == "rejected"
    assert "account_id None is not a 12-digit AWS account ID" in done["reason"]
    assert world.cloudcraft_client.writes == []
    assert [n.attributes["outcome"] for n in world.notifier.sent] == ["rejected"]


def test_a_rate_limited_deregistration_is_deferred() -> None:
    world = world_with()
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    world.cloudcraft_client.script.fail_next("delete", CloudcraftRateLimited("429", retry_after=7.0))

    with pytest.raises(CloudcraftRateLimited):
        worker(world).process(deregister_message(), "receipt-9", "m-9")

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
    with_role(world, NEW, DRIFTED)
    world.members.refuse.add(DRIFTED.account_id)
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    set_services(world)  # type: ignore[arg-type]
    event = sqs_event(account_message(NEW), account_message(DRIFTED), deregister_message(), "garbage")

    response = handlers.handle_work(event, LambdaContextStub())

    # m-2 fails and comes back; m-4 is not a work item: reported and consumed, since no retry can make it one.
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert "rejected" in [n.attributes["outcome"] for n in world.notifier.sent]
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
    messages = [json.dumps(message) for message in work_messages(plan, RUN)]

    deferred = []
    for n, message in enumerate(messages):
        try:
            worker(world).process(message, f"receipt-{n}", f"m-{n}")
        except RoleNotVerifiableYet:
            deferred.append(message)  # a role written just now: back after PROPAGATION_WAIT
    assert len(deferred) == 1  # NEW's
    for n, message in enumerate(deferred):
        worker(world).process(message, f"again-{n}", f"m-again-{n}")

    assert not world.fleet(world.settings_document).plan().changes
    assert GONE not in world.ledger.records


def test_an_orphan_whose_account_came_back_into_scope_is_not_deregistered() -> None:
    # Planned as an orphan; before the message was processed, the account moved back into scope and was onboarded.
    world = world_with(NEW, MemberAccount(GONE, "back", ou_path="Workloads/Dev"))
    mine = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = mine.id

    done = worker(world).process(deregister_message(), "receipt-1", "m-1")

    assert (done["outcome"], done["reason"]) == (
        "skipped",
        "an in-scope member of the Organization: nothing deregistered",
    )
    assert mine.id in world.cloudcraft_client.accounts
    assert world.ledger.records == {GONE: mine.id}


def test_an_orphan_still_out_of_scope_is_deregistered() -> None:
    world = world_with(NEW, MemberAccount(GONE, "lab", ou_path="Sandbox"))
    mine = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = mine.id

    done = worker(world).process(deregister_message(), "receipt-1", "m-1")

    assert done["outcome"] == "deregistered"
    assert world.cloudcraft_client.accounts == {}


def test_offboarding_switched_to_keep_since_the_plan_deregisters_nothing() -> None:
    world = FakeServices(parse_settings({"offboarding": "keep"}), directory=FakeDirectory(NEW))
    mine = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = mine.id

    done = worker(world).process(deregister_message(), "receipt-1", "m-1")

    assert (done["outcome"], done["reason"]) == ("skipped", "settings.offboarding is 'keep'")
    assert world.cloudcraft_client.writes == []
    assert world.ledger.writes == []
