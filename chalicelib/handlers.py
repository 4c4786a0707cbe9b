"""Lambda entry points: parse the event, run one job, report. app.py only wires these to triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.container import Services, get_services
from chalicelib.errors import AccessRoleUnavailableError, ConfigurationError, EventParseError, GatehouseError
from chalicelib.events import parse_arrival
from chalicelib.observability import logger, metrics, tracer
from chalicelib.onboarding import OnboardingResult, notify_safely, onboarding_notification

OUTCOME_METRICS = {
    "onboarded": "AccountsOnboarded",
    "repaired": "AccountsRepaired",
    "unchanged": "AccountsUnchanged",
    "skipped": "AccountsSkipped",
    "failed": "OnboardingFailed",
    "creation-failed": "AccountCreationFailed",
    "rejected": "EventsRejected",
}


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_account_arrival(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An account was created, vended, updated or joined: connect it to Cloudcraft."""
    services = get_services()
    try:
        arrival = parse_arrival(event)
    except EventParseError as exc:
        event_id = event.get("id", "without id") if isinstance(event, dict) else "without id"
        return _report(services, OnboardingResult("", "rejected", f"malformed event {event_id}: {exc}"))
    trigger = f"{arrival.kind} event {arrival.event_id}"
    if not arrival.succeeded:
        reason = f"{arrival.kind} reported state {arrival.state}"
        if arrival.failure_reason:
            reason += f": {arrival.failure_reason}"
        result = OnboardingResult(arrival.account_id or "", "creation-failed", reason, trigger=trigger)
        if arrival.account_name:
            result.account_name = arrival.account_name
        return _report(services, result)
    assert arrival.account_id is not None  # parse_arrival guarantees it on success
    return onboard(services, arrival.account_id, trigger=trigger, event_time=arrival.event_time, context=context)


def onboard(
    services: Services, account_id: str, *, trigger: str, event_time: datetime | None, context: Any
) -> dict[str, Any]:
    """Onboard one account at most once per delivery window; notify exactly once per outcome."""
    logger.append_keys(account_id=account_id)
    try:
        settings = services.settings()
    except ConfigurationError as exc:
        # Nothing is written with settings that cannot be trusted; the reconciliation catches up later.
        return _report(
            services, OnboardingResult(account_id, "failed", f"{exc}. Nothing was changed.", trigger=trigger)
        )

    def job() -> dict[str, Any]:
        started = services.clock.monotonic()
        try:
            result = services.onboarding(settings).onboard(account_id, trigger=trigger, event_time=event_time)
        except AccessRoleUnavailableError:
            raise
        except GatehouseError as exc:
            logger.exception("onboarding failed")
            result = OnboardingResult(account_id, "failed", str(exc), trigger=trigger)
        metrics.add_metric(
            name="OnboardingDuration",
            unit=MetricUnit.Milliseconds,
            value=(services.clock.monotonic() - started) * 1000,
        )
        return _report(services, result)

    services.once.register_lambda_context(context)
    try:
        outcome: dict[str, Any] = services.once.run_once(f"onboard#{account_id}", job)
    except AccessRoleUnavailableError as exc:
        metrics.add_metric(name="AccessRoleRetries", unit=MetricUnit.Count, value=1)
        logger.warning("access role not assumable yet; handing the retry back to EventBridge", reason=str(exc))
        raise
    return outcome


def _report(services: Services, result: OnboardingResult) -> dict[str, Any]:
    """Log, count and notify one outcome."""
    log = logger.error if result.outcome in ("failed", "creation-failed", "rejected") else logger.info
    log("onboarding outcome", outcome=result.outcome, account_id=result.account_id, reason=result.reason)
    metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
    notify_safely(services.notifier, onboarding_notification(result))
    return result.to_dict()
