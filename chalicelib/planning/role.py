"""The Cloudcraft role Gatehouse wants in a member account, and the changes that bring a role there (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

READ_ONLY_ACCESS_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"
# The role's permissions boundary: whatever its policies say, it can do no more than read. The session policy
# (adapters/member.py) lets Gatehouse create the role or grant it anything only while this boundary is on it.
PERMISSIONS_BOUNDARY_ARN = READ_ONLY_ACCESS_ARN
INLINE_POLICY_NAME = "cloudcraft-read-access"
MAX_SESSION_SECONDS = 3600
OWNER_TAG = "gatehouse:managed"
OWNER_TAG_VALUE = "true"
ROLE_DESCRIPTION = "Read-only role assumed by Cloudcraft to diagram this account. Managed by Gatehouse."


@dataclass(frozen=True)
class RoleSpec:
    """The role as it should be. `inline_policy` is set in custom/minimal mode, `managed_policy_arns` otherwise."""

    role_name: str
    trusted_account_id: str
    external_id: str
    managed_policy_arns: tuple[str, ...] = (READ_ONLY_ACCESS_ARN,)
    inline_policy: dict[str, Any] | None = None
    permissions_boundary: str = PERMISSIONS_BOUNDARY_ARN

    @property
    def trusted_principal(self) -> str:
        return f"arn:aws:iam::{self.trusted_account_id}:root"

    def trust_policy(self) -> dict[str, Any]:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": self.trusted_principal},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": self.external_id}},
                }
            ],
        }

    def role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.role_name}"


@dataclass(frozen=True)
class ObservedRole:
    """The role as IAM reports it. `inline_policies` maps name → document (None when not fetched)."""

    role_name: str
    trust_policy: dict[str, Any]
    max_session_seconds: int
    managed_policy_arns: tuple[str, ...]
    inline_policies: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    permissions_boundary: str | None = None

    @property
    def owned(self) -> bool:
        return self.tags.get(OWNER_TAG) == OWNER_TAG_VALUE


ChangeKind = Literal[
    "create-role",
    "set-boundary",
    "update-trust",
    "set-max-session",
    "attach-policy",
    "detach-policy",
    "put-inline-policy",
    "delete-inline-policy",
    "tag-owner",
]


@dataclass(frozen=True)
class RoleChange:
    kind: ChangeKind
    detail: str = ""  # policy ARN or inline policy name, where the change has one

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}".strip()


@dataclass(frozen=True)
class TrustFacts:
    """What a trust policy grants, reduced to the two things Gatehouse cares about."""

    principals: tuple[str, ...]
    external_ids: tuple[str, ...]
    only_cloudcraft: bool


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def read_trust(document: dict[str, Any], spec: RoleSpec) -> TrustFacts:
    """Reduce a trust policy to its AWS principals and external IDs, and say if it trusts Cloudcraft alone."""
    statements = _as_list(document.get("Statement"))
    principals: list[str] = []
    external_ids: list[str] = []
    exact = len(statements) == 1
    for statement in statements:
        if not isinstance(statement, dict):
            exact = False
            continue
        principal = statement.get("Principal")
        aws = _as_list(principal.get("AWS")) if isinstance(principal, dict) else [principal]
        principals.extend(str(p) for p in aws)
        condition = statement.get("Condition") or {}
        ids = _as_list((condition.get("StringEquals") or {}).get("sts:ExternalId"))
        external_ids.extend(str(i) for i in ids)
        exact = exact and (
            statement.get("Effect") == "Allow"
            and _as_list(statement.get("Action")) == ["sts:AssumeRole"]
            and isinstance(principal, dict)
            and set(principal) == {"AWS"}
            and aws in ([spec.trusted_principal], [spec.trusted_account_id])
            and ids == [spec.external_id]
            and set(condition) == {"StringEquals"}
            and set(condition["StringEquals"]) == {"sts:ExternalId"}
        )
    return TrustFacts(tuple(principals), tuple(external_ids), exact)


def plan_role_changes(spec: RoleSpec, observed: ObservedRole | None) -> list[RoleChange]:
    """The changes that turn `observed` into `spec`; empty when the role is already right.

    The role must end up trusting Cloudcraft alone with the external ID and granting read access alone:
    anything else attached to it (an extra managed policy, an unexpected inline one) is removed. The permissions
    boundary comes first: the session policy allows granting the role anything only once the boundary is on it.
    """
    if observed is None:
        return [RoleChange("create-role")]
    changes: list[RoleChange] = []
    if observed.permissions_boundary != spec.permissions_boundary:
        changes.append(RoleChange("set-boundary", spec.permissions_boundary))
    if not read_trust(observed.trust_policy, spec).only_cloudcraft:
        changes.append(RoleChange("update-trust"))
    if observed.max_session_seconds != MAX_SESSION_SECONDS:
        changes.append(RoleChange("set-max-session", str(MAX_SESSION_SECONDS)))
    wanted_managed = set(spec.managed_policy_arns)
    have_managed = set(observed.managed_policy_arns)
    changes += [RoleChange("attach-policy", arn) for arn in sorted(wanted_managed - have_managed)]
    changes += [RoleChange("detach-policy", arn) for arn in sorted(have_managed - wanted_managed)]
    for name, document in sorted(observed.inline_policies.items()):
        if spec.inline_policy is None or name != INLINE_POLICY_NAME:
            changes.append(RoleChange("delete-inline-policy", name))
        elif document is not None and canonical(document) != canonical(spec.inline_policy):
            changes.append(RoleChange("put-inline-policy", name))
    if spec.inline_policy is not None and INLINE_POLICY_NAME not in observed.inline_policies:
        changes.append(RoleChange("put-inline-policy", INLINE_POLICY_NAME))
    if not observed.owned:
        changes.append(RoleChange("tag-owner"))
    return changes


def canonical(document: dict[str, Any]) -> str:
    """A comparable form of a policy document: single strings and one-item lists are the same thing."""

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: norm(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            items = [norm(item) for item in value]
            if len(items) == 1:
                return items[0]
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        return value

    return json.dumps(norm(document), sort_keys=True)
