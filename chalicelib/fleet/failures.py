"""The fleet worker's failed items, told to ops: one message per batch that had failures, none when all succeed.

An item is reported on its first failed delivery only: a failing item comes back after the queue's visibility
timeout, up to ten deliveries (maxReceiveCount), then moves to the work DLQ, whose alarm fires, so its later
failures would repeat what ops were told. Which failure is an item's first is decided by the caller (the worker
keeps a do-once record per message; without one, SQS's ApproximateReceiveCount of 1, which misses an item that
was deferred before it failed). Not failures: a rate-limited item handed back until Cloudcraft's Retry-After, a
role handed back until IAM has propagated it, and a duplicate delivery finding its twin at work; all come back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.core.errors import GatehouseError, RoleNotVerifiableYet
from chalicelib.core.notifications import Notification

WORK_KIND = "fleet-work"
LISTED = 50  # items listed in one message (a batch has at most 10; a whole failed batch is listed whole)


@dataclass(frozen=True)
class FailedItem:
    message_id: str
    item: str  # what the message asked, as far as it could be read
    reason: str
    receive_count: int


@dataclass
class BatchFailures:
    """Failures of one batch, recorded as the worker meets them."""

    items: list[FailedItem] = field(default_factory=list)

    def add(self, message_id: str, body: str, receive_count: Any, exc: BaseException) -> None:
        reason = failure_reason(exc)
        if reason is None:
            return
        try:
            count = int(receive_count)
        except (TypeError, ValueError):
            count = 1
        self.items.append(FailedItem(message_id[:128], describe_item(body), reason, count))

    def to_report(self, first_failure: Callable[[FailedItem], bool] | None = None) -> list[FailedItem]:
        """The failures to tell ops about: each item's first failure (by default: its first delivery)."""
        is_first = first_failure or (lambda item: item.receive_count <= 1)
        return [item for item in self.items if is_first(item)]


def failure_reason(exc: BaseException) -> str | None:
    """What to tell ops about an item's failure; None when it is not a failure (it will simply come back)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    from chalicelib.adapters.cloudcraft.errors import CloudcraftRateLimited

    if isinstance(exc, CloudcraftRateLimited | RoleNotVerifiableYet | IdempotencyAlreadyInProgressError):
        return None
    if isinstance(exc, GatehouseError | ValueError):  # Gatehouse's own messages: written to be shown
        return f"{type(exc).__name__}: {str(exc)[:500]}"
    return f"{type(exc).__name__} (unexpected; the message is in the function's logs)"


def describe_item(body: str) -> str:
    """The action and account a message names, read defensively (the body is untrusted)."""
    try:
        raw = json.loads(body) if len(body) <= 4096 else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return "not a work item"
    action = raw.get("action") or raw.get("kind")
    target = raw.get("account_id") or raw.get("registration_id")
    parts = [_printable(value) for value in (action, target) if isinstance(value, str)]
    return " ".join(parts) or "a work item naming no action"


def _printable(value: str) -> str:
    return "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in value[:40])


def batch_failure_notification(items: list[FailedItem], *, batch_size: int, request_id: str) -> Notification:
    listed = items[:LISTED]
    lines = [f"The fleet worker could not process {len(items)} of {batch_size} work items in one batch.", ""]
    lines += [f"  {item.message_id} ({item.item}): {item.reason}" for item in listed]
    if len(items) > len(listed):
        lines.append(f"  ... and {len(items) - len(listed)} more")
    lines += [
        "",
        "Each comes back after the work queue's visibility timeout and is tried again; after ten failed "
        "deliveries it moves to the work dead-letter queue (gatehouse-<stage>-work-dlq), whose alarm fires. "
        "Later failures of these items are not reported again.",
        f"Worker request ID: {request_id}",
    ]
    return Notification(
        subject=f"Gatehouse: fleet worker FAILED {len(items)} of {batch_size} work items",
        text="\n".join(lines),
        body={
            "event_kind": WORK_KIND,
            "outcome": "failed",
            "failed": [asdict(item) for item in listed],
            "failed_count": len(items),
            "batch_size": batch_size,
            "request_id": request_id,
        },
        attributes={"event_kind": WORK_KIND, "outcome": "failed"},
    )
