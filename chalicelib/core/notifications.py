"""Notifications to ops: one message that reads well in an email and parses well in a queue."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.core.errors import GatehouseError

log = logging.getLogger("gatehouse.notifications")

SUBJECT_MAX = 100  # SNS rejects longer subjects


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


class Notifier(Protocol):
    def publish(self, notification: Notification) -> None: ...


def notify_safely(notifier: Notifier, notification: Notification) -> bool:
    """Publishing must never turn a done job into a failure (and a retry that repeats it)."""
    try:
        notifier.publish(notification)
    except GatehouseError as exc:
        log.error("could not publish notification %r: %s", notification.subject, exc)
        return False
    return True
