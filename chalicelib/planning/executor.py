"""Carrying plans out, the only part of planning that writes: each step is idempotent, so a re-run converges."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.adapters.ledger import Ledger
from chalicelib.core.clock import Clock
from chalicelib.core.errors import RoleNotVerifiableYet
from chalicelib.core.retry import Backoff, Jitter
from chalicelib.core.settings import Settings
from chalicelib.planning.plan import AccountPlan, Cloudcraft, OrphanPlan
from chalicelib.planning.registration import DesiredRegistration
from chalicelib.planning.role import RoleChange, RoleSpec

log = logging.getLogger("gatehouse.plan")
# Waits while Cloudcraft cannot verify a just-written role yet: 5 s, 10 s, 20 s, then 40 s at most (before jitter).
REGISTER_BACKOFF_BASE = 5.0
REGISTER_BACKOFF_CAP = 40.0
# How long a worker that does not wait gives a just-written role before registering it: IAM usually propagates a
# new role in 10 to 30 s. Cloudcraft verifies the role on POST, and a POST it cannot verify yet is a wasted request.
PROPAGATION_WAIT = 20.0


class RoleWriter(Protocol):
    def apply(self, spec: RoleSpec, changes: Sequence[RoleChange]) -> None: ...


@dataclass
class ExecutionResult:
    role_changes: list[str] = field(default_factory=list)
    registration: str = "none"  # created | updated | unchanged | none
    registration_id: str | None = None
    deleted_duplicates: list[str] = field(default_factory=list)


TRUST_WRITES = frozenset({"create-role", "update-trust"})


class Executor:
    """Carries plans out: role first (Cloudcraft verifies it), then the registration, then the ledger."""

    def __init__(
        self,
        cloudcraft: Cloudcraft,
        ledger: Ledger,
        settings: Settings,
        clock: Clock,
        jitter: Jitter = random.uniform,
        *,
        hand_back_waits: bool = False,
    ) -> None:
        """`hand_back_waits`: never sleep for IAM propagation; raise RoleNotVerifiableYet instead, before the first
        POST for a role written in this run, and after a POST Cloudcraft could not verify (the fleet worker)."""
        self._hand_back_waits = hand_back_waits
        self._cloudcraft = cloudcraft
        self._ledger = ledger
        self._settings = settings
        self._clock = clock
        self._jitter = jitter

    @property
    def hands_back_waits(self) -> bool:
        return self._hand_back_waits

    def execute(self, plan: AccountPlan, iam: RoleWriter) -> ExecutionResult:
        result = ExecutionResult()
        if plan.error or plan.refused or plan.held:
            return result  # a refused answer or a held principal change writes nothing, whoever calls
        if plan.spec is None or plan.desired is None or plan.registration is None:
            return result
        if plan.role_changes:
            iam.apply(plan.spec, plan.role_changes)
            result.role_changes = [str(change) for change in plan.role_changes]
            if any(change.kind in TRUST_WRITES for change in plan.role_changes):
                # The guards passed this principal (pinned, or the one of record, or the first): later answers
                # naming another account are refused until the settings pin it.
                self._ledger.record_principal(plan.spec.trusted_account_id)
        desired, registration = plan.desired, plan.registration
        if registration.action == "create":
            if self._hand_back_waits and plan.role_changes:
                # The role was just written: registered on the item's next delivery, with one POST Cloudcraft can
                # verify by then, and no sleep here.
                raise RoleNotVerifiableYet(desired.role_arn, PROPAGATION_WAIT)
            created = self._register(desired, fresh_role=bool(plan.role_changes))
            result.registration, result.registration_id = "created", str(created.id)
        elif registration.action == "update":
            assert registration.target_id is not None
            self._cloudcraft.update_account(
                registration.target_id,
                name=desired.name,
                role_arn=desired.role_arn,
                read_access=registration.kept_read_access if desired.read_access is None else desired.read_access,
                write_access=registration.kept_write_access if desired.write_access is None else desired.write_access,
            )
            result.registration, result.registration_id = "updated", registration.target_id
        else:
            result.registration, result.registration_id = "unchanged", registration.target_id
        for duplicate in plan.deletable_duplicates:
            self._cloudcraft.delete_account(duplicate)
            result.deleted_duplicates.append(duplicate)
        if result.registration_id:
            self._ledger.record(plan.account.account_id, result.registration_id)
        return result

    def deregister(self, orphan: OrphanPlan) -> None:
        """Delete a registration Gatehouse owns; the caller has checked ownership."""
        from chalicelib.adapters.cloudcraft.errors import CloudcraftNotFound

        with contextlib.suppress(CloudcraftNotFound):  # already gone: the goal is reached
            self._cloudcraft.delete_account(orphan.registration_id)
        if orphan.aws_account_id:
            self._ledger.forget(orphan.aws_account_id)

    def _register(self, desired: DesiredRegistration, *, fresh_role: bool) -> Any:
        """POST the registration; Cloudcraft answers 400 while a just-written role has not propagated."""
        from chalicelib.adapters.cloudcraft.errors import CloudcraftBadRequest

        attempts = self._settings.register_attempts if fresh_role and not self._hand_back_waits else 1
        backoff = Backoff(REGISTER_BACKOFF_BASE, REGISTER_BACKOFF_CAP, attempts, self._jitter)
        for attempt in range(1, attempts + 1):
            try:
                return self._cloudcraft.create_account(
                    name=desired.name,
                    role_arn=desired.role_arn,
                    region=self._settings.validation_region,
                    read_access=desired.read_access,
                    write_access=desired.write_access,
                )
            except CloudcraftBadRequest:
                if backoff.exhausted(attempt):
                    raise
                delay = backoff.delay(attempt)
                log.info("Cloudcraft could not verify the new role yet; retrying in %.0fs", delay)
                self._clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
