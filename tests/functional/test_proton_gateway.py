"""The Proton gateway over real HTTP: boto3's own serialisation against the loopback emulator."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config

from chalicelib.adapters.proton import EVENT_PATTERN, ProtonGateway, parse_status_change
from chalicelib.approvals.errors import (
    ConnectionConflict,
    ConnectionNotFound,
    ConnectionStateChanged,
    GatewayAccessDenied,
    GatewayUnavailable,
)
from chalicelib.core.errors import EventParseError
from gatehouse.sandbox.proton_emulator import ProtonEmulator
from tests.conftest import load_event

ENV = "444444444444"
CONNECTION = "a1b2c3d4-5678-90ab-cdef-111111111111"


def connection(connection_id: str = CONNECTION, **fields: Any) -> dict[str, Any]:
    return {
        "id": connection_id,
        "environmentAccountId": ENV,
        "environmentName": "dev-api",
        "roleArn": f"arn:aws:iam::{ENV}:role/ProtonEnvRole",
        "codebuildRoleArn": f"arn:aws:iam::{ENV}:role/ProtonCodeBuild",
        "managementAccountId": "111111111111",
        "status": "PENDING",
        **fields,
    }


@pytest.fixture
def emulator() -> Iterator[ProtonEmulator]:
    with ProtonEmulator(region="eu-west-1") as running:
        yield running


@pytest.fixture(autouse=True)
def _no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's retries still happen (and are counted); only their sleeps are skipped."""
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0)


