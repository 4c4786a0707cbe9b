"""Onboarding one account: scope check, Cloudcraft role in the account, registration (outcome.py reports it)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from chalicelib.adapters.idempotency import OnceGuard
from chalicelib.adapters.lease import AccountLeases
from chalicelib.adapters.ledger import Ledger
from chalicelib.core.clock import Clock
from chalicelib.core.errors import AccessRoleUnavailableError, GatehouseError
from chalicelib.core.models import MemberAccount
from chalicelib.core.retry import Jitter
from chalicelib.core.settings import Settings
from chalicelib.onboarding.outcome import AccountOutcome
from chalicelib.planning.executor import Executor
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import (
    PRINCIPAL_CHANGE_HELD,
    Cloudcraft,
    CloudcraftIdentity,
    MemberView,
    plan_account,
    refusal,
)
from chalicelib.planning.scope import check_scope, management_refusal

log = logging.getLogger("gatehouse.onboarding")


def onboarding_key(account_id: str) -> str:
    """The do-once key of converging an account: the account, not the event, so an arrival and a move of one
    account (the usual vending flow) are one job, and a duplicate of either replays its result."""
    return f"onboard#{account_id}"


def forget_onboarding(once: OnceGuard, account_id: str) -> None:
    """An account was offboarded: its saved onboarding result no longer holds, so its next arrival or move
    onboards it again instead of replaying that result."""
    try:
        once.forget(onboarding_key(account_id))
    except GatehouseError as exc:  # the saved result expires within the hour anyway
        log.warning("could not forget the onboarding of %s: %s", account_id, exc)


class Directory(Protocol):
    def describe(self, account_id: str) -> MemberAccount | None: ...
    def management_account_id(self) -> str: ...
    def organization_ids(self) -> OrganizationIds: ...


class Onboarding:
    """Brings one account to the desired state: the fleet plan's logic, for the one account an event names."""

    def __init__(
        self,
        *,
        settings: Settings,
        directory: Directory,
        member_session: Callable[[str], Any],
        cloudcraft: Cloudcraft,
        identity: Callable[[], CloudcraftIdentity],
        ledger: Ledger,
        clock: Clock,
        leases: AccountLeases,
        jitter: Jitter = random.uniform,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._member_session = member_session
        self._cloudcraft = cloudcraft
        self._identity = identity
        self._ledger = ledger
        self._clock = clock
        self._leases = leases
        self._executor = Executor(cloudcraft, ledger, settings, clock, jitter)

    def onboard(self, account_id: str, *, trigger: str = "", event_time: datetime | None = None) -> AccountOutcome:
        """Admit the account, then converge it: the whole job for one account."""
        admitted = self.admit(account_id, trigger=trigger)
        if isinstance(admitted, AccountOutcome):
            return admitted
        return self.converge(admitted, trigger=trigger, event_time=event_time)

    def admit(self, account_id: str, *, trigger: str = "") -> MemberAccount | AccountOutcome:
        """The account as Organizations knows it when Gatehouse may write it; otherwise the result saying why not.

        Reads only. Whatever named the account (an event, a work item), only Organizations decides who it is.
        """
        account = self._directory.describe(account_id)
        if account is None:
            return AccountOutcome(
                account_id, "failed", "the account is not a member of this Organization", trigger=trigger
            )
        result = AccountOutcome(
            account_id, "skipped", "", account_name=account.name, ou_path=account.ou_path, trigger=trigger
        )
        if account.is_management or account_id == self._directory.management_account_id():
            result.outcome, result.reason = "refused", management_refusal(account_id)
            return result
        scope = check_scope(account, self._settings)
        if not scope.in_scope:
            result.reason = scope.reason
            return result
        return account

    def converge(
        self, account: MemberAccount, *, trigger: str = "", event_time: datetime | None = None
    ) -> AccountOutcome:
        """Create or repair the role and the registration of an admitted account, holding the account's lease
        from the first read to the last write: another job writing it first is waited for, then seen."""
        settings = self._settings
        account_id = account.account_id
        result = AccountOutcome(
            account_id, "unchanged", "", account_name=account.name, ou_path=account.ou_path, trigger=trigger
        )
        # Cloudcraft's answer first: a refused one is reported without entering the account at all.
        identity = self._identity()
        organization = self._directory.organization_ids().including([account_id])
        refused = refusal(settings, identity, organization)
        if refused:
            result.outcome, result.reason = "failed", refused
            return result

        try:
            member = self._member_session(account_id)
        except AccessRoleUnavailableError as exc:
            age = (self._clock.now() - event_time).total_seconds() if event_time else 0.0
            if age < settings.give_up_after_minutes * 60:
                raise  # hand the wait back to EventBridge's retry instead of sleeping in Lambda
            result.outcome, result.reason = "failed", f"{exc} (gave up {age / 60:.0f} minutes after the event)"
            return result

        iam = member.iam()
        with self._leases.hold(account_id, trigger or "onboarding"):
            observed = iam.read_role(
                settings.cloudcraft_role_name, inline_documents=settings.permission_mode != "read-only-access"
            )
            owned = self._ledger.lookup(account_id)
            plan = plan_account(
                account,
                settings,
                identity,
                MemberView(member.access_role, observed),
                registrations=self._cloudcraft.list_accounts(),
                owned={account_id: owned} if owned else {},
                organization=organization,
            )
            result.access_role = member.access_role
            if plan.refused or plan.held:
                result.outcome = "failed"
                result.reason = plan.refused or f"{PRINCIPAL_CHANGE_HELD}: {plan.held}"
                return result
            executed = self._executor.execute(plan, iam)
        result.role_arn = plan.desired.role_arn if plan.desired else ""
        result.role_changes = executed.role_changes
        result.registration, result.cloudcraft_id = executed.registration, executed.registration_id
        if executed.registration == "created" or not plan.role_exists:
            result.outcome = "onboarded"
        elif plan.changes:
            result.outcome = "repaired"
        result.reason = "; ".join(plan.actions()) or "role and registration already in order"
        if plan.foreign_duplicates:
            result.reason += f"; other registrations of this account left alone: {', '.join(plan.foreign_duplicates)}"
        return result
