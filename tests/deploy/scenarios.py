"""How each Lambda function is driven for the IAM coverage check: one scenario per function in .chalice/config.json.

test_policy_coverage.py runs a function's scenario with every boto3 call recorded, then checks the
function's policy file both ways: every call is allowed, and every permission is used by some call. So a
scenario should reach every AWS call the function can make in production (happy path, repairs, retries,
failures), and assert on the outcome so a scenario that silently stops reaching a path fails here first.

To add a function: write `.chalice/policy-<name>.json`, name it in .chalice/config.json, and add
`"<name>": drive_<name>` to SCENARIOS below. Drive it through a Sandbox: `driver.deliver(world, event)` for
EventBridge-triggered functions (it asserts the event is routed to this function), or
`with driver.acting(): ...` around a direct call of the handler (`world.run_schedule(...)`,
`world.drain_queue()` for an SQS consumer). Keep setup (seeding roles, queueing work) outside those blocks:
only calls made inside them are the function's.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3

from gatehouse.sandbox import samples
from gatehouse.sandbox.world import Delivery, Sandbox, generated_accounts
from tests.conftest import SHARED_EVENTS


class Recorder(Protocol):
    def acting_as(self, function: str) -> AbstractContextManager[None]: ...


class Driver:
    """What a scenario gets: sandboxes to set up as it likes, and calls attributed to the function under test."""

    def __init__(self, function: str, recorder: Recorder) -> None:
        self.function = function
        self._recorder = recorder

    @contextmanager
    def sandbox(self, state: dict[str, Any] | None = None) -> Iterator[Sandbox]:
        """A fresh world; whatever the scenario does to set it up is not attributed to the function."""
        with Sandbox(copy.deepcopy(state) if state else None) as world:
            yield world

    def acting(self) -> AbstractContextManager[None]:
        """Calls made inside this block are the function's (for handlers the scenario calls directly)."""
        return self._recorder.acting_as(self.function)

    def deliver(self, world: Sandbox, event: dict[str, Any], *, cold: bool = True) -> dict[str, Any]:
        """Route `event` through the app's EventBridge patterns, as this function; returns the handler's result.

        `cold`: in a fresh container, as this function's first invocation would be (its cached settings, key and
        credentials would otherwise come from whatever the sandbox ran before, hiding the calls they need)."""
        if cold:
            world.new_container()
        with self.acting():
            delivery = world.deliver(event, source=f"{self.function} scenario")
        return _result(self.function, delivery)


def _result(function: str, delivery: Delivery) -> dict[str, Any]:
    assert delivery.handler == function, f"the event was routed to {delivery.handler}, not {function}"
    assert delivery.error is None, f"{function} failed after {delivery.attempts} attempt(s): {delivery.error}"
    assert isinstance(delivery.result, dict), delivery.result
    return delivery.result


# --- events ----------------------------------------------------------------------------------------------
def sample(name: str) -> dict[str, Any]:
    """A shared sample event, as AWS sends it."""
    event: dict[str, Any] = json.loads((SHARED_EVENTS / f"{name}.json").read_text())
    return event


def created(account_id: str, *, minutes_ago: float | None = None) -> dict[str, Any]:
    """The shared CreateAccountResult sample for another account (and, if asked, re-dated to look recent)."""
    event = sample("create-account-result")
    event["id"] = str(uuid.uuid4())
    event["detail"]["serviceEventDetails"]["createAccountStatus"]["accountId"] = account_id
    if minutes_ago is not None:
        when = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event["time"] = event["detail"]["eventTime"] = when
    return event


def creation_failed() -> dict[str, Any]:
    event = sample("create-account-result")
    status = event["detail"]["serviceEventDetails"]["createAccountStatus"]
    status.update(state="FAILED", failureReason="EMAIL_ALREADY_EXISTS")
    del status["accountId"]
    return event


# --- member-account setup (outside the recording window) ------------------------------------------------
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ACCESS = "arn:aws:iam::aws:policy/ReadOnlyAccess"
FOREIGN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}
    ],
}


def seed_role(
    world: Sandbox,
    account_id: str,
    *,
    name: str = "cloudcraft",
    max_session: int = 3600,
    managed: tuple[str, ...] = (),
    inline: dict[str, dict[str, Any]] | None = None,
) -> None:
    """A Cloudcraft role someone made by hand before Gatehouse: trusting the wrong account, not tagged."""
    credentials = world.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="scenario-setup"
    )["Credentials"]
    iam = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    ).client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(FOREIGN_TRUST), MaxSessionDuration=max_session)
    for arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    for policy_name, document in (inline or {}).items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))


def changes(result: dict[str, Any]) -> set[str]:
    """The kinds of role change the handler made ("detach-policy", ...)."""
    return {change.split(" ", 1)[0] for change in result["role_changes"]}


