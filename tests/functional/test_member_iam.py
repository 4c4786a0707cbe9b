"""The member-account adapters against moto: assume the access role, create and repair the Cloudcraft role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.adapters.member import MEMBER_IAM_ACTIONS, MemberAccess, session_policy
from chalicelib.adapters.organization import OrganizationDirectory
from chalicelib.core.errors import AccessRoleUnavailableError
from chalicelib.planning.role import (
    INLINE_POLICY_NAME,
    PERMISSIONS_BOUNDARY_ARN,
    READ_ONLY_ACCESS_ARN,
    RoleSpec,
    plan_role_changes,
)
from tests.clocks import RecordingClock

SPEC = RoleSpec("cloudcraft", "999999999999", "ext-1")
ROLES = ("OrganizationAccountAccessRole", "AWSControlTowerExecution")


@pytest.fixture
def org() -> Iterator[dict[str, Any]]:
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        root = client.list_roots()["Roots"][0]["Id"]
        workloads = client.create_organizational_unit(ParentId=root, Name="Workloads")["OrganizationalUnit"]["Id"]
        prod = client.create_organizational_unit(ParentId=workloads, Name="Prod")["OrganizationalUnit"]["Id"]
        account = client.create_account(AccountName="payments", Email="p@example.com")["CreateAccountStatus"][
            "AccountId"
        ]
        client.move_account(AccountId=account, SourceParentId=root, DestinationParentId=prod)
        client.tag_resource(ResourceId=account, Tags=[{"Key": "team", "Value": "payments"}])
        yield {"client": client, "account": account, "ous": (workloads, prod)}


def test_directory_resolves_nested_ou_path_and_tags(org: dict[str, Any]) -> None:
    directory = OrganizationDirectory(org["client"])
    account = directory.describe(org["account"])
    assert account is not None
    assert account.name == "payments"
    assert account.ou_path == "Workloads/Prod"
    assert account.ou_ids == org["ous"]
    assert account.tags == {"team": "payments"}
    assert directory.describe("000000000000") is None


def test_role_created_then_left_alone_then_repaired(org: dict[str, Any]) -> None:
    access = MemberAccess(boto3.client("sts", region_name="us-east-1"), RecordingClock())
    member = access.session(org["account"], ROLES, 1, managed_role_name="cloudcraft")
    assert member.access_role == "OrganizationAccountAccessRole"
    iam = member.iam()

    assert iam.read_role("cloudcraft", inline_documents=False) is None
    iam.apply(SPEC, plan_role_changes(SPEC, None))
    observed = iam.read_role("cloudcraft", inline_documents=False)
    assert observed is not None
    assert plan_role_changes(SPEC, observed) == []
    assert observed.managed_policy_arns == (READ_ONLY_ACCESS_ARN,)
    assert observed.owned

    raw = member.iam_client()
    raw.attach_role_policy(RoleName="cloudcraft", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    rotated = RoleSpec("cloudcraft", "999999999999", "ext-2")
    drifted = iam.read_role("cloudcraft", inline_documents=False)
    changes = plan_role_changes(rotated, drifted)
    assert [c.kind for c in changes] == ["update-trust", "detach-policy"]
    iam.apply(rotated, changes)
    repaired = iam.read_role("cloudcraft", inline_documents=False)
    assert plan_role_changes(rotated, repaired) == []
    trust = raw.get_role(RoleName="cloudcraft")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] == "ext-2"


def test_custom_mode_inline_policy_round_trip(org: dict[str, Any]) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]}
    spec = RoleSpec("cloudcraft", "999999999999", "ext-1", managed_policy_arns=(), inline_policy=policy)
    access = MemberAccess(boto3.client("sts", region_name="us-east-1"), RecordingClock())
    iam = access.session(org["account"], ROLES, 1, managed_role_name="cloudcraft").iam()
    iam.apply(spec, plan_role_changes(spec, None))
    observed = iam.read_role("cloudcraft", inline_documents=True)
    assert observed is not None
    assert observed.inline_policies[INLINE_POLICY_NAME] == policy
    assert plan_role_changes(spec, observed) == []
    iam.delete_role(observed)
    assert iam.read_role("cloudcraft", inline_documents=True) is None


class RefusingSts:
    """moto does not enforce trust policies: refuse the first `refusals` calls like a fresh account does."""

    def __init__(self, refusals: int) -> None:
        self.real = boto3.client("sts", region_name="us-east-1")
        self.refusals = refusals
        self.calls: list[dict[str, Any]] = []

    def assume_role(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if len(self.calls) <= self.refusals:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not yet"}}, "AssumeRole")
        return self.real.assume_role(**kwargs)


def test_refusals_retried_with_bounded_jittered_backoff(org: dict[str, Any]) -> None:
    clock = RecordingClock()
    sts = RefusingSts(refusals=5)
    access = MemberAccess(sts, clock, jitter=lambda low, high: high)
    member = access.session(org["account"], ROLES, 4, managed_role_name="cloudcraft")

    # Each attempt tries both names in order; in attempt 3 the first is refused once more, the second works.
    assert [c["RoleArn"].rsplit("/", 1)[1] for c in sts.calls] == [*ROLES, *ROLES, *ROLES]
    assert member.access_role == ROLES[1]
    assert clock.sleeps == [2.0, 4.0]
    assert json.loads(sts.calls[0]["Policy"]) == session_policy("cloudcraft")
    # Cached: a second call within the credentials' life assumes nothing.
    access.session(org["account"], ROLES, 4, managed_role_name="cloudcraft")
    assert len(sts.calls) == 6


def test_refusals_past_the_bound_hand_back(org: dict[str, Any]) -> None:
    clock = RecordingClock()
    access = MemberAccess(RefusingSts(refusals=100), clock, jitter=lambda low, high: high)
    with pytest.raises(AccessRoleUnavailableError, match=r"no access role could be assumed .*3 attempt"):
        access.session(org["account"], ROLES, 3, managed_role_name="cloudcraft")
    assert clock.sleeps == [2.0, 4.0]


def test_the_role_is_created_within_the_read_only_boundary_and_an_adopted_one_gets_it_first(
    org: dict[str, Any],
) -> None:
    access = MemberAccess(boto3.client("sts", region_name="us-east-1"), RecordingClock())
    member = access.session(org["account"], ROLES, 1, managed_role_name="cloudcraft")
    iam, raw = member.iam(), member.iam_client()

    iam.apply(SPEC, plan_role_changes(SPEC, None))
    boundary = raw.get_role(RoleName="cloudcraft")["Role"]["PermissionsBoundary"]
    assert boundary["PermissionsBoundaryArn"] == PERMISSIONS_BOUNDARY_ARN

    raw.delete_role_permissions_boundary(RoleName="cloudcraft")  # someone removed it by hand (Gatehouse cannot)
    changes = plan_role_changes(SPEC, iam.read_role("cloudcraft", inline_documents=False))
    assert [str(change) for change in changes] == [f"set-boundary {PERMISSIONS_BOUNDARY_ARN}"]
    iam.apply(SPEC, changes)
    assert iam.read_role("cloudcraft", inline_documents=False).permissions_boundary == PERMISSIONS_BOUNDARY_ARN  # type: ignore[union-attr]


def test_session_policy_grants_only_within_the_read_only_boundary() -> None:
    statements = {statement["Sid"]: statement for statement in session_policy("cloudcraft")["Statement"]}
    allowed = [
        action
        for statement in statements.values()
        if statement["Effect"] == "Allow"
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]

    assert sorted(allowed) == sorted(MEMBER_IAM_ACTIONS)  # each action once, in exactly one statement
    assert "iam:DeleteRolePermissionsBoundary" not in allowed
    never = statements["NeverRemoveTheBoundary"]
    assert (never["Effect"], never["Action"], never["Resource"]) == ("Deny", "iam:DeleteRolePermissionsBoundary", "*")
    bounded = {"ArnEquals": {"iam:PermissionsBoundary": PERMISSIONS_BOUNDARY_ARN}}
    granting = statements["GrantOnlyWithinReadOnlyBoundary"]
    assert set(granting["Action"]) == {"iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"}
    assert granting["Condition"] == bounded
    attach = statements["AttachReadOnlyAccessOnly"]
    assert attach["Condition"] == {
        "ArnEquals": {"iam:PolicyARN": READ_ONLY_ACCESS_ARN, "iam:PermissionsBoundary": PERMISSIONS_BOUNDARY_ARN}
    }
    unconditioned = set(statements["CloudcraftRoleOnly"]["Action"])
    assert not unconditioned & {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"}
    assert all(s["Resource"] == "arn:aws:iam::*:role/cloudcraft" for s in statements.values() if s["Effect"] == "Allow")


def test_a_session_keeps_credentials_not_a_client_and_never_shows_them(org: dict[str, Any]) -> None:
    access = MemberAccess(boto3.client("sts", region_name="us-east-1"), RecordingClock())
    member = access.session(org["account"], ROLES, 1, managed_role_name="cloudcraft")

    assert set(member.credentials) == {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
    assert member.iam_client() is not member.iam_client()  # built per use, dropped with the job
    assert member.credentials["aws_secret_access_key"] not in repr(member)
    assert access.session(org["account"], ROLES, 1, managed_role_name="cloudcraft") is member  # cached
