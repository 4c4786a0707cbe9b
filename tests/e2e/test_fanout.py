"""The reconciliation in pages: every page planned by its own invocation from a snapshot, one summary per run
with exact counts, a page delivered twice counted once, a message that is not a page told and consumed."""

from __future__ import annotations

import json
from typing import Any

from gatehouse.sandbox.world import Sandbox, _sqs_record, generated_accounts


def state(accounts: int, page_size: int, **settings: Any) -> dict[str, Any]:
    return {
        "organization": {"accounts": generated_accounts(accounts)},
        "settings": settings,
        "sandbox": {"plan_page_size": page_size},
    }


def summaries(world: Sandbox) -> list[dict[str, Any]]:
    return [n for n in world.notifications() if n["attributes"].get("event_kind") == "reconciliation"]


def work_items(world: Sandbox) -> list[dict[str, Any]]:
    sqs = world.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        found += [json.loads(m["Body"]) for m in messages]


def test_pages_add_up_to_one_summary_with_exact_counts() -> None:
    with Sandbox(state(10, 3)) as world:
        result = world.run_schedule("reconcile")
        assert result["pages"] == 4  # ten members and the management account, three a page
        assert result["outcome"] == "drift"
        assert result["summary"] == {"create role": 10, "register": 10, "out of scope": 1}
        assert result["queued"] == 10
        [summary] = summaries(world)
        assert summary["body"]["accounts"] == 11
        assert summary["body"]["queued"] == 10
        assert "Reconciliation of 11 accounts: drift." in summary["message"]
        assert "create role; register (10 account(s): " in summary["message"]
        items = work_items(world)
        assert sorted(i["account_id"] for i in items) == sorted(a["id"] for a in generated_accounts(10))
        assert {i["run_id"] for i in items} == {result["run_id"]}


def test_report_mode_pages_queue_nothing() -> None:
    with Sandbox(state(5, 2, reconcile="report")) as world:
        result = world.run_schedule("reconcile")
        assert (result["pages"], result["queued"]) == (3, 0)
        assert work_items(world) == []
        assert "Repairs not queued: reconcile=report." in summaries(world)[0]["message"]


def test_a_page_delivered_twice_is_counted_once_and_the_summary_sent_once() -> None:
    with Sandbox(state(4, 2)) as world:
        result = world.run_schedule("reconcile")
        sqs = world.client("sqs")
        again = {"run_id": result["run_id"], "page": 1}
        sqs.send_message(QueueUrl=world.plan_queue_url, MessageBody=json.dumps(again))
        record = sqs.receive_message(QueueUrl=world.plan_queue_url, AttributeNames=["All"])["Messages"]

        response = world.invoke("reconcile_page", {"Records": [_sqs_record(record[0], world.plan_queue_url)]})
        assert response["batchItemFailures"] == []
        assert len(summaries(world)) == 1  # the run had completed: its summary is not sent again
        progress = world.client("dynamodb").get_item(
            TableName="gatehouse-sandbox-idempotency", Key={"id": {"S": f"run#{result['run_id']}"}}
        )["Item"]
        assert progress["parts"]["N"] == "4"  # part 0 and three pages
        assert sorted(progress["reported"]["NS"]) == ["0", "1", "2", "3"]


def test_a_message_that_is_not_a_page_is_told_and_consumed() -> None:
    with Sandbox(state(2, 2)) as world:
        sqs = world.client("sqs")
        for body in ('{"run_id": "x", "page": 1, "accounts": ["111111111111"]}', '{"run_id": "nosuchrun", "page": 2}'):
            sqs.send_message(QueueUrl=world.plan_queue_url, MessageBody=body)
            [message] = sqs.receive_message(QueueUrl=world.plan_queue_url, AttributeNames=["All"])["Messages"]
            response = world.invoke("reconcile_page", {"Records": [_sqs_record(message, world.plan_queue_url)]})
            assert response == {"batchItemFailures": [], "pages": []}
            sqs.delete_message(QueueUrl=world.plan_queue_url, ReceiptHandle=message["ReceiptHandle"])
        told = [n for n in world.notifications() if n["attributes"].get("event_kind") != "reconciliation"]
        assert len(told) == 2
        assert "a plan-queue message is exactly" in told[0]["message"]
        assert "run nosuchrun has no page 2" in told[1]["message"]
        assert world.roles() == []  # nothing read into a write
        assert work_items(world) == []
