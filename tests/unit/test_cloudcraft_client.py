"""Unit tests of the Cloudcraft client: parsing, error mapping, the rate limiter and retries against a fake session."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from chalicelib.adapters.cloudcraft.client import CloudcraftClient, api_key_problem
from chalicelib.adapters.cloudcraft.errors import (
    DEFAULT_RETRY_AFTER,
    CloudcraftAuthError,
    CloudcraftBadRequest,
    CloudcraftConnectionError,
    CloudcraftError,
    CloudcraftNotFound,
    CloudcraftRateLimited,
    CloudcraftServerError,
    error_class_for,
    error_detail,
    parse_retry_after,
)
from chalicelib.adapters.cloudcraft.limiter import RateLimiter, RateLimitWait
from chalicelib.adapters.cloudcraft.models import CloudcraftAccount, Team
from chalicelib.core.errors import ConfigurationError, GatehouseError
from tests.clocks import RecordingClock

KEY = "cc-unit-" + "Zq8Wt3" * 6
ROLE_ARN = "arn:aws:iam::123456789012:role/cloudcraft"


def account_json(**overrides: Any) -> dict[str, Any]:
    account = {
        "id": "3f1b6a2e-8c4d-4e5f-9a0b-1c2d3e4f5a6b",
        "name": "payments prod",
        "roleArn": ROLE_ARN,
        "externalId": "ext-1",
        "readAccess": None,
        "writeAccess": ["team/abc"],
        "source": "aws",
        "CreatorId": "user-1",
        "createdAt": "2025-01-02T03:04:05.000Z",
        "updatedAt": "2025-01-02T03:04:05.000Z",
    }
    account.update(overrides)
    return account


def assert_no_key(text: str, where: str) -> None:
    """Fails without echoing the text: a failing `assert KEY not in text` would print the key itself."""
    __tracebackhide__ = True
    if KEY in text:
        pytest.fail(f"the API key leaked into {where}", pytrace=False)


# --- a scripted session: fakes over mocks --------------------------------------------------------------


Reply = requests.Response | Exception


def response(status: int, body: Any = None, *, headers: dict[str, str] | None = None, reason: str = "") -> Reply:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = reason
    resp.headers.update(headers or {})
    if body is None:
        content = b""
    elif isinstance(body, str | bytes):
        content = body.encode() if isinstance(body, str) else body
    else:
        content = json.dumps(body).encode()
    resp.raw = io.BytesIO(content)  # streamed, as the client asks for: read through iter_content
    return resp


class ScriptedSession(requests.Session):
    """Answers each request with the next scripted reply and records what was sent."""

    def __init__(self, *replies: Reply | Callable[[str, str], Reply]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append({"method": method, "url": url, **kwargs})
        reply = self.replies.pop(0)
        if callable(reply) and not isinstance(reply, requests.Response | Exception):
            reply = reply(str(method), str(url))
        if isinstance(reply, Exception):
            raise reply
        return reply


def make_client(session: ScriptedSession, clock: RecordingClock | None = None, **kwargs: Any) -> CloudcraftClient:
    clock = clock or RecordingClock()
    return CloudcraftClient(
        KEY,
        "https://cloudcraft.test/",
        session=session,
        clock=clock,
        rate_limiter=RateLimiter(1000, 1.0, clock=clock),
        jitter=lambda low, high: high,
        **kwargs,
    )


# --- models ---------------------------------------------------------------------------------------------


def test_account_from_api_reads_every_documented_field() -> None:
    account = CloudcraftAccount.from_api(account_json())

    assert account == CloudcraftAccount(
        id="3f1b6a2e-8c4d-4e5f-9a0b-1c2d3e4f5a6b",
        name="payments prod",
        role_arn=ROLE_ARN,
        external_id="ext-1",
        read_access=None,
        write_access=("team/abc",),
        source="aws",
        creator_id="user-1",
        created_at="2025-01-02T03:04:05.000Z",
        updated_at="2025-01-02T03:04:05.000Z",
    )


def test_account_from_api_tolerates_unknown_null_missing_and_mistyped_fields() -> None:
    account = CloudcraftAccount.from_api(
        {
            "id": "a1",
            "roleArn": ROLE_ARN,
            "name": None,
            "readAccess": [],
            "writeAccess": ["team/x", 7, None],
            "CreatorId": None,
            "creatorId": "user-2",
            "brandNewField": {"nested": True},
        }
    )

    assert account.name == ""
    assert account.read_access == ()  # an empty list is an answer of its own, unlike null
    assert account.write_access == ("team/x",)
    assert account.creator_id == "user-2"
    assert account.external_id is None
    assert account.created_at is None
    assert account.source is None


def test_account_from_an_empty_object_has_blank_identity_and_no_aws_account() -> None:
    account = CloudcraftAccount.from_api({})

    assert (account.id, account.name, account.role_arn) == ("", "", "")
    assert account.aws_account_id is None


@pytest.mark.parametrize(
    ("role_arn", "expected"),
    [
        ("arn:aws:iam::123456789012:role/cloudcraft", "123456789012"),
        ("arn:aws:iam::123456789012:role/path/to/cloudcraft", "123456789012"),
        ("arn:aws-us-gov:iam::210987654321:role/cloudcraft", "210987654321"),
        ("arn:aws:iam::12345678901:role/cloudcraft", None),  # 11 digits
        ("arn:aws:iam::1234567890123:role/cloudcraft", None),  # 13 digits
        ("arn:aws:sts::123456789012:assumed-role/cloudcraft/s", None),
        ("arn:aws:iam::123456789012:user/alice", None),
        ("123456789012", None),
        ("", None),
    ],
)
def test_aws_account_id_comes_from_the_role_arn(role_arn: str, expected: str | None) -> None:
    assert CloudcraftAccount.from_api(account_json(roleArn=role_arn)).aws_account_id == expected


def test_team_from_api_tolerates_missing_role_and_extra_fields() -> None:
    assert Team.from_api({"id": "t1", "name": "Ops", "members": [{"id": "u"}]}) == Team("t1", "Ops", None)


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, CloudcraftBadRequest),
        (401, CloudcraftAuthError),
        (403, CloudcraftAuthError),
        (404, CloudcraftNotFound),
        (429, CloudcraftRateLimited),
        (500, CloudcraftServerError),
        (502, CloudcraftServerError),
        (599, CloudcraftServerError),
        (409, CloudcraftError),
        (418, CloudcraftError),
    ],
)
def test_status_maps_to_its_error_class(status: int, expected: type[CloudcraftError]) -> None:
    assert error_class_for(status) is expected


def test_every_cloudcraft_error_is_a_gatehouse_error() -> None:
    for cls in (CloudcraftBadRequest, CloudcraftConnectionError, CloudcraftRateLimited, CloudcraftServerError):
        assert issubclass(cls, CloudcraftError)
    assert issubclass(CloudcraftError, GatehouseError)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": "Invalid roleArn"}', "Invalid roleArn"),
        ('{"message": "Forbidden"}', "Forbidden"),
        ('{"error": {"message": "nested"}}', "nested"),
        ("<html><head><title>502 Bad Gateway</title></head><body><h1>oops</h1></body></html>", "502 Bad Gateway"),
        ("<html><body><h1>Service\n  Unavailable</h1></body></html>", "Service Unavailable"),
        ("<html><head><title>A &amp; B</title></head></html>", "A & B"),
        ("", ""),
        ("   \n", ""),
        ("upstream connect error", "upstream connect error"),
        ('["not", "an", "object"]', '["not", "an", "object"]'),
        ("{broken json", "{broken json"),
    ],
)
def test_error_detail_reads_json_html_and_text_without_crashing(body: str, expected: str) -> None:
    assert error_detail(body) == expected


def test_error_detail_is_bounded() -> None:
    assert len(error_detail("x" * 5000)) == 200


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (None, DEFAULT_RETRY_AFTER),
        ("", DEFAULT_RETRY_AFTER),
        ("soon", DEFAULT_RETRY_AFTER),
        ("-3", DEFAULT_RETRY_AFTER),
        ("nan", DEFAULT_RETRY_AFTER),
        ("inf", DEFAULT_RETRY_AFTER),
    ],
)
def test_parse_retry_after(header: str | None, expected: float) -> None:
    assert parse_retry_after(header, RecordingClock()) == expected


def test_parse_retry_after_accepts_an_http_date_relative_to_the_clock() -> None:
    clock = RecordingClock(datetime(2026, 11, 23, 9, 0, 0, 250_000, tzinfo=UTC))
    header = format_datetime(clock.now() + timedelta(seconds=42), usegmt=True)

    # HTTP dates carry whole seconds: the date names 09:00:42, 41.75 s after the clock's 09:00:00.25.
    assert parse_retry_after(header, clock) == 41.75
    clock.advance(41.75)
    assert parse_retry_after(header, clock) == 0.0
    clock.advance(1)
    assert parse_retry_after(header, clock) == 0.0  # a date in the past: no wait, never a negative one


# --- rate limiter ---------------------------------------------------------------------------------------


def test_limiter_lets_twenty_through_and_the_21st_waits_for_the_window() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(20, 60.0, clock=clock, spacing=False)  # the window alone

    waits = [limiter.acquire() for _ in range(20)]
    assert waits == [0.0] * 20
    assert clock.sleeps == []

    assert limiter.acquire() == 60.0
    assert clock.sleeps == [60.0]
    assert clock.monotonic() == 60.0


def test_limiter_window_slides_rather_than_resetting() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(20, 60.0, clock=clock, spacing=False)  # the window alone
    for _ in range(10):
        limiter.acquire()
    clock.advance(30)
    for _ in range(10):
        limiter.acquire()

    # The first ten leave the window at t=60, not at some fixed minute boundary.
    assert limiter.acquire() == 30.0
    assert clock.monotonic() == 60.0
    # Ten slots freed at t=60: nine more go through at once, the tenth waits for the t=30 batch.
    assert [limiter.acquire() for _ in range(9)] == [0.0] * 9
    assert limiter.acquire() == 30.0
    assert clock.monotonic() == 90.0


def test_penalize_holds_back_the_next_caller_even_with_free_slots() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(20, 60.0, clock=clock, spacing=False)  # the window alone
    limiter.acquire()

    limiter.penalize(15)
    limiter.penalize(5)  # a shorter penalty never shortens a longer one

    assert limiter.acquire() == 15.0
    assert limiter.acquire() == 0.0


def test_a_settled_slot_counts_from_the_answer_not_from_the_claim() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(1, 60.0, clock=clock)

    slot = limiter.reserve()
    clock.advance(5)  # the request took 5 s: the server counted it on arrival, somewhere in between
    limiter.settle(slot)

    assert limiter.acquire() == 60.0  # until t=65, not t=60
    assert clock.monotonic() == 65.0


def test_settling_a_slot_that_already_expired_counts_it_again() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(1, 60.0, clock=clock)

    slot = limiter.reserve()
    clock.advance(90)
    limiter.settle(slot)

    assert limiter.acquire() == 60.0


class _Blocked(Exception):
    pass


class _FrozenClock(RecordingClock):
    """Time stands still and waiting is refused: each thread either gets a slot at once or gives up."""

    def sleep(self, seconds: float) -> None:
        raise _Blocked


def test_limiter_never_grants_more_than_its_limit_to_concurrent_callers() -> None:
    limiter = RateLimiter(20, 60.0, clock=_FrozenClock(), spacing=False)
    granted: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(40, timeout=120)  # a hang guard

    def worker(index: int) -> None:
        start.wait()
        try:
            limiter.acquire()
        except _Blocked:
            refused.append(index)
        else:
            granted.append(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)  # a hang guard
        assert not thread.is_alive()

    assert len(granted) == 20
    assert len(refused) == 20


def test_spacing_sends_one_request_every_sixty_over_r_seconds_instead_of_a_burst() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(20, 60.0, clock=clock)

    waits = [limiter.acquire() for _ in range(41)]

    assert waits == [0.0] + [3.0] * 40
    assert clock.monotonic() == 120.0  # 40 intervals: exactly 20 a minute, sustained


def test_a_wait_longer_than_the_caller_may_take_claims_nothing() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(20, 60.0, clock=clock)
    limiter.acquire()
    limiter.penalize(120)  # a 429 said: two minutes

    with pytest.raises(RateLimitWait) as caught:
        limiter.reserve(max_wait=30)

    assert caught.value.seconds == 120.0
    assert clock.sleeps == []  # handed back at once, nothing slept
    assert limiter.acquire() == 120.0  # a caller that may wait still waits it out


class _Budget:
    """SharedBudget in memory: the DynamoDB record's logic without DynamoDB."""

    def __init__(self) -> None:
        self.next_at = 0.0
        self.claims: list[float] = []

    def claim(self, *, now: float, interval: float, horizon: float) -> float:
        at = max(now, self.next_at)
        if at - now > horizon:
            raise RateLimitWait(at - now)
        self.next_at = at + interval
        self.claims.append(at)
        return at


