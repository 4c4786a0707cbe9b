"""The deployment's Cloudcraft rate budget in DynamoDB: one record whose `next_at` is the next free send time.

Every function of a stage uses one API key, so they share one budget: a caller claims the next free send time
with a conditional write (`next_at` moves one interval on), then waits until it. One write when the budget is
free, two when another caller went first; a claim further away than the caller may wait claims nothing, so a
caller that hands the wait back (the fleet worker) wastes no one's slot.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.adapters.aws import aws_call
from chalicelib.adapters.cloudcraft.limiter import RateLimitWait
from chalicelib.core.errors import AwsError

log = logging.getLogger("gatehouse.budget")

KEY = "budget#cloudcraft"
CONDITION_FAILED = "ConditionalCheckFailedException"
MAX_TRIES = 16  # contention between containers: each lost race means another caller got a slot


class DynamoBudget:
    """`SharedBudget` on the idempotency table (the record has no `expiration`: the TTL never removes it)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def claim(self, *, now: float, interval: float, horizon: float) -> float:
        for _ in range(MAX_TRIES):
            taken = self._update(now + interval, "attribute_not_exists(#id) OR #next_at <= :now", {":now": now})
            if taken is None:
                return now
            if taken - now > horizon:
                raise RateLimitWait(taken - now)
            if self._update(taken + interval, "#next_at = :seen", {":seen": taken}) is None:
                return taken
        raise RateLimitWait(interval)  # every try lost a race: the budget is busy, try again later

    def _update(self, next_at: float, condition: str, values: dict[str, float]) -> float | None:
        """Set `next_at` when `condition` holds and return None; otherwise the `next_at` found."""
        try:
            with aws_call("dynamodb:UpdateItem (Cloudcraft rate budget)"):
                self._ddb.update_item(
                    TableName=self._table,
                    Key={"id": {"S": KEY}},
                    UpdateExpression="SET #next_at = :next",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#next_at": "next_at"} | ({"#id": "id"} if "#id" in condition else {}),
                    ExpressionAttributeValues={":next": {"N": _n(next_at)}}
                    | {name: {"N": _n(value)} for name, value in values.items()},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except AwsError as exc:
            if exc.code != CONDITION_FAILED:
                raise
            item = exc.response.get("Item") or {}
            return float(item.get("next_at", {}).get("N", "0"))
        return None


def _n(value: float) -> str:
    return f"{value:.6f}"
