"""Small in-memory stand-ins shared by tests: they keep the contracts of the adapters they replace."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from chalicelib.core.notifications import Notification

T = TypeVar("T")


@dataclass(frozen=True)
class Reg:
    """A Cloudcraft registration, as chalicelib.planning.registration reads one."""

    id: str
    name: str
    role_arn: str
    read_access: tuple[str, ...] | None = None
    write_access: tuple[str, ...] | None = None
    created_at: str | None = None

    @property
    def aws_account_id(self) -> str | None:
        parts = self.role_arn.split(":")
        return parts[4] if len(parts) > 5 else None


class InMemoryOnceGuard:
    """chalicelib.adapters.idempotency.OnceGuard in memory: a duplicate still running raises as Powertools does."""

    def __init__(self) -> None:
        self._done: dict[str, Any] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def run_once(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            if key in self._done:
                done: T = self._done[key]
                return done
            if key in self._running:
                raise IdempotencyAlreadyInProgressError(key)
            self._running.add(key)
        try:
            result = fn()
        finally:
            with self._lock:
                self._running.discard(key)
        with self._lock:
            self._done[key] = result
        return result


class MemoryLedger:
    """chalicelib.adapters.ledger.Ledger in memory."""

    def __init__(self, records: dict[str, str] | None = None) -> None:
        self._records = dict(records or {})
        self._lock = threading.Lock()

    def record(self, aws_account_id: str, registration_id: str) -> None:
        with self._lock:
            self._records[aws_account_id] = registration_id

    def lookup(self, aws_account_id: str) -> str | None:
        with self._lock:
            return self._records.get(aws_account_id)

    def forget(self, aws_account_id: str) -> None:
        with self._lock:
            self._records.pop(aws_account_id, None)

    def owned(self) -> dict[str, str]:
        with self._lock:
            return dict(self._records)


class MemoryNotifier:
    """chalicelib.core.notifications.Notifier in memory: what was published, in order."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def publish(self, notification: Notification) -> None:
        self.sent.append(notification)