def test_two_containers_sharing_a_budget_keep_to_one_rate_between_them() -> None:
    clock = RecordingClock()  # one timeline for both, as the sandbox has
    budget = _Budget()
    first = RateLimiter(20, 60.0, clock=clock, shared=budget)
    second = RateLimiter(20, 60.0, clock=clock, shared=budget)

    for _ in range(10):
        first.acquire()
        second.acquire()

    gaps = [later - earlier for earlier, later in zip(budget.claims, budget.claims[1:], strict=False)]
    assert gaps == [3.0] * 19  # 20 requests from two containers, evenly spaced at the deployment's rate


def test_a_busy_budget_is_handed_back_without_claiming() -> None:
    clock = RecordingClock()
    budget = _Budget()
    budget.next_at = clock.now().timestamp() + 90  # other containers took the next 90 s
    limiter = RateLimiter(20, 60.0, clock=clock, shared=budget)

    with pytest.raises(RateLimitWait):
        limiter.reserve(max_wait=30)

    assert budget.claims == []
    assert clock.sleeps == []


def test_limiter_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="max_requests"):
        RateLimiter(0, 60.0, clock=RecordingClock())


# --- client over a scripted session ---------------------------------------------------------------------


def test_client_refuses_an_empty_key_and_a_non_http_base_url() -> None:
    with pytest.raises(ConfigurationError):
        CloudcraftClient("  ")
    with pytest.raises(ConfigurationError, match="https://"):
        CloudcraftClient(KEY, "api.cloudcraft.co")


