"""The SQS work queue: one message per account to bring in line, processed by the fleet worker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws import translate
from chalicelib.core.errors import AwsError
from chalicelib.planning.plan import FleetPlan
from chalicelib.planning.registration import Registration

BATCH = 10  # SendMessageBatch's limit


def registration_to_api(registration: Registration) -> dict[str, Any]:
    """A registration in the API's shape, so the worker can rebuild it with CloudcraftAccount.from_api."""
    return {
        "id": registration.id,
        "name": registration.name,
        "roleArn": registration.role_arn,
        "readAccess": list(registration.read_access) if registration.read_access is not None else None,
        "writeAccess": list(registration.write_access) if registration.write_access is not None else None,
        "createdAt": registration.created_at,
    }


def work_messages(plan: FleetPlan, run_id: str) -> list[dict[str, Any]]:
    """One message per account that needs a change, and one per owned orphan to deregister.

    An account message carries that account's registrations as the plan saw them, so the worker needs no
    Cloudcraft list call of its own; it re-reads IAM, which is cheap and may have changed.
    """
    by_account: dict[str, list[dict[str, Any]]] = {}
    for registration in plan.registrations:
        by_account.setdefault(registration.aws_account_id or "", []).append(registration_to_api(registration))
    messages: list[dict[str, Any]] = [
        {
            "kind": "account",
            "run_id": run_id,
            "account_id": account_plan.account.account_id,
            "registrations": by_account.get(account_plan.account.account_id, []),
        }
        for account_plan in plan.accounts
        if account_plan.changes
    ]
    messages += [
        {
            "kind": "deregister",
            "run_id": run_id,
            "registration_id": orphan.registration_id,
            "name": orphan.name,
            "aws_account_id": orphan.aws_account_id,
            "reason": orphan.reason,
        }
        for orphan in plan.deregistrations
    ]
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
            try:
                response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "sqs:SendMessageBatch") from exc
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
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=min(int(seconds + 0.999), 43_200)
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "sqs:ChangeMessageVisibility") from exc

    def send_later(self, message: dict[str, Any], delay_seconds: int) -> str:
        """Enqueue one message that becomes visible after `delay_seconds` (0 to 900, SQS's range); returns its
        message ID. Raises when SQS refuses it: the caller fails, and its platform retries."""
        try:
            response = self._sqs.send_message(
                QueueUrl=self.url, MessageBody=json.dumps(message), DelaySeconds=max(0, min(int(delay_seconds), 900))
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "sqs:SendMessage") from exc
        return str(response.get("MessageId", ""))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
