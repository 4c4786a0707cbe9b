"""One writer per account: a lease in the idempotency table that every job writing an account's role or
registration takes first (arrival, move, departure, fleet worker item, `gatehouse apply`).

The lease is a conditional PutItem on `lease#<account>` with an expiry (the table's TTL attribute): taken when
absent, expired, or already the caller's. A job that finds it held waits a bounded time on the injected clock,
then re-plans from live state (the other writer has usually done the work); when it cannot get it in time it
raises AccountBusyError, and the platform retries the whole job later. The lease is released at the end, and
expires on its own if its holder dies.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.adapters.aws import aws_call
from chalicelib.core.clock import Clock
from chalicelib.core.errors import AwsError, GatehouseError

log = logging.getLogger("gatehouse.lease")

PREFIX = "lease#"
DEFAULT_WAIT_SECONDS = 60.0  # how long a job waits for another to finish the same account
DEFAULT_TTL_SECONDS = 900  # the longest a Lambda function can run; shortened to the invocation's remaining time
TTL_MARGIN_SECONDS = 30
POLL_SECONDS = (1.0, 2.0, 4.0, 5.0)  # then every 5 s
CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class LeaseAttempt:
    acquired: bool
    holder: str = ""  # who holds it, when not acquired ("" when the store cannot say)


class AccountLease(Protocol):
    """The store: one record per account. Times are epoch seconds on the caller's clock."""

    def try_acquire(self, account_id: str, *, holder: str, now: int, expires_at: int) -> LeaseAttempt:
        """Take the account's lease for `holder` unless another holder has it and it has not expired."""

    def release(self, account_id: str, *, holder: str) -> None:
        """Give the lease up, only if `holder` still has it (an expired lease may belong to another by now)."""


class AccountBusyError(GatehouseError):
    """Another Gatehouse job is writing this account and did not finish in time: retry the job later."""

    def __init__(self, account_id: str, holder: str, waited: float) -> None:
        who = holder or "another Gatehouse job"
        super().__init__(
            f"account {account_id} is being changed by {who}; waited {waited:.0f} s for it to finish. "
            "Nothing was changed: the job is handed back to be retried"
        )
        self.account_id = account_id
        self.holder = holder


@dataclass(frozen=True)
class Hold:
    """A lease held. `waited`: another job held it first, so anything read before taking it is stale."""

    account_id: str
    holder: str
    waited: bool


class AccountLeases:
    """Takes and releases account leases for one container's jobs, on its clock."""

    def __init__(
        self,
        store: AccountLease,
        clock: Clock,
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self.wait_seconds = wait_seconds
        self.ttl_seconds = ttl_seconds

    def register_lambda_context(self, context: Any) -> None:
        """A lease outlives its holder's invocation by a margin only: a holder that times out frees it soon."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            remaining = int(context.get_remaining_time_in_millis()) // 1000
            self.ttl_seconds = max(1, min(DEFAULT_TTL_SECONDS, remaining)) + TTL_MARGIN_SECONDS

    @contextmanager
    def hold(self, account_id: str, job: str) -> Iterator[Hold]:
        """Hold the account's lease for the body; waits for another holder, then raises AccountBusyError."""
        holder = f"{job} [{uuid.uuid4().hex[:8]}]"
        started = self._clock.monotonic()
        waited = False
        polls = 0
        while True:
            now = int(self._clock.now().timestamp())
            attempt = self._store.try_acquire(account_id, holder=holder, now=now, expires_at=now + self.ttl_seconds)
            if attempt.acquired:
                break
            elapsed = self._clock.monotonic() - started
            if elapsed >= self.wait_seconds:
                raise AccountBusyError(account_id, attempt.holder, elapsed)
            if not waited:
                log.info("account %s is held by %s; waiting", account_id, attempt.holder or "another job")
            waited = True
            pause = POLL_SECONDS[min(polls, len(POLL_SECONDS) - 1)]
            polls += 1
            self._clock.sleep(min(pause, max(self.wait_seconds - elapsed, 0.0)))
        try:
            yield Hold(account_id, holder, waited)
        finally:
            try:
                self._store.release(account_id, holder=holder)
            except GatehouseError as exc:  # the lease expires on its own; the job's outcome stands
                log.warning("could not release the lease on %s (it will expire): %s", account_id, exc)


class DynamoLease:
    """Lease records live in the idempotency table under `lease#<account>`, with `expiration` as their TTL."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def try_acquire(self, account_id: str, *, holder: str, now: int, expires_at: int) -> LeaseAttempt:
        try:
            with aws_call(f"dynamodb:PutItem (lease on {account_id})"):
                self._ddb.put_item(
                    TableName=self._table,
                    Item={
                        "id": {"S": PREFIX + account_id},
                        "holder": {"S": holder},
                        "expiration": {"N": str(expires_at)},
                    },
                    ConditionExpression="attribute_not_exists(#id) OR #expiration < :now OR #holder = :holder",
                    ExpressionAttributeNames={"#id": "id", "#expiration": "expiration", "#holder": "holder"},
                    ExpressionAttributeValues={":now": {"N": str(now)}, ":holder": {"S": holder}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except AwsError as exc:
            if exc.code != CONDITION_FAILED:
                raise
            return LeaseAttempt(False, _holder(exc.response.get("Item")))
        return LeaseAttempt(True)

    def release(self, account_id: str, *, holder: str) -> None:
        try:
            with aws_call(f"dynamodb:DeleteItem (lease on {account_id})"):
                self._ddb.delete_item(
                    TableName=self._table,
                    Key={"id": {"S": PREFIX + account_id}},
                    ConditionExpression="#holder = :holder",
                    ExpressionAttributeNames={"#holder": "holder"},
                    ExpressionAttributeValues={":holder": {"S": holder}},
                )
        except AwsError as exc:
            # A failed condition: expired and taken by another job, or already gone; nothing of ours to release.
            if exc.code != CONDITION_FAILED:
                raise


def _holder(item: Any) -> str:
    """Who holds the lease, from the item a failed condition saw ("" when the answer does not say)."""
    holder = item.get("holder") if isinstance(item, dict) else None
    value = holder.get("S") if isinstance(holder, dict) else None
    return value if isinstance(value, str) else ""