# --- on_account_arrival ----------------------------------------------------------------------------------
REFUSING = {"organization": {"accounts": [{"id": "222222222222", "name": "data-platform", "refuse_assume_role": 8}]}}
STRAY_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
DRIFTED_READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
}


def drive_on_account_arrival(driver: Driver) -> None:
    # The shared samples as delivered: a new account (name redacted in the event), the same event again
    # (idempotency), a Control Tower account reached through its own access role, a failed creation.
    with driver.sandbox() as world:
        new = sample("create-account-result")
        assert driver.deliver(world, new)["outcome"] == "onboarded"
        assert driver.deliver(world, new)["outcome"] == "onboarded"  # the saved result, nothing redone
        vended = driver.deliver(world, sample("control-tower-create-managed-account"))
        assert (vended["outcome"], vended["access_role"]) == ("onboarded", "AWSControlTowerExecution")
        assert driver.deliver(world, creation_failed())["outcome"] == "creation-failed"

    # Read-only mode, repairing a hand-made role: wrong trust, long sessions, admin attached, a stray inline
    # policy, no owner tag.
    with driver.sandbox() as world:
        seed_role(
            world, "444444444444", max_session=43200, managed=(ADMINISTRATOR_ACCESS,), inline={"s3": STRAY_POLICY}
        )
        repaired = driver.deliver(world, created("444444444444"))
        assert changes(repaired) == {
            "set-boundary",
            "update-trust",
            "set-max-session",
            "attach-policy",
            "detach-policy",
            "delete-inline-policy",
            "tag-owner",
        }, repaired["role_changes"]

    # Custom permission mode: a role whose read policy drifted and still has ReadOnlyAccess attached, and a new
    # account whose role gets the inline policy from the start.
    with driver.sandbox({"settings": {"permission_mode": "custom"}}) as world:
        seed_role(
            world, "444444444444", managed=(READ_ONLY_ACCESS,), inline={"cloudcraft-read-access": DRIFTED_READ_POLICY}
        )
        custom = driver.deliver(world, created("444444444444"))
        assert {"put-inline-policy", "detach-policy"} <= changes(custom), custom["role_changes"]
        fresh = driver.deliver(world, sample("create-account-result"))
        assert fresh["outcome"] == "onboarded"
        [new_role] = [role for role in world.roles() if role["account_id"] == "222222222222"]
        assert (new_role["inline_policies"], new_role["managed_policies"]) == (["cloudcraft-read-access"], [])

    # A fresh account refusing AssumeRole: the wait is handed to a delayed work item (the fleet worker's
    # scenario takes such items up).
    with driver.sandbox(REFUSING) as world:
        waiting = driver.deliver(world, created("222222222222", minutes_ago=2))
        assert (waiting["outcome"], world.deliveries[-1].attempts) == ("waiting", 1), waiting


# --- on_account_departure --------------------------------------------------------------------------------
def drive_on_account_departure(driver: Driver) -> None:
    # Closed, then removed: deregister what Gatehouse owns and delete the role it tagged; then a move out of the
    # OUs in scope (offboard) and one into them (converges like an arrival: reads, onboards).
    state = {
        "organization": {
            "accounts": [
                {"id": "222222222222", "name": "leaving", "ou": "Workloads/Prod"},
                {"id": "333333333333", "name": "mover", "ou": "Workloads/Prod"},
                {"id": "444444444444", "name": "newcomer", "ou": "Sandbox"},
            ]
        },
        "settings": {"scope_ous": ["Workloads"], "offboarding": "deregister-and-delete-role"},
    }
    with driver.sandbox(state) as world:
        for account in ("222222222222", "333333333333"):
            world.deliver(samples.create_account_result(account))
        closed = driver.deliver(world, samples.close_account_result("222222222222"))
        assert (closed["outcome"], closed["role_deleted"]) == ("offboarded", True), closed

        org = world.client("organizations")
        prod, sandbox = world.ou_ids["Workloads/Prod"], world.ou_ids["Sandbox"]
        org.move_account(AccountId="333333333333", SourceParentId=prod, DestinationParentId=sandbox)
        moved_out = driver.deliver(world, samples.move_account("333333333333", prod, sandbox))
        assert moved_out["outcome"] == "offboarded", moved_out

        org.move_account(AccountId="444444444444", SourceParentId=sandbox, DestinationParentId=prod)
        moved_in = driver.deliver(world, samples.move_account("444444444444", sandbox, prod))
        assert moved_in["outcome"] == "onboarded", moved_in

        # One moved in whose access role refuses: it waits in the work queue, as a fresh account does.
        world.moto.gate.refuse("333333333333", 8)
        org.move_account(AccountId="333333333333", SourceParentId=sandbox, DestinationParentId=prod)
        waiting = driver.deliver(world, samples.move_account("333333333333", sandbox, prod))
        assert waiting["outcome"] == "waiting", waiting


