"""The Cloudcraft client over real HTTP against the loopback emulator; one RecordingClock counts every wait."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.adapters.cloudcraft.client import CloudcraftClient
from chalicelib.adapters.cloudcraft.errors import (
    CloudcraftAuthError,
    CloudcraftBadRequest,
    CloudcraftConnectionError,
    CloudcraftError,
    CloudcraftNotFound,
    CloudcraftServerError,
)
from chalicelib.adapters.cloudcraft.limiter import RateLimiter
from chalicelib.adapters.cloudcraft.models import Team
from chalicelib.core.clock import VirtualClock
from gatehouse.sandbox.cloudcraft_emulator import ADMIN_POLICY, DEFAULT_TEAMS, CloudcraftEmulator
from tests.clocks import RecordingClock
from tests.fakes import top_of_range

KEY = "cc-live-" + "Hx7Pq2Lm9V" * 4
ROLE_ARN = "arn:aws:iam::123456789012:role/cloudcraft"


def assert_no_key(text: str, where: str) -> None:
    """Fails without echoing the text: a failing `assert KEY not in text` would print the key itself."""
    __tracebackhide__ = True
    if KEY in text:
        pytest.fail(f"the API key leaked into {where}", pytrace=False)


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def emulator(clock: RecordingClock) -> Iterator[CloudcraftEmulator]:
    with CloudcraftEmulator(KEY, clock=clock) as running:
        yield running


def build_client(
    emulator: CloudcraftEmulator,
    clock: RecordingClock,
    *,
    rate_limiter: RateLimiter | None = None,
    max_attempts: int = 4,
) -> CloudcraftClient:
    """A client on the emulator's clock whose jitter is pinned, so every backoff is an exact number; its limiter
    keeps the window but does not space requests, unless a test brings its own."""
    assert emulator.url is not None
    return CloudcraftClient(
        KEY,
        emulator.url,
        clock=clock,
        rate_limiter=rate_limiter or RateLimiter(20, 60.0, clock=clock, spacing=False),
        max_attempts=max_attempts,
        jitter=lambda low, high: high,
    )


@pytest.fixture
def client(emulator: CloudcraftEmulator, clock: RecordingClock) -> Iterator[CloudcraftClient]:
    with build_client(emulator, clock) as built:
        yield built


def statuses(emulator: CloudcraftEmulator) -> list[tuple[str, int | None]]:
    return [(entry["method"], entry["status"]) for entry in emulator.requests_log()]


# --- the happy path -------------------------------------------------------------------------------------


def test_create_list_update_delete_round_trip(client: CloudcraftClient, emulator: CloudcraftEmulator) -> None:
    created = client.create_account(name="payments", role_arn=ROLE_ARN, read_access=("team/t1",))

    assert created.aws_account_id == "123456789012"
    assert created.external_id == emulator.iam_parameters["externalId"]
    assert client.list_accounts() == [created]

    updated = client.update_account(
        created.id, name="payments prod", role_arn=ROLE_ARN, read_access=None, write_access=("team/t2",)
    )
    assert updated is not None
    assert (updated.id, updated.name, updated.read_access, updated.write_access) == (
        created.id,
        "payments prod",
        None,
        ("team/t2",),
    )

    client.delete_account(created.id)
    assert client.list_accounts() == []
    assert statuses(emulator) == [("POST", 201), ("GET", 200), ("PUT", 200), ("DELETE", 200), ("GET", 200)]


def test_iam_parameters_and_both_policies(client: CloudcraftClient, emulator: CloudcraftEmulator) -> None:
    parameters = client.iam_parameters()
    assert (parameters.account_id, parameters.external_id) == ("999999999999", emulator.iam_parameters["externalId"])

    emulator.rotate_external_id("rotated-external-id")
    assert client.iam_parameters().external_id == "rotated-external-id"

    custom, minimal = client.policy("custom"), client.policy("minimal")
    assert custom["Version"] == "2012-10-17"
    assert len(custom["Statement"][0]["Action"]) > len(minimal["Statement"][0]["Action"])


def test_unknown_ids_raise_not_found_on_update_and_delete(client: CloudcraftClient) -> None:
    with pytest.raises(CloudcraftNotFound):
        client.update_account("no-such-id", name="x", role_arn=ROLE_ARN, read_access=None, write_access=None)
    with pytest.raises(CloudcraftNotFound):
        client.delete_account("no-such-id")
    assert client.request_count == 2  # a 404 is an answer, not a reason to retry


@pytest.mark.parametrize("wrapped", [False, True])
def test_teams_in_both_shapes(clock: RecordingClock, wrapped: bool) -> None:
    with (
        CloudcraftEmulator(KEY, clock=clock, teams_wrapped=wrapped) as emulator,
        build_client(emulator, clock) as client,
    ):
        teams = client.teams()

    assert teams == [Team(str(t["id"]), str(t["name"]), str(t["role"])) for t in DEFAULT_TEAMS]


# --- rate limits ----------------------------------------------------------------------------------------


def test_429_with_retry_after_waits_that_long_then_succeeds(
    client: CloudcraftClient, emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    emulator.faults.rate_limit_next(1, retry_after=7)

    assert client.list_accounts() == []

    assert clock.sleeps == [7.0]
    assert statuses(emulator) == [("GET", 429), ("GET", 200)]


def test_429_without_retry_after_waits_sixty_seconds(
    client: CloudcraftClient, emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    emulator.faults.rate_limit_next(1, retry_after=None)

    client.teams()

    assert clock.sleeps == [60.0]
    assert statuses(emulator) == [("GET", 429), ("GET", 200)]


def test_a_rate_limited_post_is_repeated_without_listing(
    client: CloudcraftClient, emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    emulator.faults.rate_limit_next(1, retry_after=3)

    client.create_account(name="n", role_arn=ROLE_ARN)

    assert statuses(emulator) == [("POST", 429), ("POST", 201)]
    assert len(emulator.accounts()) == 1
    assert clock.sleeps == [3.0]


def test_the_limiter_keeps_25_requests_inside_the_servers_limit(
    emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    with build_client(emulator, clock, rate_limiter=RateLimiter(20, 60.0, clock=clock)) as client:
        for _ in range(25):
            client.list_accounts()

    log = statuses(emulator)
    assert len(log) == 25
    assert [status for _, status in log if status != 200] == []
    assert clock.sleeps == [3.0] * 24  # one request every 3 s: 20 a minute, never a burst
    assert [entry["at"] for entry in emulator.requests_log()] == [3.0 * n for n in range(25)]


@pytest.mark.parametrize("model", ["window", "bucket"])
def test_two_containers_sharing_the_budget_meet_no_429_under_either_server_model(
    clock: RecordingClock, model: str
) -> None:
    budget = MemoryBudget()
    with CloudcraftEmulator(KEY, clock=clock, rate_model=model) as emulator:
        clients = [
            build_client(emulator, clock, rate_limiter=RateLimiter(20, 60.0, clock=clock, shared=budget))
            for _ in range(2)
        ]
        for _ in range(30):  # two functions of one deployment, taking turns
            for client in clients:
                client.list_accounts()
        for client in clients:
            client.close()

    log = emulator.requests_log()
    assert [entry["status"] for entry in log] == [200] * 60
    assert log[-1]["at"] == 59 * 3.0  # 60 requests at exactly 20 a minute between them


class MemoryBudget:
    """The deployment's shared budget (DynamoDB in Lambda) in memory."""

    def __init__(self) -> None:
        self.next_at = 0.0

    def claim(self, *, now: float, interval: float, horizon: float) -> float:
        at = max(now, self.next_at)
        self.next_at = at + interval
        return at


