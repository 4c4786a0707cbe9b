"""What Gatehouse would do for an account (and for Cloudcraft registrations no account claims).

Planning is pure: it compares what settings and Cloudcraft ask for with what IAM and Cloudcraft hold.
Carrying a plan out is executor.py's job.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import Settings
from chalicelib.planning.guard import (
    OrganizationIds,
    UnsafeAnswer,
    check_external_id,
    check_trusted_account,
    principal_change,
)
from chalicelib.planning.policy_guard import check_policy
from chalicelib.planning.registration import (
    DesiredRegistration,
    Registration,
    RegistrationIndex,
    RegistrationPlan,
    plan_registration,
)
from chalicelib.planning.role import ObservedRole, RoleChange, RoleSpec, TrustFacts, plan_role_changes, read_trust
from chalicelib.planning.scope import ScopeDecision, check_scope

log = logging.getLogger("gatehouse.plan")


@dataclass(frozen=True)
class CloudcraftIdentity:
    """What the role must trust and grant, as Cloudcraft reports it at run time: untrusted until desired_role
    has checked it."""

    account_id: str
    external_id: str
    policy: dict[str, Any] | None = None  # the inline policy in custom/minimal mode
    # The account the roles Gatehouse wrote so far trust (its ledger's record); None before the first role.
    recorded_account_id: str | None = None


class Cloudcraft(Protocol):
    """The part of the Cloudcraft client planning and execution use (see chalicelib.adapters.cloudcraft.client)."""

    def list_accounts(self) -> Sequence[Any]: ...
    def create_account(
        self,
        *,
        name: str,
        role_arn: str,
        region: str = ...,
        read_access: tuple[str, ...] | None = ...,
        write_access: tuple[str, ...] | None = ...,
    ) -> Any: ...
    def update_account(
        self,
        account_id: str,
        *,
        name: str,
        role_arn: str,
        read_access: tuple[str, ...] | None,
        write_access: tuple[str, ...] | None,
    ) -> Any: ...
    def delete_account(self, account_id: str) -> None: ...


@dataclass(frozen=True)
class MemberView:
    """What reading a member account gave: the access role used and the Cloudcraft role, or why it failed."""

    access_role: str = ""
    role: ObservedRole | None = None
    error: str = ""


@dataclass(frozen=True)
class AccountPlan:
    account: MemberAccount
    scope: ScopeDecision
    access_role: str = ""
    spec: RoleSpec | None = None
    role_exists: bool = False
    role_changes: tuple[RoleChange, ...] = ()
    trust: TrustFacts | None = None
    desired: DesiredRegistration | None = None
    registration: RegistrationPlan | None = None
    # Duplicate registrations Gatehouse may delete (owned, or copies of its own role ARN), and those it may not.
    deletable_duplicates: tuple[str, ...] = ()
    foreign_duplicates: tuple[str, ...] = ()
    error: str = ""
    # Cloudcraft's answer failed a guard (guard.py, policy_guard.py): nothing is written for this account.
    refused: str = ""
    # The role trusts another account than Cloudcraft now answers: nothing is written until the settings pin it.
    held: str = ""

    def actions(self) -> list[str]:
        """The plan in the words of the operator's table."""
        if self.error:
            return [f"error: {self.error}"]
        if not self.scope.in_scope:
            return []
        if self.refused:
            return [REFUSED]
        if self.held:
            return [PRINCIPAL_CHANGE_HELD]
        labels: list[str] = []
        kinds = [change.kind for change in self.role_changes]
        if "create-role" in kinds:
            labels.append("create role")
        if "set-boundary" in kinds and "create-role" not in kinds:
            labels.append("set permissions boundary")
        if "update-trust" in kinds:
            labels += self._trust_labels()
        policy_kinds = {
            "set-max-session",
            "attach-policy",
            "detach-policy",
            "put-inline-policy",
            "delete-inline-policy",
        }
        if "create-role" not in kinds and policy_kinds & set(kinds):
            labels.append("repair policy")
        if "tag-owner" in kinds:
            labels.append("adopt role")
        if self.registration is not None:
            if self.registration.action == "create":
                labels.append("register")
            elif self.registration.action == "update":
                labels.append(f"update registration ({', '.join(self.registration.differences)})")
        labels += ["delete duplicate registration"] * len(self.deletable_duplicates)
        return labels

    def _trust_labels(self) -> list[str]:
        """Say which part of the trust drifted: principal, external ID, or only its shape."""
        if self.trust is None or self.spec is None:
            return ["repair trust"]
        labels = []
        if not self.trust.principals or set(self.trust.principals) - {
            self.spec.trusted_principal,
            self.spec.trusted_account_id,
        }:
            labels.append("repair trust (principal)")
        if set(self.trust.external_ids) != {self.spec.external_id}:
            labels.append("repair trust (external ID)")
        return labels or ["repair trust"]

    @property
    def changes(self) -> bool:
        """Whether applying this plan writes anything (a refused or held plan writes nothing)."""
        return bool(self.actions()) and not (self.error or self.refused or self.held)

    @property
    def cloudcraft_writes(self) -> int:
        writes = len(self.deletable_duplicates)
        if self.registration is not None and self.registration.action != "none":
            writes += 1
        return writes


