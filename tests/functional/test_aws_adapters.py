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


def table() -> Any:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName=CONFIG.idempotency_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb


def test_saved_results_are_shared_across_functions_and_can_be_forgotten(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = table()
    runs: list[str] = []

    def job(name: str) -> Any:
        def run() -> dict[str, str]:
            runs.append(name)
            return {"outcome": "onboarded", "by": name}

        return run

    # An arrival in one function, a move of the same account in another: one job.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gatehouse-prod-on_account_arrival")
    first = DynamoOnceGuard(CONFIG.idempotency_table, ddb).run_once("onboard#222222222222", job("arrival"))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gatehouse-prod-on_account_departure")
    departure_guard = DynamoOnceGuard(CONFIG.idempotency_table, ddb)
    second = departure_guard.run_once("onboard#222222222222", job("move"))
    assert first == second == {"outcome": "onboarded", "by": "arrival"}

    departure_guard.forget("onboard#222222222222")  # offboarded: the saved result no longer holds
    third = departure_guard.run_once("onboard#222222222222", job("move back in"))
    assert third["by"] == "move back in"
    assert runs == ["arrival", "move back in"]
    departure_guard.forget("never-saved")  # nothing to forget is not an error


def test_the_lease_is_one_holder_at_a_time_and_expires(aws: None) -> None:
    from chalicelib.adapters.lease import DynamoLease

    lease = DynamoLease(table(), CONFIG.idempotency_table)
    account = "222222222222"

    assert lease.try_acquire(account, holder="arrival [1]", now=1000, expires_at=1300).acquired
    taken = lease.try_acquire(account, holder="move [2]", now=1001, expires_at=1301)
    assert (taken.acquired, taken.holder) == (False, "arrival [1]")  # says who holds it
    assert lease.try_acquire(account, holder="arrival [1]", now=1002, expires_at=1400).acquired  # its own: renewed
    lease.release(account, holder="move [2]")  # not its lease: nothing happens
    assert not lease.try_acquire(account, holder="move [2]", now=1003, expires_at=1303).acquired
    assert lease.try_acquire(account, holder="move [2]", now=1401, expires_at=1700).acquired  # expired: taken over
    lease.release(account, holder="arrival [1]")  # the old holder's late release leaves the new lease alone
    assert not lease.try_acquire(account, holder="worker [3]", now=1402, expires_at=1702).acquired
    lease.release(account, holder="move [2]")
    assert lease.try_acquire(account, holder="worker [3]", now=1403, expires_at=1703).acquired

    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName=CONFIG.idempotency_table, Key={"id": {"S": f"lease#{account}"}}
    )["Item"]
    assert item["expiration"] == {"N": "1703"}  # the table's TTL attribute: a dead holder's lease is swept


def test_lease_errors_other_than_contention_are_the_projects(aws: None) -> None:
    from chalicelib.adapters.lease import DynamoLease
    from chalicelib.core.errors import AwsError

    lease = DynamoLease(boto3.client("dynamodb", region_name="us-east-1"), "no-such-table")
    with pytest.raises(AwsError, match=r"dynamodb:PutItem \(lease on 222222222222\)"):
        lease.try_acquire("222222222222", holder="x", now=1, expires_at=2)


def test_settings_deeper_than_any_document_are_a_configuration_error(aws: None) -> None:
    put_settings('{"scope_ous": ' + "[" * 3000 + "]" * 3000 + "}")  # under SSM's 8 KB, 3,000 deep
    with pytest.raises(ConfigurationError, match="nested more than 16 levels deep"):
        services().settings()


def test_a_secret_nested_ten_thousand_deep_is_an_empty_key_not_a_crash(aws: None) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=CONFIG.api_key_secret, SecretString='{"api_key": ' + "[" * 10_000 + "]" * 10_000 + "}"
    )
    with pytest.raises(ConfigurationError, match="no 'api_key' field"):
        services().api_key()


def test_the_rate_budget_hands_out_evenly_spaced_send_times_across_callers(aws: None) -> None:
    from chalicelib.adapters.budget import DynamoBudget
    from chalicelib.adapters.cloudcraft.limiter import RateLimitWait

    ddb = table()
    arrival, worker = DynamoBudget(ddb, CONFIG.idempotency_table), DynamoBudget(ddb, CONFIG.idempotency_table)

    assert arrival.claim(now=1000.0, interval=3.0, horizon=30) == 1000.0  # free: now
    assert worker.claim(now=1000.5, interval=3.0, horizon=30) == 1003.0  # the next free send time
    assert arrival.claim(now=1001.0, interval=3.0, horizon=30) == 1006.0
    with pytest.raises(RateLimitWait) as caught:
        worker.claim(now=1001.0, interval=3.0, horizon=4.0)  # 8 s away: more than this caller may wait
    assert caught.value.seconds == 8.0
    assert arrival.claim(now=1020.0, interval=3.0, horizon=30) == 1020.0  # nothing claimed by the refusal

    item = ddb.get_item(TableName=CONFIG.idempotency_table, Key={"id": {"S": "budget#cloudcraft"}})["Item"]
    assert float(item["next_at"]["N"]) == 1023.0
    assert "expiration" not in item  # the table's TTL never removes the budget


def test_a_claim_that_loses_a_race_takes_the_next_send_time(aws: None) -> None:
    from chalicelib.adapters.budget import DynamoBudget

    ddb = table()
    competitor = DynamoBudget(ddb, CONFIG.idempotency_table)
    competitor.claim(now=5000.0, interval=3.0, horizon=30)  # next free: 5003

    class Racing:
        """The DynamoDB client, with another container claiming just before this caller's second write."""

        calls = 0

        def update_item(self, **request: Any) -> Any:
            Racing.calls += 1
            if Racing.calls == 2:
                competitor.claim(now=5000.0, interval=3.0, horizon=30)  # takes 5003 first
            return ddb.update_item(**request)

    assert DynamoBudget(Racing(), CONFIG.idempotency_table).claim(now=5000.0, interval=3.0, horizon=30) == 5006.0
    assert Racing.calls == 4  # free? no; take 5003? lost; free? no; take 5006: yes
    assert competitor.claim(now=5000.0, interval=3.0, horizon=30) == 5009.0  # no send time given twice


def test_the_organizations_client_slows_itself_down_when_throttled(aws: None) -> None:
    config = services().directory._client.meta.config

    assert (config.retries["mode"], config.retries["total_max_attempts"]) == ("adaptive", 11)  # 10 retries
