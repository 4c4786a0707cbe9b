"""Whether an account is in Gatehouse's scope, and why not (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import Settings


@dataclass(frozen=True)
class ScopeDecision:
    in_scope: bool
    reason: str


def management_refusal(account_id: str) -> str:
    """Why no job writes the management account, whatever asked for it (an event, a work item, an operator)."""
    return (
        f"{account_id} is the Organization's management account: Gatehouse never onboards or offboards it "
        "(no access role leads into it, and what is registered for it is not Gatehouse's to change)"
    )


def check_scope(account: MemberAccount, settings: Settings) -> ScopeDecision:
    if account.is_management:
        return ScopeDecision(False, "it is the management account, which no access role leads into")
    if not account.is_active:
        return ScopeDecision(False, f"the account's status is {account.status}, not ACTIVE")
    if account.account_id in settings.exclude_accounts:
        return ScopeDecision(False, "the account is listed in settings.exclude_accounts")
    tag = settings.opt_out_tag
    if tag is not None and tag.key in account.tags and (tag.value is None or account.tags[tag.key] == tag.value):
        return ScopeDecision(False, f"the account opts out with the tag {tag.key}={account.tags[tag.key]}")
    if not settings.scope_ous:
        return ScopeDecision(True, "the whole Organization is in scope")
    for entry in settings.scope_ous:
        if entry in account.ou_keys:
            return ScopeDecision(True, f"the account is under {entry}, which is in settings.scope_ous")
    where = account.ou_path or "the root"
    return ScopeDecision(False, f"the account sits in {where}, outside settings.scope_ous")
