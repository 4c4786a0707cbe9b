"""Waiting for a fresh account's access role without a DLQ: the wait is a delayed work item on the work queue.

A vended account can refuse `AssumeRole` for many minutes (Control Tower can take longer than an hour). Lambda's
own retries of the arrival event span about three minutes, so the wait is handed to the work queue instead: an
"onboard" item carrying only the account, the action and when the account was first seen, sent with a delay that
grows from one minute to SQS's fifteen. The fleet worker runs the same onboarding job when it arrives; until
`give_up_after_minutes` after the first sighting it hands the wait on with a new item, then it reports `failed`.
Nothing sleeps inside Lambda.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.errors import GatehouseError
from chalicelib.core.ids import is_account_id
from chalicelib.core.safejson import JsonLimitError, loads_bounded

ONBOARD_ACTION = "onboard"
FIELDS = frozenset({"action", "account_id", "first_seen"})
MIN_DELAY = 60  # seconds before the first retry
MAX_DELAY = 900  # SQS's largest DelaySeconds
MAX_ITEM_BYTES = 1024  # an item is three short strings
MAX_ITEM_DEPTH = 4
CLOCK_SKEW = timedelta(minutes=5)  # a first sighting may lie this far in the future (clocks differ), no further
OLDEST = timedelta(days=2)  # give_up_after_minutes is at most a day: an older first sighting is not ours


class WaitingItemError(GatehouseError):
    """A queue message that says it is an onboard item but is not a valid one."""


@dataclass(frozen=True)
class WaitingOnboarding:
    """An account whose onboarding waits for its access role to accept `AssumeRole`."""

    account_id: str
    first_seen: datetime  # timezone-aware; the event's time, or when Gatehouse first saw the account

    def to_message(self) -> dict[str, str]:
        return {
            "action": ONBOARD_ACTION,
            "account_id": self.account_id,
            "first_seen": self.first_seen.astimezone(UTC).isoformat(),
        }


def next_delay(first_seen: datetime, now: datetime, give_up_after_minutes: int) -> int:
    """Seconds until the next try: as long as the account has been waiting, between one and fifteen minutes (so
    60, 60, 120, 240, 480, 900, 900, ... from the first sighting), never past the give-up time (the last try is
    the one that gives up)."""
    waited = max(0.0, (now - first_seen).total_seconds())
    left = give_up_after_minutes * 60 - waited
    delay = min(max(waited, MIN_DELAY), MAX_DELAY)
    return max(1, min(math.ceil(delay), math.ceil(left)))


def is_waiting_item(body: str) -> bool:
    """Whether a message body claims to be an onboard item (cheap: the fleet worker routes on it)."""
    return f'"action": "{ONBOARD_ACTION}"' in body or f'"action":"{ONBOARD_ACTION}"' in body


def parse_waiting_item(body: str, now: datetime) -> WaitingOnboarding:
    """Validate an onboard item (size, exact fields, account ID, first sighting); raises WaitingItemError naming
    what is wrong. The item is untrusted: it can ask for no more than an arrival event of the account could."""
    try:
        raw: Any = loads_bounded(body, max_bytes=MAX_ITEM_BYTES, max_depth=MAX_ITEM_DEPTH, what="the onboard item")
    except JsonLimitError as exc:
        raise WaitingItemError(str(exc)) from None
    if not isinstance(raw, dict) or set(raw) != FIELDS:
        have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise WaitingItemError(f"an onboard item has exactly the fields {sorted(FIELDS)}; this one has {have}")
    account_id, first_seen = raw["account_id"], raw["first_seen"]
    if raw["action"] != ONBOARD_ACTION:
        raise WaitingItemError(f"action is {raw['action']!r}, not {ONBOARD_ACTION!r}")
    if not is_account_id(account_id):
        raise WaitingItemError(f"account_id {str(account_id)[:40]!r} is not a 12-digit AWS account ID")
    try:
        seen = datetime.fromisoformat(first_seen) if isinstance(first_seen, str) else None
    except ValueError:
        seen = None
    if seen is None or seen.tzinfo is None:
        raise WaitingItemError(f"first_seen {str(first_seen)[:40]!r} is not an ISO 8601 time with a time zone")
    if not now - OLDEST <= seen <= now + CLOCK_SKEW:
        raise WaitingItemError(f"first_seen {first_seen} is not within the last {OLDEST.days} days")
    return WaitingOnboarding(account_id, seen.astimezone(UTC))