def test_requests_carry_bearer_key_user_agent_timeout_and_no_redirects() -> None:
    session = ScriptedSession(response(200, {"accounts": []}))
    client = make_client(session, timeout=3.5)

    assert client.list_accounts() == []

    sent = session.sent[0]
    assert sent["method"] == "GET"
    assert sent["url"] == "https://cloudcraft.test/aws/account"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert sent["headers"]["User-Agent"].startswith("gatehouse/")
    assert sent["timeout"] == 3.5
    assert sent["allow_redirects"] is False
    assert client.request_count == 1


def test_repr_and_attributes_show_the_base_url_but_never_the_key() -> None:
    client = make_client(ScriptedSession())

    assert repr(client) == "CloudcraftClient(base_url='https://cloudcraft.test')"
    assert_no_key(repr(vars(client)), "vars(client)")
    assert_no_key(str(client), "str(client)")


def test_list_accounts_parses_every_account() -> None:
    session = ScriptedSession(response(200, {"accounts": [account_json(), account_json(id="b2", roleArn="x")]}))

    accounts = make_client(session).list_accounts()

    assert [a.id for a in accounts] == ["3f1b6a2e-8c4d-4e5f-9a0b-1c2d3e4f5a6b", "b2"]
    assert [a.aws_account_id for a in accounts] == ["123456789012", None]


