"""Reconciliation, the SQS fleet worker and offboarding, driven through the app's handlers in the sandbox."""

from __future__ import annotations

from typing import Any

from chalicelib.planning.executor import PROPAGATION_WAIT
from gatehouse.sandbox import samples
from gatehouse.sandbox.world import QUEUE_VISIBILITY_TIMEOUT, Sandbox, generated_accounts

ROLE = "arn:aws:iam::{}:role/cloudcraft"


def queue_depth(world: Sandbox) -> int:
    attributes = world.client("sqs").get_queue_attributes(
        QueueUrl=world.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_reconciliation_queues_repairs_the_worker_applies_one_summary_is_sent() -> None:
    with Sandbox({"organization": {"accounts": generated_accounts(7)}}) as world:
        result = world.run_schedule("reconcile")
        assert result["outcome"] == "drift"
        assert result["queued"] == 7
        [summary] = world.notifications()
        assert summary["attributes"] == {"event_kind": "reconciliation", "outcome": "drift"}
        assert "register: 7" in summary["message"]

        world.run_worker(for_seconds=600)  # roles first, registrations on each item's next delivery
        assert queue_depth(world) == 0
        assert len(world.cloudcraft.accounts()) == 7
        # One POST per account, each one Cloudcraft could verify: no request spent on a role not propagated yet.
        assert [r["status"] for r in world.cloudcraft.requests_log() if r["method"] == "POST"] == [201] * 7
        assert len(world.roles()) == 7

        again = world.run_schedule("reconcile")
        assert {key: again[key] for key in ("outcome", "summary", "queued")} == {
            "outcome": "in-order",
            "summary": {"nothing to do": 7, "out of scope": 1},
            "queued": 0,
        }


def test_report_mode_queues_nothing() -> None:
    with Sandbox({"organization": {"accounts": generated_accounts(3)}, "settings": {"reconcile": "report"}}) as world:
        assert world.run_schedule("reconcile")["queued"] == 0
        assert queue_depth(world) == 0
        assert "not queued" in world.notifications()[0]["message"]


def test_worker_partial_failure_retries_only_the_failed_items() -> None:
    with Sandbox({"organization": {"accounts": generated_accounts(5)}}) as world:
        world.run_schedule("reconcile")
        [roles_written] = world.drain_queue(max_batches=1)  # every item writes its role and comes back in 20 s
        assert len(roles_written["batchItemFailures"]) == 5
        world.clock.advance(PROPAGATION_WAIT + 1)
        world.cloudcraft.faults.unverifiable_next(1)  # the first account's registration fails
        [response] = world.drain_queue(max_batches=1)
        failures = response["batchItemFailures"]
        assert len(failures) == 1
        assert queue_depth(world) == 1  # the four others were deleted
        assert len(world.cloudcraft.accounts()) == 4

        sqs = world.client("sqs")
        assert sqs.receive_message(QueueUrl=world.queue_url).get("Messages", []) == []  # invisible for now
        world.clock.advance(QUEUE_VISIBILITY_TIMEOUT)  # the queue's visibility timeout: the failed item is back, alone
        retried = sqs.receive_message(QueueUrl=world.queue_url, VisibilityTimeout=0)["Messages"]
        assert [m["MessageId"] for m in retried] == [failures[0]["itemIdentifier"]]
        assert world.drain_queue() == [{"batchItemFailures": []}]
        assert len(world.cloudcraft.accounts()) == 5


def test_worker_defers_a_rate_limited_message_by_retry_after() -> None:
    with Sandbox({"organization": {"accounts": generated_accounts(2)}}) as world:
        world.run_schedule("reconcile")
        world.cloudcraft.faults.rate_limit_next(1, retry_after=120)
        world.cloudcraft.faults.rate_limit_next(1, retry_after=120)
        [response] = world.drain_queue(max_batches=1)
        assert len(response["batchItemFailures"]) >= 1
        visible = world.client("sqs").receive_message(QueueUrl=world.queue_url).get("Messages", [])
        assert visible == []  # not back before Retry-After: the worker did not sleep, the queue waits
        assert queue_depth(world) >= 1


def test_duplicate_work_message_applies_once() -> None:
    with Sandbox({"organization": {"accounts": generated_accounts(1)}}) as world:
        world.run_schedule("reconcile")
        sqs = world.client("sqs")
        [message] = sqs.receive_message(QueueUrl=world.queue_url)["Messages"]
        sqs.change_message_visibility(
            QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
        sqs.send_message(QueueUrl=world.queue_url, MessageBody=message["Body"])  # SQS delivers at least once
        world.run_worker(for_seconds=300)
        assert sum(r["method"] == "POST" for r in world.cloudcraft.requests_log()) == 1


OFFBOARD_STATE: dict[str, Any] = {
    "organization": {
        "accounts": [
            {"id": "250000000001", "name": "leaving", "ou": "Workloads/Prod"},
            {"id": "250000000002", "name": "mover", "ou": "Workloads/Prod"},
        ]
    },
    "settings": {"scope_ous": ["Workloads"]},
}


def test_offboarding_modes() -> None:
    for mode, registrations_left, roles_left in (
        ("keep", 2, 2),
        ("deregister", 1, 2),
        ("deregister-and-delete-role", 1, 1),
    ):
        state = {**OFFBOARD_STATE, "settings": {**OFFBOARD_STATE["settings"], "offboarding": mode}}
        with Sandbox(state) as world:
            for account in ("250000000001", "250000000002"):
                world.deliver(samples.create_account_result(account))
            assert len(world.cloudcraft.accounts()) == 2
            delivery = world.deliver(samples.close_account_result("250000000001"))
            assert delivery.error is None
            expected = {"keep": "kept", "deregister": "offboarded", "deregister-and-delete-role": "offboarded"}[mode]
            assert delivery.result["outcome"] == expected, (mode, delivery.result)
            assert len(world.cloudcraft.accounts()) == registrations_left, mode
            assert len(world.roles()) == roles_left, mode
            assert world.notifications()[-1]["attributes"]["event_kind"] == "account-offboarding"


def test_offboarding_never_touches_what_is_not_gatehouses() -> None:
    state = {
        **OFFBOARD_STATE,
        "settings": {"offboarding": "deregister-and-delete-role"},
        "organization": {
            "accounts": [
                {"id": "250000000001", "name": "leaving", "ou": "Workloads/Prod", "role": {"tags": {}}},
            ]
        },
        "cloudcraft": {"accounts": [{"name": "someone else's", "roleArn": ROLE.format("250000000001")}]},
    }
    with Sandbox(state) as world:
        event = samples.organizations_api_call("RemoveAccountFromOrganization", {"accountId": "250000000001"})
        delivery = world.deliver(event)
        assert delivery.result["outcome"] == "unchanged"
        assert "not Gatehouse's" in delivery.result["reason"]
        assert "not tagged as Gatehouse's" in delivery.result["reason"]
        assert len(world.cloudcraft.accounts()) == 1
        assert len(world.roles()) == 1


def test_move_between_in_scope_ous_changes_nothing_and_out_of_scope_offboards() -> None:
    with Sandbox(OFFBOARD_STATE) as world:
        world.deliver(samples.create_account_result("250000000002"))
        writes_before = [r for r in world.cloudcraft.requests_log() if r["method"] != "GET"]
        org = world.client("organizations")
        dev = org.create_organizational_unit(ParentId=world.ou_ids["Workloads"], Name="Dev")["OrganizationalUnit"]["Id"]
        org.move_account(
            AccountId="250000000002", SourceParentId=world.ou_ids["Workloads/Prod"], DestinationParentId=dev
        )
        notes_before = len(world.notifications())
        moved = world.deliver(samples.move_account("250000000002", world.ou_ids["Workloads/Prod"], dev))
        # One job per account: the move within the hour replays the arrival's outcome, writing and saying nothing.
        assert moved.result["outcome"] == "onboarded"
        assert moved.result["trigger"].startswith("CreateAccountResult")
        assert [r for r in world.cloudcraft.requests_log() if r["method"] != "GET"] == writes_before
        assert len(world.notifications()) == notes_before

        sandbox_ou = org.create_organizational_unit(ParentId=world.ou_ids[""], Name="Sandbox")["OrganizationalUnit"][
            "Id"
        ]
        org.move_account(AccountId="250000000002", SourceParentId=dev, DestinationParentId=sandbox_ou)
        out = world.deliver(samples.move_account("250000000002", dev, sandbox_ou))
        assert out.result["outcome"] == "offboarded"
        assert world.cloudcraft.accounts() == []


def test_failed_api_call_events_change_nothing() -> None:
    with Sandbox(OFFBOARD_STATE) as world:
        world.deliver(samples.create_account_result("250000000001"))
        event = samples.organizations_api_call("RemoveAccountFromOrganization", {"accountId": "250000000001"})
        event["detail"]["errorCode"] = "AccessDeniedException"
        delivery = world.deliver(event)
        assert delivery.result["outcome"] == "ignored"
        assert len(world.cloudcraft.accounts()) == 1
