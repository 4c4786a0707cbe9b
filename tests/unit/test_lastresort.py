"""The last resort: an unexpected exception is told to ops once per failure, never with its message, and re-raised."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from chalicelib.container import set_services
from chalicelib.core.errors import AwsError, ConfigurationError
from chalicelib.core.notifications import Notification
from chalicelib.lastresort import last_resort
from tests.clocks import RecordingClock
from tests.fakes import FakeNotifier, FakeOnceGuard

T = TypeVar("T")
SECRET = "cc-api-key-0123456789abcdef"


class DownOnceGuard:
    """The do-once table unavailable: every job fails before it runs, as Powertools does when DynamoDB is down."""

    def run_once(self, key: str, fn: Callable[[], T]) -> T:
        raise IdempotencyPersistenceLayerError("Failed to save in progress record to idempotency store")


class LosesTheResult(FakeOnceGuard):
    """The job runs, then saving its result fails."""

    def run_once(self, key: str, fn: Callable[[], T]) -> T:
        fn()
        raise IdempotencyPersistenceLayerError("Failed to update success record to idempotency store")


class DownNotifier(FakeNotifier):
    def publish(self, notification: Notification) -> None:
        raise AwsError("sns:Publish failed: ServiceUnavailable", code="ServiceUnavailable")


@dataclass
class FakeServices:
    once: Any = field(default_factory=FakeOnceGuard)
    notifier: FakeNotifier = field(default_factory=FakeNotifier)
    clock: RecordingClock = field(default_factory=RecordingClock)


@dataclass
class Context:
    function_name: str = "gatehouse-prod-on_account_arrival"
    aws_request_id: str = "req-1"


@pytest.fixture
def services() -> Iterator[FakeServices]:
    fake = FakeServices()
    set_services(fake)  # type: ignore[arg-type]
    yield fake
    set_services(None)


def failing(exc: BaseException) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    @last_resort("on_account_arrival")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise exc

    return handler


def event() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "detail": {}}


@pytest.mark.parametrize("exc", [KeyError(SECRET), MemoryError(), RecursionError(SECRET), RuntimeError(SECRET)])
def test_an_unexpected_error_is_told_once_naming_function_event_and_class_never_its_message(
    services: FakeServices, exc: BaseException
) -> None:
    handler, delivered = failing(exc), event()

    for _ in range(3):  # the invocation and Lambda's two retries
        with pytest.raises(type(exc)):
            handler(delivered, Context())

    [sent] = services.notifier.sent
    assert sent.attributes == {"event_kind": "function-failure", "outcome": "failed"}
    assert sent.body["function"] == "on_account_arrival"
    assert sent.body["deployed_function"] == "gatehouse-prod-on_account_arrival"
    assert sent.body["event_id"] == delivered["id"]
    assert sent.body["error_class"] == type(exc).__name__
    assert sent.body["request_id"] == "req-1"
    assert SECRET not in sent.sns_message() + sent.subject


@pytest.mark.parametrize(
    "exc", [ConfigurationError("settings invalid"), AwsError("boom"), IdempotencyAlreadyInProgressError("twin")]
)
def test_gatehouse_errors_and_twins_at_work_are_not_the_last_resorts_business(
    services: FakeServices, exc: BaseException
) -> None:
    with pytest.raises(type(exc)):
        failing(exc)(event(), Context())
    assert services.notifier.sent == []


def test_a_handler_that_succeeds_is_untouched(services: FakeServices) -> None:
    @last_resort("reconcile")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"outcome": "in-order"}

    assert handler(event(), Context()) == {"outcome": "in-order"}
    assert services.notifier.sent == []


def test_with_the_do_once_table_down_a_container_still_tells_once(services: FakeServices) -> None:
    services.once = DownOnceGuard()
    handler, delivered = failing(IdempotencyPersistenceLayerError("DynamoDB unavailable")), event()

    for _ in range(3):
        with pytest.raises(IdempotencyPersistenceLayerError):
            handler(delivered, Context())

    [sent] = services.notifier.sent
    assert sent.body["error_class"] == "IdempotencyPersistenceLayerError"


def test_a_result_that_cannot_be_saved_is_not_published_twice(services: FakeServices) -> None:
    services.once = LosesTheResult()
    with pytest.raises(KeyError):
        failing(KeyError("x"))(event(), Context())
    assert len(services.notifier.sent) == 1


def test_when_the_alert_cannot_be_published_the_original_error_still_surfaces(services: FakeServices) -> None:
    services.notifier = DownNotifier()
    with pytest.raises(KeyError):
        failing(KeyError("x"))(event(), Context())
    assert services.clock.sleeps == [2.0, 4.0]  # it tried, with backoff, before giving up


def test_sqs_batches_are_named_by_their_first_message(services: FakeServices) -> None:
    batch = {"Records": [{"messageId": "m-1"}, {"messageId": "m-2"}]}
    with pytest.raises(ValueError, match="bug"):
        failing(ValueError("bug"))(batch, Context())
    assert services.notifier.sent[0].body["event_id"] == "m-1 (and 1 more messages)"