# --- reconcile -------------------------------------------------------------------------------------------
def drive_reconcile(driver: Driver) -> None:
    # Custom mode (inline policy documents are read), roles in place for some accounts, an owned orphan.
    state = {
        "organization": {"accounts": [*generated_accounts(3), {"id": "555555555555", "name": "has-role", "role": {}}]},
        "settings": {"permission_mode": "custom"},
        "cloudcraft": {
            "accounts": [{"name": "gone", "roleArn": "arn:aws:iam::999000000001:role/cloudcraft", "owned": True}]
        },
    }
    with driver.sandbox(state) as world:
        world.deliver(samples.create_account_result("100000000000"))  # one role with its inline policy
        world.new_container()
        with driver.acting():  # the survey, the page snapshots, part 0 (the orphan queued) and the pages queued
            started = world.run_schedule("reconcile", plan_pages=False)
        assert (started["outcome"], started["pages"]) == ("started", 1), started
        result = world.plan_pages(started)
        assert result["outcome"] == "drift", result
        assert result["queued"] >= 4, result

    # Cloudcraft keeps failing: the run cannot start, and says so.
    with driver.sandbox({"organization": {"accounts": generated_accounts(1)}}) as world:
        world.cloudcraft.faults.server_error_next(20, method="GET")
        with driver.acting():
            assert world.run_schedule("reconcile", plan_pages=False)["outcome"] == "failed"
        assert world.notifications()[-1]["attributes"] == {"event_kind": "reconciliation", "outcome": "failed"}


# --- reconcile_page --------------------------------------------------------------------------------------
def drive_reconcile_page(driver: Driver) -> None:
    # Custom mode (inline documents read), the default opt-out tag (tags read), roles to write, pages of two.
    state = {
        "organization": {"accounts": [*generated_accounts(3), {"id": "555555555555", "name": "has-role", "role": {}}]},
        "settings": {"permission_mode": "custom"},
        "sandbox": {"plan_page_size": 2},
    }
    with driver.sandbox(state) as world:
        started = world.run_schedule("reconcile", plan_pages=False)
        world.new_container()
        with driver.acting():  # every page planned, repairs queued, the principal recorded, the summary sent
            result = world.plan_pages(started)
        assert (result["outcome"], result["queued"]) == ("drift", 4), result
        # A message that is not a page: told once (the do-once record), consumed.
        sqs = world.client("sqs")
        sqs.send_message(QueueUrl=world.plan_queue_url, MessageBody='{"run_id": "x", "page": 0}')
        with driver.acting():
            assert world.plan_pages({"run_id": "x"}) == {"run_id": "x"}
        assert any("page is not a page number" in n["message"] for n in world.notifications())


# --- fleet_worker ----------------------------------------------------------------------------------------
def drive_fleet_worker(driver: Driver) -> None:
    # Work items for new accounts and a drifted one, an owned orphan to deregister, and a 429 deferred.
    state = {
        "organization": {
            "accounts": [
                *generated_accounts(3),
                {"id": "555555555555", "name": "drifted", "role": {"external_id": "old"}},
            ]
        },
        "settings": {"permission_mode": "custom"},
        "cloudcraft": {
            "accounts": [{"name": "gone", "roleArn": "arn:aws:iam::999000000001:role/cloudcraft", "owned": True}]
        },
    }
    with driver.sandbox(state) as world:
        world.run_schedule("reconcile")
        # A malformed item and a forged one (a registration Gatehouse does not own): reported to ops, not retried.
        sqs = world.client("sqs")
        sqs.send_message(QueueUrl=world.queue_url, MessageBody='{"kind": "deregister", "registration_id": "x"}')
        world.cloudcraft.seed_account("someone else's", "arn:aws:iam::999000000002:role/cloudcraft")
        forged = {"action": "deregister", "account_id": "999000000002", "run_id": "forged"}
        sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(forged))
        world.cloudcraft.faults.rate_limit_next(1, retry_after=120)
        world.new_container()
        with driver.acting():
            responses = world.run_worker(for_seconds=900)
        # The 429 deferred its item by Retry-After, and the items after it in the container (the penalty is longer
        # than a worker waits): none slept, all came back and were done.
        assert responses[0]["batchItemFailures"], responses
        assert world.queue_depth() == 0, responses
        assert {a["name"] for a in world.cloudcraft.accounts()} >= {"account-0001 (100000000001)"}
        assert "gone" not in {a["name"] for a in world.cloudcraft.accounts()}
        assert "someone else's" in {a["name"] for a in world.cloudcraft.accounts()}
        outcomes = sorted(n["attributes"]["outcome"] for n in world.notifications()[1:])  # after the summary
        assert outcomes == ["refused", "rejected"], outcomes

    # Cloudcraft's answer turns hostile between plan and work: every item is refused, ops are told once.
    with driver.sandbox({"organization": {"accounts": generated_accounts(2)}}) as world:
        world.run_schedule("reconcile")
        world.cloudcraft.answers.forge_iam_parameters(accountId="777777777777")
        world.new_container()
        with driver.acting():
            world.drain_queue()
        assert world.roles() == []
        refusals = [n for n in world.notifications() if n["attributes"]["event_kind"] == "account-onboarding"]
        assert [n["attributes"]["outcome"] for n in refusals] == ["refused"], refusals

    # Onboardings waiting for an access role: the first item is refused again and queues the next wait; the
    # next one onboards the account (and notifies).
    with driver.sandbox(REFUSING) as world:
        assert world.deliver(created("222222222222", minutes_ago=2)).result["outcome"] == "waiting"
        world.moto.gate.refuse("222222222222", 8)  # the arrival used up the first refusals
        world.new_container()
        with driver.acting():
            world.run_worker(for_seconds=900)
        assert [n["attributes"]["outcome"] for n in world.notifications()] == ["onboarded"]


