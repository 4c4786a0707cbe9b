"""SNS adapter: publishes notifications to the ops topic."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.aws import aws_call
from chalicelib.core.notifications import Notification


class SnsNotifier:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self._sns = client
        self._topic_arn = topic_arn

    def publish(self, notification: Notification) -> None:
        with aws_call("sns:Publish"):
            self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=notification.sns_subject(),
                Message=notification.sns_message(),
                MessageStructure="json",
                MessageAttributes={
                    key: {"DataType": "String", "StringValue": value}
                    for key, value in notification.attributes.items()
                    if value
                },
            )
