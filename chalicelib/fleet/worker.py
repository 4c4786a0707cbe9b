"""The fleet worker's job for one SQS message: bring an account in line, or deregister an owned orphan."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalicelib.container import Services
from chalicelib.core.errors import AccessRoleUnavailableError
from chalicelib.core.settings import Settings
from chalicelib.onboarding.waiting import WaitingOnboarding, is_waiting_item, parse_waiting_item
from chalicelib.planning.plan import OrphanPlan, plan_account
from chalicelib.planning.scope import check_scope

log = logging.getLogger("gatehouse.worker")


# Takes up an onboarding that waits for the account's access role: the arrival handler's own onboarding job.
ResumeOnboarding = Callable[[WaitingOnboarding, str], dict[str, Any]]


class FleetWorker:
    def __init__(
        self, services: Services, settings: Settings, *, resume_onboarding: ResumeOnboarding | None = None
    ) -> None:
        self._services = services
        self._settings = settings
        self._resume_onboarding = resume_onboarding
        services.hand_back_rate_limits = True  # this container defers rate-limited messages, never waits
        self._fleet = services.fleet(settings)
        self._executor = services.executor(settings)

    def process(self, body: str, receipt_handle: str, message_id: str) -> dict[str, Any]:
        """Raises to mark the message failed; a 429 first pushes its next delivery past Retry-After."""
        from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited

        if is_waiting_item(body):
            return self._onboard(body, receipt_handle, message_id)
        try:
            message = json.loads(body)
            kind = message["kind"]
            run_id = str(message.get("run_id") or message_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"message {message_id} is not a Gatehouse work item: {exc}") from None
        try:
            if kind == "account":
                account_id = str(message["account_id"])
                key = f"work#{run_id}#{account_id}"
                done: dict[str, Any] = self._services.once.run_once(key, lambda: self._account(account_id, message))
                return done
            if kind == "deregister":
                return self._deregister(message)
        except CloudcraftRateLimited as exc:
            self._services.work_queue.defer(receipt_handle, exc.retry_after)
            log.warning("rate limited; message %s comes back in %.0fs", message_id, exc.retry_after)
            raise
        raise ValueError(f"message {message_id} has an unknown kind {kind!r}")

    def _onboard(self, body: str, receipt_handle: str, message_id: str) -> dict[str, Any]:
        """An onboarding waiting for its access role: run the onboarding job again. It onboards, reports the
        give-up, or queues the next wait itself; a 429 defers this item until Retry-After."""
        from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited

        item = parse_waiting_item(body, self._services.clock.now())  # WaitingItemError: reported, retried, DLQ
        if self._resume_onboarding is None:
            raise ValueError(f"message {message_id}: this worker cannot take up an onboarding")
        try:
            return self._resume_onboarding(item, message_id)
        except CloudcraftRateLimited as exc:
            self._services.work_queue.defer(receipt_handle, exc.retry_after)
            log.warning("rate limited; message %s comes back in %.0fs", message_id, exc.retry_after)
            raise

    def _account(self, account_id: str, message: dict[str, Any]) -> dict[str, Any]:
        from chalicelib.adapters.cloudcraft.models import CloudcraftAccount

        services, settings = self._services, self._settings
        account = services.directory.describe(account_id)
        if account is None or not check_scope(account, settings).in_scope:
            return {"account_id": account_id, "outcome": "skipped", "reason": "no longer an in-scope member"}
        view = self._fleet.read_member(account_id)
        if view.error:
            raise AccessRoleUnavailableError(view.error)
        registrations = [CloudcraftAccount.from_api(item) for item in message.get("registrations") or []]
        owned = services.ledger.lookup(account_id)
        if owned and owned not in {registration.id for registration in registrations}:
            # Registered since the plan was made (an onboarding event, say): plan on fresh data, never POST twice.
            client = services.cloudcraft(settings)
            registrations = [r for r in client.list_accounts() if r.aws_account_id == account_id]
        plan = plan_account(
            account,
            settings,
            services.cloudcraft_identity(settings),
            view,
            registrations=registrations,
            owned={account_id: owned} if owned else {},
        )
        member = services.member_session(settings, attempts=1)(account_id)
        result = self._executor.execute(plan, member.iam())
        return {"account_id": account_id, "outcome": "applied", "actions": plan.actions(), **result.__dict__}

    def _deregister(self, message: dict[str, Any]) -> dict[str, Any]:
        registration_id = str(message["registration_id"])
        aws_account_id = message.get("aws_account_id")
        owned = self._services.ledger.lookup(str(aws_account_id)) if aws_account_id else None
        if owned != registration_id:
            # Ownership is checked again at the moment of deleting: the plan may be hours old.
            return {"registration_id": registration_id, "outcome": "skipped", "reason": "not owned by Gatehouse"}
        orphan = OrphanPlan(
            registration_id, str(message.get("name", "")), aws_account_id, True, str(message.get("reason"))
        )
        self._executor.deregister(orphan)
        return {"registration_id": registration_id, "outcome": "deregistered"}