@pytest.mark.parametrize("payload", [[], {"accounts": None}, {"accounts": [account_json(), "junk"]}, "<html>"])
def test_list_accounts_refuses_a_response_it_cannot_read_completely(payload: Any) -> None:
    # Dropping an unreadable entry could hide a registration and lead to a duplicate POST.
    with pytest.raises(CloudcraftError, match="unexpected response"):
        make_client(ScriptedSession(response(200, payload))).list_accounts()


def test_create_account_posts_the_documented_body_and_parses_the_201() -> None:
    session = ScriptedSession(response(201, account_json()))

    created = make_client(session).create_account(
        name="payments prod", role_arn=ROLE_ARN, region="eu-west-1", write_access=("team/abc",)
    )

    assert created.id == "3f1b6a2e-8c4d-4e5f-9a0b-1c2d3e4f5a6b"
    assert session.sent[0]["method"] == "POST"
    assert session.sent[0]["json"] == {
        "name": "payments prod",
        "roleArn": ROLE_ARN,
        "region": "eu-west-1",
        "writeAccess": ["team/abc"],
    }


def test_update_account_sends_the_full_object_with_explicit_nulls() -> None:
    session = ScriptedSession(response(200, account_json(name="renamed")))

    updated = make_client(session).update_account(
        "id/with slash", name="renamed", role_arn=ROLE_ARN, read_access=None, write_access=("team/abc",)
    )

    assert updated is not None
    assert updated.name == "renamed"
    assert session.sent[0]["method"] == "PUT"
    assert session.sent[0]["url"] == "https://cloudcraft.test/aws/account/id%2Fwith%20slash"
    assert session.sent[0]["json"] == {
        "name": "renamed",
        "roleArn": ROLE_ARN,
        "readAccess": None,
        "writeAccess": ["team/abc"],
    }


