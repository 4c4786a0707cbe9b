"""The AWS-facing pieces of the composition root against moto: settings, the API key, SNS, the do-once guard."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.idempotency import DynamoOnceGuard
from chalicelib.adapters.sns import SnsNotifier
from chalicelib.container import Services
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.notifications import Notification
from chalicelib.core.settings import StageConfig
from tests.clocks import RecordingClock

HANG_GUARD = 120.0  # seconds: only a hung test waits this long
CONFIG = StageConfig(
    settings_parameter="/gatehouse/test/settings",
    api_key_secret="gatehouse/test/cloudcraft-api-key",
    topic_arn="",
    idempotency_table="gatehouse-test-idempotency",
)
KEY = "cc-key-do-not-print-0123456789"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def services() -> Services:
    return Services(CONFIG, clock=RecordingClock(), session=boto3.session.Session(region_name="us-east-1"))


def put_settings(value: str) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=CONFIG.settings_parameter, Value=value, Type="String", Overwrite=True
    )


def test_settings_are_read_and_validated(aws: None) -> None:
    put_settings(json.dumps({"scope_ous": ["Workloads"], "cloudcraft_role_name": "diagrams"}))
    settings = services().settings()
    assert settings.scope_ous == ("Workloads",)
    assert settings.cloudcraft_role_name == "diagrams"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "could not be read"),
        ("{not json", "not valid JSON"),
        (json.dumps({"permission_mode": "root"}), "permission_mode"),
    ],
)
def test_bad_settings_raise_a_named_configuration_error(aws: None, value: str | None, message: str) -> None:
    if value is not None:
        put_settings(value)
    with pytest.raises(ConfigurationError, match=message) as caught:
        services().settings()
    assert CONFIG.settings_parameter in str(caught.value)


@pytest.mark.parametrize("stored", [KEY, json.dumps({"api_key": KEY})])
def test_api_key_plain_or_json(aws: None, stored: str) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=CONFIG.api_key_secret, SecretString=stored
    )
    assert services().api_key() == KEY


def test_missing_or_empty_key_says_how_to_store_it(aws: None) -> None:
    with pytest.raises(ConfigurationError, match="put-secret-value"):
        services().api_key()
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=CONFIG.api_key_secret, SecretString=json.dumps({"apikey": KEY})
    )
    with pytest.raises(ConfigurationError, match="no 'api_key' field") as caught:
        services().api_key()
    assert KEY not in str(caught.value)


def test_notifications_reach_a_failures_only_subscriber_as_json(aws: None) -> None:
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="ops")["TopicArn"]
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"outcome": ["failed"]})},
    )
    notifier = SnsNotifier(sns, topic)
    for outcome in ("onboarded", "failed"):
        notifier.publish(
            Notification(
                subject=f"Gatehouse: account 222222222222 {outcome}",
                text=f"Account 222222222222: {outcome}.",
                body={"outcome": outcome, "account_id": "222222222222"},
                attributes={"event_kind": "account-onboarding", "outcome": outcome, "account_id": "222222222222"},
            )
        )
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [{"outcome": "failed", "account_id": "222222222222"}]


def test_subjects_are_made_sns_safe() -> None:
    note = Notification(subject="Gatehouse:\nnaïve " + "x" * 200, text="", body={})
    subject = note.sns_subject()
    assert len(subject) < 100
    assert subject.isascii()
    assert "\n" not in subject


def test_do_once_guard_runs_concurrent_duplicates_once(aws: None) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName=CONFIG.idempotency_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    guard = DynamoOnceGuard(CONFIG.idempotency_table, ddb)
    runs: list[int] = []
    started, release = threading.Event(), threading.Event()

    def job() -> dict[str, Any]:
        runs.append(1)
        started.set()
        assert release.wait(HANG_GUARD)
        return {"outcome": "onboarded"}

    results: list[Any] = []

    def deliver() -> None:
        try:
            results.append(guard.run_once("onboard#222222222222", job))
        except Exception as exc:
            results.append(type(exc).__name__)

    first = threading.Thread(target=deliver)
    first.start()
    assert started.wait(HANG_GUARD)
    duplicates = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in duplicates:
        thread.start()
    for thread in duplicates:  # both meet the first still running, however long they take
        thread.join(HANG_GUARD)
        assert not thread.is_alive()
    release.set()
    first.join(HANG_GUARD)
    assert not first.is_alive()
    assert runs == [1]
    assert sorted(map(str, results)) == sorted(
        ["IdempotencyAlreadyInProgressError", "IdempotencyAlreadyInProgressError", str({"outcome": "onboarded"})]
    )
    assert guard.run_once("onboard#222222222222", job) == {"outcome": "onboarded"}  # later: the saved result
    assert runs == [1]
