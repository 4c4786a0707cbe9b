"""The fleet worker's job for one SQS message: bring an account in line, or deregister its owned orphan.

A message says which account and which action, nothing more. Anyone who can send to the queue can therefore
ask for no more than the live state asks for: the worker looks the account up again, refuses the management
account, holds the account's lease, re-reads the role, the ledger and Cloudcraft, and re-plans before it writes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.lease import AccountBusyError
from chalicelib.adapters.workqueue import WorkItem, WorkItemError, parse_work_item
from chalicelib.container import Services
from chalicelib.core.errors import RoleNotVerifiableYet
from chalicelib.core.notifications import notify_safely
from chalicelib.core.observability import metrics
from chalicelib.core.settings import Settings
from chalicelib.fleet.service import AccountWork
from chalicelib.onboarding.arrival import forget_onboarding
from chalicelib.onboarding.outcome import OFFBOARDING_KIND, ONBOARDING_KIND, AccountOutcome, outcome_notification
from chalicelib.onboarding.waiting import WaitingOnboarding, is_waiting_item, parse_waiting_item

log = logging.getLogger("gatehouse.worker")
LIST_REUSE_SECONDS = 120.0

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

    def _recent_registrations(self) -> list[Any]:
        """Cloudcraft's list, read at most once every two minutes by this container, not once per item: at 20 requests a
        minute a list per item would halve the accounts registered per hour. Each item's job lists again whenever
        its own checks say this one is stale (another job held the account's lease first, or the ledger names a
        registration the list lacks), so Gatehouse's own registrations are never missed."""
        now = self._services.clock.monotonic()
        recent = self._services.recent_registrations
        if recent is None or now - recent[0] > LIST_REUSE_SECONDS:
            recent = (now, list(self._services.cloudcraft(self._settings).list_accounts()))
            self._services.recent_registrations = recent
        return recent[1]

    def process(self, body: str, receipt_handle: str, message_id: str) -> dict[str, Any]:
        """Raises to mark the message failed (SQS delivers it again); a 429 first pushes its next delivery past
        Retry-After. A malformed message is reported and consumed: retrying cannot make it valid."""
        from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited

        if is_waiting_item(body):
            return self._onboard(body, receipt_handle, message_id)
        try:
            item = parse_work_item(body)
        except WorkItemError as exc:
            return self._rejected(message_id, exc)
        key = f"work#{item.run_id}#{item.account_id}#{item.action}"
        try:
            done: dict[str, Any] = self._services.once.run_once(key, lambda: self._run(item, message_id))
        except CloudcraftRateLimited as exc:
            self._services.work_queue.defer(receipt_handle, exc.retry_after)
            log.warning("rate limited; message %s comes back in %.0fs", message_id, exc.retry_after)
            raise
        except RoleNotVerifiableYet as exc:
            self._services.work_queue.defer(receipt_handle, exc.retry_after)
            log.info("message %s: %s", message_id, exc)
            raise
        except AccountBusyError as exc:
            metrics.add_metric(name="AccountBusyRetries", unit=MetricUnit.Count, value=1)
            log.warning("message %s handed back: %s", message_id, exc)
            raise
        return done

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

    def _run(self, item: WorkItem, message_id: str) -> dict[str, Any]:
        job = f"fleet_worker {item.action} (run {item.run_id}, message {message_id})"
        if item.action == "apply":
            work = self._fleet.converge_account(item.account_id, job=job, registrations=self._recent_registrations)
        else:
            work = self._fleet.deregister_orphan(item.account_id, job=job, registrations=self._recent_registrations)
            if work.outcome == "deregistered":
                forget_onboarding(self._services.once, item.account_id)
        if work.outcome == "refused":
            self._report(item, work, message_id)
        log.info("work item %s: %s %s: %s", message_id, item.action, work.outcome, work.reason)
        return {"action": item.action, "run_id": item.run_id, **work.to_dict()}

    def _report(self, item: WorkItem, work: AccountWork, message_id: str) -> None:
        """Ops are told once per run and reason: a hostile Cloudcraft answer met by a thousand items of one run
        is one message (naming the first account), not a thousand; every refusal is counted."""
        kind = ONBOARDING_KIND if item.action == "apply" else OFFBOARDING_KIND
        result = AccountOutcome(
            item.account_id,
            "refused",
            work.reason,
            trigger=f"work item {message_id} ({item.action}, run {item.run_id})",
            event_kind=kind,
        )
        metrics.add_metric(name="ActionsRefused", unit=MetricUnit.Count, value=1)
        digest = hashlib.sha256(work.reason.encode()).hexdigest()[:16]
        self._services.once.run_once(
            f"refused#{item.run_id}#{digest}",
            lambda: {"notified": notify_safely(self._services.notifier, outcome_notification(result))},
        )

    def _rejected(self, message_id: str, problem: WorkItemError) -> dict[str, Any]:
        log.error("malformed work item %s: %s", message_id, problem)
        metrics.add_metric(name="WorkItemsRejected", unit=MetricUnit.Count, value=1)
        result = AccountOutcome(
            "",
            "rejected",
            f"malformed work item {message_id}: {problem}. It was removed from the queue and not retried",
            trigger=f"work item {message_id}",
            event_kind=ONBOARDING_KIND,
        )
        notify_safely(self._services.notifier, outcome_notification(result))
        return {"outcome": "rejected", "message_id": message_id, "reason": str(problem)}
