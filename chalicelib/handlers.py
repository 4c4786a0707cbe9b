"""Lambda entry points: parse the event, run one job, report. app.py only wires these to triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.lease import AccountBusyError
from chalicelib.adapters.workqueue import new_run_id, work_messages
from chalicelib.container import Services, get_services
from chalicelib.core.errors import AccessRoleUnavailableError, ConfigurationError, EventParseError, GatehouseError
from chalicelib.core.notifications import notify_safely
from chalicelib.core.observability import logger, metrics, tracer
from chalicelib.events import event_id_of, parse_arrival, parse_departure
from chalicelib.fleet.service import reconciliation_notification
from chalicelib.fleet.worker import FleetWorker
from chalicelib.onboarding.arrival import forget_onboarding, onboarding_key
from chalicelib.onboarding.outcome import OFFBOARDING_KIND, ONBOARDING_KIND, AccountOutcome, outcome_notification
from chalicelib.planning.scope import check_scope

OUTCOME_METRICS = {
    "onboarded": "AccountsOnboarded",
    "repaired": "AccountsRepaired",
    "unchanged": "AccountsUnchanged",
    "skipped": "AccountsSkipped",
    "failed": "OnboardingFailed",
    "creation-failed": "AccountCreationFailed",
    "rejected": "EventsRejected",
    "refused": "ActionsRefused",
    "offboarded": "AccountsOffboarded",
    "kept": "AccountsKept",
}
# One per reconciliation that planned and queued its repairs, with the reconciliation's other metrics (dimensions
# service and stage). The stage's heartbeat alarm (infra/resources.yaml) fires when none has completed for 26 hours:
# a schedule that stopped, a crash, settings it cannot read.
RECONCILIATIONS_COMPLETED = "ReconciliationsCompleted"


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_account_arrival(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An account was created, vended, updated or joined: connect it to Cloudcraft."""
    services = get_services()
    try:
        arrival = parse_arrival(event)
    except EventParseError as exc:
        return _report(services, _rejected(event, exc, ONBOARDING_KIND))
    trigger = f"{arrival.kind} event {arrival.event_id}"
    if not arrival.succeeded:
        reason = f"{arrival.kind} reported state {arrival.state}"
        if arrival.failure_reason:
            reason += f": {arrival.failure_reason}"
        result = AccountOutcome(arrival.account_id or "", "creation-failed", reason, trigger=trigger)
        if arrival.account_name:
            result.account_name = arrival.account_name
        return _report(services, result)
    assert arrival.account_id is not None  # parse_arrival guarantees it on success
    return onboard(
        services,
        arrival.account_id,
        trigger=trigger,
        event_id=arrival.event_id,
        event_time=arrival.event_time,
        context=context,
    )


class _Unsaved(Exception):
    """A converge job's failure: true of this attempt only, so it must not stand for the account for an hour."""

    def __init__(self, result: AccountOutcome) -> None:
        super().__init__(result.reason)
        self.result = result


