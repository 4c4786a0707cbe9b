"""What Gatehouse accepts from Cloudcraft before writing it into a member account: the trust principal and the
external ID (pure). The inline policy has its own guard, policy_guard.py.

Cloudcraft's answers, or those of whoever answers in its place, become trust policies in every account: an
answer naming an account of this Organization, `*`, or a malformed value is refused, never written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.core.errors import GatehouseError

ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
# STS's own constraint on ExternalId (AssumeRole): 2 to 1224 characters of [\w+=,.@:/-].
EXTERNAL_ID = re.compile(r"[A-Za-z0-9_+=,.@:/-]{2,1224}", re.ASCII)
_PRINCIPAL_ACCOUNT = re.compile(r"arn:aws[a-z-]*:iam::([0-9]{12}):.+", re.ASCII)


class UnsafeAnswer(GatehouseError):
    """Cloudcraft (or whoever answers as it) asked for something Gatehouse will not write. Nothing was written."""


def shown(value: object, limit: int = 60) -> str:
    """A value from an answer, quoted and cut short: enough to recognise it, never a wall of text."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class OrganizationIds:
    """The accounts a trust principal must never be, as far as the caller knows them: the management account and
    the members (every member for the fleet; for one arrival, the account itself and those already listed)."""

    management: str = ""
    members: frozenset[str] = frozenset()

    def including(self, account_ids: Iterable[str]) -> OrganizationIds:
        extra = frozenset(account_ids) - self.members
        # Itself when nothing is new: a plan asks this once per account, and copying every member each time
        # would make planning quadratic in the size of the Organization.
        return OrganizationIds(self.management, self.members | extra) if extra else self

    def role_of(self, account_id: str) -> str | None:
        if account_id and account_id == self.management:
            return "the Organization's management account"
        if account_id in self.members:
            return "an account of this Organization"
        return None


def check_trusted_account(
    answer: object, *, pin: str | None, organization: OrganizationIds, recorded: str | None = None
) -> str:
    """Cloudcraft's AWS account ID, if it may become a trust principal; UnsafeAnswer otherwise.

    `recorded`: the account the roles Gatehouse already wrote trust. Without a pin, an answer naming another
    account is refused for new roles too, so a forged or mistaken answer cannot start a second principal in the
    fleet: only the settings (the pin) move it.
    """
    if not isinstance(answer, str) or not ACCOUNT_ID.fullmatch(answer):
        raise UnsafeAnswer(
            f"Cloudcraft's iamParameters.accountId {shown(answer)} is not a 12-digit AWS account ID: "
            "no role was written. If Cloudcraft is answering correctly, report it to Cloudcraft support"
        )
    role = organization.role_of(answer)
    if role is not None:
        raise UnsafeAnswer(
            f"Cloudcraft's iamParameters.accountId {answer} is {role}: a role trusting it would let that account "
            "into every member account, so no role was written. Check the API key and cloudcraft_base_url"
        )
    if pin is not None and answer != pin:
        raise UnsafeAnswer(
            f"Cloudcraft's iamParameters.accountId {answer} is not the pinned cloudcraft_aws_account_id {pin}: "
            "no role was written. If Cloudcraft really moved to another AWS account, set "
            f"cloudcraft_aws_account_id to {answer} in the settings"
        )
    if pin is None and recorded is not None and answer != recorded:
        raise UnsafeAnswer(
            f"Cloudcraft's iamParameters.accountId {answer} is not {recorded}, the account every role Gatehouse "
            "wrote so far trusts: no role was written. If Cloudcraft really moved to another AWS account, set "
            f"cloudcraft_aws_account_id to {answer} in the settings"
        )
    return answer


def check_external_id(answer: object) -> str:
    """The external ID, if STS would accept it as one and it cannot be mistaken for none; UnsafeAnswer otherwise."""
    if not isinstance(answer, str) or not EXTERNAL_ID.fullmatch(answer):
        length = len(answer) if isinstance(answer, str) else None
        raise UnsafeAnswer(
            "Cloudcraft's iamParameters.externalId is not a usable external ID "
            f"({'a ' + type(answer).__name__ if length is None else f'{length} characters'}; expected 2 to 1224 "
            "characters of letters, digits and _+=,.@:/-): no role was written"
        )
    return answer


def trusted_accounts(principals: Iterable[str]) -> set[str]:
    """The AWS account IDs a trust policy's AWS principals name (`*` stays `*`)."""
    found = set()
    for principal in principals:
        if principal == "*" or ACCOUNT_ID.fullmatch(principal):
            found.add(principal)
        else:
            match = _PRINCIPAL_ACCOUNT.fullmatch(principal)
            if match:
                found.add(match.group(1))
    return found


def principal_change(current_principals: Iterable[str], answer: str, *, pin: str | None) -> str | None:
    """Why a role trusting `current_principals` must not be moved to `answer` by itself, or None when it may.

    A role that already trusts the answer's account, trusts anyone (`*`, which the answer narrows) or no AWS
    account at all (like a new role) may be repaired. Otherwise the answer would hand existing roles to another
    account: that waits until the settings pin the new account (`cloudcraft_aws_account_id`), so one forged
    answer cannot move the fleet.
    """
    trusted = trusted_accounts(current_principals)
    if not trusted or answer in trusted or "*" in trusted or pin == answer:
        return None
    now = ", ".join(sorted(trusted))
    return (
        f"the role trusts {now} but Cloudcraft now answers {answer}: a change of Cloudcraft's account is not "
        f"applied to existing roles by itself. If Cloudcraft really moved, set cloudcraft_aws_account_id to {answer} "
        "in the settings"
    )
