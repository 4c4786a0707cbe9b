"""Offboarding: an account left the Organization or its scope; undo what Gatehouse did there, and only that."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.adapters.lease import AccountLeases
from chalicelib.adapters.ledger import Ledger
from chalicelib.core.errors import GatehouseError
from chalicelib.core.settings import Settings
from chalicelib.events import AccountDeparture
from chalicelib.onboarding.arrival import Directory
from chalicelib.onboarding.outcome import OFFBOARDING_KIND, AccountOutcome
from chalicelib.planning.executor import Executor
from chalicelib.planning.plan import Cloudcraft, OrphanPlan
from chalicelib.planning.scope import management_refusal


class Offboarding:
    def __init__(
        self,
        *,
        settings: Settings,
        directory: Directory,
        member_session: Callable[[str], Any],
        cloudcraft: Cloudcraft,
        ledger: Ledger,
        executor: Executor,
        leases: AccountLeases,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._member_session = member_session
        self._cloudcraft = cloudcraft
        self._ledger = ledger
        self._executor = executor
        self._leases = leases

    def offboard(self, departure: AccountDeparture, *, trigger: str, why: str) -> AccountOutcome:
        """Deregister the account's registration Gatehouse owns, and per settings delete the role it owns."""
        account_id = departure.account_id
        result = AccountOutcome(account_id, "offboarded", why, trigger=trigger, event_kind=OFFBOARDING_KIND)
        if account_id == self._directory.management_account_id():
            result.outcome, result.reason = "refused", management_refusal(account_id)
            return result
        mode = self._settings.offboarding
        if mode == "keep":
            result.outcome, result.reason = "kept", f"{why}; settings.offboarding is 'keep'"
            return result
        with self._leases.hold(account_id, trigger or "offboarding"):
            return self._offboard(account_id, result, why)

    def _offboard(self, account_id: str, result: AccountOutcome, why: str) -> AccountOutcome:
        mode = self._settings.offboarding
        owned_id = self._ledger.lookup(account_id)
        registrations = [a for a in self._cloudcraft.list_accounts() if a.aws_account_id == account_id]
        notes = [why]
        for registration in registrations:
            if registration.id != owned_id:
                notes.append(f"registration {registration.id} ({registration.name}) is not Gatehouse's: left alone")
                continue
            self._executor.deregister(OrphanPlan(registration.id, registration.name, account_id, True, why))
            result.deregistered.append(registration.id)
        if not result.deregistered:
            notes.append("no Cloudcraft registration of Gatehouse's to remove")

        if mode == "deregister-and-delete-role":
            notes.append(self._delete_role(account_id, result))
        if not result.deregistered and not result.role_deleted:
            result.outcome = "unchanged"
        result.reason = "; ".join(notes)
        return result

    def _delete_role(self, account_id: str, result: AccountOutcome) -> str:
        name = self._settings.cloudcraft_role_name
        try:
            member = self._member_session(account_id)
            iam = member.iam()
            role = iam.read_role(name, inline_documents=False)
            if role is None:
                return f"no role {name} in the account"
            if not role.owned:
                return f"role {name} is not tagged as Gatehouse's: left alone"
            iam.delete_role(role)
        except GatehouseError as exc:
            # A closed or removed account is usually unreachable: nothing more can be done from here.
            return f"role {name} not deleted: {exc}"
        result.role_deleted = True
        return f"role {name} deleted"
