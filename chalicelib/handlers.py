"""Lambda entry points: parse the event, run one job, report. app.py only wires these to triggers."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited
from chalicelib.adapters.lease import AccountBusyError
from chalicelib.adapters.workqueue import new_run_id
from chalicelib.container import Services, get_services
from chalicelib.core.errors import AccessRoleUnavailableError, ConfigurationError, EventParseError, GatehouseError
from chalicelib.core.notifications import Notification, NotificationError, publish_reliably
from chalicelib.core.observability import logger, metrics, tracer
from chalicelib.events import event_id_of, parse_arrival, parse_departure
from chalicelib.fleet.failures import BatchFailures, FailedItem, batch_failure_notification
from chalicelib.fleet.report import ReportLocation, failed_run_notification, run_notification
from chalicelib.fleet.worker import FleetWorker
from chalicelib.lastresort import last_resort
from chalicelib.onboarding.arrival import forget_onboarding, onboarding_key
from chalicelib.onboarding.outcome import OFFBOARDING_KIND, ONBOARDING_KIND, AccountOutcome, outcome_notification
from chalicelib.onboarding.waiting import WaitingOnboarding, next_delay
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
@last_resort("on_account_arrival")
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
    resumed: bool = False,
) -> dict[str, Any]:
    """Onboard one account; notify exactly once per outcome.

    Admission (a member? the management account? in scope?) is true of this event: its result is saved per
    event. Converging is one job per account (`onboarding_key`): an arrival and a move of one account, or two
    deliveries of one event, run it once; it runs under the account's lease, so a job of another kind writing
    the account first (the fleet worker, `gatehouse apply`, an offboarding) is waited for and then seen.
    While the account's access role refuses `AssumeRole`, the wait goes to the work queue
    (`wait_for_access_role`); `resumed` says this call is the fleet worker taking such a wait up again.
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
            if isinstance(exc, CloudcraftRateLimited) and services.hand_back_rate_limits:
                raise  # the fleet worker defers its item until Retry-After
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
        return wait_for_access_role(
            services,
            account_id,
            first_seen=event_time,
            reason=str(exc),
            give_up_after_minutes=settings.give_up_after_minutes,
            resumed=resumed,
        )
    except AccountBusyError as exc:
        metrics.add_metric(name="AccountBusyRetries", unit=MetricUnit.Count, value=1)
        logger.warning("another job keeps the account; handing the retry back to Lambda", reason=str(exc))
        raise
    return outcome


def wait_for_access_role(
    services: Services,
    account_id: str,
    *,
    first_seen: datetime | None,
    reason: str,
    give_up_after_minutes: int,
    resumed: bool,
) -> dict[str, Any]:
    """Hand the wait for an account's access role to a delayed work item (chalicelib/onboarding/waiting.py).

    Raises when SQS refuses the item: the invocation fails, and Lambda's retries, then the dead-letter queue
    and its alarm, take over. An event's first wait is one per account (do-once): a second arrival event of the
    same account (Organizations' and Control Tower's for one vended account) does not start a second chain.
    """
    now = services.clock.now()
    item = WaitingOnboarding(account_id, first_seen or now)
    delay = next_delay(item.first_seen, now, give_up_after_minutes)

    def send() -> dict[str, Any]:
        message_id = services.work_queue.send_later(item.to_message(), delay)
        logger.warning(
            "access role not assumable yet; the onboarding waits in the work queue",
            reason=reason,
            retry_in_seconds=delay,
            work_item=message_id,
        )
        return {
            "outcome": "waiting",
            "account_id": account_id,
            "reason": reason,
            "first_seen": item.first_seen.isoformat(),
            "retry_in_seconds": delay,
            "work_item": message_id,
        }

    if resumed:
        return send()
    waiting: dict[str, Any] = services.once.run_once(f"wait#{account_id}", send)
    return waiting


def _rejected(event: Any, problem: EventParseError, kind: str) -> AccountOutcome:
    """A malformed event: nothing is done, and the notification says which event and what is wrong."""
    return AccountOutcome("", "rejected", f"malformed event {event_id_of(event)}: {problem}", event_kind=kind)


