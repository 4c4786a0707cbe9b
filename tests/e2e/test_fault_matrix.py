"""The fault matrix: one row per fault, driven through the app's handlers in the sandbox.

Each row asserts three things: nothing is written that should not be; ops are told exactly once (a message on the
ops topic), or the alarm that fires is named (infra/resources.yaml, README "Alarms"); and nothing is lost: the work
is retried, or parked where a record of it stays (a dead-letter queue, the work queue). README "Fault matrix"
lists the rows and their results.

In the sandbox an event whose handler still fails after Lambda's two retries ends as `delivery.error`: in AWS it
is in the events DLQ then, and `events-dlq-not-empty` fires; every failed invocation counts in `<function>-errors`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES, Notification
from chalicelib.fleet.service import Fleet
from chalicelib.planning.plan import FleetPlan
from gatehouse.sandbox import samples
from gatehouse.sandbox.world import SETTINGS_PARAMETER, Sandbox, generated_accounts
from tests.e2e.test_reconcile_heartbeat import emitted_metrics, metrics_written
from tests.unit.test_reconcile_report import fleet_plan

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FRESH = "222222222222"  # one of the sandbox's default accounts, in scope


def fresh_event(account_id: str = FRESH) -> dict[str, Any]:
    event = samples.create_account_result(account_id)
    event["time"] = event["detail"]["eventTime"] = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def state(**parts: Any) -> dict[str, Any]:
    return {"sandbox": {"start": START.isoformat()}, **parts}


def writes(world: Sandbox) -> list[str]:
    """Cloudcraft writes that got through (a 5xx answered before processing writes nothing)."""
    return [
        f"{r['method']} {r['path']}"
        for r in world.cloudcraft.requests_log()
        if r["method"] != "GET" and r["status"] is not None and r["status"] < 500
    ]


def told(world: Sandbox) -> list[tuple[str, str]]:
    """(event_kind, outcome) of every message on the ops topic, in order."""
    return [(n["attributes"].get("event_kind", ""), n["attributes"].get("outcome", "")) for n in world.notifications()]


@contextmanager
def outage(world: Sandbox, service: str, *operations: str) -> Iterator[None]:
    world.moto.gate.outage(service, *operations)
    try:
        yield
    finally:
        world.moto.gate.restore(service)


# --- DynamoDB down ---------------------------------------------------------------------------------------
def test_dynamodb_down() -> None:
    event = fresh_event()
    with Sandbox(state()) as world:
        with outage(world, "dynamodb"):
            delivery = world.deliver(event)

        # Nothing written: the do-once guard could not record the job, so the job never started.
        assert writes(world) == []
        assert world.roles() == []
        # Told once by the last resort (not once per retry); the event then goes to the events DLQ.
        assert delivery.attempts == 3
        assert delivery.error is not None
        assert delivery.error.startswith("IdempotencyPersistenceLayerError")
        [alert] = world.notifications()
        assert alert["attributes"] == {"event_kind": "function-failure", "outcome": "failed"}
        assert (alert["body"]["function"], alert["body"]["event_id"]) == ("on_account_arrival", event["id"])
        assert alert["body"]["error_class"] == "IdempotencyPersistenceLayerError"
        # Nothing lost: redriven from the DLQ once DynamoDB is back, the event onboards the account.
        world.new_container()
        assert world.deliver(event).result["outcome"] == "onboarded"
        assert told(world)[1:] == [("account-onboarding", "onboarded")]


# --- SNS down --------------------------------------------------------------------------------------------
def test_sns_down(capsys: pytest.CaptureFixture[str]) -> None:
    event = fresh_event()
    with Sandbox(state()) as world:
        capsys.readouterr()
        with outage(world, "sns"), metrics_written():
            delivery = world.deliver(event)
        output = capsys.readouterr()

        # The job ran (role, registration) and is idempotent: its retries wrote nothing more.
        assert writes(world) == ["POST /aws/account"]
        assert len(world.roles()) == 1
        # Not recorded as done: each attempt tried to tell ops (3 publishes each), then raised; no message got
        # through, so the alarms tell: on_account_arrival-errors, then events-dlq-not-empty.
        assert delivery.attempts == 3
        assert delivery.error is not None
        assert delivery.error.startswith("NotificationError")
        assert world.notifications() == []
        failed = [v for _, name, _, v in emitted_metrics(output.out + output.err) if name == "NotificationsFailed"]
        assert failed == [1.0, 1.0, 1.0]
        # Nothing lost: redriven once SNS is back, the event is told, once (the job finds the account in order).
        world.new_container()
        assert world.deliver(event).result["outcome"] == "unchanged"
        assert told(world) == [("account-onboarding", "unchanged")]
        assert writes(world) == ["POST /aws/account"]


# --- SQS send fails --------------------------------------------------------------------------------------
def test_sqs_send_fails() -> None:
    event = fresh_event()
    refusing = {"accounts": [{"id": FRESH, "name": "data-platform", "refuse_assume_role_minutes": 20}]}
    with Sandbox(state(organization=refusing)) as world:
        with outage(world, "sqs", "SendMessage"):
            delivery = world.deliver(event)

        # The access role refuses, and the wait cannot be handed to the work queue: the invocation fails (never
        # a silent drop) and Lambda's retries, then the events DLQ, take over; alarms on_account_arrival-errors
        # and events-dlq-not-empty.
        assert delivery.attempts == 3
        assert delivery.error is not None
        assert delivery.error.startswith("AwsError: sqs:SendMessage failed")
        assert world.queue_depth() == 0
        assert writes(world) == []
        assert world.roles() == []
        assert world.notifications() == []
        # Nothing lost: redriven, the wait goes to the queue, and the account is onboarded when it accepts.
        world.new_container()
        assert world.deliver(event).result["outcome"] == "waiting"
        world.run_worker(for_seconds=3600)
        assert told(world) == [("account-onboarding", "onboarded")]


# --- Cloudcraft down for an hour -------------------------------------------------------------------------
def test_cloudcraft_down_for_an_hour() -> None:
    accounts = generated_accounts(3)
    with Sandbox(state(organization={"accounts": accounts})) as world:
        assert world.run_schedule("reconcile")["queued"] == 3  # queued just before Cloudcraft went down
        world.cloudcraft.faults.server_error_next(10**9)  # every request answers 502
        down_until = world.clock.monotonic() + 3600

        arrival = world.deliver(fresh_event(accounts[0]["id"]))
        during = world.run_schedule("reconcile")
        world.run_worker(for_seconds=down_until - world.clock.monotonic(), step=300)

        # Nothing written while it was down; each failure told once: the arrival, the reconciliation, and the
        # worker's batch (its items came back every visibility timeout, and were not reported again).
        assert writes(world) == []
        assert arrival.result["outcome"] == "failed"
        assert "502" in arrival.result["reason"]
        assert during["outcome"] == "failed"
        assert told(world) == [
            ("reconciliation", "drift"),
            ("account-onboarding", "failed"),
            ("reconciliation", "failed"),
            ("fleet-work", "failed"),
        ]
        # (An item whose retries used up the worker's own request budget was handed back as rate limited: that
        # is a deferral, not a failure, and is not listed.)
        batch = world.notifications()[3]
        assert 1 <= batch["body"]["failed_count"] <= 3
        assert all("returned 502" in item["reason"] for item in batch["body"]["failed"])
        # Nothing lost: the items were still in the queue, and are applied once Cloudcraft is back.
        assert world.queue_depth() == 3
        world.cloudcraft.faults.clear()
        world.run_worker(for_seconds=1800, step=300)
        assert world.queue_depth() == 0
        assert sorted(writes(world)) == ["POST /aws/account"] * 3
        assert len(world.roles()) == 3
        assert len(told(world)) == 4  # success is not news


# --- An account refusing AssumeRole for 40 minutes -------------------------------------------------------
def test_account_refusing_assume_role_for_40_minutes() -> None:
    refusing = {"accounts": [{"id": FRESH, "name": "data-platform", "refuse_assume_role_minutes": 40}]}
    with Sandbox(state(organization=refusing)) as world:
        delivery = world.deliver(fresh_event())
        assert (delivery.attempts, delivery.error, delivery.result["outcome"]) == (1, None, "waiting")

        world.run_worker(for_seconds=3600)

        # Nothing written before the role accepted; told once, when onboarded; the wait was parked in the work
        # queue all along (no DLQ, no alarm, no person, no daily run).
        assert writes(world) == ["POST /aws/account"]
        assert told(world) == [("account-onboarding", "onboarded")]
        assert 40 * 60 <= world.clock.monotonic() <= 55 * 60
        assert world.errors == []


# --- A malformed settings document -----------------------------------------------------------------------
def test_malformed_settings_document() -> None:
    bad = {"scope_ous": ["ou-bad"], "cloudcraft_role_nme": "x"}
    with Sandbox(state(settings=bad)) as world:
        arrival = world.deliver(fresh_event())
        reconcile = world.run_schedule("reconcile")
        item = {"action": "onboard", "account_id": FRESH, "first_seen": START.isoformat()}
        world.client("sqs").send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(item))
        world.run_worker(for_seconds=900, step=300)

        # Nothing written with settings that cannot be trusted.
        assert writes(world) == []
        assert world.roles() == []
        # Told once per job, naming the bad fields: the arrival, the reconciliation, the worker's batch (whose
        # whole batch fails while the settings are bad, so fleet_worker-errors fires too).
        assert arrival.result["outcome"] == "failed"
        assert reconcile["outcome"] == "failed"
        assert told(world) == [
            ("account-onboarding", "failed"),
            ("reconciliation", "failed"),
            ("fleet-work", "failed"),
        ]
        assert all("scope_ous" in n["message"] and "cloudcraft_role_nme" in n["message"] for n in world.notifications())
        # Nothing lost: the work item stayed in the queue; once the settings are fixed it is done.
        assert world.queue_depth() == 1
        world.client("ssm").put_parameter(
            Name=SETTINGS_PARAMETER,
            Type="String",
            Overwrite=True,
            Value=json.dumps({"cloudcraft_base_url": world.cloudcraft_url}),
        )
        world.new_container()
        world.run_worker(for_seconds=900, step=300)
        assert world.queue_depth() == 0
        assert told(world)[3:] == [("account-onboarding", "onboarded")]


# --- A reconciliation summary for 5,000 accounts ---------------------------------------------------------
def test_reconciliation_summary_for_5000_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The survey and each page's plan are made directly (5,000 seeded moto accounts would take minutes); the
    # handlers, the page snapshots and tallies in moto's DynamoDB, the plan queue, the SNS adapter and moto's
    # SNS (which refuses messages over 256 KiB) are the real ones: fifty pages add up to one summary.
    from chalicelib.fleet import fanout
    from chalicelib.fleet.service import Survey
    from chalicelib.planning.plan import CloudcraftIdentity

    plan = FleetPlan(accounts=fleet_plan(5000).accounts)
    by_id = {p.account.account_id: p for p in plan.accounts}
    survey = Survey([p.account for p in plan.accounts], [], CloudcraftIdentity("999999999999", "ext"), {}, "", "")
    monkeypatch.setattr(Fleet, "survey", lambda self: survey)
    monkeypatch.setattr(
        fanout, "plan_members", lambda members, *a, **k: FleetPlan(accounts=[by_id[m.account_id] for m in members])
    )
    with Sandbox(state(settings={"reconcile": "report"})) as world:
        from chalicelib.core.observability import logger

        logged: list[dict[str, Any]] = []
        monkeypatch.setattr(logger, "info", lambda message, **keys: logged.append({"message": message, **keys}))

        result = world.run_schedule("reconcile")

        assert result["pages"] == 50
        assert result["outcome"] == "failed"  # as the summary says: some accounts could not be read
        # Told once, in one message that fits, with every count and where the full report is.
        [summary] = world.notifications()
        assert summary["attributes"] == {"event_kind": "reconciliation", "outcome": "failed"}
        body = summary["body"]
        assert body["truncated"] is True
        assert body["summary"] == dict(plan.summary())
        assert sum(c["count"] for c in body["categories"].values()) == 5000
        assert "entries are left out" in summary["message"]
        run_id = body["run_id"]
        assert f'run_id = "{run_id}"' in body["full_report"]["logs_insights_query"]
        assert body["full_report"]["logs_insights_query"] in summary["message"]
        # Nothing lost: the full report is in the logs, one line per account and per orphan, with the run ID.
        report = [line for line in logged if line["message"] == "reconciliation entry"]
        assert len(report) == 5000
        assert {line["account_id"] for line in report} >= {p.account.account_id for p in plan.accounts}
        # Uncut, SNS refuses it (and the run used to report success): the fault this row is about.
        uncut = Notification(subject=summary["subject"], text="", body={**plan.to_dict()}, attributes={})
        assert uncut.sns_size() > SNS_MESSAGE_MAX_BYTES
        with pytest.raises(ClientError, match="too long"):
            world.client("sns").publish(
                TopicArn=os.environ["GATEHOUSE_TOPIC_ARN"], Message=uncut.sns_message(), MessageStructure="json"
            )