def client(endpoint: str, attempts: int = 1) -> Any:
    return boto3.client(
        "proton",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


@pytest.fixture
def gateway(emulator: ProtonEmulator) -> ProtonGateway:
    return ProtonGateway(client(emulator.endpoint_url))


# --- get ----------------------------------------------------------------------------------------


def test_get_returns_the_full_request_including_the_codebuild_role(
    emulator: ProtonEmulator, gateway: ProtonGateway
) -> None:
    emulator.seed([connection()])

    found = gateway.get(CONNECTION)

    assert found.status == "PENDING"
    assert found.pending
    request = found.request
    assert request.id == CONNECTION
    assert request.environment_account_id == ENV
    assert request.codebuild_role_arn == f"arn:aws:iam::{ENV}:role/ProtonCodeBuild"
    assert request.component_role_arn is None
    assert request.management_account_id == "111111111111"
    assert request.region == "eu-west-1"  # from the connection's ARN
    assert emulator.calls() == ["GetEnvironmentAccountConnection"]


def test_get_of_an_unknown_connection_is_not_found(emulator: ProtonEmulator, gateway: ProtonGateway) -> None:
    with pytest.raises(ConnectionNotFound) as caught:
        gateway.get(str(uuid.UUID(int=7)))

    assert caught.value.code == "ResourceNotFoundException"


def test_get_of_a_malformed_id_is_not_found_without_a_call(emulator: ProtonEmulator, gateway: ProtonGateway) -> None:
    with pytest.raises(ConnectionNotFound, match="not a Proton connection ID"):
        gateway.get("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111")

    assert emulator.calls() == []


# --- list ---------------------------------------------------------------------------------------


def test_list_pending_follows_every_page_and_skips_other_statuses(emulator: ProtonEmulator) -> None:
    pending = [str(uuid.UUID(int=n)) for n in range(1, 24)]
    emulator.seed(
        [
            connection(cid, status=status, requestedAt=f"2026-11-{n % 28 + 1:02d}T00:00:00Z")
            for n, (cid, status) in enumerate(
                [(c, "PENDING") for c in pending]
                + [(str(uuid.UUID(int=100 + n)), s) for n, s in enumerate(["CONNECTED", "REJECTED"] * 5)]
            )
        ]
    )
    gateway = ProtonGateway(client(emulator.endpoint_url), page_size=5)

    listed = gateway.list_pending()

    assert sorted(listed) == sorted(pending)
    assert listed == [c["id"] for c in emulator.connections() if c["status"] == "PENDING"]  # oldest first
    assert emulator.calls().count("ListEnvironmentAccountConnections") == 5  # 23 over pages of 5


def test_list_summaries_omit_the_codebuild_role_as_proton_does(emulator: ProtonEmulator) -> None:
    emulator.seed([connection()])

    page = client(emulator.endpoint_url).list_environment_account_connections(requestedBy="MANAGEMENT_ACCOUNT")

    [summary] = page["environmentAccountConnections"]
    assert "codebuildRoleArn" not in summary
    assert summary["roleArn"].endswith("ProtonEnvRole")


def test_list_filters_by_environment_name(emulator: ProtonEmulator) -> None:
    emulator.seed([connection(), connection(str(uuid.UUID(int=9)), environmentName="other")])

    page = client(emulator.endpoint_url).list_environment_account_connections(
        requestedBy="MANAGEMENT_ACCOUNT", environmentName="other", statuses=["PENDING"]
    )

    assert [c["environmentName"] for c in page["environmentAccountConnections"]] == ["other"]


def test_list_pending_when_there_is_nothing(gateway: ProtonGateway) -> None:
    assert gateway.list_pending() == []


# --- accept and reject ----------------------------------------------------------------------------


def test_accept_connects_a_pending_connection(emulator: ProtonEmulator, gateway: ProtonGateway) -> None:
    emulator.seed([connection()])

    accepted = gateway.accept(CONNECTION)

    assert accepted.status == "CONNECTED"
    assert emulator.connections()[0]["status"] == "CONNECTED"


def test_accepting_twice_is_a_state_change_not_a_crash(emulator: ProtonEmulator, gateway: ProtonGateway) -> None:
    emulator.seed([connection()])
    gateway.accept(CONNECTION)

    with pytest.raises(ConnectionStateChanged) as caught:
        gateway.accept(CONNECTION)

    assert caught.value.code == "ValidationException"
    assert caught.value.connection_id == CONNECTION


def test_reject_rejects_a_pending_connection(emulator: ProtonEmulator, gateway: ProtonGateway) -> None:
    emulator.seed([connection()])

    assert gateway.reject(CONNECTION).status == "REJECTED"


def test_rejecting_a_connection_in_use_is_a_conflict_and_changes_nothing(
    emulator: ProtonEmulator, gateway: ProtonGateway
) -> None:
    emulator.seed([connection()])
    emulator.in_use.add(CONNECTION)

    with pytest.raises(ConnectionConflict) as caught:
        gateway.reject(CONNECTION)

    assert caught.value.code == "ConflictException"
    assert "in use" in str(caught.value)
    assert emulator.connections()[0]["status"] == "PENDING"


# --- failures -----------------------------------------------------------------------------------


def test_throttling_is_retried_by_the_sdk(emulator: ProtonEmulator) -> None:
    emulator.seed([connection()])
    emulator.fail_next("GetEnvironmentAccountConnection", "ThrottlingException", times=2)

    found = ProtonGateway(client(emulator.endpoint_url, attempts=3)).get(CONNECTION)

    assert found.pending
    assert emulator.calls().count("GetEnvironmentAccountConnection") == 3


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ThrottlingException", GatewayUnavailable),
        ("InternalServerException", GatewayUnavailable),
        ("AccessDeniedException", GatewayAccessDenied),
        ("ResourceNotFoundException", ConnectionNotFound),
        ("ConflictException", ConnectionConflict),
    ],
)
def test_errors_are_translated_once_the_sdk_gives_up(
    emulator: ProtonEmulator, code: str, error: type[Exception]
) -> None:
    emulator.seed([connection()])
    emulator.fail_next("AcceptEnvironmentAccountConnection", code, times=5)

    with pytest.raises(error) as caught:
        ProtonGateway(client(emulator.endpoint_url, attempts=2)).accept(CONNECTION)

    assert getattr(caught.value, "code", None) == code


def test_an_unreachable_endpoint_is_unavailable(emulator: ProtonEmulator) -> None:
    url = emulator.endpoint_url
    emulator.stop()

    with pytest.raises(GatewayUnavailable):
        ProtonGateway(client(url)).list_pending()


# --- the wire itself ------------------------------------------------------------------------------


