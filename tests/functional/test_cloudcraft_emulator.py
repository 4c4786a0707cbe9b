"""The Cloudcraft emulator speaks the documented contract, checked with plain HTTP rather than our own client."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from gatehouse.sandbox.cloudcraft_emulator import CloudcraftEmulator
from tests.clocks import RecordingClock

KEY = "cc-emu-" + "Rt5Yu8" * 5
ROLE_ARN = "arn:aws:iam::123456789012:role/cloudcraft"
READ_VERB = re.compile(r"^[a-z0-9-]+:(Get|List|Describe)[A-Za-z*]*$")


class Api:
    """Raw HTTP to the emulator with a keep-alive session."""

    def __init__(self, url: str, key: str | None = KEY) -> None:
        self.url = url
        self.session = requests.Session()
        self.key = key

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> requests.Response:
        token = key or self.key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.request(method, self.url + path, json=body, headers=headers, timeout=60)  # a hang guard


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def verified() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def emulator(clock: RecordingClock, verified: list[tuple[str, str]]) -> Iterator[CloudcraftEmulator]:
    def verifier(role_arn: str, external_id: str) -> bool:
        verified.append((role_arn, external_id))
        return "unassumable" not in role_arn

    with CloudcraftEmulator(KEY, clock=clock, external_id="ext-123", role_verifier=verifier) as running:
        yield running


@pytest.fixture
def api(emulator: CloudcraftEmulator) -> Iterator[Api]:
    assert emulator.url is not None
    client = Api(emulator.url)
    yield client
    client.session.close()


def test_start_listens_on_loopback_on_a_random_port(clock: RecordingClock) -> None:
    with CloudcraftEmulator(KEY, clock=clock) as one, CloudcraftEmulator(KEY, clock=clock) as two:
        assert one.url is not None
        assert two.url is not None
        assert one.url.startswith("http://127.0.0.1:")
        assert one.url != two.url
    assert one.url is None


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_key_gets_401_with_an_error_object(api: Api, key: str | None) -> None:
    api.key = key

    response = api.call("GET", "/aws/account")

    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)
    echoed = KEY in response.text
    assert not echoed  # (not `KEY not in text`: a failure would print the key)


def test_post_creates_an_account_with_server_fields(
    api: Api, emulator: CloudcraftEmulator, clock: RecordingClock, verified: list[tuple[str, str]]
) -> None:
    clock.advance(90)

    response = api.call("POST", "/aws/account", {"name": "payments", "roleArn": ROLE_ARN, "region": "eu-west-1"})

    assert response.status_code == 201
    account = response.json()
    assert uuid.UUID(account["id"])
    assert account["externalId"] == "ext-123"
    assert account["readAccess"] is None
    assert account["writeAccess"] is None
    assert account["source"] == "aws"
    assert account["CreatorId"]
    assert abs(datetime.fromisoformat(account["createdAt"]) - clock.now()) < timedelta(milliseconds=1)
    assert account["createdAt"].endswith("Z")
    assert verified == [(ROLE_ARN, "ext-123")]
    assert api.call("GET", "/aws/account").json() == {"accounts": [account]}
    assert emulator.accounts() == [account]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "roleArn": "arn:aws:iam::123:role/x"}, "Invalid roleArn"),
        ({"name": "x", "roleArn": "arn:aws:iam::123456789012:user/x"}, "Invalid roleArn"),
        ({"roleArn": ROLE_ARN}, "name"),
        ({"name": "x", "roleArn": ROLE_ARN, "readAccess": "team/a"}, "readAccess"),
        ({"name": "x", "roleArn": ROLE_ARN, "writeAccess": ["nobody"]}, "writeAccess"),
        ({"name": "x", "roleArn": "arn:aws:iam::123456789012:role/unassumable"}, "Unable to verify"),
    ],
)
def test_invalid_posts_get_400_and_create_nothing(
    api: Api, emulator: CloudcraftEmulator, body: dict[str, Any], message: str
) -> None:
    response = api.call("POST", "/aws/account", body)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert emulator.accounts() == []


def test_put_replaces_the_object_and_verifies_only_a_changed_role(
    api: Api, emulator: CloudcraftEmulator, clock: RecordingClock, verified: list[tuple[str, str]]
) -> None:
    seeded = emulator.seed_account("old", ROLE_ARN, read_access=["team/a"])
    clock.advance(10)

    renamed = api.call("PUT", f"/aws/account/{seeded['id']}", {"name": "new", "roleArn": ROLE_ARN})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "new"
    assert renamed.json()["readAccess"] is None  # the full object: what is left out is reset
    assert renamed.json()["updatedAt"] > seeded["updatedAt"]
    assert verified == []

    moved_arn = "arn:aws:iam::123456789012:role/unassumable"
    moved = api.call("PUT", f"/aws/account/{seeded['id']}", {"name": "new", "roleArn": moved_arn})
    assert moved.status_code == 400
    assert verified == [(moved_arn, seeded["externalId"])]
    assert emulator.accounts()[0]["roleArn"] == ROLE_ARN


def test_put_and_delete_of_an_unknown_id_get_404(api: Api) -> None:
    assert api.call("PUT", "/aws/account/nope", {"name": "x", "roleArn": ROLE_ARN}).status_code == 404
    assert api.call("DELETE", "/aws/account/nope").status_code == 404


def test_delete_removes_the_account(api: Api, emulator: CloudcraftEmulator) -> None:
    seeded = emulator.seed_account("old", ROLE_ARN)

    assert api.call("DELETE", f"/aws/account/{seeded['id']}").status_code == 200
    assert emulator.accounts() == []


def test_iam_parameters_follow_a_rotation(api: Api, emulator: CloudcraftEmulator) -> None:
    before = api.call("GET", "/aws/account/iamParameters").json()
    emulator.rotate_external_id("ext-456")
    after = api.call("GET", "/aws/account/iamParameters").json()

    assert (before["accountId"], before["externalId"]) == ("999999999999", "ext-123")
    assert after["externalId"] == "ext-456"
    assert "externalId=ext-456" in after["awsConsoleUrl"]
    assert emulator.iam_parameters == after


def _actions(document: dict[str, Any]) -> list[str]:
    actions: list[str] = []
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        action = statement["Action"]
        actions += [action] if isinstance(action, str) else action
    return actions


def test_policies_are_read_only_and_minimal_is_stricter(api: Api) -> None:
    custom = api.call("GET", "/aws/account/iamParameters/policy/custom").json()
    minimal = api.call("GET", "/aws/account/iamParameters/policy/minimal").json()

    custom_actions, minimal_actions = _actions(custom), _actions(minimal)
    assert 40 <= len(custom_actions) <= 80
    assert len(minimal_actions) < len(custom_actions)
    assert [a for a in custom_actions + minimal_actions if not READ_VERB.match(a)] == []
    assert custom["Version"] == minimal["Version"] == "2012-10-17"


def test_team_is_a_bare_array(api: Api) -> None:
    teams = api.call("GET", "/team").json()

    assert isinstance(teams, list)
    assert {"id", "name", "role", "members"} <= set(teams[0])


def test_the_rate_limit_answers_429_with_a_computed_retry_after_and_does_not_process(
    api: Api, emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    for _ in range(20):
        assert api.call("GET", "/team").status_code == 200
    clock.advance(12.5)

    throttled = api.call("POST", "/aws/account", {"name": "x", "roleArn": ROLE_ARN})

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "48"  # ceil(60 - 12.5)
    assert emulator.accounts() == []
    clock.advance(47)
    assert api.call("GET", "/team").status_code == 429
    clock.advance(1)
    assert api.call("POST", "/aws/account", {"name": "x", "roleArn": ROLE_ARN}).status_code == 201


def test_the_rate_limit_is_per_key_and_can_be_switched_off(clock: RecordingClock) -> None:
    with CloudcraftEmulator(KEY, clock=clock, rate_limit=None) as emulator:
        assert emulator.url is not None
        api = Api(emulator.url)
        assert {api.call("GET", "/team").status_code for _ in range(30)} == {200}

    with CloudcraftEmulator(KEY, clock=clock, rate_limit=(2, 10.0)) as emulator:
        assert emulator.url is not None
        api = Api(emulator.url)
        codes = [api.call("GET", "/team").status_code for _ in range(3)]
        unauthenticated = api.call("GET", "/team", key="another-key").status_code
    assert codes == [200, 200, 429]
    assert unauthenticated == 401  # rejected keys are turned away before they could count


def test_forced_faults_apply_in_order_and_are_logged(api: Api, emulator: CloudcraftEmulator) -> None:
    emulator.faults.rate_limit_next(1, retry_after=None)
    emulator.faults.server_error_next(1, status=504, body="<html>Gateway timeout</html>", method="POST")
    emulator.faults.fail_after_commit_next(1)

    no_header = api.call("GET", "/team")
    assert no_header.status_code == 429
    assert "Retry-After" not in no_header.headers
    assert api.call("GET", "/team").status_code == 200  # the POST-only fault waits for a POST

    gateway = api.call("POST", "/aws/account", {"name": "x", "roleArn": ROLE_ARN})
    assert (gateway.status_code, gateway.text) == (504, "<html>Gateway timeout</html>")
    assert emulator.accounts() == []

    committed = api.call("POST", "/aws/account", {"name": "x", "roleArn": ROLE_ARN})
    assert committed.status_code == 500
    assert len(emulator.accounts()) == 1

    assert [(e["method"], e["path"], e["status"]) for e in emulator.requests_log()] == [
        ("GET", "/team", 429),
        ("GET", "/team", 200),
        ("POST", "/aws/account", 504),
        ("POST", "/aws/account", 500),
    ]


def test_disconnect_closes_the_connection_without_an_answer(api: Api, emulator: CloudcraftEmulator) -> None:
    emulator.faults.disconnect_next(1)

    with pytest.raises(requests.ConnectionError):
        api.call("GET", "/team")
    assert api.call("GET", "/team").status_code == 200
    assert [e["status"] for e in emulator.requests_log()] == [None, 200]


def test_unverifiable_next_fails_verification_even_for_a_good_role(api: Api, emulator: CloudcraftEmulator) -> None:
    emulator.faults.unverifiable_next(1)

    first = api.call("POST", "/aws/account", {"name": "x", "roleArn": ROLE_ARN})
    second = api.call("POST", "/aws/account", {"name": "x", "roleArn": ROLE_ARN})

    assert first.status_code == 400
    assert "propagate" in first.json()["error"]
    assert second.status_code == 201


def test_faults_from_a_sandbox_config(api: Api, emulator: CloudcraftEmulator) -> None:
    emulator.faults.apply({"rate_limit_next": 2, "rate_limit_retry_after": 9, "server_error_next": 1})

    answers = [api.call("GET", "/team") for _ in range(4)]

    assert [a.status_code for a in answers] == [429, 429, 502, 200]
    assert answers[0].headers["Retry-After"] == "9"
    with pytest.raises(ValueError, match="unknown Cloudcraft faults"):
        emulator.faults.apply({"explode_next": 1})


def test_unknown_paths_and_methods(api: Api) -> None:
    assert api.call("GET", "/aws/nothing").status_code == 404
    assert api.call("DELETE", "/team").status_code == 405
    assert api.call("POST", "/aws/account", None).status_code == 400  # no body at all
