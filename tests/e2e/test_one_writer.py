"""What events and work items can and cannot make Gatehouse do, through the app's handlers in the sandbox:
one writer per account, work items that carry no state, member IDs never taken from the caller, bounded input."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from gatehouse.sandbox import samples
from gatehouse.sandbox.world import MANAGEMENT_ACCOUNT_ID, Sandbox, _sqs_record

ACCOUNT = "260000000001"
ROLE = "arn:aws:iam::{}:role/cloudcraft"
# A slower sandbox clock (50x), and retries enough that a delivery finding the first one still running (the
# platform retries it after 1, 2, ... minutes) outlasts it however slow this machine is.
RACE: dict[str, Any] = {
    "organization": {"accounts": [{"id": ACCOUNT, "name": "vended", "ou": "Workloads/Prod"}]},
    "settings": {"scope_ous": ["Workloads"]},
    "sandbox": {"eventbridge_retries": 8},
}


def posts(world: Sandbox) -> list[dict[str, Any]]:
    return [r for r in world.cloudcraft.requests_log() if r["method"] == "POST"]


def outcomes(world: Sandbox) -> list[str]:
    return [note["attributes"]["outcome"] for note in world.notifications()]


def together(*jobs: Callable[[], Any]) -> None:
    """Start every job at once, each on its own thread, and wait for all of them."""
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)


# --- one writer per account --------------------------------------------------------------------------------
def test_arrival_and_move_of_one_account_at_once_register_it_once() -> None:
    with Sandbox(RACE) as world:
        prod = world.ou_ids["Workloads/Prod"]
        arrival = samples.create_account_result(ACCOUNT)
        move = samples.move_account(ACCOUNT, world.ou_ids[""], prod)  # the vending flow: created, then placed

        together(lambda: world.deliver(arrival), lambda: world.deliver(move))

        assert [d.error for d in world.deliveries] == [None, None]
        assert [d.result["outcome"] for d in world.deliveries] == ["onboarded", "onboarded"]  # one job, one result
        assert len(posts(world)) == 1
        assert len(world.cloudcraft.accounts()) == 1
        assert outcomes(world) == ["onboarded"]  # one notification, and no false failure


def test_two_workers_on_one_account_register_it_once() -> None:
    with Sandbox(RACE) as world:
        sqs = world.client("sqs")
        for run in ("run-a", "run-b"):  # two reconciliations (or one and an operator's --queue) queued the account
            item = {"action": "apply", "account_id": ACCOUNT, "run_id": run}
            sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(item))
        received = sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=2, WaitTimeSeconds=1)["Messages"]
        assert len(received) == 2
        responses: list[dict[str, Any]] = []

        def worker(message: dict[str, Any]) -> Callable[[], None]:
            def invoke() -> None:
                responses.append(world.invoke("fleet_worker", {"Records": [_sqs_record(message, world.queue_url)]}))

            return invoke

        together(worker(received[0]), worker(received[1]))
        # One applied it; the other waited for the lease and found nothing to do, or (on a slow machine) handed
        # its item back, which SQS delivers again: either way the account is registered once.
        failed = {item["itemIdentifier"] for response in responses for item in response["batchItemFailures"]}
        for message in received:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])
        world.run_worker(for_seconds=300)  # whatever is left: the registration after the role, or a retry

        assert world.queue_depth() == 0
        assert len(posts(world)) == 1
        assert len(world.cloudcraft.accounts()) == 1
        assert "failed" not in outcomes(world)


def test_an_account_moved_out_and_back_within_the_hour_is_onboarded_again() -> None:
    with Sandbox(RACE) as world:
        org = world.client("organizations")
        prod, root = world.ou_ids["Workloads/Prod"], world.ou_ids[""]
        assert world.deliver(samples.create_account_result(ACCOUNT)).result["outcome"] == "onboarded"
        org.move_account(AccountId=ACCOUNT, SourceParentId=prod, DestinationParentId=root)
        assert world.deliver(samples.move_account(ACCOUNT, prod, root)).result["outcome"] == "offboarded"
        org.move_account(AccountId=ACCOUNT, SourceParentId=root, DestinationParentId=prod)

        back = world.deliver(samples.move_account(ACCOUNT, root, prod))

        # The offboarding forgot the saved onboarding: the move back in is a new job, not a replay.
        assert back.result["outcome"] == "onboarded"
        assert back.result["trigger"].startswith("MoveAccount")
        assert len(world.cloudcraft.accounts()) == 1
        assert len(posts(world)) == 2


# --- work items carry no state -----------------------------------------------------------------------------
def test_forged_and_malformed_work_items_change_nothing_and_are_reported_once() -> None:
    state = {
        "organization": {"accounts": [{"id": ACCOUNT, "name": "member", "ou": "Workloads/Prod", "role": {}}]},
        "cloudcraft": {
            "accounts": [
                {"name": "member (260000000001)", "roleArn": ROLE.format(ACCOUNT), "owned": True},
                {"name": "left, someone else's", "roleArn": ROLE.format("999000000002")},
            ]
        },
    }
    with Sandbox(state) as world:
        bodies = [
            # What the worker used to trust: a registration named in the message. Now a malformed item.
            {"kind": "deregister", "registration_id": "x", "aws_account_id": ACCOUNT},
            # Well-formed but forged: a registration Gatehouse does not own, of an account outside the Organization.
            {"action": "deregister", "account_id": "999000000002", "run_id": "forged"},
            # Well-formed but stale or forged: an in-scope member's registration.
            {"action": "deregister", "account_id": ACCOUNT, "run_id": "forged"},
            # The management account, whatever the action.
            {"action": "apply", "account_id": MANAGEMENT_ACCOUNT_ID, "run_id": "forged"},
        ]
        raw = ["[" * 10_000 + "]" * 10_000, "[" * 300 + "]" * 300, "not json"]
        sqs = world.client("sqs")
        for body in [json.dumps(b) for b in bodies] + raw:
            sqs.send_message(QueueUrl=world.queue_url, MessageBody=body)

        responses = world.drain_queue()

        assert all(response["batchItemFailures"] == [] for response in responses)  # nothing comes back
        assert sorted(a["name"] for a in world.cloudcraft.accounts()) == [
            "left, someone else's",
            "member (260000000001)",
        ]
        assert [r for r in world.cloudcraft.requests_log() if r["method"] != "GET"] == []
        assert sorted(outcomes(world)) == ["refused", "refused", "rejected", "rejected", "rejected", "rejected"]
        refusals = [n["message"] for n in world.notifications() if n["attributes"]["outcome"] == "refused"]
        assert any("not Gatehouse's" in text for text in refusals)
        assert any("management account" in text for text in refusals)
        rejections = [n["message"] for n in world.notifications() if n["attributes"]["outcome"] == "rejected"]
        assert any("unknown field" in text for text in rejections)
        assert any("nested more than 4 levels deep" in text for text in rejections)


# --- member IDs never come from the caller -----------------------------------------------------------------
MANAGEMENT_REGISTERED: dict[str, Any] = {
    "organization": {"accounts": [{"id": ACCOUNT, "name": "leaving", "ou": "Workloads/Prod"}]},
    "cloudcraft": {
        "accounts": [
            {"name": "management", "roleArn": ROLE.format(MANAGEMENT_ACCOUNT_ID), "owned": True},
            {"name": "leaving", "roleArn": ROLE.format(ACCOUNT), "owned": True},
        ]
    },
}


def test_a_departure_naming_its_member_elsewhere_is_rejected_not_turned_into_the_management_account() -> None:
    with Sandbox(MANAGEMENT_REGISTERED) as world:
        event = samples.create_account_result(ACCOUNT)
        event["detail"].update(
            eventName="AccountDepartedOrganization",
            serviceEventDetails={"departedMethod": "Removed"},
            additionalEventData={"accountId": ACCOUNT},  # not where such events keep it
        )
        assert event["detail"]["userIdentity"]["accountId"] == MANAGEMENT_ACCOUNT_ID

        delivery = world.deliver(event)

        assert delivery.result["outcome"] == "rejected"
        assert "caller's identity is never used" in delivery.result["reason"]
        assert len(world.cloudcraft.accounts()) == 2  # neither the management account's nor the member's touched
        assert outcomes(world) == ["rejected"]


def test_events_naming_the_management_account_are_refused() -> None:
    with Sandbox(MANAGEMENT_REGISTERED) as world:
        removed = samples.organizations_api_call("RemoveAccountFromOrganization", {"accountId": MANAGEMENT_ACCOUNT_ID})
        joined = samples.create_account_result(MANAGEMENT_ACCOUNT_ID)

        results = [world.deliver(removed).result, world.deliver(joined).result]

        assert [r["outcome"] for r in results] == ["refused", "refused"]
        assert all("management account" in r["reason"] for r in results)
        assert len(world.cloudcraft.accounts()) == 2
        assert [r for r in world.cloudcraft.requests_log() if r["method"] != "GET"] == []
        assert outcomes(world) == ["refused", "refused"]


# --- bounded input -----------------------------------------------------------------------------------------
def test_a_ten_thousand_deep_event_is_rejected_and_reported() -> None:
    deep: dict[str, Any] = {}
    current = deep
    for _ in range(10_000):
        current["x"] = {}
        current = current["x"]
    with Sandbox() as world:
        arrival = samples.create_account_result("222222222222")
        arrival["detail"]["requestParameters"] = deep
        proton = samples.proton_connection_change("00000001-aaaa-4bbb-8ccc-dddddddddddd")
        proton["detail"]["extra"] = deep

        # Invoked as Lambda invokes the functions (the sandbox's own routing serializes events, which this
        # depth would break before Gatehouse saw it): each returns a reported outcome, nothing raises for a DLQ.
        results = [world.invoke("on_account_arrival", arrival), world.invoke("on_proton_connection", proton)]

        assert results[0]["outcome"] == "rejected"
        assert results[1]["result"] == "rejected"
        assert all("nested more than 32 levels deep" in n["message"] for n in world.notifications())
        assert len(world.notifications()) == 2
        assert world.roles() == []