def onboard(
    services: Services,
    account_id: str,
    *,
    trigger: str,
    event_id: str,
    event_time: datetime | None,
    context: Any,
) -> dict[str, Any]:
    """Onboard one account; notify exactly once per outcome.

    Admission (a member? the management account? in scope?) is true of this event: its result is saved per
    event. Converging is one job per account (`onboarding_key`): an arrival and a move of one account, or two
    deliveries of one event, run it once; it runs under the account's lease, so a job of another kind writing
    the account first (the fleet worker, `gatehouse apply`, an offboarding) is waited for and then seen.
    """
    logger.append_keys(account_id=account_id)
    try:
        settings = services.settings()
    except ConfigurationError as exc:
        # Nothing is written with settings that cannot be trusted; the reconciliation catches up later.
        return _report(services, AccountOutcome(account_id, "failed", f"{exc}. Nothing was changed.", trigger=trigger))
    services.once.register_lambda_context(context)
    services.leases.register_lambda_context(context)
    try:
        onboarding = services.onboarding(settings)  # reads the API key: a key refused is this event's failure
        admitted = onboarding.admit(account_id, trigger=trigger)
    except GatehouseError as exc:
        logger.exception("onboarding failed")
        return _report(services, AccountOutcome(account_id, "failed", str(exc), trigger=trigger))
    if isinstance(admitted, AccountOutcome):
        done: dict[str, Any] = services.once.run_once(
            f"admit#{account_id}#{event_id}", lambda: _report(services, admitted)
        )
        return done

    def job() -> dict[str, Any]:
        started = services.clock.monotonic()
        try:
            result = onboarding.converge(admitted, trigger=trigger, event_time=event_time)
        except (AccessRoleUnavailableError, AccountBusyError):
            raise
        except GatehouseError as exc:
            logger.exception("onboarding failed")
            result = AccountOutcome(account_id, "failed", str(exc), trigger=trigger)
        metrics.add_metric(
            name="OnboardingDuration",
            unit=MetricUnit.Milliseconds,
            value=(services.clock.monotonic() - started) * 1000,
        )
        if result.outcome == "failed":
            raise _Unsaved(result)
        return _report(services, result)

    try:
        outcome: dict[str, Any] = services.once.run_once(onboarding_key(account_id), job)
    except _Unsaved as unsaved:
        # Not saved as the account's job (a later event or retry may succeed), but told once per event.
        failed = unsaved.result
        reported: dict[str, Any] = services.once.run_once(
            f"failed#{account_id}#{event_id}", lambda: _report(services, failed)
        )
        return reported
    except AccessRoleUnavailableError as exc:
        metrics.add_metric(name="AccessRoleRetries", unit=MetricUnit.Count, value=1)
        logger.warning("access role not assumable yet; handing the retry back to Lambda", reason=str(exc))
        raise
    except AccountBusyError as exc:
        metrics.add_metric(name="AccountBusyRetries", unit=MetricUnit.Count, value=1)
        logger.warning("another job keeps the account; handing the retry back to Lambda", reason=str(exc))
        raise
    return outcome


def _rejected(event: Any, problem: EventParseError, kind: str) -> AccountOutcome:
    """A malformed event: nothing is done, and the notification says which event and what is wrong."""
    return AccountOutcome("", "rejected", f"malformed event {event_id_of(event)}: {problem}", event_kind=kind)