def test_delete_account_accepts_an_empty_200() -> None:
    session = ScriptedSession(response(200))

    make_client(session).delete_account("a1")

    assert session.sent[0]["method"] == "DELETE"


def test_a_404_on_a_first_delete_is_an_error() -> None:
    with pytest.raises(CloudcraftNotFound):
        make_client(ScriptedSession(response(404, {"error": "Account not found"}))).delete_account("a1")


def test_a_404_after_an_ambiguous_delete_means_it_was_already_deleted() -> None:
    session = ScriptedSession(response(502, "<html>Bad gateway</html>"), response(404, {"error": "Account not found"}))

    make_client(session).delete_account("a1")  # no CloudcraftNotFound

    assert len(session.sent) == 2


@pytest.mark.parametrize(
    "payload",
    [{"teams": [{"id": "t1", "name": "Ops", "role": "admin"}]}, [{"id": "t1", "name": "Ops", "role": "admin"}]],
)
def test_teams_accepts_a_bare_array_and_a_wrapping_object(payload: Any) -> None:
    assert make_client(ScriptedSession(response(200, payload))).teams() == [Team("t1", "Ops", "admin")]


def test_teams_accepts_an_object_wrapping_its_list_under_another_key() -> None:
    payload = {"total": 1, "data": [{"id": "t1", "name": "Ops"}]}

    assert make_client(ScriptedSession(response(200, payload))).teams() == [Team("t1", "Ops", None)]


def test_iam_parameters_refuses_blanks_a_trust_policy_cannot_use() -> None:
    session = ScriptedSession(response(200, {"accountId": "999999999999", "externalId": ""}))

    with pytest.raises(CloudcraftError, match="accountId and externalId"):
        make_client(session).iam_parameters()


def test_policy_rejects_an_unknown_kind_without_a_request() -> None:
    session = ScriptedSession()

    with pytest.raises(ValueError, match="custom"):
        make_client(session).policy("maximal")  # type: ignore[arg-type]
    assert session.sent == []


