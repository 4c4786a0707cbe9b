"""A reconciliation run fanned out in pages: its snapshot and its tally, in the idempotency table.

`run#<id>`            the run: how many parts it has (page 0, the coordinator's own, plus one per page of
                      accounts), how many have reported, and what every page plans with (Cloudcraft's identity,
                      the Organization-wide refusal); expires with the table's TTL.
`run#<id>#page#<n>`   page n's snapshot: its accounts, their Cloudcraft registrations and ownership records.
`run#<id>#part#<n>`   what part n found (a tally, see fleet/report.py); written once, and its number added to
                      the run's set of reported parts: a page delivered twice is counted once.

Only Gatehouse's functions write these items; their readers still parse them strictly (fleet/fanout.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.aws import aws_call
from chalicelib.core.errors import AwsError

PREFIX = "run#"
RUN_TTL_SECONDS = 3 * 24 * 3600  # long enough for a run's pages to be retried and dead-lettered
BATCH_WRITE = 25  # BatchWriteItem's limit
BATCH_GET = 100  # BatchGetItem's limit


def _run_key(run_id: str) -> dict[str, Any]:
    return {"id": {"S": f"{PREFIX}{run_id}"}}


def _page_key(run_id: str, page: int) -> dict[str, Any]:
    return {"id": {"S": f"{PREFIX}{run_id}#page#{page}"}}


def _part_key(run_id: str, part: int) -> dict[str, Any]:
    return {"id": {"S": f"{PREFIX}{run_id}#part#{part}"}}


@dataclass(frozen=True)
class RunProgress:
    parts: int  # page 0 and every page of accounts
    reported: int

    @property
    def complete(self) -> bool:
        return self.reported >= self.parts


class DynamoRuns:
    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def start(self, run_id: str, *, header: dict[str, Any], pages: list[dict[str, Any]], now: int) -> None:
        """Write the run and its page snapshots (before any page is queued: a page never finds its data missing)."""
        expiration = {"N": str(now + RUN_TTL_SECONDS)}
        items = [
            {**_page_key(run_id, number), "data": {"S": json.dumps(page)}, "expiration": expiration}
            for number, page in enumerate(pages, start=1)
        ]
        for start in range(0, len(items), BATCH_WRITE):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE]]
            self._batch_write(requests)
        with aws_call("dynamodb:PutItem (reconciliation run)"):
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    **_run_key(run_id),
                    "parts": {"N": str(len(pages) + 1)},
                    "data": {"S": json.dumps(header)},
                    "expiration": expiration,
                },
            )

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self._table: requests}
        for _ in range(8):  # unprocessed items are retried a few times (the client's own retries back off)
            with aws_call("dynamodb:BatchWriteItem (reconciliation pages)"):
                response = self._ddb.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
        raise AwsError("dynamodb:BatchWriteItem left page snapshots unwritten after 8 tries: the run is not started")

    def header(self, run_id: str) -> dict[str, Any] | None:
        with aws_call("dynamodb:GetItem (reconciliation run)"):
            item = self._ddb.get_item(TableName=self._table, Key=_run_key(run_id), ConsistentRead=True).get("Item")
        return json.loads(item["data"]["S"]) if item else None

    def page(self, run_id: str, page: int) -> str | None:
        """Page `page`'s snapshot as stored (the caller parses it within its limits), or None when absent."""
        with aws_call("dynamodb:GetItem (reconciliation page)"):
            item = self._ddb.get_item(TableName=self._table, Key=_page_key(run_id, page)).get("Item")
        return str(item["data"]["S"]) if item else None

    def report(self, run_id: str, part: int, tally: dict[str, Any], *, now: int) -> bool:
        """Record what part `part` found and count it; False when it was recorded before (the first stands).

        Two writes, each safe to repeat: the part only if absent, then the part's number added to the run's set
        of reported parts (adding a number a set has changes nothing). A delivery that stops between them is
        counted by the next one."""
        from botocore.exceptions import ClientError

        new = True
        try:
            with aws_call("dynamodb:PutItem (reconciliation part)"):
                self._ddb.put_item(
                    TableName=self._table,
                    Item={
                        **_part_key(run_id, part),
                        "data": {"S": json.dumps(tally)},
                        "expiration": {"N": str(now + RUN_TTL_SECONDS)},
                    },
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": "id"},
                )
        except AwsError as exc:
            cause = exc.__cause__
            if (
                not isinstance(cause, ClientError)
                or cause.response["Error"]["Code"] != "ConditionalCheckFailedException"
            ):
                raise
            new = False
        with aws_call("dynamodb:UpdateItem (reconciliation run)"):
            self._ddb.update_item(
                TableName=self._table,
                Key=_run_key(run_id),
                UpdateExpression="ADD reported :part",
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#id": "id"},
                ExpressionAttributeValues={":part": {"NS": [str(part)]}},
            )
        return new

    def progress(self, run_id: str) -> RunProgress:
        with aws_call("dynamodb:GetItem (reconciliation run)"):
            item = self._ddb.get_item(
                TableName=self._table, Key=_run_key(run_id), ConsistentRead=True, ProjectionExpression="parts, reported"
            ).get("Item")
        if not item:
            raise AwsError(f"reconciliation run {run_id} has no record (expired, or never started)")
        return RunProgress(int(item["parts"]["N"]), len(item.get("reported", {}).get("NS", [])))

    def parts(self, run_id: str, count: int) -> Iterator[dict[str, Any]]:
        """Every recorded part's tally, a hundred items at a time (never the whole run in memory at once)."""
        for start in range(0, count, BATCH_GET):
            keys = [_part_key(run_id, part) for part in range(start, min(count, start + BATCH_GET))]
            pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(8):
                with aws_call("dynamodb:BatchGetItem (reconciliation parts)"):
                    response = self._ddb.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table, []):
                    yield json.loads(item["data"]["S"])
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise AwsError("dynamodb:BatchGetItem left reconciliation parts unread after 8 tries")
