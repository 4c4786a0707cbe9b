"""Fresh accounts without a DLQ: the wait for an access role goes through the work queue, in sandbox time."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from gatehouse.sandbox import samples
from gatehouse.sandbox.world import Sandbox, generated_accounts

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VENDED = "333333333333"


def at_start(event: dict[str, Any]) -> dict[str, Any]:
    event["time"] = event["detail"]["eventTime"] = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def vended_state(minutes: float, **settings: Any) -> dict[str, Any]:
    account = {"id": VENDED, "name": "payments-prod", "ou": "Workloads/Prod", "access_role": "AWSControlTowerExecution"}
    return {
        "organization": {"accounts": [{**account, "refuse_assume_role_minutes": minutes}]},
        "settings": settings,
        "sandbox": {"start": START.isoformat()},
    }


def test_a_vended_account_that_needs_40_minutes_is_onboarded_with_no_person_and_no_daily_run() -> None:
    with Sandbox(vended_state(40)) as world:
        delivery = world.deliver(at_start(samples.managed_account(VENDED, "payments-prod", ou_name="Prod")))

        # The arrival hands the wait on instead of failing: no Lambda retry, nothing for the events DLQ.
        assert (delivery.attempts, delivery.error, delivery.result["outcome"]) == (1, None, "waiting")
        assert delivery.result["retry_in_seconds"] == 60
        assert world.notifications() == []
        assert world.queue_depth() == 1

        # The work item says which account, what to do and since when; nothing about the account's state.
        world.clock.advance(60)
        sqs = world.client("sqs")
        [message] = sqs.receive_message(QueueUrl=world.queue_url, VisibilityTimeout=0)["Messages"]
        assert json.loads(message["Body"]) == {
            "action": "onboard",
            "account_id": VENDED,
            "first_seen": START.isoformat(),
        }

        responses = world.run_worker(for_seconds=3600)

        assert all(response["batchItemFailures"] == [] for response in responses)
        [note] = world.notifications()
        assert note["attributes"] == {"event_kind": "account-onboarding", "outcome": "onboarded", "account_id": VENDED}
        assert "access role wait" in note["message"]
        [role] = world.roles()
        assert role["account_id"] == VENDED
        [registration] = world.cloudcraft.accounts()
        assert registration["roleArn"] == f"arn:aws:iam::{VENDED}:role/cloudcraft"
        # Onboarded within one wait (at most 15 minutes) of the account accepting, 40 minutes after the event.
        assert 40 * 60 <= world.clock.monotonic() <= 55 * 60
        assert world.queue_depth() == 0
        assert [d.handler for d in world.deliveries] == ["on_account_arrival"]  # no reconciliation ran
        assert world.errors == []


def test_the_waits_grow_to_fifteen_minutes_and_the_give_up_is_reported_once() -> None:
    with Sandbox(vended_state(24 * 60, give_up_after_minutes=60)) as world:
        world.deliver(at_start(samples.managed_account(VENDED, "payments-prod")))
        takes = []
        while world.queue_depth() and world.clock.monotonic() < 2 * 3600:
            before = len(world.moto.gate.calls)
            world.run_worker(for_seconds=60, step=60)
            if len(world.moto.gate.calls) > before:
                takes.append(world.clock.monotonic())

        # Each wait is as long as the account has waited so far, from one minute to fifteen, the last one cut to
        # the give-up time (measured here on a one-minute grid, AssumeRole backoff included).
        gaps = [round((b - a) / 60) for a, b in zip([0.0, *takes], takes, strict=False)]
        assert gaps[0] <= 2, gaps
        assert gaps[:-1] == sorted(gaps[:-1]), gaps
        assert max(gaps) == 15, gaps
        assert gaps.count(15) >= 2, gaps
        assert 60 * 60 <= takes[-1] <= 62 * 60, takes
        [failed] = world.notifications()
        assert failed["attributes"]["outcome"] == "failed"
        assert re.search(r"gave up 6[0-2] minutes after the event", failed["message"]), failed["message"]
        assert world.roles() == []
        assert world.cloudcraft.accounts() == []
        assert world.queue_depth() == 0


def test_two_arrival_events_of_one_account_start_one_wait() -> None:
    # A vended account is announced twice: Organizations' CreateAccountResult and Control Tower's event.
    with Sandbox(vended_state(10)) as world:
        first = world.deliver(at_start(samples.create_account_result(VENDED)))
        second = world.deliver(at_start(samples.managed_account(VENDED, "payments-prod")))

        assert first.result["outcome"] == second.result["outcome"] == "waiting"
        assert first.result["work_item"] == second.result["work_item"]
        assert world.queue_depth() == 1
        world.run_worker(for_seconds=3600)
        assert [n["attributes"]["outcome"] for n in world.notifications()] == ["onboarded"]


def test_a_broken_onboard_item_is_reported_once_and_acts_on_nothing() -> None:
    with Sandbox(vended_state(0)) as world:
        forged = {"action": "onboard", "account_id": VENDED, "first_seen": "yesterday", "role": "admin"}
        world.client("sqs").send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))

        world.run_worker(for_seconds=1800, step=300)  # it fails, comes back after the visibility timeout, fails

        [report] = world.notifications()
        assert report["attributes"] == {"event_kind": "fleet-work", "outcome": "failed"}
        assert "onboard 333333333333" in report["message"]
        assert "exactly the fields" in report["message"]
        assert report["body"]["failed_count"] == 1
        assert world.roles() == []
        assert [r for r in world.cloudcraft.requests_log() if r["method"] != "GET"] == []


def test_the_worker_reports_a_failed_item_once_and_nothing_when_all_succeed() -> None:
    with Sandbox({"organization": {"accounts": generated_accounts(5)}}) as world:
        world.run_schedule("reconcile")
        world.cloudcraft.faults.unverifiable_next(1)  # the first account's registration fails, once

        world.run_worker(for_seconds=1800, step=300)

        reports = [n for n in world.notifications() if n["attributes"]["event_kind"] == "fleet-work"]
        [report] = reports
        assert report["body"]["failed_count"] == 1
        assert report["body"]["batch_size"] == 5
        assert "could not process 1 of 5 work items" in report["message"]
        assert len(world.cloudcraft.accounts()) == 5  # the failed item succeeded when it came back
        assert world.queue_depth() == 0