def test_html_5xx_becomes_a_server_error_with_readable_message_and_bounded_body() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 2000 + "</body></html>"
    session = ScriptedSession(response(502, page, reason="Bad Gateway"))

    with pytest.raises(CloudcraftServerError) as caught:
        make_client(session, max_attempts=1).list_accounts()

    error = caught.value
    assert error.status == 502
    assert error.method == "GET"
    assert error.path == "/aws/account"
    assert str(error) == "Cloudcraft GET /aws/account returned 502: 502 Bad Gateway"
    assert len(error.body) == 500


def test_empty_error_body_falls_back_to_the_reason_phrase() -> None:
    session = ScriptedSession(response(503, None, reason="Service Unavailable"))

    with pytest.raises(CloudcraftServerError, match="returned 503: Service Unavailable"):
        make_client(session, max_attempts=1).list_accounts()


def test_a_2xx_that_is_not_json_is_an_error_not_a_crash() -> None:
    session = ScriptedSession(response(200, "<html>captive portal</html>"))

    with pytest.raises(CloudcraftError, match="expected JSON") as caught:
        make_client(session).list_accounts()
    assert caught.value.status == 200


def test_a_key_echoed_by_a_gateway_is_redacted_from_the_error() -> None:
    echoed = f"<html><title>Bad request</title><pre>Authorization: Bearer {KEY}</pre></html>"
    session = ScriptedSession(response(400, echoed), response(400, {"error": f"bad key {KEY}"}))
    client = make_client(session)

    for _ in range(2):
        with pytest.raises(CloudcraftBadRequest) as caught:
            client.list_accounts()
        assert_no_key(str(caught.value), "str(error)")
        assert_no_key(repr(caught.value), "repr(error)")
        assert_no_key(caught.value.body, "error.body")
        assert "[redacted]" in caught.value.body


def test_a_400_is_never_retried() -> None:
    session = ScriptedSession(response(400, {"error": "Unable to verify the role"}))
    client = make_client(session)

    with pytest.raises(CloudcraftBadRequest, match="Unable to verify"):
        client.create_account(name="n", role_arn=ROLE_ARN)
    assert client.request_count == 1


def test_5xx_retries_back_off_exponentially_through_the_jitter_then_give_up() -> None:
    clock = RecordingClock()
    session = ScriptedSession(*[response(500, {"error": "boom"}) for _ in range(4)])
    client = make_client(session, clock)

    with pytest.raises(CloudcraftServerError, match="boom"):
        client.list_accounts()
    assert client.request_count == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_jitter_decides_the_actual_wait() -> None:
    clock = RecordingClock()
    session = ScriptedSession(response(500), response(200, {"accounts": []}))
    client = CloudcraftClient(
        KEY,
        "https://cloudcraft.test",
        session=session,
        clock=clock,
        rate_limiter=RateLimiter(1000, 1.0, clock=clock),
        jitter=lambda low, high: high / 4,
    )

    client.list_accounts()

    assert clock.sleeps == [0.25]


def test_connection_errors_on_reads_are_retried_then_reported_without_a_status() -> None:
    clock = RecordingClock()
    session = ScriptedSession(
        requests.ConnectionError("connection refused"), requests.ReadTimeout("read timed out"), response(200, [])
    )

    assert make_client(session, clock).teams() == []
    assert clock.sleeps == [1.0, 2.0]

    failing = ScriptedSession(*[requests.ConnectTimeout("connect timed out") for _ in range(2)])
    with pytest.raises(CloudcraftConnectionError, match="ConnectTimeout") as caught:
        make_client(failing, max_attempts=2).teams()
    assert caught.value.status is None
    assert caught.value.path == "/team"


def test_a_rate_limited_post_is_simply_repeated() -> None:
    clock = RecordingClock()
    session = ScriptedSession(
        response(429, {"error": "slow down"}, headers={"Retry-After": "3"}), response(201, account_json())
    )

    created = make_client(session, clock).create_account(name="n", role_arn=ROLE_ARN)

    assert created.role_arn == ROLE_ARN
    assert [s["method"] for s in session.sent] == ["POST", "POST"]
    assert clock.sleeps == [3.0]


