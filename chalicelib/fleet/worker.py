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
            _check_fields(message)
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
        why_not = self._why_not_deregister(registration_id, aws_account_id)
        if why_not:
            return {"registration_id": registration_id, "outcome": "skipped", "reason": why_not}
        orphan = OrphanPlan(
            registration_id, str(message.get("name", "")), aws_account_id, True, str(message.get("reason"))
        )
        self._executor.deregister(orphan)
        return {"registration_id": registration_id, "outcome": "deregistered"}

    def _why_not_deregister(self, registration_id: str, aws_account_id: Any) -> str:
        """What made it an orphan to delete, checked again at the moment of deleting: the plan may be hours old,
        and the account may have moved back into scope (and been onboarded) since."""
        if self._settings.offboarding == "keep":
            return "settings.offboarding is 'keep'"
        if not aws_account_id or self._services.ledger.lookup(str(aws_account_id)) != registration_id:
            return "not owned by Gatehouse"
        account = self._services.directory.describe(str(aws_account_id))
        if account is not None and check_scope(account, self._settings).in_scope:
            return "the account is in scope again"
        return ""


def _check_fields(message: dict[str, Any]) -> None:
    """A queue message is outside input: check the fields its kind needs before anything is read or written."""
    from chalicelib.events import ACCOUNT_ID

    if message["kind"] == "account":
        if not ACCOUNT_ID.match(str(message.get("account_id"))):
            raise ValueError(f"account_id is {message.get('account_id')!r}, not a 12-digit AWS account ID")
        registrations = message.get("registrations") or []
        if not isinstance(registrations, list) or not all(isinstance(item, dict) for item in registrations):
            raise ValueError("registrations must be a list of Cloudcraft account objects")
    elif message["kind"] == "deregister" and not (
        isinstance(message.get("registration_id"), str) and message["registration_id"]
    ):
        raise ValueError("registration_id is missing")