def _report(services: Services, result: AccountOutcome) -> dict[str, Any]:
    """Log, count and notify one outcome."""
    alarming = ("failed", "creation-failed", "rejected", "refused")
    log = logger.error if result.outcome in alarming else logger.info
    log(f"{result.event_kind} outcome", outcome=result.outcome, account_id=result.account_id, reason=result.reason)
    metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
    # Raises when SNS keeps refusing: inside a do-once job the job is then not recorded as done, and retried.
    publish_reliably(services.notifier, outcome_notification(result), services.clock)
    return result.to_dict()


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@last_resort("on_account_departure")
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
@last_resort("reconcile")
def handle_reconcile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled safety net: survey the Organization once and queue it in pages for reconcile_page, which
    plans them, queues their repairs and sends the run's one summary (fleet/fanout.py)."""
    from chalicelib.fleet.fanout import start_run

    services = get_services()
    run_id = new_run_id()
    logger.append_keys(run_id=run_id)
    _stage_dimension(services)
    try:
        settings = services.settings()
        survey = services.fleet(settings).survey()
        started = start_run(
            survey,
            settings,
            run_id=run_id,
            runs=services.runs,
            plan_queue=services.plan_queue,
            work_queue=services.work_queue if settings.reconcile == "repair" else None,
            now=int(services.clock.now().timestamp()),
            page_size=services.config.plan_page_size,
        )
    except GatehouseError as exc:
        logger.exception("reconciliation could not start")
        _publish(services, failed_run_notification(str(exc), run_id=run_id))
        metrics.add_metric(name="ReconciliationFailed", unit=MetricUnit.Count, value=1)
        return {"outcome": "failed", "reason": str(exc), "run_id": run_id}
    logger.info("reconciliation started", accounts=started.accounts, pages=started.pages, queued=started.queued)
    return {"outcome": "started", "run_id": run_id, "accounts": started.accounts, "pages": started.pages}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@last_resort("reconcile_page")
