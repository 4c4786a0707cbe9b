"""Gatehouse's Lambda functions and their triggers. Wiring only: each handler hands its event to chalicelib.

Handlers import chalicelib.handlers on first call, not at module import: a cold start then pays for
boto3, pydantic and requests only when an event arrives, and importing app creates no client and reads nothing.
The deployment template (infra/) replaces the plain EventBridge rules with ones that have a retry policy and a
dead-letter queue, points the worker at the stage's queue, and sets the schedules' rates.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Rate, SQSEvent

from chalicelib.events import ARRIVAL_PATTERN, DEPARTURE_PATTERN, PROTON_CONNECTION_PATTERN

app = Chalice(app_name="gatehouse", configure_logs=False)  # Powertools owns logging


@app.on_cw_event(ARRIVAL_PATTERN, name="on_account_arrival")
def on_account_arrival(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_account_arrival

    result: dict[str, Any] = handle_account_arrival(event.to_dict(), event.context)
    return result


@app.on_cw_event(DEPARTURE_PATTERN, name="on_account_departure")
def on_account_departure(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_account_departure

    result: dict[str, Any] = handle_account_departure(event.to_dict(), event.context)
    return result


@app.schedule(Rate(1, unit=Rate.DAYS), name="reconcile")
def reconcile(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_reconcile

    result: dict[str, Any] = handle_reconcile(event.to_dict(), event.context)
    return result


@app.on_sqs_message(queue="gatehouse-work", batch_size=5, name="fleet_worker")
def fleet_worker(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_work

    result: dict[str, Any] = handle_work(event.to_dict(), event.context)
    return result


@app.on_cw_event(PROTON_CONNECTION_PATTERN, name="on_proton_connection")
def on_proton_connection(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_proton_connection

    result: dict[str, Any] = handle_proton_connection(event.to_dict(), event.context)
    return result


@app.schedule(Rate(15, unit=Rate.MINUTES), name="proton_sweep")
def proton_sweep(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_proton_sweep

    result: dict[str, Any] = handle_proton_sweep(event.to_dict(), event.context)
    return result


@app.on_sqs_message(queue="gatehouse-plan", batch_size=1, name="reconcile_page")
def reconcile_page(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_reconcile_page

    result: dict[str, Any] = handle_reconcile_page(event.to_dict(), event.context)
    return result