# --- on_proton_connection and proton_sweep ---------------------------------------------------------------
PROTON_RULES = {
    "version": 1,
    "mode": "enforce",
    "default_action": "hold",
    "rules": [
        {"name": "no-legacy", "action": "reject", "when": {"environment_names": ["legacy-*"]}},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"]}},
    ],
}


def _connection(number: int, env: str) -> dict[str, Any]:
    return {
        "id": f"{number:08d}-aaaa-4bbb-8ccc-dddddddddddd",
        "environmentAccountId": "222222222222",
        "environmentName": env,
        "roleArn": "arn:aws:iam::222222222222:role/ProtonEnvironmentRole",
        "codebuildRoleArn": "arn:aws:iam::222222222222:role/ProtonCodeBuild",
    }


PROTON_STATE = {
    "sandbox": {"eventbridge_retries": 0},
    "proton_rules": PROTON_RULES,
    "proton": {
        "connections": [
            _connection(1, "dev-api"),
            _connection(2, "legacy-batch"),
            _connection(3, "dev-web"),
            {**_connection(4, "dev-elsewhere"), "roleArn": "arn:aws:iam::999999999999:role/ProtonEnvironmentRole"},
        ]
    },
}


def drive_on_proton_connection(driver: Driver) -> None:
    with driver.sandbox(PROTON_STATE) as world:
        accepted = driver.deliver(world, samples.proton_connection_change(_connection(1, "")["id"]))
        assert accepted["result"] == "accepted", accepted
        rejected = driver.deliver(world, samples.proton_connection_change(_connection(2, "")["id"]))
        assert rejected["result"] == "rejected", rejected
        again = driver.deliver(world, samples.proton_connection_change(_connection(2, "")["id"]), cold=False)
        assert (again["result"], again["acted"]) == ("not-pending", False), again  # a duplicate changes nothing
        assert world.proton is not None
        world.proton.fail_next("AcceptEnvironmentAccountConnection", "InternalServerException", 6)  # + 5 SDK retries
        world.new_container()
        with driver.acting():
            failed = world.deliver(samples.proton_connection_change(_connection(3, "")["id"]))
        assert failed.error is not None, failed  # raised for a retry; the do-once record is released


def drive_proton_sweep(driver: Driver) -> None:
    with driver.sandbox(PROTON_STATE) as world:
        world.new_container()
        assert world.proton is not None
        world.proton.fail_next("AcceptEnvironmentAccountConnection", "InternalServerException", 6)  # + 5 SDK retries
        with driver.acting():
            first = world.run_schedule("proton_sweep")
            second = world.run_schedule("proton_sweep")  # the held one again: notified once only
        assert sorted(o["result"] for o in first["outcomes"]) == ["accepted", "held", "rejected"], first
        assert len(first["errors"]) == 1, first  # Proton failing: raised inside the guard, retried next sweep
        assert sorted(o["result"] for o in second["outcomes"]) == ["accepted", "held"], second


Scenario = Callable[[Driver], None]

# Every function in .chalice/config.json, and how to drive it.
SCENARIOS: dict[str, Scenario] = {
    "on_account_arrival": drive_on_account_arrival,
    "on_account_departure": drive_on_account_departure,
    "reconcile": drive_reconcile,
    "reconcile_page": drive_reconcile_page,
    "fleet_worker": drive_fleet_worker,
    "on_proton_connection": drive_on_proton_connection,
    "proton_sweep": drive_proton_sweep,
}
