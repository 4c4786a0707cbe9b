"""Which Cloudcraft registration an AWS account should have, compared with what Cloudcraft holds (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class Registration(Protocol):
    """The fields of a Cloudcraft account registration this module reads."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role_arn(self) -> str: ...
    @property
    def read_access(self) -> tuple[str, ...] | None: ...
    @property
    def write_access(self) -> tuple[str, ...] | None: ...
    @property
    def aws_account_id(self) -> str | None: ...
    @property
    def created_at(self) -> str | None: ...


@dataclass(frozen=True)
class DesiredRegistration:
    aws_account_id: str
    name: str
    role_arn: str
    # None: Gatehouse does not manage team access (settings name no teams), so it keeps what is there.
    read_access: tuple[str, ...] | None
    write_access: tuple[str, ...] | None


@dataclass(frozen=True)
class RegistrationPlan:
    action: Literal["create", "update", "none"]
    target_id: str | None  # the registration to update or keep
    differences: tuple[str, ...] = ()  # field names that differ, for explanations
    duplicates: tuple[str, ...] = ()  # other registrations of the same AWS account
    # The kept registration's team access: an update (a PUT replaces the whole object) must carry it over
    # where Gatehouse does not manage access.
    kept_read_access: tuple[str, ...] | None = None
    kept_write_access: tuple[str, ...] | None = None


class RegistrationIndex:
    """Cloudcraft's list indexed by AWS account once per plan, so planning N accounts against R registrations costs
    N + R, not N x R."""

    def __init__(self, registrations: Sequence[Registration]) -> None:
        self._by_account: dict[str, list[Registration]] = {}
        for registration in registrations:
            if registration.aws_account_id:
                self._by_account.setdefault(registration.aws_account_id, []).append(registration)

    def of(self, aws_account_id: str) -> list[Registration]:
        """Every registration of one AWS account, matched on the role ARN's account, never on the name."""
        return list(self._by_account.get(aws_account_id, ()))


def registrations_of(accounts: Sequence[Registration], aws_account_id: str) -> list[Registration]:
    """Every registration of one AWS account, matched on the role ARN's account, never on the name."""
    return [account for account in accounts if account.aws_account_id == aws_account_id]


def plan_registration(existing: Sequence[Registration], desired: DesiredRegistration) -> RegistrationPlan:
    """Create when the AWS account has no registration; otherwise keep one and update it where it differs.

    The one kept is the registration already using the desired role ARN, else the oldest: an account
    registered earlier under another name (e.g. through Datadog) is updated, never registered twice.
    """
    mine = registrations_of(existing, desired.aws_account_id)
    if not mine:
        return RegistrationPlan("create", None)
    keep = sorted(mine, key=lambda reg: (reg.role_arn != desired.role_arn, reg.created_at or "", reg.id))[0]
    differences = []
    if keep.name != desired.name:
        differences.append("name")
    if keep.role_arn != desired.role_arn:
        differences.append("roleArn")
    if desired.read_access is not None and set(keep.read_access or ()) != set(desired.read_access):
        differences.append("readAccess")
    if desired.write_access is not None and set(keep.write_access or ()) != set(desired.write_access):
        differences.append("writeAccess")
    duplicates = tuple(reg.id for reg in mine if reg.id != keep.id)
    return RegistrationPlan(
        "update" if differences else "none",
        keep.id,
        tuple(differences),
        duplicates,
        kept_read_access=keep.read_access,
        kept_write_access=keep.write_access,
    )