def _report(services: Services, result: AccountOutcome) -> dict[str, Any]:
    """Log, count and notify one outcome."""
    alarming = ("failed", "creation-failed", "rejected", "refused")
    log = logger.error if result.outcome in alarming else logger.info
    log(f"{result.event_kind} outcome", outcome=result.outcome, account_id=result.account_id, reason=result.reason)
    metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
    notify_safely(services.notifier, outcome_notification(result))
    return result.to_dict()


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_account_departure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An account was closed, removed, left, or moved: offboard it if it is no longer in scope."""
    services = get_services()
    try:
        departure = parse_departure(event)
    except EventParseError as exc:
        return _report(services, _rejected(event, exc, OFFBOARDING_KIND))
    trigger = f"{departure.kind} event {departure.event_id}"
    if departure.state != "SUCCEEDED":
        return {"outcome": "ignored", "reason": f"{departure.kind} did not succeed ({departure.state})"}
    try:
        settings = services.settings()
    except ConfigurationError as exc:
        result = AccountOutcome(departure.account_id, "failed", f"{exc}. Nothing was changed.", trigger=trigger)
        result.event_kind = OFFBOARDING_KIND
        return _report(services, result)

    why = {
        "MoveAccount": "the account moved out of the OUs in scope",
        "CloseAccountResult": "the account was closed",
        "CloseAccount": "the account was closed",
    }.get(departure.kind, "the account left the Organization")
    if departure.kind == "MoveAccount":
        account = services.directory.describe(departure.account_id)
        if account is not None and check_scope(account, settings).in_scope:
            # Moved within scope, or into it: converge like an arrival (no change when already in order).
            return onboard(
                services,
                departure.account_id,
                trigger=trigger,
                event_id=departure.event_id,
                event_time=None,
                context=context,
            )

    def job() -> dict[str, Any]:
        try:
            result = services.offboarding(settings).offboard(departure, trigger=trigger, why=why)
        except AccountBusyError:
            raise
        except GatehouseError as exc:
            logger.exception("offboarding failed")
            result = AccountOutcome(departure.account_id, "failed", str(exc), trigger=trigger)
            result.event_kind = OFFBOARDING_KIND
        if result.outcome not in ("failed", "refused"):
            forget_onboarding(services.once, departure.account_id)
        return _report(services, result)

    services.once.register_lambda_context(context)
    services.leases.register_lambda_context(context)
    try:
        done: dict[str, Any] = services.once.run_once(f"offboard#{departure.account_id}#{departure.event_id}", job)
    except AccountBusyError as exc:
        metrics.add_metric(name="AccountBusyRetries", unit=MetricUnit.Count, value=1)
        logger.warning("another job keeps the account; handing the retry back to Lambda", reason=str(exc))
        raise
    return done


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_reconcile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled safety net: plan the whole Organization, queue the repairs, send one summary."""
    services = get_services()
    if services.config.stage:
        # Stages can share an account: each stage's heartbeat alarm watches its own reconciliations only.
        metrics.add_dimension(name="stage", value=services.config.stage)
    try:
        settings = services.settings()
        fleet = services.fleet(settings)
        plan = fleet.plan()
    except GatehouseError as exc:
        logger.exception("reconciliation could not plan")
        notify_safely(services.notifier, reconciliation_notification(None, str(exc), queued=0, repair=False))
        metrics.add_metric(name="ReconciliationFailed", unit=MetricUnit.Count, value=1)
        return {"outcome": "failed", "reason": str(exc)}
    queued = 0
    repair = settings.reconcile == "repair"
    if repair and plan.changes:
        fleet.record_principal(plan)
        messages = work_messages(plan, new_run_id())
        queued = services.work_queue.send(messages)
    summary = plan.summary()
    for action, count in summary.items():
        metrics.add_metric(name="Reconcile" + action.title().replace(" ", ""), unit=MetricUnit.Count, value=count)
    notification = reconciliation_notification(plan, "", queued=queued, repair=repair)
    notify_safely(services.notifier, notification)
    metrics.add_metric(name=RECONCILIATIONS_COMPLETED, unit=MetricUnit.Count, value=1)
    return {"outcome": notification.attributes["outcome"], "summary": dict(summary), "queued": queued}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS worker: bring one account in line (or deregister one orphan) per message; report partial failures."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    services = get_services()
    settings = services.settings()  # invalid settings fail the whole batch: SQS retries, then the DLQ keeps it
    services.once.register_lambda_context(context)
    services.leases.register_lambda_context(context)
    worker = FleetWorker(services, settings)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        return worker.process(record.body, record.receipt_handle, record.message_id)

    # Report every failure item by item, even when all fail: deferred (429) items keep their own visibility.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_proton_connection(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Proton environment-account connection changed status: decide it if it is pending."""
    from chalicelib.adapters.proton import parse_status_change
    from chalicelib.approvals.notifications import malformed_event_notification

    services = get_services()
    try:
        change = parse_status_change(event)
    except EventParseError as exc:
        logger.error("malformed Proton event", reason=str(exc))
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
        notify_safely(services.notifier, malformed_event_notification(event, str(exc)))
        return {"result": "rejected", "detail": str(exc)}
    services.once.register_lambda_context(context)
    outcome = services.approvals.process(change.connection_id, "event")
    metrics.add_metric(name=f"Connections{outcome.result.title().replace('-', '')}", unit=MetricUnit.Count, value=1)
    return outcome.to_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handle_proton_sweep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Events are best-effort: every few minutes, decide every pending connection the events missed."""
    services = get_services()
    services.once.register_lambda_context(context)
    report = services.approvals.sweep()
    metrics.add_metric(name="ConnectionsPending", unit=MetricUnit.Count, value=report.listed)
    return {
        "listed": report.listed,
        "outcomes": [outcome.to_dict() for outcome in report.outcomes],
        "errors": report.errors,
    }