def test_a_post_that_timed_out_but_landed_is_found_by_listing_instead_of_repeated() -> None:
    older = account_json(id="old", createdAt="2024-01-01T00:00:00.000Z")
    newer = account_json(id="new", createdAt="2025-06-01T00:00:00.000Z")
    session = ScriptedSession(
        requests.ReadTimeout("read timed out"),
        response(200, {"accounts": [account_json(id="other", roleArn="arn:aws:iam::1:role/x"), older, newer]}),
    )

    created = make_client(session).create_account(name="n", role_arn=ROLE_ARN)

    assert created.id == "new"
    assert [s["method"] for s in session.sent] == ["POST", "GET"]


def test_a_post_that_failed_and_did_not_land_is_posted_again() -> None:
    session = ScriptedSession(response(503), response(200, {"accounts": []}), response(201, account_json()))

    created = make_client(session).create_account(name="n", role_arn=ROLE_ARN)

    assert created.role_arn == ROLE_ARN
    assert [s["method"] for s in session.sent] == ["POST", "GET", "POST"]


def test_out_of_attempts_a_post_still_looks_whether_it_landed() -> None:
    session = ScriptedSession(requests.ReadTimeout("read timed out"), response(200, {"accounts": [account_json()]}))

    created = make_client(session, max_attempts=1).create_account(name="n", role_arn=ROLE_ARN)

    assert created.role_arn == ROLE_ARN
    assert [s["method"] for s in session.sent] == ["POST", "GET"]


@pytest.mark.parametrize("look", [response(200, {"accounts": []}), response(500, {"error": "list failed too"})])
def test_out_of_attempts_a_post_that_did_not_land_raises_its_own_error(look: Reply) -> None:
    session = ScriptedSession(response(503, {"error": "post failed"}), look)

    with pytest.raises(CloudcraftServerError, match="post failed") as caught:
        make_client(session, max_attempts=1).create_account(name="n", role_arn=ROLE_ARN)

    assert caught.value.method == "POST"
    assert [s["method"] for s in session.sent] == ["POST", "GET"]


def test_a_retry_after_too_long_to_wait_out_is_raised_at_once_and_still_penalizes() -> None:
    clock = RecordingClock()
    limiter = RateLimiter(1000, 1.0, clock=clock)
    session = ScriptedSession(response(429, None, headers={"Retry-After": "3600"}))
    client = CloudcraftClient(KEY, "https://cloudcraft.test", session=session, clock=clock, rate_limiter=limiter)

    with pytest.raises(CloudcraftRateLimited) as caught:
        client.list_accounts()

    assert caught.value.retry_after == 3600.0
    assert client.request_count == 1
    assert clock.sleeps == []
    assert limiter.acquire() == 3600.0  # the next caller in this container waits rather than hammering


def test_rate_limits_count_towards_max_attempts() -> None:
    clock = RecordingClock()
    session = ScriptedSession(*[response(429, None, headers={"Retry-After": "2"}) for _ in range(3)])

    with pytest.raises(CloudcraftRateLimited):
        make_client(session, clock, max_attempts=3).list_accounts()
    assert len(session.sent) == 3
    assert clock.sleeps == [2.0, 2.0]


# --- hostile and bodiless answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (KEY + "\r\nX-Evil: 1", "whitespace, control or non-ASCII"),
        (KEY[:10] + " " + KEY[10:], "whitespace"),
        (KEY + "\x00", "control"),
        (KEY + "\u00e9", "non-ASCII"),
        ("k" * 1025, "longer than 1024"),
    ],
)
def test_an_unusable_key_is_refused_without_being_echoed(key: str, why: str) -> None:
    assert why in (api_key_problem(key) or "")
    with pytest.raises(ConfigurationError) as caught:
        CloudcraftClient(key, "https://cloudcraft.test")
    assert_no_key(str(caught.value), "the refusal")
    assert api_key_problem(KEY) is None


