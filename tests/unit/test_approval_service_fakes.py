"""The approval service against in-memory fakes: every result, at most one call, one notification, no threads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.approvals.errors import (
    ConnectionConflict,
    ConnectionNotFound,
    ConnectionStateChanged,
    DirectoryUnavailable,
    GatewayUnavailable,
)
from chalicelib.approvals.rules import RuleSet, RuleSetProblem, parse_ruleset
from chalicelib.approvals.service import ApprovalService, Outcome
from chalicelib.core.errors import GatehouseError
from chalicelib.core.models import MemberAccount
from tests.fakes import FakeConnectionGateway, FakeLog, FakeNotifier, FakeOnceGuard, connection_request

THIS = "111111111111"
DEV = "444444444444"
PROD = "333333333333"
ORGANIZATION = {
    DEV: MemberAccount(DEV, "payments-dev", ou_ids=("ou-ab12-11111111",), ou_path="Workloads/Dev"),
    PROD: MemberAccount(PROD, "payments-prod", ou_ids=("ou-ab12-22222222",), ou_path="Workloads/Prod"),
}
RULES = {
    "mode": "enforce",
    "rules": [
        {"name": "no-admin", "action": "reject", "when": {"role_names": ["*Admin*"]}},
        {"name": "prod-review", "action": "hold", "when": {"ous": ["Workloads/Prod"]}},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"], "environment_names": ["dev-*"]}},
    ],
}
ACCEPTABLE = connection_request(1)
REJECTABLE = connection_request(2, role_name="ProtonAdmin")
HOLDABLE = connection_request(30, account_id=PROD)


def rules(document: dict[str, Any] | None = None) -> RuleSet | RuleSetProblem:
    return parse_ruleset(json.dumps(document or RULES))


class World:
    def __init__(self, *requests: Any, ruleset: RuleSet | RuleSetProblem | None = None) -> None:
        self.gateway = FakeConnectionGateway(*requests)
        self.notifier = FakeNotifier()
        self.once = FakeOnceGuard()
        self.log = FakeLog()
        self.ruleset = ruleset or rules()
        self.rule_loads = 0
        self.directory_calls: list[str] = []
        self.directory_error: Exception | None = None
        self.organization = dict(ORGANIZATION)
        self.load_rules: Callable[[], RuleSet | RuleSetProblem] = self._load_rules

    def _load_rules(self) -> RuleSet | RuleSetProblem:
        self.rule_loads += 1
        return self.ruleset

    def directory(self, account_id: str) -> MemberAccount | None:
        self.directory_calls.append(account_id)
        if self.directory_error is not None:
            raise self.directory_error
        return self.organization.get(account_id)

    def service(self) -> ApprovalService:
        return ApprovalService(self.gateway, self.load_rules, self.directory, THIS, self.notifier, self.once, self.log)

    def process(self, connection_id: str = ACCEPTABLE.id, trigger: str = "event") -> Outcome:
        return self.service().process(connection_id, trigger)

    def status(self, connection_id: str = ACCEPTABLE.id) -> str:
        return self.gateway.connections[connection_id].status


def act_key(connection_id: str) -> str:
    return f"approvals:proton-connection:{connection_id}:act"


# --- the three actions -----------------------------------------------------------------------------------


def test_an_accepted_connection_is_connected_and_announced_once() -> None:
    world = World(ACCEPTABLE)

    outcome = world.process()

    assert (outcome.result, outcome.acted, outcome.notified) == ("accepted", True, True)
    assert outcome.detail == "rule #3 'dev' matched: accept"
    assert world.status() == "CONNECTED"
    assert world.gateway.calls == [("get", ACCEPTABLE.id), ("accept", ACCEPTABLE.id)]
    [note] = world.notifier.sent
    assert note.attributes == {
        "event_kind": "proton-connection",
        "decision": "accept",
        "mode": "enforce",
        "account_id": DEV,
        "result": "accepted",
    }
    assert note.body["trigger"] == "event"
    assert note.body["rule"] == "dev"


def test_a_rejected_connection_is_rejected() -> None:
    world = World(REJECTABLE)

    outcome = world.process(REJECTABLE.id)

    assert (outcome.result, outcome.acted) == ("rejected", True)
    assert world.status(REJECTABLE.id) == "REJECTED"
    assert world.notifier.sent[0].attributes["decision"] == "reject"


def test_a_held_connection_stays_pending_and_asks_a_person() -> None:
    world = World(HOLDABLE)

    outcome = world.process(HOLDABLE.id)

    assert (outcome.result, outcome.acted, outcome.notified) == ("held", False, True)
    assert world.gateway.changes == []
    [key] = world.once.runs  # no accept-or-reject job: only the announcement
    assert key.startswith(f"approvals:proton-connection:{HOLDABLE.id}:notify:")
    assert "It stays PENDING" in world.notifier.sent[0].text


def test_shadow_mode_decides_notifies_and_changes_nothing() -> None:
    world = World(ACCEPTABLE, REJECTABLE, ruleset=rules({**RULES, "mode": "shadow"}))

    report = world.service().sweep()

    assert [(o.result, o.decision.action if o.decision else None) for o in report.outcomes] == [
        ("shadow", "accept"),
        ("shadow", "reject"),
    ]
    assert world.gateway.changes == []
    assert [n.subject.split(" - ")[0] for n in world.notifier.sent] == [
        "Gatehouse: Shadow mode: would accept",
        "Gatehouse: Shadow mode: would reject",
    ]


# --- answers of the gateway that are reported, not retried -----------------------------------------------


@pytest.mark.parametrize(
    ("request_", "error", "result"),
    [
        (REJECTABLE, ConnectionConflict("in use"), "conflict"),
        (ACCEPTABLE, ConnectionStateChanged("already decided"), "state-changed"),
        (ACCEPTABLE, ConnectionNotFound("deleted meanwhile"), "not-found"),
    ],
    ids=["conflict", "state-changed", "gone-meanwhile"],
)
def test_a_refused_change_is_reported_once_and_never_retried(request_: Any, error: Exception, result: str) -> None:
    world = World(request_)
    action = "reject" if request_ is REJECTABLE else "accept"
    world.gateway.script.fail_next(f"{action}:{request_.id}", error)

    first = world.process(request_.id)
    again = world.process(request_.id)

    assert (first.result, first.acted, first.notified) == (result, True, True)
    assert (again.result, again.acted, again.notified) == (result, False, False)
    assert world.gateway.changes == [(action, request_.id)]
    assert [n.attributes["result"] for n in world.notifier.sent] == [result]
    expected_warnings = [] if result == "not-found" else [f"proton-connection {request_.id} {result}"] * 2
    assert [message.split(":")[0] for message in world.log.at("warning")] == expected_warnings


def test_a_connection_that_is_gone_is_not_found_and_not_announced() -> None:
    world = World()

    outcome = world.process("conn-404")

    assert (outcome.result, outcome.decision) == ("not-found", None)
    assert world.notifier.sent == []
    assert world.directory_calls == []


@pytest.mark.parametrize("status", ["CONNECTED", "REJECTED"])
def test_a_connection_no_longer_pending_is_left_alone(status: str) -> None:
    world = World(ACCEPTABLE)
    world.gateway.set_status(ACCEPTABLE.id, status)

    outcome = world.process()

    assert (outcome.result, outcome.detail) == ("not-pending", status)
    assert world.gateway.changes == []
    assert world.notifier.sent == []


def test_a_duplicate_event_accepts_once_and_announces_once() -> None:
    world = World(ACCEPTABLE)

    first = world.process()
    second = world.process()

    assert (first.result, second.result) == ("accepted", "not-pending")
    assert world.gateway.changes == [("accept", ACCEPTABLE.id)]
    assert len(world.notifier.sent) == 1


def test_a_run_that_finds_the_decision_recorded_does_not_call_or_announce_again() -> None:
    # The gateway still says PENDING (its read lags), but an earlier run accepted and announced it.
    world = World(ACCEPTABLE)
    world.process()
    world.gateway.set_status(ACCEPTABLE.id, "PENDING")

    again = world.process()

    assert (again.result, again.acted, again.notified) == ("accepted", False, False)
    assert world.gateway.changes == [("accept", ACCEPTABLE.id)]
    assert len(world.notifier.sent) == 1


# --- racing runs, without threads ------------------------------------------------------------------------


def test_a_run_meeting_another_run_deciding_the_same_connection_backs_off_silently() -> None:
    world = World(ACCEPTABLE)
    world.once.running.add(act_key(ACCEPTABLE.id))

    outcome = world.process()

    assert (outcome.result, outcome.acted, outcome.notified) == ("in-progress", False, False)
    assert world.gateway.changes == []
    assert world.notifier.sent == []
    assert world.log.at("info") == [f"proton-connection {ACCEPTABLE.id}: another run is deciding it"]


def test_a_run_meeting_another_run_announcing_the_same_decision_does_not_announce() -> None:
    world = World(HOLDABLE)
    first = world.process(HOLDABLE.id)
    notify_key = next(key for key in world.once.done if ":notify:" in key)
    del world.once.done[notify_key]
    world.once.running.add(notify_key)

    again = world.process(HOLDABLE.id)

    assert (first.notified, again.result, again.notified) == (True, "held", False)
    assert len(world.notifier.sent) == 1


# --- repeated sweeps and what changes the announcement ---------------------------------------------------


def test_a_held_connection_is_announced_once_until_the_decision_changes() -> None:
    world = World(HOLDABLE)
    service = world.service()

    for _ in range(3):
        service.sweep()
    assert len(world.notifier.sent) == 1

    world.ruleset = rules({"mode": "enforce", "rules": [{"name": "ok", "action": "accept", "when": {}}]})
    service.sweep()

    assert [n.attributes["result"] for n in world.notifier.sent] == ["held", "accepted"]
    assert world.status(HOLDABLE.id) == "CONNECTED"


def test_a_sweep_loads_rules_once_and_asks_the_organization_once_per_account() -> None:
    requests = [connection_request(n) for n in range(1, 6)] + [HOLDABLE]
    world = World(*requests)

    report = world.service().sweep()

    assert report.listed == 6
    assert (report.count("accepted"), report.count("held")) == (5, 1)
    assert world.rule_loads == 1
    assert sorted(world.directory_calls) == [PROD, DEV]
    assert world.log.records[-1][1] == (
        "proton-connection sweep: 6 pending, accepted 5, rejected 0, held 1, shadow 0, conflict 0, 0 errors"
    )


def test_one_connections_failure_does_not_stop_a_sweep() -> None:
    world = World(ACCEPTABLE, REJECTABLE, HOLDABLE)
    world.gateway.script.fail_next(f"reject:{REJECTABLE.id}", GatewayUnavailable("throttled"))

    report = world.service().sweep()

    assert [o.connection_id for o in report.outcomes] == [ACCEPTABLE.id, HOLDABLE.id]
    assert report.errors == {REJECTABLE.id: "throttled"}
    assert world.log.at("error") == [f"proton-connection {REJECTABLE.id}: throttled"]
    assert world.status(REJECTABLE.id) == "PENDING"

    retried = world.service().sweep()  # the failed call left no record: the next sweep acts
    assert [(o.result, o.acted) for o in retried.outcomes] == [("rejected", True), ("held", False)]


def test_a_gateway_failure_on_get_is_raised_for_an_event() -> None:
    world = World(ACCEPTABLE)
    world.gateway.script.fail_next(f"get:{ACCEPTABLE.id}", GatewayUnavailable("throttled"))

    with pytest.raises(GatewayUnavailable):
        world.process()

    assert world.notifier.sent == []


# --- rules and the Organization that cannot be trusted ---------------------------------------------------


def test_a_directory_failure_is_raised_and_nothing_decided() -> None:
    world = World(ACCEPTABLE)
    world.directory_error = RuntimeError("organizations is throttling")

    with pytest.raises(DirectoryUnavailable, match=f"could not look up account {DEV}: organizations is throttling"):
        world.process()

    assert world.gateway.changes == []
    assert world.notifier.sent == []
    assert world.once.done == {}


def test_a_rule_loader_that_breaks_holds_everything() -> None:
    world = World(ACCEPTABLE)

    def broken() -> RuleSet:
        raise RuntimeError("SSM is on fire")

    world.load_rules = broken

    outcome = world.process()

    assert outcome.result == "held"
    assert outcome.decision is not None
    assert outcome.decision.problem is not None
    assert (outcome.decision.mode, outcome.decision.problem.kind) == ("no-rules", "unreadable")
    assert world.gateway.changes == []


def test_a_missing_rule_set_holds_and_says_why() -> None:
    world = World(ACCEPTABLE, ruleset=RuleSetProblem("missing", "parameter /gatehouse/dev/proton-rules not found"))

    outcome = world.process()

    assert outcome.result == "held"
    assert "Rule set: missing: parameter /gatehouse/dev/proton-rules not found" in world.notifier.sent[0].text


@pytest.mark.parametrize(
    ("request_", "organization", "violation"),
    [
        (connection_request(1, account_id="999999999999"), {}, "active-member"),
        (connection_request(1, management_account_id="222222222222"), ORGANIZATION, "management-account"),
    ],
    ids=["not-a-member", "other-management-account"],
)
def test_invariants_hold_a_connection_whatever_the_rules_say(
    request_: Any, organization: dict[str, MemberAccount], violation: str
) -> None:
    world = World(request_, ruleset=rules({"mode": "enforce", "rules": [{"name": "all", "action": "accept"}]}))
    world.organization = dict(organization)

    outcome = world.process(request_.id)

    assert outcome.result == "held"
    assert outcome.decision is not None
    assert [v.code for v in outcome.decision.violations] == [violation]
    assert world.gateway.changes == []
    assert world.log.at("warning")  # a violation is logged as a warning


# --- notification failures and the guard's answers -------------------------------------------------------


def test_a_failing_notifier_does_not_undo_the_decision() -> None:
    world = World(ACCEPTABLE)
    world.notifier.error = RuntimeError("SNS down")

    outcome = world.process()

    assert (outcome.result, outcome.acted, outcome.notified) == ("accepted", True, False)
    assert world.status() == "CONNECTED"
    assert world.log.at("error") == [f"proton-connection {ACCEPTABLE.id}: notification failed: SNS down"]


def test_a_guard_answer_no_run_records_is_an_error_not_a_guess() -> None:
    world = World(ACCEPTABLE)
    world.once.done[act_key(ACCEPTABLE.id)] = "launched"

    with pytest.raises(GatehouseError, match="the once-guard returned 'launched'"):
        world.process()

    assert world.gateway.changes == []


def test_the_decision_is_logged_with_its_explanation() -> None:
    world = World(ACCEPTABLE)

    world.process(trigger="sweep")

    [(level, message, extra)] = [r for r in world.log.records if "approval" in r[2]]
    assert (level, message) == ("info", f"proton-connection {ACCEPTABLE.id} accepted: rule #3 'dev' matched: accept")
    assert extra["approval"]["trigger"] == "sweep"
    assert extra["approval"]["decision"]["action"] == "accept"
    assert json.loads(json.dumps(extra["approval"]))["result"] == "accepted"
