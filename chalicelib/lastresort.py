"""The last resort around every Lambda handler: an unexpected exception is told to ops before the platform retries.

Gatehouse's own errors (GatehouseError) are handled where they happen: reported as an outcome, or raised on
purpose for the platform to retry, where an alarm watches. Anything else (DynamoDB unavailable inside a library,
MemoryError, RecursionError, a KeyError from a bug) would otherwise show only as a function error. The wrapper
publishes one `failed` notification naming the function, the event and the error's class, never the error's
message (it may carry data that must stay in the logs), and re-raises so the platform's retry and dead-letter
queue still apply.

Once per failure, not once per retry: the alert is a do-once job keyed on the function, the event ID and the error
class, so Lambda's retries of the same event (about 1 and 3 minutes later) find it done. When the do-once table
itself is what fails, each container remembers what it alerted on instead; a retry landing in another container
then alerts again, so that case may be told up to three times, never zero.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from chalicelib.core.errors import GatehouseError
from chalicelib.core.notifications import Notification, NotificationError, publish_reliably

log = logging.getLogger("gatehouse.lastresort")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
FAILURE_KIND = "function-failure"
REMEMBERED = 1000  # alerts a container remembers (for when the do-once table is down)

_alerted: OrderedDict[str, None] = OrderedDict()
_alerted_lock = threading.Lock()


def last_resort(function: str) -> Callable[[Handler], Handler]:
    """Wrap the handler of `function` (its name in app.py)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def guarded(event: dict[str, Any], context: Any) -> dict[str, Any]:
            try:
                return handler(event, context)
            except Exception as exc:
                if is_unexpected(exc):
                    log.exception("%s failed unexpectedly on event %s", function, event_id(event))
                    alert(function, event, context, exc)
                raise

        return guarded

    return decorate


def is_unexpected(exc: BaseException) -> bool:
    """Not one of Gatehouse's errors, and not a duplicate delivery finding its twin at work (retried by design)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    return not isinstance(exc, GatehouseError | IdempotencyAlreadyInProgressError)


def event_id(event: Any) -> str:
    """The EventBridge event's ID, or the SQS batch's first message ID (and how many more)."""
    if isinstance(event, dict):
        if isinstance(event.get("id"), str) and event["id"]:
            return str(event["id"])[:128]
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            first = str(records[0].get("messageId") or "?")[:128]
            return first if len(records) == 1 else f"{first} (and {len(records) - 1} more messages)"
    return "without id"


def failure_notification(function: str, event: Any, context: Any, error_class: str) -> Notification:
    deployed = str(getattr(context, "function_name", "") or function)
    request_id = str(getattr(context, "aws_request_id", "") or "unknown")
    which = event_id(event)
    text = "\n".join(
        [
            f"The Lambda function {deployed} ({function}) failed unexpectedly on event {which}: {error_class}.",
            "",
            "The error's message is not repeated here; the function's CloudWatch Logs have it, with the "
            f"traceback, under request ID {request_id}.",
            "Lambda retries the event (twice for EventBridge events and schedules; SQS work items come back after "
            "the visibility timeout); if it keeps failing it goes to the dead-letter queue, whose alarm fires.",
            "This message is sent once per failure, not once per retry.",
        ]
    )
    return Notification(
        subject=f"Gatehouse: {function} FAILED unexpectedly ({error_class})",
        text=text,
        body={
            "event_kind": FAILURE_KIND,
            "outcome": "failed",
            "function": function,
            "deployed_function": deployed,
            "event_id": which,
            "error_class": error_class,
            "request_id": request_id,
        },
        attributes={"event_kind": FAILURE_KIND, "outcome": "failed"},
    )


def alert(function: str, event: Any, context: Any, exc: BaseException) -> None:
    """Publish the failure notification once per (function, event, error class). Never raises."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    error_class = type(exc).__name__
    key = f"alert#{function}#{event_id(event)}#{error_class}"
    with _alerted_lock:
        if key in _alerted:
            return
    try:
        from chalicelib.container import get_services

        services = get_services()
        notification = failure_notification(function, event, context, error_class)
        published: list[bool] = []

        def publish() -> dict[str, str]:
            publish_reliably(services.notifier, notification, services.clock)
            published.append(True)
            return {"alerted": key}

        try:
            services.once.run_once(key, publish)
        except (IdempotencyAlreadyInProgressError, NotificationError):
            raise
        except Exception:  # the do-once table is (part of) the problem: alert without it
            log.warning("do-once table unavailable: alerting on %s without it", key, exc_info=True)
            if not published:
                publish()
        _remember(key)
    except IdempotencyAlreadyInProgressError:
        _remember(key)  # another attempt is alerting on it right now
    except Exception:
        # The alert itself failed (SNS down, say): the function's Errors alarm and the DLQ's alarm remain.
        log.exception("could not alert on %s", key)


def _remember(key: str) -> None:
    with _alerted_lock:
        _alerted[key] = None
        while len(_alerted) > REMEMBERED:
            _alerted.popitem(last=False)
