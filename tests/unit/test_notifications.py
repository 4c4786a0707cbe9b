"""Notifications fit in one SNS message, and publishing is retried, counted and, when it keeps failing, raised."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.errors import AwsError
from chalicelib.core.notifications import (
    PUBLISH_ATTEMPTS,
    SNS_MESSAGE_MAX_BYTES,
    Notification,
    NotificationError,
    fit_notification,
    notify_safely,
    publish_reliably,
)
from chalicelib.core.observability import metrics
from chalicelib.onboarding.outcome import AccountOutcome, outcome_notification
from tests.clocks import RecordingClock
from tests.fakes import FakeNotifier


class FlakyNotifier(FakeNotifier):
    """Refuses the first `failures` publishes, as SNS does when it is down."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def publish(self, notification: Notification) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise AwsError("sns:Publish failed: ServiceUnavailable: down", code="ServiceUnavailable")
        super().publish(notification)


def note(text: str = "hello", body: dict[str, Any] | None = None) -> Notification:
    return Notification(
        subject="Gatehouse: test", text=text, body=body or {"outcome": "failed"}, attributes={"outcome": "failed"}
    )


def test_size_counts_every_protocol_body_the_subject_and_the_attributes() -> None:
    small = note()
    message = small.sns_message()
    attributes = len("outcome") + len("String") + len("failed")
    assert small.sns_size() == len(message.encode()) + len(small.sns_subject()) + attributes
    # The text is there twice (default, email), the machine body four times (sqs, lambda, http, https).
    assert small.sns_size() - note(text="").sns_size() == 2 * len("hello")


def test_a_notification_that_fits_is_left_alone() -> None:
    small = note()
    assert fit_notification(small) is small


def test_a_creation_failure_with_a_huge_reason_is_cut_to_fit_not_dropped() -> None:
    reason = "EMAIL_ALREADY_EXISTS " * 40_000  # 840,000 characters from the event's failureReason
    result = AccountOutcome("", "creation-failed", f"CreateAccountResult reported state FAILED: {reason}")
    original = outcome_notification(result)
    assert original.sns_size() > SNS_MESSAGE_MAX_BYTES

    fitted = fit_notification(original)

    assert fitted.sns_size() <= SNS_MESSAGE_MAX_BYTES
    assert fitted.subject == original.subject
    assert fitted.attributes == original.attributes
    assert fitted.text.startswith("Account : account creation FAILED.")
    assert "characters left out" in fitted.text
    assert fitted.body["truncated"] is True
    assert fitted.body["outcome"] == "creation-failed"  # every field of the body is kept, long ones cut
    assert set(fitted.body) == set(original.body) | {"truncated"}
    json.loads(fitted.sns_message())  # still a valid JSON structure


@given(
    text=st.text(max_size=3000),
    repeat=st.integers(min_value=1, max_value=400),
    items=st.lists(st.text(max_size=50), max_size=30),
    nested=st.integers(min_value=0, max_value=2000),
)
def test_whatever_goes_in_what_comes_out_fits(text: str, repeat: int, items: list[str], nested: int) -> None:
    body = {"outcome": "failed", "items": items * repeat, "nested": {str(i): text for i in range(nested)}}
    fitted = fit_notification(note(text * repeat, body), limit=64 * 1024)
    assert fitted.sns_size() <= 64 * 1024
    assert fitted.body["outcome"] == "failed"


def test_a_failed_publish_is_retried_with_backoff_on_the_clock() -> None:
    notifier, clock = FlakyNotifier(failures=2), RecordingClock()

    publish_reliably(notifier, note(), clock)

    assert notifier.attempts == 3
    assert len(notifier.sent) == 1
    assert clock.sleeps == [2.0, 4.0]


def test_a_publish_that_keeps_failing_raises_and_is_counted() -> None:
    notifier, clock = FlakyNotifier(failures=99), RecordingClock()
    metrics.clear_metrics()

    with pytest.raises(NotificationError, match="after 3 attempts: sns:Publish failed"):
        publish_reliably(notifier, note(), clock)

    assert notifier.attempts == PUBLISH_ATTEMPTS
    assert metrics.metric_set["NotificationsFailed"]["Value"] == [1.0]
    metrics.clear_metrics()


def test_notify_safely_never_raises() -> None:
    assert notify_safely(FlakyNotifier(failures=1), note()) is False
    assert notify_safely(FakeNotifier(), note()) is True
