"""SNS adapter: publishes notifications to the ops topic, each cut to fit SNS's message limit if it must be."""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.adapters.aws import aws_call
from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES, Notification, fit_notification

log = logging.getLogger("gatehouse.sns")


class SnsNotifier:
    def __init__(self, client: Any, topic_arn: str, *, limit: int = SNS_MESSAGE_MAX_BYTES) -> None:
        self._sns = client
        self._topic_arn = topic_arn
        self._limit = limit

    def publish(self, notification: Notification) -> None:
        """Publish one notification; one that is over the limit is cut to fit (and logged), never dropped."""
        fitted = fit_notification(notification, self._limit)
        if fitted is not notification:
            log.warning(
                "notification %r was %d bytes, over SNS's limit of %d: published cut to %d bytes",
                notification.subject,
                notification.sns_size(),
                self._limit,
                fitted.sns_size(),
            )
        with aws_call("sns:Publish"):
            self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=fitted.sns_subject(),
                Message=fitted.sns_message(),
                MessageStructure="json",
                MessageAttributes=fitted.sns_attributes(),
            )
