"""Planning the Cloudcraft role: what is right, what drifted, and what a repair does."""

from __future__ import annotations

import copy
from typing import Any

from chalicelib.planning.role import (
    INLINE_POLICY_NAME,
    READ_ONLY_ACCESS_ARN,
    ObservedRole,
    RoleSpec,
    canonical,
    plan_role_changes,
    read_trust,
)

SPEC = RoleSpec("cloudcraft", "999999999999", "ext-123")


def observed(**changes: object) -> ObservedRole:
    base = {
        "role_name": "cloudcraft",
        "trust_policy": SPEC.trust_policy(),
        "max_session_seconds": 3600,
        "managed_policy_arns": (READ_ONLY_ACCESS_ARN,),
        "inline_policies": {},
        "tags": {"gatehouse:managed": "true"},
    }
    base.update(changes)
    return ObservedRole(**base)  # type: ignore[arg-type]


def kinds(role: ObservedRole | None, spec: RoleSpec = SPEC) -> list[str]:
    return [str(change) for change in plan_role_changes(spec, role)]


def test_trust_policy_trusts_only_cloudcraft_with_external_id() -> None:
    statement = SPEC.trust_policy()["Statement"]
    assert statement == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "ext-123"}},
        }
    ]


def test_missing_role_is_created_and_a_right_one_left_alone() -> None:
    assert kinds(None) == ["create-role"]
    assert kinds(observed()) == []


def test_external_id_rotation_and_foreign_principal_repair_trust() -> None:
    rotated = RoleSpec("cloudcraft", "999999999999", "ext-NEW")
    assert kinds(observed(), rotated) == ["update-trust"]
    widened = copy.deepcopy(SPEC.trust_policy())
    widened["Statement"].append({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    assert kinds(observed(trust_policy=widened)) == ["update-trust"]
    no_condition = copy.deepcopy(SPEC.trust_policy())
    del no_condition["Statement"][0]["Condition"]
    assert kinds(observed(trust_policy=no_condition)) == ["update-trust"]


def test_trust_written_as_lists_is_still_recognised() -> None:
    listed = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::999999999999:root"]},
                "Action": ["sts:AssumeRole"],
                "Condition": {"StringEquals": {"sts:ExternalId": ["ext-123"]}},
            }
        ],
    }
    assert read_trust(listed, SPEC).only_cloudcraft


def test_policy_drift_attaches_wanted_and_detaches_anything_else() -> None:
    role = observed(managed_policy_arns=("arn:aws:iam::aws:policy/AdministratorAccess",))
    assert kinds(role) == [
        f"attach-policy {READ_ONLY_ACCESS_ARN}",
        "detach-policy arn:aws:iam::aws:policy/AdministratorAccess",
    ]
    assert kinds(observed(inline_policies={"sneaky": None})) == ["delete-inline-policy sneaky"]


def test_custom_mode_keeps_the_inline_policy_in_line() -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]}
    custom = RoleSpec("cloudcraft", "999999999999", "ext-123", managed_policy_arns=(), inline_policy=policy)
    same_but_string: Any = copy.deepcopy(policy)
    same_but_string["Statement"][0]["Action"] = "ec2:Describe*"
    assert kinds(observed(managed_policy_arns=(), inline_policies={INLINE_POLICY_NAME: same_but_string}), custom) == []
    edited: Any = copy.deepcopy(policy)
    edited["Statement"][0]["Action"] = ["ec2:*"]
    assert kinds(observed(managed_policy_arns=(), inline_policies={INLINE_POLICY_NAME: edited}), custom) == [
        f"put-inline-policy {INLINE_POLICY_NAME}"
    ]
    assert kinds(observed(), custom) == [
        f"detach-policy {READ_ONLY_ACCESS_ARN}",
        f"put-inline-policy {INLINE_POLICY_NAME}",
    ]


def test_unowned_role_is_adopted_and_session_fixed() -> None:
    assert kinds(observed(tags={}, max_session_seconds=43200)) == ["set-max-session 3600", "tag-owner"]


def test_canonical_ignores_order_and_singletons() -> None:
    assert canonical({"A": ["x", "y"], "B": ["z"]}) == canonical({"B": "z", "A": ["y", "x"]})