def raw_post(endpoint: str, target: str, body: Any, *, signed: bool = True) -> tuple[int, dict[str, str], Any]:
    host = endpoint.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=60)  # a hang guard
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target}
    if signed:
        headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=testing/20261123/eu-west-1/proton/aws4_request"
    conn.request("POST", "/", body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, dict(response.getheaders()), payload


def test_error_shape_on_the_wire(emulator: ProtonEmulator) -> None:
    emulator.seed([connection()])
    emulator.in_use.add(CONNECTION)

    status, headers, payload = raw_post(
        emulator.endpoint_url, "AwsProton20200720.RejectEnvironmentAccountConnection", {"id": CONNECTION}
    )

    assert status == 409
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert "x-amzn-RequestId" in headers
    assert payload["__type"] == "ConflictException"
    assert isinstance(payload["message"], str)


@pytest.mark.parametrize(
    ("target", "body", "signed", "status", "code"),
    [
        ("AwsProton20200720.GetEnvironmentAccountConnection", {}, True, 400, "ValidationException"),
        ("AwsProton20200720.GetEnvironmentAccountConnection", {"id": "nope"}, True, 400, "ValidationException"),
        ("AwsProton20200720.ListEnvironmentAccountConnections", {}, True, 400, "ValidationException"),
        (
            "AwsProton20200720.ListEnvironmentAccountConnections",
            {"requestedBy": "MANAGEMENT_ACCOUNT", "maxResults": 101},
            True,
            400,
            "ValidationException",
        ),
        (
            "AwsProton20200720.ListEnvironmentAccountConnections",
            {"requestedBy": "MANAGEMENT_ACCOUNT", "nextToken": "!!"},
            True,
            400,
            "ValidationException",
        ),
        ("AwsProton20200720.DeleteEnvironment", {}, True, 400, "UnknownOperationException"),
        ("Other.GetEnvironmentAccountConnection", {}, True, 400, "UnknownOperationException"),
        ("AwsProton20200720.GetEnvironmentAccountConnection", {"id": CONNECTION}, False, 403, None),
        ("AwsProton20200720.GetEnvironmentAccountConnection", [1], True, 400, "SerializationException"),
    ],
)
def test_the_emulator_refuses_what_proton_refuses(
    emulator: ProtonEmulator, *, target: str, body: Any, signed: bool, status: int, code: str | None
) -> None:
    got_status, _, payload = raw_post(emulator.endpoint_url, target, body, signed=signed)

    assert got_status == status
    assert payload["__type"] == (code or "MissingAuthenticationTokenException")


def test_seed_refuses_ids_proton_would_refuse() -> None:
    with pytest.raises(ValueError, match="lower-case UUID"):
        ProtonEmulator().seed([connection("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111")])


def test_seed_fills_in_what_proton_adds(emulator: ProtonEmulator) -> None:
    emulator.seed([{"environmentAccountId": ENV, "environmentName": "dev"}])

    [seeded] = emulator.connections()
    assert seeded["status"] == "PENDING"
    assert seeded["arn"] == f"arn:aws:proton:eu-west-1:{ENV}:environment-account-connection/{seeded['id']}"
    assert seeded["requestedAt"]
    assert seeded["lastModifiedAt"]
    assert seeded["roleArn"].startswith(f"arn:aws:iam::{ENV}:role/")


# --- the status-change event ------------------------------------------------------------------------


def sample_event() -> dict[str, Any]:
    return load_event("proton-connection-status-change")


def test_the_sample_event_parses_and_matches_the_pattern() -> None:
    from moto.events.models import EventPattern

    event = sample_event()

    change = parse_status_change(event)

    assert (change.connection_id, change.status, change.pending) == (
        "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
        "PENDING",
        True,
    )
    assert EventPattern.load(json.dumps(EVENT_PATTERN)).matches_event(cast(Any, event))


@pytest.mark.parametrize("status", ["CONNECTED", "REJECTED", "DELETED"])
def test_the_pattern_ignores_other_statuses(status: str) -> None:
    from moto.events.models import EventPattern

    event = sample_event()
    event["detail"] = {"id": CONNECTION, "status": status, "previousStatus": "PENDING"}

    assert not EventPattern.load(json.dumps(EVENT_PATTERN)).matches_event(cast(Any, event))
    assert parse_status_change(event).previous_status == "PENDING"


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"source": "aws.organizations", "detail-type": "x"}, "not a Proton connection status change"),
        (
            {"source": "aws.proton", "detail-type": "AWS Proton Environment Account Connection Status Change"},
            "no 'detail'",
        ),
        (
            {
                "source": "aws.proton",
                "detail-type": "AWS Proton Environment Account Connection Status Change",
                "detail": {},
            },
            "no 'detail.id'",
        ),
    ],
)
def test_malformed_events_are_refused_at_the_edge(event: Any, fragment: str) -> None:
    with pytest.raises(EventParseError, match=fragment):
        parse_status_change(event)
