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

from gatehouse.sandbox.world import Delivery, Sandbox
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

    def deliver(self, world: Sandbox, event: dict[str, Any]) -> dict[str, Any]:
        """Route `event` through the app's EventBridge patterns, as this function; returns the handler's result."""
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

    # A fresh account refusing AssumeRole: the first invocation fails and its idempotency record is removed,
    # so EventBridge's retry onboards it.
    refusing = {
        "organization": {"accounts": [{"id": "222222222222", "name": "data-platform", "refuse_assume_role": 8}]},
        "sandbox": {"eventbridge_retries": 1},
    }
    with driver.sandbox(refusing) as world:
        assert driver.deliver(world, created("222222222222", minutes_ago=2))["outcome"] == "onboarded"
        assert world.deliveries[-1].attempts == 2


Scenario = Callable[[Driver], None]

# Every function in .chalice/config.json, and how to drive it.
SCENARIOS: dict[str, Scenario] = {
    "on_account_arrival": drive_on_account_arrival,
}