@dataclass(frozen=True)
class OrphanPlan:
    """A Cloudcraft registration whose AWS account is not an in-scope member of the Organization."""

    registration_id: str
    name: str
    aws_account_id: str | None
    owned: bool
    reason: str

    @property
    def action(self) -> str:
        return "deregister orphan" if self.owned else "orphan not owned by Gatehouse: left alone"


@dataclass
class FleetPlan:
    accounts: list[AccountPlan] = field(default_factory=list)
    orphans: list[OrphanPlan] = field(default_factory=list)
    offboarding: str = "deregister"
    registrations: list[Any] = field(default_factory=list)  # Cloudcraft's list, as this plan saw it
    refusal: str = ""  # Cloudcraft's answer was refused for the whole Organization: no account was read

    @property
    def refused(self) -> dict[str, str]:
        """Account → why Cloudcraft's answer was refused for it."""
        return {p.account.account_id: p.refused for p in self.accounts if p.refused}

    @property
    def held(self) -> dict[str, str]:
        """Account → why its principal change waits for the settings' pin."""
        return {p.account.account_id: p.held for p in self.accounts if p.held}

    @property
    def deregistrations(self) -> list[OrphanPlan]:
        return [orphan for orphan in self.orphans if orphan.owned and self.offboarding != "keep"]

    @property
    def changes(self) -> bool:
        return any(plan.changes for plan in self.accounts) or bool(self.deregistrations)

    def summary(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for plan in self.accounts:
            if plan.error:
                counts["error"] += 1
            elif not plan.scope.in_scope:
                counts["out of scope"] += 1
            elif not plan.changes and not plan.refused and not plan.held:
                counts["nothing to do"] += 1
            for action in plan.actions():
                if not action.startswith("error"):
                    counts[action.split(" (")[0]] += 1
        counts["deregister orphan"] += len(self.deregistrations)
        return +counts

    def cloudcraft_writes(self) -> int:
        return sum(plan.cloudcraft_writes for plan in self.accounts) + len(self.deregistrations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "refusal": self.refusal or None,
            "summary": dict(self.summary()),
            "accounts": [
                {
                    "account_id": plan.account.account_id,
                    "name": plan.account.name,
                    "ou_path": plan.account.ou_path,
                    "in_scope": plan.scope.in_scope,
                    "scope_reason": plan.scope.reason,
                    "actions": plan.actions(),
                    "error": plan.error or None,
                    "refused": plan.refused or None,
                    "held": plan.held or None,
                }
                for plan in self.accounts
            ],
            "orphans": [
                {
                    "registration_id": o.registration_id,
                    "name": o.name,
                    "aws_account_id": o.aws_account_id,
                    "owned": o.owned,
                    "action": o.action if self.offboarding != "keep" else "keep (offboarding=keep)",
                }
                for o in self.orphans
            ],
        }


REFUSED = "refused"
PRINCIPAL_CHANGE_HELD = "principal change held"


def desired_role(settings: Settings, identity: CloudcraftIdentity, organization: OrganizationIds) -> RoleSpec:
    """The role Cloudcraft's answers ask for, once they pass the guards; UnsafeAnswer when they do not.

    Every path that writes a role (arrival, reconciliation, worker, CLI apply) derives it here, so every one of
    them refuses the same answers: a trust principal that is not a 12-digit account outside `organization` (or
    not the pinned one), an unusable external ID, an inline policy that grants more than reads.
    """
    account_id = check_trusted_account(
        identity.account_id,
        pin=settings.cloudcraft_aws_account_id,
        recorded=identity.recorded_account_id,
        organization=organization,
    )
    external_id = check_external_id(identity.external_id)
    if settings.permission_mode == "read-only-access":
        return RoleSpec(settings.cloudcraft_role_name, account_id, external_id)
    check_policy(identity.policy, source=f"Cloudcraft's {settings.permission_mode} policy document")
    return RoleSpec(
        settings.cloudcraft_role_name,
        account_id,
        external_id,
        managed_policy_arns=(),
        inline_policy=identity.policy,
    )


def refusal(settings: Settings, identity: CloudcraftIdentity, organization: OrganizationIds) -> str:
    """Why Cloudcraft's answer is refused whatever the account, or "" when it passes: checked before entering any
    account, so a refused answer costs no AssumeRole either."""
    try:
        desired_role(settings, identity, organization)
    except UnsafeAnswer as exc:
        return str(exc)
    return ""


def desired_registration(settings: Settings, account: MemberAccount, role_arn: str) -> DesiredRegistration:
    return DesiredRegistration(
        aws_account_id=account.account_id,
        name=settings.registration_name(account.account_id, account.name, account.ou_path),
        role_arn=role_arn,
        read_access=settings.read_access or None,
        write_access=settings.write_access or None,
    )


def plan_account(
    account: MemberAccount,
    settings: Settings,
    identity: CloudcraftIdentity,
    view: MemberView | None,
    *,
    registrations: Sequence[Registration] | RegistrationIndex,
    owned: dict[str, str],
    organization: OrganizationIds,
) -> AccountPlan:
    """The plan for one account. `view` is None when the account is out of scope (nothing was read).

    `organization`: the accounts known to be this Organization's (the account itself is added); a trust
    principal among them is refused.
    """
    scope = check_scope(account, settings)
    if not scope.in_scope or view is None:
        return AccountPlan(account, scope)
    try:
        spec = desired_role(settings, identity, organization.including([account.account_id]))
    except UnsafeAnswer as exc:
        return AccountPlan(account, scope, refused=str(exc))
    if view.error:
        return AccountPlan(account, scope, error=view.error)
    trust = read_trust(view.role.trust_policy, spec) if view.role is not None else None
    if trust is not None:
        held = principal_change(trust.principals, spec.trusted_account_id, pin=settings.cloudcraft_aws_account_id)
        if held:
            return AccountPlan(
                account, scope, access_role=view.access_role, spec=spec, role_exists=True, trust=trust, held=held
            )
    desired = desired_registration(settings, account, spec.role_arn(account.account_id))
    index = registrations if isinstance(registrations, RegistrationIndex) else RegistrationIndex(registrations)
    mine = index.of(account.account_id)
    registration = plan_registration(mine, desired)
    by_id = {reg.id: reg for reg in mine}
    deletable = tuple(
        dup
        for dup in registration.duplicates
        if owned.get(account.account_id) == dup or by_id[dup].role_arn == desired.role_arn
    )
    return AccountPlan(
        account,
        scope,
        access_role=view.access_role,
        spec=spec,
        role_exists=view.role is not None,
        role_changes=tuple(plan_role_changes(spec, view.role)),
        trust=trust,
        desired=desired,
        registration=registration,
        deletable_duplicates=deletable,
        foreign_duplicates=tuple(dup for dup in registration.duplicates if dup not in deletable),
    )


def plan_orphans(
    members: Sequence[MemberAccount], settings: Settings, registrations: Sequence[Registration], owned: dict[str, str]
) -> list[OrphanPlan]:
    """Registrations of accounts that left the Organization or its scope."""
    by_id = {member.account_id: member for member in members}
    owned_ids = set(owned.values())
    orphans = []
    for reg in registrations:
        member = by_id.get(reg.aws_account_id or "")
        if member is None:
            reason = "the AWS account is not a member of the Organization"
        else:
            scope = check_scope(member, settings)
            if scope.in_scope:
                continue
            reason = scope.reason
        orphans.append(OrphanPlan(reg.id, reg.name, reg.aws_account_id, reg.id in owned_ids, reason))
    return orphans
