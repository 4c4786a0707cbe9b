"""Member-account adapter: assume the access role, then read and shape the Cloudcraft role with IAM."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import boto3

from chalicelib.adapters.aws import CLIENT_CONFIG, aws_call
from chalicelib.core.clock import Clock
from chalicelib.core.errors import AccessRoleUnavailableError, AwsAccessDeniedError, AwsNotFoundError
from chalicelib.core.retry import Backoff, Jitter
from chalicelib.planning.role import (
    INLINE_POLICY_NAME,
    MAX_SESSION_SECONDS,
    OWNER_TAG,
    OWNER_TAG_VALUE,
    PERMISSIONS_BOUNDARY_ARN,
    READ_ONLY_ACCESS_ARN,
    ROLE_DESCRIPTION,
    ObservedRole,
    RoleChange,
    RoleSpec,
)

log = logging.getLogger("gatehouse.member")
SESSION_NAME = "gatehouse"
CREDENTIAL_MARGIN_SECONDS = 300
# Waits between rounds of refused AssumeRole calls: 2 s, 4 s, 8 s, then 15 s at most (before jitter).
ASSUME_ROLE_BACKOFF = Backoff(base=2.0, cap=15.0)
# Everything Gatehouse does inside a member account. The access role there is usually admin; this session
# policy cuts the assumed session down to these actions on the Cloudcraft role alone.
MEMBER_IAM_ACTIONS = (
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:CreateRole",
    "iam:TagRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DeleteRole",
)
# Granting the role anything is allowed only while (or by) putting the read-only boundary on it.
BOUNDED_ACTIONS = ("iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary")


def session_policy(managed_role_name: str) -> dict[str, Any]:
    """The most an assumed session may do: shape the one Cloudcraft role, nothing else. Whatever Cloudcraft (or
    whoever answers as it) asks for, IAM itself keeps that role read-only: it can be created, given an inline
    policy or a managed one (ReadOnlyAccess alone) only with the ReadOnlyAccess permissions boundary on it, and
    the boundary can be replaced by that same boundary only, never removed."""
    role = f"arn:aws:iam::*:role/{managed_role_name}"
    bounded = {"iam:PermissionsBoundary": PERMISSIONS_BOUNDARY_ARN}
    unconditioned = [a for a in MEMBER_IAM_ACTIONS if a not in BOUNDED_ACTIONS and a != "iam:AttachRolePolicy"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudcraftRoleOnly",
                "Effect": "Allow",
                "Action": unconditioned,
                "Resource": role,
            },
            {
                "Sid": "GrantOnlyWithinReadOnlyBoundary",
                "Effect": "Allow",
                "Action": list(BOUNDED_ACTIONS),
                "Resource": role,
                "Condition": {"ArnEquals": bounded},
            },
            {
                "Sid": "AttachReadOnlyAccessOnly",
                "Effect": "Allow",
                "Action": "iam:AttachRolePolicy",
                "Resource": role,
                "Condition": {"ArnEquals": {"iam:PolicyARN": READ_ONLY_ACCESS_ARN, **bounded}},
            },
            {
                "Sid": "NeverRemoveTheBoundary",
                "Effect": "Deny",
                "Action": "iam:DeleteRolePermissionsBoundary",
                "Resource": "*",
            },
        ],
    }


# Credentials kept per container: every account of a large Organization fits (they are small); past this, the
# least recently used are assumed again when next needed.
MAX_CACHED_SESSIONS = 20_000


@dataclass(frozen=True)
class MemberSession:
    """Assumed credentials in one member account. Only the credentials are kept (a few hundred bytes): the IAM
    client is built when a job uses it and dropped with the job, so memory does not grow with the Organization
    (a kept client costs about half a megabyte)."""

    account_id: str
    access_role: str
    credentials: dict[str, str] = field(repr=False)
    expires_at: datetime | None
    make_client: Callable[[dict[str, str]], Any] = field(repr=False, compare=False)

    def iam_client(self) -> Any:
        return self.make_client(self.credentials)

    def iam(self) -> MemberIam:
        return MemberIam(self.iam_client(), self.account_id)


class MemberAccess:
    """Assumes the first access role that works, with bounded jittered backoff, and caches the credentials."""

    def __init__(
        self,
        sts_client: Any,
        clock: Clock,
        *,
        session: boto3.session.Session | None = None,
        jitter: Jitter = random.uniform,
    ) -> None:
        self._sts = sts_client
        self._clock = clock
        # Member clients are built from one session, so botocore loads the IAM model once, not per account.
        self._session = session or boto3.session.Session()
        self._client_lock = threading.Lock()  # boto3 sessions are not thread-safe for client creation
        self._backoff = replace(ASSUME_ROLE_BACKOFF, jitter=jitter)
        self._cache: OrderedDict[tuple[str, str], MemberSession] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def session(
        self, account_id: str, role_names: Sequence[str], attempts: int, *, managed_role_name: str
    ) -> MemberSession:
        """Credentials in `account_id`, limited to the managed role by a session policy.

        Raises AccessRoleUnavailableError when every access role name keeps refusing.
        """
        cache_key = (account_id, managed_role_name)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
        if cached and (
            cached.expires_at is None
            or (cached.expires_at - self._clock.now()).total_seconds() > CREDENTIAL_MARGIN_SECONDS
        ):
            return cached
        refusals: list[str] = []
        backoff = replace(self._backoff, attempts=attempts)
        for attempt in range(1, attempts + 1):
            for role_name in role_names:
                try:
                    with aws_call(f"sts:AssumeRole {role_name} in {account_id}"):
                        member = self._assume(account_id, role_name, managed_role_name)
                except AwsAccessDeniedError:
                    # A fresh account's access role refuses AssumeRole with AccessDenied for a while after creation.
                    refusals.append(f"{role_name} (attempt {attempt})")
                    continue
                with self._lock:
                    self._cache[cache_key] = member
                    while len(self._cache) > MAX_CACHED_SESSIONS:
                        self._cache.popitem(last=False)
                return member
            if not backoff.exhausted(attempt):
                delay = backoff.delay(attempt)
                log.info("access role refused in %s, retrying in %.1fs", account_id, delay)
                self._clock.sleep(delay)
        raise AccessRoleUnavailableError(
            f"no access role could be assumed in {account_id} ({', '.join(role_names)}, {attempts} attempt(s)); "
            "a new account can refuse for a few minutes, otherwise check settings.access_role_names"
        )

    def forget(self, account_id: str) -> None:
        with self._lock:
            for key in [key for key in self._cache if key[0] == account_id]:
                del self._cache[key]

    def _assume(self, account_id: str, role_name: str, managed_role_name: str) -> MemberSession:
        response = self._sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/{role_name}",
            RoleSessionName=SESSION_NAME,
            Policy=json.dumps(session_policy(managed_role_name)),
        )
        credentials = response["Credentials"]
        keys = {
            "aws_access_key_id": str(credentials["AccessKeyId"]),
            "aws_secret_access_key": str(credentials["SecretAccessKey"]),
            "aws_session_token": str(credentials["SessionToken"]),
        }
        expiration = credentials.get("Expiration")
        return MemberSession(
            account_id,
            role_name,
            keys,
            expiration if isinstance(expiration, datetime) else None,
            self._iam_client,
        )

    def _iam_client(self, credentials: dict[str, str]) -> Any:
        with self._client_lock:
            return self._session.client(
                "iam",
                config=CLIENT_CONFIG,
                aws_access_key_id=credentials["aws_access_key_id"],
                aws_secret_access_key=credentials["aws_secret_access_key"],
                aws_session_token=credentials["aws_session_token"],
            )


class MemberIam:
    """IAM inside one member account, limited to the Cloudcraft role."""

    def __init__(self, client: Any, account_id: str) -> None:
        self._iam = client
        self.account_id = account_id

    def read_role(self, role_name: str, *, inline_documents: bool) -> ObservedRole | None:
        """The role, its attached and inline policies, or None when it does not exist."""
        try:
            with aws_call(f"iam read of role {role_name} in {self.account_id}"):
                role = self._iam.get_role(RoleName=role_name)["Role"]
                attached = [
                    policy["PolicyArn"]
                    for page in self._iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
                    for policy in page["AttachedPolicies"]
                ]
                inline_names = [
                    name
                    for page in self._iam.get_paginator("list_role_policies").paginate(RoleName=role_name)
                    for name in page["PolicyNames"]
                ]
                inline: dict[str, dict[str, Any] | None] = dict.fromkeys(inline_names)
                if inline_documents and INLINE_POLICY_NAME in inline:
                    document = self._iam.get_role_policy(RoleName=role_name, PolicyName=INLINE_POLICY_NAME)
                    inline[INLINE_POLICY_NAME] = _as_document(document["PolicyDocument"])
        except AwsNotFoundError:  # NoSuchEntity: no such role
            return None
        boundary = role.get("PermissionsBoundary") or {}
        return ObservedRole(
            role_name=role_name,
            trust_policy=_as_document(role.get("AssumeRolePolicyDocument") or {}),
            max_session_seconds=int(role.get("MaxSessionDuration") or 3600),
            managed_policy_arns=tuple(attached),
            inline_policies=inline,
            tags={tag["Key"]: tag["Value"] for tag in role.get("Tags", [])},
            permissions_boundary=boundary.get("PermissionsBoundaryArn") or None,
        )

    def apply(self, spec: RoleSpec, changes: Sequence[RoleChange]) -> None:
        """Carry out planned changes, in order. Each is idempotent, so a re-run after a crash converges."""
        name = spec.role_name
        trust = json.dumps(spec.trust_policy())
        owner_tag = [{"Key": OWNER_TAG, "Value": OWNER_TAG_VALUE}]
        with aws_call(f"iam change of role {name} in {self.account_id}"):
            for change in changes:
                if change.kind == "create-role":
                    self._iam.create_role(
                        RoleName=name,
                        AssumeRolePolicyDocument=trust,
                        Description=ROLE_DESCRIPTION,
                        MaxSessionDuration=MAX_SESSION_SECONDS,
                        PermissionsBoundary=spec.permissions_boundary,
                        Tags=owner_tag,
                    )
                    for arn in spec.managed_policy_arns:
                        self._iam.attach_role_policy(RoleName=name, PolicyArn=arn)
                    if spec.inline_policy is not None:
                        self._put_inline(spec)
                elif change.kind == "set-boundary":
                    self._iam.put_role_permissions_boundary(
                        RoleName=name, PermissionsBoundary=spec.permissions_boundary
                    )
                elif change.kind == "update-trust":
                    self._iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
                elif change.kind == "set-max-session":
                    self._iam.update_role(RoleName=name, MaxSessionDuration=MAX_SESSION_SECONDS)
                elif change.kind == "attach-policy":
                    self._iam.attach_role_policy(RoleName=name, PolicyArn=change.detail)
                elif change.kind == "detach-policy":
                    self._iam.detach_role_policy(RoleName=name, PolicyArn=change.detail)
                elif change.kind == "put-inline-policy":
                    self._put_inline(spec)
                elif change.kind == "delete-inline-policy":
                    self._iam.delete_role_policy(RoleName=name, PolicyName=change.detail)
                elif change.kind == "tag-owner":
                    self._iam.tag_role(RoleName=name, Tags=owner_tag)

    def delete_role(self, observed: ObservedRole) -> None:
        """Delete a role Gatehouse owns: policies first, as IAM requires."""
        name = observed.role_name
        # A role or policy already gone (NoSuchEntity) is the goal reached.
        with contextlib.suppress(AwsNotFoundError), aws_call(f"iam deletion of role {name} in {self.account_id}"):
            for arn in observed.managed_policy_arns:
                self._iam.detach_role_policy(RoleName=name, PolicyArn=arn)
            for policy_name in observed.inline_policies:
                self._iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            self._iam.delete_role(RoleName=name)

    def _put_inline(self, spec: RoleSpec) -> None:
        self._iam.put_role_policy(
            RoleName=spec.role_name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(spec.inline_policy)
        )


def _as_document(value: Any) -> dict[str, Any]:
    """botocore decodes policy documents into dicts; fall back for a string, just in case."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        from urllib.parse import unquote

        from chalicelib.core.safejson import JsonLimitError, loads_bounded

        try:  # IAM caps a role's policy at 10,240 characters; one that cannot be read is drift to repair
            parsed = loads_bounded(unquote(value), max_bytes=65_536, max_depth=32, what="the policy document")
        except JsonLimitError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}