class SlowWire(CloudcraftEmulator):
    """Requests take 1 s, then 0 s, then 1 s... of virtual time to reach the server, which counts them on arrival."""

    def __init__(self, clock: VirtualClock, **kwargs: Any) -> None:
        super().__init__(KEY, clock=clock, **kwargs)
        self.wire = clock
        self.slow = itertools.cycle((True, False))

    def handle(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> Any:
        if next(self.slow):
            self.wire.advance(1.0)
        return super().handle(method, raw_path, authorization, body)


def run_over_a_slow_wire(*, settle: bool) -> tuple[list[int | None], RecordingClock]:
    clock = RecordingClock()
    with SlowWire(clock, rate_limit=(5, 6.0)) as emulator:
        assert emulator.url is not None
        limiter = RateLimiter(5, 6.0, clock=clock, spacing=False)  # the window alone, as a slow wire sees it
        if not settle:
            limiter.settle = lambda reserved_at: None  # type: ignore[method-assign]
        with CloudcraftClient(KEY, emulator.url, clock=clock, rate_limiter=limiter, jitter=top_of_range) as client:
            for _ in range(16):
                client.list_accounts()
        return [entry["status"] for entry in emulator.requests_log()], clock


def test_the_limiter_stays_behind_the_server_when_latency_is_a_visible_share_of_the_window() -> None:
    # A 6 s window and up to a second on the wire: latency is a visible share of the window.
    statuses_seen, clock = run_over_a_slow_wire(settle=True)

    assert statuses_seen == [200] * 16
    # Five slots, settled when answered at 1, 1, 2, 2, 3: the sixth request waits until the first leaves the
    # window (1 + 6 = 7), and so on for each five.
    assert clock.sleeps == [4.0, 4.0, 4.0]
    assert clock.monotonic() == 20.0

    # Slots counted from the claim instead of the answer run ahead of the server's count: 429s.
    statuses_seen, _ = run_over_a_slow_wire(settle=False)
    assert statuses_seen.count(429) == 3


def test_without_the_limiter_the_server_throttles_and_the_client_recovers(
    emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    # The counterpart of the test above: proves the emulator's limit is real and Retry-After is computed.
    with build_client(emulator, clock, rate_limiter=RateLimiter(1000, 60.0, clock=clock, spacing=False)) as client:
        for index in range(25):
            if index == 10:
                clock.advance(15)  # the window's oldest request then leaves it 45 s after the 21st arrives
            client.list_accounts()

    log = statuses(emulator)
    assert [status for _, status in log].count(429) == 1
    assert len(log) == 26
    assert clock.sleeps == [45.0]


# --- server errors and lost answers ---------------------------------------------------------------------


def test_5xx_on_a_read_is_retried_with_backoff(
    client: CloudcraftClient, emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    emulator.faults.server_error_next(2, status=502)

    assert client.iam_parameters().account_id == "999999999999"

    assert statuses(emulator) == [("GET", 502), ("GET", 502), ("GET", 200)]
    assert clock.sleeps == [1.0, 2.0]


def test_persistent_5xx_gives_up_after_max_attempts_with_the_html_title(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    emulator.faults.server_error_next(10, status=502)

    with pytest.raises(CloudcraftServerError, match="returned 502: 502 Bad Gateway") as caught:
        client.list_accounts()

    assert caught.value.status == 502
    assert client.request_count == 4
    assert len(emulator.requests_log()) == 4


def test_a_dropped_connection_on_a_read_is_retried(
    client: CloudcraftClient, emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    emulator.faults.disconnect_next(1)

    client.list_accounts()

    assert statuses(emulator) == [("GET", None), ("GET", 200)]
    assert clock.sleeps == [1.0]


def test_post_whose_answer_was_lost_after_commit_is_not_duplicated(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    emulator.faults.fail_after_commit_next(1)

    created = client.create_account(name="payments", role_arn=ROLE_ARN)

    stored = emulator.accounts()
    assert len(stored) == 1
    assert created.id == stored[0]["id"]
    assert statuses(emulator) == [("POST", 500), ("GET", 200)]


def test_a_last_attempt_lost_after_commit_is_still_reported_as_created(
    emulator: CloudcraftEmulator, clock: RecordingClock
) -> None:
    emulator.faults.fail_after_commit_next(1)

    with build_client(emulator, clock, max_attempts=1) as client:
        created = client.create_account(name="payments", role_arn=ROLE_ARN)

    assert [account["id"] for account in emulator.accounts()] == [created.id]
    assert statuses(emulator) == [("POST", 500), ("GET", 200)]


def test_post_after_a_plain_5xx_is_sent_again_and_creates_exactly_one(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    emulator.faults.server_error_next(1, status=503, body="")

    created = client.create_account(name="payments", role_arn=ROLE_ARN)

    assert [account["id"] for account in emulator.accounts()] == [created.id]
    assert statuses(emulator) == [("POST", 503), ("GET", 200), ("POST", 201)]


def test_post_after_a_dropped_connection_checks_then_creates_exactly_one(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    emulator.faults.disconnect_next(1)

    client.create_account(name="payments", role_arn=ROLE_ARN)

    assert len(emulator.accounts()) == 1
    assert statuses(emulator) == [("POST", None), ("GET", 200), ("POST", 201)]


def test_delete_whose_answer_was_lost_after_commit_succeeds_on_the_404(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    seeded = emulator.seed_account("old", ROLE_ARN)
    emulator.faults.fail_after_commit_next(1)

    client.delete_account(seeded["id"])

    assert emulator.accounts() == []
    assert statuses(emulator) == [("DELETE", 500), ("DELETE", 404)]


def test_an_unreachable_server_raises_a_connection_error_without_status(clock: RecordingClock) -> None:
    emulator = CloudcraftEmulator(KEY, clock=clock)
    emulator.start()
    emulator_url = emulator.url
    emulator.stop()  # nothing listens on that port any more
    assert emulator_url is not None

    client = CloudcraftClient(KEY, emulator_url, clock=clock, jitter=lambda low, high: high, max_attempts=2)
    with client, pytest.raises(CloudcraftConnectionError) as caught:
        client.teams()

    assert caught.value.status is None
    assert client.request_count == 2


# --- client errors: raised at once ----------------------------------------------------------------------


def test_an_unverifiable_role_raises_bad_request_without_retry(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    emulator.faults.unverifiable_next(1)

    with pytest.raises(CloudcraftBadRequest, match="propagate") as caught:
        client.create_account(name="payments", role_arn=ROLE_ARN)

    assert caught.value.status == 400
    assert statuses(emulator) == [("POST", 400)]
    assert emulator.accounts() == []


def test_an_invalid_role_arn_raises_bad_request(client: CloudcraftClient) -> None:
    with pytest.raises(CloudcraftBadRequest, match="Invalid roleArn"):
        client.create_account(name="payments", role_arn="arn:aws:iam::123:role/x")
    assert client.request_count == 1


def test_a_wrong_key_raises_an_auth_error_at_once(emulator: CloudcraftEmulator, clock: RecordingClock) -> None:
    assert emulator.url is not None
    client = CloudcraftClient("not-the-key", emulator.url, clock=clock)
    with client, pytest.raises(CloudcraftAuthError, match="401") as caught:
        client.list_accounts()

    assert caught.value.status == 401
    assert client.request_count == 1


# --- the key stays secret -------------------------------------------------------------------------------


def test_the_api_key_appears_in_no_error_repr_log_or_output(
    emulator: CloudcraftEmulator,
    clock: RecordingClock,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "gatehouse.cloudcraft", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[CloudcraftError] = []
    client = build_client(emulator, clock, max_attempts=3)

    emulator.faults.rate_limit_next(1, retry_after=None)
    emulator.faults.fail_after_commit_next(1)
    client.create_account(name="payments", role_arn=ROLE_ARN)
    faults = emulator.faults
    other_arn = "arn:aws:iam::210987654321:role/cloudcraft"
    scenarios: list[tuple[Callable[[], object], Callable[[], object]]] = [
        # An error page echoing the request headers (a debugging proxy, say): the key must not travel on.
        (
            lambda: faults.server_error_next(3, body=f"<html><pre>Authorization: Bearer {KEY}</pre></html>"),
            client.list_accounts,
        ),
        (faults.unverifiable_next, lambda: client.create_account(name="other", role_arn=other_arn)),
        (lambda: faults.disconnect_next(3), client.teams),
        (lambda: None, lambda: client.delete_account("no-such-id")),
        (lambda: None, lambda: CloudcraftClient("cc-live-wrong", str(emulator.url), clock=clock).list_accounts()),
    ]
    for arrange, call in scenarios:
        arrange()
        with pytest.raises(CloudcraftError) as caught:
            call()
        errors.append(caught.value)
    client.close()

    assert [type(error).__name__ for error in errors] == [
        "CloudcraftServerError",
        "CloudcraftBadRequest",
        "CloudcraftConnectionError",
        "CloudcraftNotFound",
        "CloudcraftAuthError",
    ]
    for error in errors:
        assert_no_key(str(error), "str(error)")
        assert_no_key(repr(error), "repr(error)")
        assert_no_key(error.body, "error.body")
        assert_no_key(repr(error.args), "error.args")
        assert_no_key(repr(vars(error)), "vars(error)")
    assert_no_key(repr(client), "repr(client)")
    # The logs were really captured, urllib3's included, so their silence about the key means something.
    assert "retrying in" in caplog.text
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    assert_no_key(caplog.text, "the captured log")
    for record in caplog.records:
        assert_no_key(record.getMessage(), f"a {record.name} log record")
    out, err = capfd.readouterr()
    assert_no_key(out + err, "test output")


# --- hostile answers, over HTTP ----------------------------------------------------------------------------


def test_forged_answers_reach_the_client_as_sent(client: CloudcraftClient, emulator: CloudcraftEmulator) -> None:
    emulator.answers.forge_iam_parameters(accountId="123456789012", externalId="forged")
    emulator.answers.serve_policy("custom", ADMIN_POLICY)

    assert (client.iam_parameters().account_id, client.iam_parameters().external_id) == ("123456789012", "forged")
    assert client.policy("custom") == ADMIN_POLICY  # the client reads; the planner's guards judge (tests/unit)
    assert client.policy("minimal")["Statement"][0]["Effect"] == "Allow"  # the other one is left as it was


def test_a_deeply_nested_answer_is_a_cloudcraft_error_then_the_next_one_reads(
    client: CloudcraftClient, emulator: CloudcraftEmulator
) -> None:
    emulator.answers.nest_next("/aws/account/iamParameters")

    with pytest.raises(CloudcraftError, match="nested deeper than 32 levels") as caught:
        client.iam_parameters()
    assert caught.value.status == 200
    assert client.iam_parameters().account_id == "999999999999"


@pytest.mark.parametrize(("style", "status"), [("204", 204), ("empty-200", 200), ("object", 200)])
def test_every_documented_put_answer_is_a_success(
    client: CloudcraftClient, emulator: CloudcraftEmulator, style: str, status: int
) -> None:
    created = client.create_account(name="payments", role_arn=ROLE_ARN)
    emulator.answers.reply_to_put(style)

    updated = client.update_account(created.id, name="renamed", role_arn=ROLE_ARN, read_access=None, write_access=None)

    assert (updated is None) == (style != "object")
    assert statuses(emulator)[-1] == ("PUT", status)
    assert [account.name for account in client.list_accounts()] == ["renamed"]
