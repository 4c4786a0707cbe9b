"""Sandbox time is virtual: waits take exact, reproducible sandbox time, and real time never counts."""

from __future__ import annotations

import copy
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.container import get_services
from gatehouse.sandbox import samples
from gatehouse.sandbox.demo import DEMO_STATE, demo_events
from gatehouse.sandbox.world import Sandbox, SandboxError, generated_accounts

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_apply_pace_is_exact() -> None:
    # 12 registrations at 5 requests a minute, after the plan's two reads (list, iamParameters): 14 requests, one
    # every 12 s from t = 0: the last at t = 156.
    state = {
        "organization": {"accounts": generated_accounts(12)},
        "settings": {"cloudcraft_requests_per_minute": 5},
        "cloudcraft": {"rate_limit": {"requests": 5, "per_seconds": 60}},
    }
    with Sandbox(state) as world:
        services = get_services()
        fleet = services.fleet(services.settings())
        report = fleet.apply(fleet.plan(), requests_per_minute=5)

        assert len(report.applied) == 12
        assert world.clock.monotonic() == 156.0
        log = world.cloudcraft.requests_log()
        assert [r["status"] for r in log] == [200, 200] + [201] * 12  # inside the emulator's limit: no 429
        assert [r["at"] for r in log] == [12.0 * n for n in range(14)]


def test_retry_after_is_waited_exactly() -> None:
    state = {"cloudcraft": {"faults": {"rate_limit_next": 1, "rate_limit_retry_after": 7}}}
    with Sandbox(state) as world:
        delivery = world.deliver(samples.create_account_result("222222222222"))

        assert delivery.result["outcome"] == "onboarded"
        log = world.cloudcraft.requests_log()
        assert (log[0]["status"], log[1]["at"] - log[0]["at"]) == (429, 7.0)  # retried exactly Retry-After later
        # Then one request every 3 s; sandbox time is those waits and nothing else (no real time leaks in).
        assert [b["at"] - a["at"] for a, b in itertools.pairwise(log[1:])] == [3.0] * (len(log) - 2)
        assert world.snapshot()["clock"]["elapsed_seconds"] == log[-1]["at"]


def test_the_access_role_wait_and_its_give_up_window_run_on_the_sandbox_clock() -> None:
    # The account refuses every AssumeRole; one attempt per invocation (no backoff). The event is from the
    # sandbox's start: the arrival (age 0) and the worker's first take (age 60 s) hand the wait on with a
    # 60 s delay, the second take (age 120 s) with the 60 s left before give_up_after_minutes; the third
    # (age 180 s) reports.
    state = {
        "organization": {"accounts": [{"id": "222222222222", "name": "data-platform", "refuse_assume_role": 100}]},
        "settings": {"assume_role_attempts": 1, "give_up_after_minutes": 3},
        "sandbox": {"start": START.isoformat(), "eventbridge_retries": 2},
    }
    event = samples.create_account_result("222222222222")
    event["time"] = event["detail"]["eventTime"] = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    with Sandbox(state) as world:
        delivery = world.deliver(event)
        assert (delivery.attempts, delivery.result["outcome"]) == (1, "waiting")
        assert delivery.result["retry_in_seconds"] == 60

        world.run_worker(for_seconds=600, step=60)

        [failed] = world.notifications()
        assert failed["attributes"]["outcome"] == "failed"
        assert "gave up 3 minutes after the event" in failed["message"]
        assert world.clock.monotonic() == 180.0
        assert world.queue_depth() == 0


def test_role_propagation_is_measured_in_sandbox_time() -> None:
    # Cloudcraft cannot verify a role for 15 s after its creation: the register retries (5, 10, 20, 40 s ceilings,
    # equal jitter) wait it out, whatever the machine's speed.
    state = {"cloudcraft": {"role_propagation_seconds": 15}, "sandbox": {"start": START.isoformat()}}
    with Sandbox(state) as world:
        delivery = world.deliver(samples.create_account_result("222222222222"))

        assert delivery.result["outcome"] == "onboarded"
        posts = [r["status"] for r in world.cloudcraft.requests_log() if r["method"] == "POST"]
        assert posts[-1] == 201
        assert all(status == 400 for status in posts[:-1])
        # The 201 came once the role was 15 s old, and the wait before it was at most one ceiling longer.
        waited = world.clock.monotonic()
        assert 15.0 <= waited < 15.0 + 20.0
        [registration] = world.cloudcraft.accounts()
        assert registration["createdAt"] == world.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def demo_run() -> tuple[list[tuple[str, int, float]], str]:
    """The demo's events on a pinned clock: the sandbox time after each, and the final state (timestamps
    included) as JSON with its random parts (UUIDs: IDs, external IDs) masked."""
    state = copy.deepcopy(DEMO_STATE)
    state["sandbox"] = {"start": START.isoformat()}
    with Sandbox(state) as world:
        timeline = []
        for title, event in demo_events():
            delivery = world.deliver(event, source=title)
            timeline.append((title, delivery.attempts, world.clock.monotonic()))
        snapshot = world.snapshot()
        snapshot["registrations"] = world.cloudcraft.accounts()  # with createdAt and updatedAt
    return timeline, UUID.sub("<uuid>", json.dumps(snapshot, sort_keys=True, default=str))


def test_two_runs_of_the_demo_take_the_same_sandbox_time_and_give_the_same_state() -> None:
    # 429 without Retry-After (60 s), AssumeRole refusals with jittered backoff, role propagation: all seeded.
    first_timeline, first = demo_run()
    second_timeline, second = demo_run()

    assert first_timeline == second_timeline
    assert first_timeline[0][2] >= 60.0  # the 429's default wait, at least
    assert '"createdAt": "2026-11-23T09:01:' in first  # registrations stamped in sandbox time
    assert first == second


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"time_scale": 1000}, "time_scale is gone"),
        ({"start": "yesterday"}, "sandbox.start must be an ISO 8601 time"),
        ({"start": "2026-11-23T09:00:00"}, "with a zone"),
        ({"eventbridge_retries": -1}, "eventbridge_retries"),
        ({"seed": "x"}, "sandbox.seed"),
        ({"speed": 2}, "unknown sandbox options ['speed']"),
    ],
)
def test_bad_sandbox_options_are_named(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(SandboxError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        Sandbox({"sandbox": options})
