"""Do-once guards: duplicate deliveries of the same job run it once (Powertools idempotency on DynamoDB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from chalicelib.adapters.aws import aws_call

T = TypeVar("T")

# Records are keyed on the job's key alone, not on the function that ran it: an arrival and a move of one
# account (two functions), or an approval event and the sweep, are one job.
KEY_PREFIX = "gatehouse"


class OnceGuard(Protocol):
    def run_once(self, key: str, fn: Callable[[], T]) -> T:
        """Run `fn` unless a job with `key` already ran (then return its saved result) or is running (then raise
        Powertools' IdempotencyAlreadyInProgressError, which callers catch)."""

    def forget(self, key: str) -> None:
        """Drop the saved result of `key`, so the next job with that key runs (the state it described changed)."""


class DynamoOnceGuard:
    """Backed by the idempotency table. A job that raises leaves no record, so a retry runs it again."""

    def __init__(self, table_name: str, client: Any, expires_after_seconds: int = 3600) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self._store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        self._config = IdempotencyConfig(expires_after_seconds=expires_after_seconds)

    def register_lambda_context(self, context: Any) -> None:
        """Lets an in-progress record expire with the invocation, so a crashed job can be retried."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(context)

    def run_once(self, key: str, fn: Callable[[], T]) -> T:
        from aws_lambda_powertools.utilities.idempotency import idempotent_function

        def job_once(job: dict[str, str]) -> T:
            return fn()

        once = idempotent_function(
            job_once,
            data_keyword_argument="job",
            persistence_store=self._store,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )
        result: T = once(job={"key": key})
        return result

    def forget(self, key: str) -> None:
        self._store.configure(self._config, key_prefix=KEY_PREFIX)
        with aws_call("dynamodb:DeleteItem (do-once record)"):
            self._store.delete_record(data={"key": key}, exception=LookupError(f"forget {key}"))
