"""The wait for an access role as a work item: its delays, and what a queue message may say."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.onboarding.waiting import (
    WaitingItemError,
    WaitingOnboarding,
    is_waiting_item,
    next_delay,
    parse_waiting_item,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def delays(give_up_minutes: int, spent: float = 0.0) -> list[int]:
    """The delays one chain of waits asks for, each take spending `spent` seconds (AssumeRole backoff)."""
    first_seen, now, found = NOW, NOW, []
    while (now - first_seen).total_seconds() < give_up_minutes * 60:
        delay = next_delay(first_seen, now, give_up_minutes)
        found.append(delay)
        now += timedelta(seconds=delay + spent)
    return found


def test_delays_grow_from_one_minute_to_fifteen_and_end_at_the_give_up_time() -> None:
    assert delays(60) == [60, 60, 120, 240, 480, 900, 900, 840]  # the last one ends at the give-up time
    assert sum(delays(60)) == 3600
    assert delays(3) == [60, 60, 60]
    assert delays(1440)[-1] <= 900
    assert all(1 <= delay <= 900 for delay in delays(1440, spent=37))


def test_a_first_sighting_in_the_future_waits_the_minimum() -> None:
    assert next_delay(NOW + timedelta(minutes=2), NOW, 60) == 60


def test_an_item_round_trips() -> None:
    item = WaitingOnboarding("222222222222", NOW)
    body = json.dumps(item.to_message())
    assert is_waiting_item(body)
    assert parse_waiting_item(body, NOW + timedelta(minutes=5)) == item


def test_other_work_items_are_not_waiting_items() -> None:
    assert not is_waiting_item(json.dumps({"kind": "account", "account_id": "222222222222", "run_id": "r"}))
    assert not is_waiting_item(json.dumps({"action": "apply", "account_id": "222222222222", "run_id": "r"}))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "exactly the fields"),
        (json.dumps({"action": "onboard", "account_id": "222222222222"}), "exactly the fields"),
        (
            json.dumps({"action": "onboard", "account_id": "222222222222", "first_seen": NOW.isoformat(), "x": 1}),
            "exactly the fields",
        ),
        (json.dumps({"action": "apply", "account_id": "222222222222", "first_seen": NOW.isoformat()}), "action is"),
        (json.dumps({"action": "onboard", "account_id": "22222222222", "first_seen": NOW.isoformat()}), "12-digit"),
        (
            json.dumps({"action": "onboard", "account_id": "\uff12" * 12, "first_seen": NOW.isoformat()}),
            "12-digit",
        ),
        (json.dumps({"action": "onboard", "account_id": 222222222222, "first_seen": NOW.isoformat()}), "12-digit"),
        (json.dumps({"action": "onboard", "account_id": "222222222222", "first_seen": "yesterday"}), "ISO 8601"),
        (json.dumps({"action": "onboard", "account_id": "222222222222", "first_seen": "2026-11-23T09:00:00"}), "zone"),
        (
            json.dumps({"action": "onboard", "account_id": "222222222222", "first_seen": "2026-11-25T09:00:00+00:00"}),
            "within the last 2 days",
        ),
        (
            json.dumps({"action": "onboard", "account_id": "222222222222", "first_seen": "2020-01-01T00:00:00+00:00"}),
            "within the last 2 days",
        ),
        (json.dumps({"action": "onboard", "pad": "x" * 2000}), "the limit is 1,024 bytes"),
    ],
)
def test_a_broken_item_is_refused_naming_the_problem(body: str, problem: str) -> None:
    with pytest.raises(WaitingItemError, match=problem):
        parse_waiting_item(body, NOW)