class RaisingSession(requests.Session):
    """Sends through requests' own header checks (which quote the header value) without a network."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        raise AssertionError("a request with an invalid header must never be sent")


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.InvalidHeader(f"Invalid return character or leading space in header: Bearer {KEY}"),
        UnicodeEncodeError("latin-1", f"Bearer {KEY}\u2028", 7, 8, "ordinal not in range(256)"),
        requests.exceptions.InvalidURL(f"bad url with Bearer {KEY}"),
        AttributeError("'NoneType' object has no attribute 'read'"),
    ],
)
def test_no_error_of_the_http_layer_passes_on_its_message_or_context(failure: Exception) -> None:
    session = ScriptedSession(failure)

    with pytest.raises(CloudcraftError) as caught:
        make_client(session).list_accounts()

    error = caught.value
    assert type(failure).__name__ in str(error)
    assert error.__context__ is None  # no traceback can print the original
    assert error.__cause__ is None
    assert_no_key(str(error) + repr(error) + error.body, "the error")


def test_a_header_injected_through_the_key_never_reaches_the_wire() -> None:
    client = CloudcraftClient(KEY, "https://cloudcraft.test", session=RaisingSession(), clock=RecordingClock())
    client._key = type(client._key)(KEY + "\r\nX-Evil: 1")  # as if the constructor's check were bypassed

    with pytest.raises(CloudcraftError, match=r"could not be sent \(InvalidHeader\)") as caught:
        client.list_accounts()
    assert_no_key(str(caught.value), "the error")


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (deep(100_000), "nested deeper than 32 levels"),  # past the interpreter's recursion limit
        (deep(500), "nested deeper than 32 levels"),  # within it, but deeper than any answer
        ('{"accountId": NaN, "externalId": "x"}', "non-standard JSON constant"),
        ('{"accountId": ' + "9" * 5000 + "}", "not JSON"),  # an integer Python refuses to convert
        ("\xff\xfe not json", "not JSON"),
    ],
)
def test_an_answer_nested_too_deep_or_malformed_is_a_cloudcraft_error(body: str, why: str) -> None:
    session = ScriptedSession(response(200, body))

    with pytest.raises(CloudcraftError, match=why):
        make_client(session).iam_parameters()


def test_an_answer_larger_than_the_limit_is_not_read_to_the_end() -> None:
    declared = response(200, {"accounts": []}, headers={"Content-Length": str(10**12)})
    endless = response(200, "[" + "0," * 600 + "0]")
    session = ScriptedSession(declared, endless, response(502, "<html>" + "x" * 5000 + "</html>"))
    client = make_client(session, max_body_bytes=1000, max_attempts=1)

    for _ in range(2):
        with pytest.raises(CloudcraftError, match="an answer of at most 1000 bytes"):
            client.list_accounts()
    with pytest.raises(CloudcraftServerError):  # an error page that long is cut short, not refused
        client.list_accounts()


def test_error_detail_survives_a_deeply_nested_error_body() -> None:
    assert error_detail(deep(100_000)).startswith("[[[")


@pytest.mark.parametrize("reply", [response(200), response(204)])
def test_a_put_confirmed_without_a_body_is_a_success(reply: Reply) -> None:
    session = ScriptedSession(reply)

    updated = make_client(session).update_account(
        "a1", name="n", role_arn=ROLE_ARN, read_access=None, write_access=None
    )

    assert updated is None
    assert [sent["method"] for sent in session.sent] == ["PUT"]


def test_a_post_confirmed_without_a_body_is_found_in_the_list() -> None:
    session = ScriptedSession(response(201), response(200, {"accounts": [account_json()]}))

    created = make_client(session).create_account(name="n", role_arn=ROLE_ARN)

    assert created.id == "3f1b6a2e-8c4d-4e5f-9a0b-1c2d3e4f5a6b"
    assert [sent["method"] for sent in session.sent] == ["POST", "GET"]


def test_a_bodiless_post_not_found_in_the_list_is_an_error() -> None:
    session = ScriptedSession(response(201), response(200, {"accounts": []}))

    with pytest.raises(CloudcraftError, match="the new account"):
        make_client(session).create_account(name="n", role_arn=ROLE_ARN)