def handle_reconcile_page(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS: plan one page of a reconciliation run (see handle_reconcile); the page that completes the run sends
    its summary. A failure is told once per message and the message retried; after the last retry the plan DLQ
    keeps it (alarmed), and the run's missing summary fires the heartbeat alarm too."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.fleet.fanout import PageError, parse_page_item, plan_page
    from chalicelib.fleet.service import read_member

    services = get_services()
    _stage_dimension(services)
    services.once.register_lambda_context(context)
    failures = BatchFailures()
    retry: list[dict[str, str]] = []
    done: list[dict[str, Any]] = []
    records = [SQSRecord(raw) for raw in event.get("Records") or [] if isinstance(raw, dict)]
    for record in records:
        try:
            item = parse_page_item(record.body)
            logger.append_keys(run_id=item.run_id, page=item.page)
            settings = services.settings()
            sessions = services.member_session(settings, attempts=1)
            tally = plan_page(
                item,
                settings,
                runs=services.runs,
                tags=services.directory.tags,
                read=functools.partial(read_member, sessions, settings),
                ledger=services.ledger,
                work_queue=services.work_queue if settings.reconcile == "repair" else None,
                now=int(services.clock.now().timestamp()),
            )
            done.append({"page": item.page, "accounts": tally.accounts, "completed": None})
            done[-1]["completed"] = _complete_run(services, item.run_id, context)
        except PageError as exc:  # not a page Gatehouse queued: told, consumed (retrying cannot make it one)
            logger.error("plan-queue message rejected", reason=str(exc))
            failures.add(record.message_id, record.body, record.attributes.approximate_receive_count, exc)
        except Exception as exc:
            logger.exception("page could not be planned")
            failures.add(record.message_id, record.body, record.attributes.approximate_receive_count, exc)
            retry.append({"itemIdentifier": record.message_id})
    _report_failed_items(services, failures, len(records), context)
    return {"batchItemFailures": retry, "pages": done}


def _stage_dimension(services: Services) -> None:
    if services.config.stage:
        # Stages can share an account: each stage's heartbeat alarm watches its own reconciliations only.
        metrics.add_dimension(name="stage", value=services.config.stage)


def _complete_run(services: Services, run_id: str, context: Any) -> dict[str, Any] | None:
    """When every part of the run has reported: add them up and publish the run's one summary (once per run,
    whichever invocation gets there). None while parts are missing."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    from chalicelib.fleet.fanout import add_up

    tally = add_up(services.runs, run_id)
    if tally is None:
        return None
    header = services.runs.header(run_id) or {}

    def publish() -> dict[str, Any]:
        location = ReportLocation.of_function(_log_group(context), run_id)
        notification = run_notification(tally, repair=header.get("repair") is True, run_id=run_id, location=location)
        _publish(services, notification)
        for action, count in tally.summary.items():
            metrics.add_metric(name="Reconcile" + action.title().replace(" ", ""), unit=MetricUnit.Count, value=count)
        metrics.add_metric(name=RECONCILIATIONS_COMPLETED, unit=MetricUnit.Count, value=1)
        return {"outcome": tally.outcome, "summary": dict(tally.summary), "queued": tally.queued}

    try:
        completed: dict[str, Any] = services.once.run_once(f"reconcile-summary#{run_id}", publish)
    except IdempotencyAlreadyInProgressError:
        return None  # another page is sending it
    return completed


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@last_resort("fleet_worker")
def handle_work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS worker: bring one account in line (or deregister one orphan) per message; report partial failures."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    services = get_services()
    failures = BatchFailures()
    records = [SQSRecord(raw) for raw in event.get("Records") or [] if isinstance(raw, dict)]
    try:
        settings = services.settings()  # invalid settings fail the whole batch: SQS retries, then the DLQ keeps it
    except ConfigurationError as exc:
        for record in records:
            failures.add(record.message_id, record.body, record.attributes.approximate_receive_count, exc)
        _report_failed_items(services, failures, len(records), context)
        raise
    services.once.register_lambda_context(context)
    services.leases.register_lambda_context(context)

    def resume(item: WaitingOnboarding, message_id: str) -> dict[str, Any]:
        first_seen = item.first_seen.isoformat()
        return onboard(
            services,
            item.account_id,
            trigger=f"access role wait (work item {message_id}, first seen {first_seen})",
            event_id=f"access-role-wait-{first_seen}",  # one chain of waits: its failure is told once
            event_time=item.first_seen,
            context=context,
            resumed=True,
        )

    worker = FleetWorker(services, settings, resume_onboarding=resume)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        try:
            return worker.process(record.body, record.receipt_handle, record.message_id)
        except Exception as exc:
            failures.add(record.message_id, record.body, record.attributes.approximate_receive_count, exc)
            raise

    # Report every failure item by item, even when all fail: deferred (429) items keep their own visibility.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    _report_failed_items(services, failures, len(records), context)
    return dict(response)


def _report_failed_items(services: Services, failures: BatchFailures, batch_size: int, context: Any) -> None:
    """One message for the batch's failed items (none when all succeeded). A report that cannot be published is
    logged and counted (NotificationsFailed), and must not fail the items that succeeded."""

    def first_failure(item: FailedItem) -> bool:
        """Told once per message: its first failure, whichever delivery (an item deferred first fails later)."""
        ran: list[bool] = []

        def tell() -> dict[str, bool]:
            ran.append(True)
            return {"told": True}

        try:
            services.once.run_once(f"failure-told#{item.message_id}", tell)
        except Exception:  # the record cannot be read or written: telling twice beats never
            return True
        return bool(ran)

    items = failures.to_report(first_failure)
    if not items:
        return
    metrics.add_metric(name="WorkItemsFailed", unit=MetricUnit.Count, value=len(items))
    request_id = str(getattr(context, "aws_request_id", "") or "unknown")
    notification = batch_failure_notification(items, batch_size=batch_size, request_id=request_id)
    try:
        publish_reliably(services.notifier, notification, services.clock)
    except NotificationError:
        logger.exception("could not report the batch's failed items", failed=[item.message_id for item in items])


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@last_resort("on_proton_connection")
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
        _publish(services, malformed_event_notification(event, str(exc)))
        return {"result": "rejected", "detail": str(exc)}
    services.once.register_lambda_context(context)
    outcome = services.approvals.process(change.connection_id, "event")
    metrics.add_metric(name=f"Connections{outcome.result.title().replace('-', '')}", unit=MetricUnit.Count, value=1)
    return outcome.to_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@last_resort("proton_sweep")
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


def _publish(services: Services, notification: Notification) -> None:
    """Telling ops is part of the job: raises when SNS keeps refusing, so the platform retries the invocation."""
    publish_reliably(services.notifier, notification, services.clock)


def _log_group(context: Any) -> str:
    """This function's log group (where the reconciliation's full report is)."""
    group = getattr(context, "log_group_name", "")
    if isinstance(group, str) and group:
        return group
    name = getattr(context, "function_name", "")
    return f"/aws/lambda/{name}" if isinstance(name, str) and name else "/aws/lambda/gatehouse-<stage>-reconcile"
