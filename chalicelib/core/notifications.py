"""Notifications to ops: one message that reads well in an email and parses well in a queue."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from chalicelib.core.clock import Clock
from chalicelib.core.errors import GatehouseError

log = logging.getLogger("gatehouse.notifications")

SUBJECT_MAX = 100  # SNS rejects longer subjects
# SNS refuses a message over 256 KiB. Counted here: every protocol's body of the JSON structure, the subject, and
# each attribute's name, type and value (SNS counts the message and its attributes; the subject is counted too,
# to be safe).
SNS_MESSAGE_MAX_BYTES = 256 * 1024
ATTRIBUTE_VALUE_MAX = 256  # attribute values are short by design (IDs, outcomes); longer ones are cut
PUBLISH_ATTEMPTS = 3
PUBLISH_FIRST_WAIT = 2.0  # seconds before the second attempt; doubled before each next one
TRUNCATED_NOTE = (
    "[Cut to fit SNS's 256 KiB message limit: {left_out} characters left out. The function's CloudWatch Logs "
    "have the full details.]"
)
# (longest string, most items in a list or object) kept in the body, tried in order until the body fits.
BODY_CLIPS = ((4096, 200), (1024, 50), (256, 10), (64, 3), (16, 1))


class NotificationError(GatehouseError):
    """A notification could not be published, even after retries."""


@dataclass(frozen=True)
class Notification:
    """`text` is for people, `body` for machines, `attributes` for SNS subscription filter policies."""

    subject: str
    text: str
    body: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)

    def sns_message(self) -> str:
        """The `Message` for `MessageStructure=json`: humans get text, machine protocols get JSON."""
        machine = json.dumps(self.body, sort_keys=True, default=str)
        return json.dumps(
            {
                "default": self.text,
                "email": self.text,
                "sqs": machine,
                "lambda": machine,
                "http": machine,
                "https": machine,
            }
        )

    def sns_subject(self) -> str:
        # SNS subjects are printable ASCII, one line, under 100 characters.
        subject = " ".join(self.subject.encode("ascii", "replace").decode("ascii").split())
        return subject if len(subject) < SUBJECT_MAX else subject[: SUBJECT_MAX - 4] + "..."

    def sns_attributes(self) -> dict[str, dict[str, str]]:
        """`MessageAttributes` for filter policies; SNS refuses empty values, so those are left out."""
        return {
            key: {"DataType": "String", "StringValue": value[:ATTRIBUTE_VALUE_MAX]}
            for key, value in self.attributes.items()
            if value
        }

    def sns_size(self) -> int:
        """Bytes SNS counts against its limit (see SNS_MESSAGE_MAX_BYTES)."""
        size = len(self.sns_message().encode()) + len(self.sns_subject().encode())
        for name, attribute in self.sns_attributes().items():
            size += len(name.encode()) + len(attribute["DataType"].encode()) + len(attribute["StringValue"].encode())
        return size


def fit_notification(notification: Notification, limit: int = SNS_MESSAGE_MAX_BYTES) -> Notification:
    """The notification itself when it fits in `limit` bytes; otherwise a cut copy that does, never nothing.

    The body's long strings and long lists are shortened (step by step, until it takes at most half of `limit`)
    and marked `"truncated": true`; the text keeps its beginning and says how much was left out. Builders that
    know their content (the reconciliation summary) shorten it sensibly first; this is the safety net for all.
    """
    if notification.sns_size() <= limit:
        return notification
    for longest, most in BODY_CLIPS:
        body = {**_clip(notification.body, longest, most, top=True), "truncated": True}
        if replace(notification, text="", body=body).sns_size() <= limit // 2:
            break
    else:  # only the top level's plain values, shortened
        body = {
            str(key)[:64]: _clip(value, 64, 0)
            for key, value in notification.body.items()
            if not isinstance(value, dict | list | tuple)
        }
        body["truncated"] = True
    bare = replace(notification, text="", body=body)
    text = notification.text
    while True:
        left_out = len(notification.text) - len(text)
        candidate = replace(bare, text=text + ("\n\n" + TRUNCATED_NOTE.format(left_out=left_out) if left_out else ""))
        size = candidate.sns_size()
        if size <= limit:
            return candidate
        if not text:  # cannot happen with SNS's limit: subject, attributes and the cut body are small
            raise NotificationError(f"notification {notification.subject!r} cannot be cut to {limit} bytes")
        text = text[: max(0, min(len(text) - 1, int(len(text) * limit / size) - 64))]


def _clip(value: Any, longest: int, most: int, *, top: bool = False) -> Any:
    """`value` with strings cut to `longest` characters and lists and objects to `most` items (the top-level
    object keeps every field: its fields are the message's schema, its long values are cut)."""
    if isinstance(value, str):
        return value if len(value) <= longest else value[:longest] + "..."
    if isinstance(value, dict):
        items = list(value.items()) if top else list(value.items())[:most]
        return {str(key)[:longest]: _clip(item, longest, most) for key, item in items}
    if isinstance(value, list | tuple):
        return [_clip(item, longest, most) for item in list(value)[:most]]
    return value


class Notifier(Protocol):
    def publish(self, notification: Notification) -> None: ...


def publish_reliably(
    notifier: Notifier,
    notification: Notification,
    clock: Clock,
    *,
    attempts: int = PUBLISH_ATTEMPTS,
    first_wait: float = PUBLISH_FIRST_WAIT,
) -> None:
    """Publish, retrying a failure a few times with backoff; raises NotificationError when every attempt failed.

    Telling ops is part of a job: a job whose notification could not be sent must not be recorded as done.
    Raising inside a do-once job removes its in-progress record, so the platform's retry runs it (and tries
    to notify) again; the NotificationsFailed metric counts each notification given up on.
    """
    from aws_lambda_powertools.metrics import MetricUnit

    from chalicelib.core.observability import metrics

    problem: GatehouseError | None = None
    for attempt in range(1, attempts + 1):
        try:
            notifier.publish(notification)
            return
        except GatehouseError as exc:
            problem = exc
            log.warning("publishing %r failed (attempt %d of %d): %s", notification.subject, attempt, attempts, exc)
            if attempt < attempts:
                clock.sleep(first_wait * 2 ** (attempt - 1))
    metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
    raise NotificationError(
        f"could not publish notification {notification.subject!r} after {attempts} attempts: {problem}"
    ) from problem


def notify_safely(notifier: Notifier, notification: Notification) -> bool:
    """Publish once, log a failure and go on: for messages that must not fail what they report on."""
    try:
        notifier.publish(notification)
    except GatehouseError as exc:
        log.error("could not publish notification %r: %s", notification.subject, exc)
        return False
    return True
