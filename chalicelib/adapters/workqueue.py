"""The SQS work queue: one message per account to bring in line, processed by the fleet worker."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.adapters.aws import aws_call
from chalicelib.core.errors import AwsError, GatehouseError
from chalicelib.core.ids import is_account_id
from chalicelib.core.safejson import JsonLimitError, loads_bounded
from chalicelib.planning.plan import FleetPlan

log = logging.getLogger("gatehouse.workqueue")

BATCH = 10  # SendMessageBatch's limit
# A work item is three short strings; anything much larger or nested is not one.
MAX_WORK_ITEM_BYTES = 1024
MAX_WORK_ITEM_DEPTH = 4  # an item is flat; a little slack lets an old-format item be named for what it is
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
WorkAction = Literal["apply", "deregister"]
ACTIONS: tuple[WorkAction, ...] = ("apply", "deregister")
FIELDS = frozenset({"action", "account_id", "run_id"})


class WorkItemError(GatehouseError):
    """A queue message that is not a Gatehouse work item: reported, never retried."""


@dataclass(frozen=True)
class WorkItem:
    """What a work item may say: which account, which action, which run. Nothing about the account's state:
    the worker reads that again (Organizations, IAM, the ledger, Cloudcraft) before it writes anything."""

    action: WorkAction
    account_id: str
    run_id: str

    def to_message(self) -> dict[str, str]:
        return {"action": self.action, "account_id": self.account_id, "run_id": self.run_id}


def parse_work_item(body: str | bytes) -> WorkItem:
    """Validate a message body (size, nesting, exact schema); raises WorkItemError naming what is wrong."""
    try:
        raw = loads_bounded(body, max_bytes=MAX_WORK_ITEM_BYTES, max_depth=MAX_WORK_ITEM_DEPTH, what="the message")
    except JsonLimitError as exc:
        raise WorkItemError(str(exc)) from None
    if not isinstance(raw, dict):
        raise WorkItemError(f"the message must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - FIELDS)
    missing = sorted(FIELDS - set(raw))
    if unknown or missing:
        problems = ([f"unknown field(s) {', '.join(map(repr, unknown))}"] if unknown else []) + (
            [f"missing field(s) {', '.join(map(repr, missing))}"] if missing else []
        )
        raise WorkItemError(
            f"{'; '.join(problems)}: a work item has exactly {', '.join(sorted(FIELDS))} (the worker reads "
            "everything else itself)"
        )
    action, account_id, run_id = raw["action"], raw["account_id"], raw["run_id"]
    if action not in ACTIONS:
        raise WorkItemError(f"action {_short(action)} is not one of {', '.join(ACTIONS)}")
    if not is_account_id(account_id):
        raise WorkItemError(f"account_id {_short(account_id)} is not a 12-digit AWS account ID (ASCII digits 0-9)")
    if not isinstance(run_id, str) or RUN_ID.fullmatch(run_id) is None:
        raise WorkItemError(f"run_id {_short(run_id)} is not a run ID (1-64 of A-Z a-z 0-9 _ -)")
    return WorkItem(action, account_id, run_id)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def work_messages(plan: FleetPlan, run_id: str) -> list[dict[str, Any]]:
    """One message per account that needs a change, and one per account whose owned orphan to deregister.

    A message names the account and the action only: the worker re-reads the account's state before writing,
    so a stale message (or a forged one) can make it do no more than the live state asks for.
    """
    messages = [
        WorkItem("apply", account_plan.account.account_id, run_id).to_message()
        for account_plan in plan.accounts
        if account_plan.changes
    ]
    for orphan in plan.deregistrations:
        if orphan.aws_account_id and is_account_id(orphan.aws_account_id):
            messages.append(WorkItem("deregister", orphan.aws_account_id, run_id).to_message())
        else:
            log.warning("orphan %s names no AWS account: not queued", orphan.registration_id)
    return messages


class WorkQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self.url = queue_url

    def send(self, messages: Sequence[dict[str, Any]]) -> int:
        """Enqueue messages in batches of ten; raises when SQS refuses any (nothing is silently dropped)."""
        sent = 0
        for start in range(0, len(messages), BATCH):
            batch = messages[start : start + BATCH]
            entries = [{"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate(batch)]
            with aws_call("sqs:SendMessageBatch"):
                response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = response.get("Failed") or []
            if failed:
                first = failed[0]
                raise AwsError(
                    f"sqs:SendMessageBatch refused {len(failed)} of {len(batch)} messages: "
                    f"{first.get('Code')}: {first.get('Message')}",
                    code=str(first.get("Code") or ""),
                )
            sent += len(batch)
        return sent

    def defer(self, receipt_handle: str, seconds: float) -> None:
        """Make a received message visible again only after `seconds` (SQS allows up to 12 hours)."""
        with aws_call("sqs:ChangeMessageVisibility"):
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=min(int(seconds + 0.999), 43_200)
            )

    def send_later(self, message: dict[str, Any], delay_seconds: int) -> str:
        """Enqueue one message that becomes visible after `delay_seconds` (0 to 900, SQS's range); returns its
        message ID. Raises when SQS refuses it: the caller fails, and its platform retries."""
        with aws_call("sqs:SendMessage"):
            response = self._sqs.send_message(
                QueueUrl=self.url, MessageBody=json.dumps(message), DelaySeconds=max(0, min(int(delay_seconds), 900))
            )
        return str(response.get("MessageId", ""))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
