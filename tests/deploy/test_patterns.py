"""The EventBridge rules route the events AWS sends, and nothing like them, with EventBridge's own matching (moto).

The patterns tested are those app.py declares, which Chalice packages unchanged (test_template.py checks the
packaged template carries exactly these), and the us-east-1 forwarder's.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest
from moto.events.models import EventPattern

from tests.conftest import SHARED_EVENTS
from tests.deploy.support import FORWARDER_TEMPLATE, app_patterns, load_template

# Which function each shared sample event must reach (and no other).
ROUTES = {
    "create-account-result": "on_account_arrival",
    "control-tower-create-managed-account": "on_account_arrival",
    "proton-connection-status-change": "on_proton_connection",
}
# Control Tower's events: delivered in the Control Tower home region, never by Organizations in us-east-1.
CONTROL_TOWER_EVENTS = frozenset({"CreateManagedAccount", "UpdateManagedAccount"})


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(cast(Any, event)))


def routed_to(event: dict[str, Any]) -> list[str]:
    return sorted(name for name, pattern in app_patterns().items() if matches(pattern, event))


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SHARED_EVENTS / f"{name}.json").read_text())
    return event


def with_detail(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["detail"].update(changes)
    return changed


def with_envelope(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed.update({key.replace("_", "-"): value for key, value in changes.items()})
    return changed


def require(function: str) -> None:
    if function not in app_patterns():
        pytest.skip(f"{function} is not an EventBridge-triggered function in app.py yet")


def forwarder_pattern() -> dict[str, Any]:
    template = load_template(FORWARDER_TEMPLATE)
    pattern: dict[str, Any] = template["Resources"]["ForwardOrganizationsEvents"]["Properties"]["EventPattern"]
    return pattern


# --- the shared samples reach their function, and only it ------------------------------------------------
def test_every_shared_sample_has_an_expected_route() -> None:
    samples = {path.stem for path in SHARED_EVENTS.glob("*.json")}

    assert samples, f"no sample events in {SHARED_EVENTS}"
    assert samples == set(ROUTES), f"say which function each sample must reach: {sorted(samples ^ set(ROUTES))}"


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_sample_event_reaches_its_function_only(name: str) -> None:
    require(ROUTES[name])

    assert routed_to(sample(name)) == [ROUTES[name]]


@pytest.mark.parametrize(
    "event_name", ["CloseAccountResult", "CloseAccount", "RemoveAccountFromOrganization", "MoveAccount"]
)
def test_departures_reach_the_departure_function_only(event_name: str) -> None:
    require("on_account_departure")
    event = with_detail(sample("create-account-result"), eventName=event_name)
    if event_name != "CloseAccountResult":
        event["detail-type"] = "AWS API Call via CloudTrail"

    assert routed_to(event) == ["on_account_departure"]


# --- near misses reach nothing -----------------------------------------------------------------------------
def near_misses() -> list[tuple[str, dict[str, Any]]]:
    created = sample("create-account-result")
    vended = sample("control-tower-create-managed-account")
    proton = sample("proton-connection-status-change")
    return [
        ("the CreateAccount API call, not its result", with_detail(created, eventName="CreateAccount")),
        ("a read-only Organizations call", with_detail(created, eventName="DescribeAccount")),
        ("an event name in another case", with_detail(created, eventName="createaccountresult")),
        ("an event name with a suffix", with_detail(created, eventName="CreateAccountResults")),
        (
            "no event name at all",
            {**created, "detail": {"serviceEventDetails": created["detail"]["serviceEventDetails"]}},
        ),
        ("another service's event of the same name", with_envelope(created, source="aws.iam")),
        ("a custom source imitating Organizations", with_envelope(created, source="custom.aws.organizations")),
        ("a source one letter short", with_envelope(created, source="aws.organization")),
        ("Control Tower's account factory setup", with_detail(vended, eventName="SetupLandingZone")),
        (
            "a Proton environment, not a connection",
            with_envelope(proton, detail_type="AWS Proton Environment Status Change"),
        ),
        ("a Proton-like custom source", with_envelope(proton, source="custom.proton")),
    ]


@pytest.mark.parametrize(("why", "event"), near_misses(), ids=[why for why, _ in near_misses()])
def test_near_miss_reaches_no_function(why: str, event: dict[str, Any]) -> None:
    assert routed_to(event) == [], f"{why} would be delivered"


# --- the us-east-1 forwarder ------------------------------------------------------------------------------
def test_forwarder_forwards_exactly_the_organizations_events_gatehouse_handles() -> None:
    needed = {
        str(name)
        for pattern in app_patterns().values()
        if "aws.organizations" in pattern.get("source", [])
        for name in pattern.get("detail", {}).get("eventName", [])
    } - CONTROL_TOWER_EVENTS

    forwarded = set(forwarder_pattern()["detail"]["eventName"])

    assert needed, "no Gatehouse rule matches aws.organizations events"
    assert forwarded == needed, (
        f"infra/forwarder-us-east-1.yaml forwards {sorted(forwarded - needed)} that no rule handles, "
        f"and misses {sorted(needed - forwarded)}: keep it in step with chalicelib/events.py"
    )


def test_forwarder_matches_the_organizations_sample_and_no_other_source() -> None:
    pattern = forwarder_pattern()

    assert matches(pattern, sample("create-account-result"))
    assert not matches(pattern, sample("control-tower-create-managed-account"))
    assert not matches(pattern, sample("proton-connection-status-change"))
    assert not matches(pattern, with_detail(sample("create-account-result"), eventName="CreateAccount"))
    assert not matches(pattern, with_envelope(sample("create-account-result"), source="custom.aws.organizations"))


def test_a_forwarded_event_still_reaches_its_function_in_the_target_region() -> None:
    require("on_account_arrival")
    forwarded = with_envelope(sample("create-account-result"), region="eu-west-1")

    assert matches(forwarder_pattern(), sample("create-account-result"))
    assert routed_to(forwarded) == ["on_account_arrival"]
