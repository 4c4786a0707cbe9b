"""The approval service end to end: boto3 over HTTP to the Proton emulator, in-memory guard and notifier."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib.adapters.proton import ProtonGateway
from chalicelib.approvals.errors import DirectoryUnavailable, GatewayUnavailable
from chalicelib.approvals.rules.compile import RuleSet, parse_ruleset
from chalicelib.approvals.rules.schema import MAX_DOCUMENT_BYTES, RuleSetProblem
from chalicelib.approvals.service import ApprovalService, Connection, Outcome
from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import Notification
from gatehouse.sandbox.proton_emulator import ProtonEmulator
from tests.fakes import InMemoryOnceGuard, MemoryNotifier

THIS = "111111111111"
DEV = "444444444444"
PROD = "333333333333"
STRANGER = "999999999999"
ACCEPT = "Accept" + "EnvironmentAccountConnection"
REJECT = "Reject" + "EnvironmentAccountConnection"

ORGANIZATION = {
    DEV: MemberAccount(
        DEV, "payments-dev", ou_ids=("ou-ab12-11111111",), ou_path="Workloads/Dev", tags={"team": "pay"}
    ),
    PROD: MemberAccount(PROD, "payments-prod", ou_ids=("ou-ab12-22222222",), ou_path="Workloads/Prod"),
    "555555555555": MemberAccount("555555555555", "old", status="SUSPENDED", ou_path="Workloads/Dev"),
}

RULES = {
    "mode": "enforce",
    "rules": [
        {"name": "no-admin", "action": "reject", "when": {"role_names": ["*Admin*"]}},
        {"name": "prod-review", "action": "hold", "when": {"ous": ["Workloads/Prod"]}},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"], "environment_names": ["dev-*"]}},
    ],
}


def cid(n: int) -> str:
    return str(uuid.UUID(int=n))


def connection(n: int = 1, account: str = DEV, **fields: Any) -> dict[str, Any]:
    return {
        "id": cid(n),
        "environmentAccountId": account,
        "environmentName": "dev-api",
        "roleArn": f"arn:aws:iam::{account}:role/ProtonEnvRole",
        "codebuildRoleArn": f"arn:aws:iam::{account}:role/ProtonCodeBuild",
        "managementAccountId": THIS,
        "status": "PENDING",
        **fields,
    }


@dataclass
class World:
    emulator: ProtonEmulator
    gateway: ProtonGateway
    notifier: MemoryNotifier
    guard: InMemoryOnceGuard
    rules: list[RuleSet | RuleSetProblem]
    directory_calls: list[str] = field(default_factory=list)
    rule_loads: int = 0
    organization: dict[str, MemberAccount] = field(default_factory=lambda: dict(ORGANIZATION))
    directory_error: Exception | None = None

    def load_rules(self) -> RuleSet | RuleSetProblem:
        self.rule_loads += 1
        return self.rules[0]

    def directory(self, account_id: str) -> MemberAccount | None:
        self.directory_calls.append(account_id)
        if self.directory_error is not None:
            raise self.directory_error
        return self.organization.get(account_id)

    def service(self, gateway: Any = None, notifier: Any = None) -> ApprovalService:
        return ApprovalService(
            gateway or self.gateway,
            self.load_rules,
            self.directory,
            THIS,
            notifier or self.notifier,
            self.guard,
            logging.getLogger("tests.approvals"),
        )

    def use_rules(self, document: dict[str, Any] | str) -> None:
        text = document if isinstance(document, str) else json.dumps(document)
        self.rules[0] = parse_ruleset(text)

    def status(self, n: int = 1) -> str:
        return str(next(c["status"] for c in self.emulator.connections() if c["id"] == cid(n)))

    def changes(self) -> list[str]:
        return [call for call in self.emulator.calls() if call in (ACCEPT, REJECT)]


@pytest.fixture
def world() -> Iterator[World]:
    with ProtonEmulator() as emulator:
        client = boto3.client(
            "proton",
            region_name="us-east-1",
            endpoint_url=emulator.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            # A connection per racing thread (the race tests run up to 62): none opened and dropped per call.
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=64),
        )
        ruleset = parse_ruleset(json.dumps(RULES))
        yield World(emulator, ProtonGateway(client), MemoryNotifier(), InMemoryOnceGuard(), [ruleset])


def only_notification(world: World) -> Notification:
    assert len(world.notifier.sent) == 1, [n.subject for n in world.notifier.sent]
    return world.notifier.sent[0]


# --- the three actions ----------------------------------------------------------------------------


def test_an_accepted_connection_is_connected_and_explained(world: World) -> None:
    world.emulator.seed([connection()])

    outcome = world.service().process(cid(1), "event")

    assert (outcome.result, outcome.acted, outcome.notified) == ("accepted", True, True)
    assert world.status() == "CONNECTED"
    assert world.emulator.calls() == ["GetEnvironmentAccountConnection", ACCEPT]
    note = only_notification(world)
    assert note.attributes == {
        "event_kind": "proton-connection",
        "decision": "accept",
        "mode": "enforce",
        "account_id": DEV,
        "result": "accepted",
    }
    assert note.sns_subject().startswith("Gatehouse: Accepted - Proton environment account connection dev-api")
    assert "Rule #3 'dev' (action accept)" in note.text
    assert "[yes] ous: wanted in OU Workloads/Dev (or below); got OU path Workloads/Dev" in note.text
    assert "[yes] environment_names: wanted dev-*; got dev-api" in note.text
    assert "[yes] every role is in the environment account" in note.text
    assert note.body["rule"] == "dev"
    assert [c["field"] for c in note.body["conditions"]] == ["ous", "environment_names"]
    assert json.loads(json.loads(note.sns_message())["sqs"])["result"] == "accepted"


def test_a_rejected_connection_is_rejected(world: World) -> None:
    world.emulator.seed([connection(roleArn=f"arn:aws:iam::{DEV}:role/ProtonAdmin")])

    outcome = world.service().process(cid(1), "event")

    assert outcome.result == "rejected"
    assert world.status() == "REJECTED"
    assert only_notification(world).attributes["decision"] == "reject"


def test_a_held_connection_stays_pending_and_asks_a_person(world: World) -> None:
    world.emulator.seed([connection(account=PROD)])

    outcome = world.service().process(cid(1), "event")

    assert outcome.result == "held"
    assert world.status() == "PENDING"
    assert world.changes() == []
    note = only_notification(world)
    assert note.attributes["decision"] == "hold"
    assert "Rule #2 'prod-review' (action hold)" in note.text
    assert "It stays PENDING" in note.text


def test_the_default_action_holds_and_says_no_rule_matched(world: World) -> None:
    world.emulator.seed([connection(environmentName="qa-api")])

    outcome = world.service().process(cid(1), "event")

    assert outcome.result == "held"
    assert outcome.decision is not None
    assert outcome.decision.rule is None
    assert "No rule matched; the default action is hold" in only_notification(world).text


# --- idempotency ----------------------------------------------------------------------------------


def test_a_duplicate_event_accepts_once(world: World) -> None:
    world.emulator.seed([connection()])
    service = world.service()

    first = service.process(cid(1), "event")
    second = service.process(cid(1), "event")

    assert first.result == "accepted"
    assert second.result == "not-pending"  # the re-read shows CONNECTED: left alone
    assert world.changes() == [ACCEPT]
    assert len(world.notifier.sent) == 1


def test_deciding_a_still_pending_connection_again_does_not_call_twice(world: World) -> None:
    # A reject that met a connection in use leaves it PENDING: every later run decides it again.
    world.emulator.seed([connection(roleArn=f"arn:aws:iam::{DEV}:role/ProtonAdmin")])
    world.emulator.in_use.add(cid(1))
    service = world.service()

    first = service.process(cid(1), "event")
    again = [service.process(cid(1), "event"), service.sweep().outcomes[0]]

    assert (first.result, first.acted) == ("conflict", True)
    assert [(o.result, o.acted, o.notified) for o in again] == [("conflict", False, False)] * 2
    assert world.changes() == [REJECT]  # reported, not retried forever
    assert world.status() == "PENDING"
    note = only_notification(world)
    assert note.attributes["result"] == "conflict"
    assert "Gatehouse will not retry it" in note.text


HANG_GUARD = 120.0  # seconds: only a hung test waits this long


class BarrierGateway:
    """Holds every caller of `get` until `parties` have read the connection: both see PENDING, then race."""

    def __init__(self, inner: ProtonGateway, parties: int) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.barrier = threading.Barrier(parties, timeout=HANG_GUARD)

    def get(self, connection_id: str) -> Connection:
        found = self.inner.get(connection_id)
        self.barrier.wait()
        return found

    def list_pending(self) -> list[str]:
        return self.inner.list_pending()

    def accept(self, connection_id: str) -> Connection:
        return self.inner.accept(connection_id)

    def reject(self, connection_id: str) -> Connection:
        return self.inner.reject(connection_id)


def run_threads(*targets: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def runner(i: int, target: Callable[[], Any]) -> None:
        try:
            results[i] = target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_GUARD)
        assert not thread.is_alive(), f"{thread.name} still running after {HANG_GUARD} s"
    assert not errors, errors
    return results


def test_event_and_sweep_racing_for_one_connection_accept_it_once(world: World) -> None:
    world.emulator.seed([connection()])
    service = world.service(gateway=BarrierGateway(world.gateway, parties=2))

    event, report = run_threads(lambda: service.process(cid(1), "event"), service.sweep)

    results = sorted([event.result, report.outcomes[0].result])
    assert results in (["accepted", "in-progress"], ["accepted", "accepted"])
    assert [event.acted, report.outcomes[0].acted].count(True) == 1
    assert world.changes() == [ACCEPT]
    assert world.status() == "CONNECTED"
    assert len(world.notifier.sent) == 1


def test_many_duplicates_racing_accept_each_connection_once(world: World) -> None:
    world.emulator.seed([connection(n) for n in range(1, 21)])
    service = world.service()
    jobs: list[Callable[[], Any]] = [service.sweep, service.sweep]
    for n in range(1, 21):
        jobs += [lambda n=n: service.process(cid(n), "event")] * 3  # type: ignore[misc]

    run_threads(*jobs)

    assert world.changes() == [ACCEPT] * 20
    assert {c["status"] for c in world.emulator.connections()} == {"CONNECTED"}
    assert len(world.notifier.sent) == 20


# --- shadow mode ----------------------------------------------------------------------------------


def test_shadow_mode_decides_and_notifies_but_changes_nothing(world: World) -> None:
    world.use_rules({**RULES, "mode": "shadow"})
    world.emulator.seed(
        [connection(1), connection(2, roleArn=f"arn:aws:iam::{DEV}:role/Admin"), connection(3, account=PROD)]
    )

    report = world.service().sweep()

    assert [o.result for o in report.outcomes] == ["shadow", "shadow", "held"]
    assert world.changes() == []
    assert {c["status"] for c in world.emulator.connections()} == {"PENDING"}
    would = [(n.attributes["decision"], n.attributes["mode"]) for n in world.notifier.sent]
    assert would == [("accept", "shadow"), ("reject", "shadow"), ("hold", "shadow")]
    assert world.notifier.sent[0].sns_subject().startswith("Gatehouse: Shadow mode: would accept")
    assert "Switch the rule set to 'enforce'" in world.notifier.sent[0].text


def test_switching_from_shadow_to_enforce_acts_on_the_next_sweep(world: World) -> None:
    world.use_rules({**RULES, "mode": "shadow"})
    world.emulator.seed([connection()])
    service = world.service()
    service.sweep()

    world.use_rules(RULES)
    report = service.sweep()

    assert report.outcomes[0].result == "accepted"
    assert world.changes() == [ACCEPT]


# --- non-pending ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["CONNECTED", "REJECTED"])
def test_connections_that_are_no_longer_pending_are_left_alone(world: World, status: str) -> None:
    world.emulator.seed([connection(status=status)])

    outcome = world.service().process(cid(1), "event")
    report = world.service().sweep()

    assert outcome.result == "not-pending"
    assert outcome.detail == status
    assert report.listed == 0
    assert world.changes() == []
    assert world.notifier.sent == []
    assert world.directory_calls == []


def test_an_unknown_connection_is_not_found(world: World) -> None:
    assert world.service().process(cid(42), "event").result == "not-found"
    assert world.notifier.sent == []


# --- invariants against rules that try to override them -------------------------------------------

ACCEPT_ALL = {"mode": "enforce", "default_action": "accept", "rules": [{"name": "yes", "action": "accept"}]}
ACCEPT_NAMED = {
    "mode": "enforce",
    "rules": [{"name": "named", "action": "accept", "when": {"account_ids": [DEV, STRANGER, "555555555555"]}}],
}


@pytest.mark.parametrize("rules", [ACCEPT_ALL, ACCEPT_NAMED], ids=["accept-all", "accept-named"])
@pytest.mark.parametrize(
    ("fields", "violation"),
    [
        ({"codebuildRoleArn": f"arn:aws:iam::{STRANGER}:role/CodeBuild"}, "roles-in-account"),
        ({"componentRoleArn": f"arn:aws:iam::{STRANGER}:role/Component"}, "roles-in-account"),
        ({"roleArn": f"arn:aws:iam::{STRANGER}:role/Env"}, "roles-in-account"),
        ({"managementAccountId": "222222222222"}, "management-account"),
    ],
)
def test_invariants_hold_whatever_the_rules_say(
    world: World, rules: dict[str, Any], fields: dict[str, str], violation: str
) -> None:
    world.use_rules(rules)
    world.emulator.seed([connection(1, DEV, **fields)])

    outcome = world.service().process(cid(1), "event")

    assert outcome.result == "held"
    assert outcome.decision is not None
    assert [v.code for v in outcome.decision.violations] == [violation]
    assert world.changes() == []
    note = only_notification(world)
    assert note.attributes["decision"] == "hold"
    assert "[NO ]" in note.text


def test_the_codebuild_role_is_checked_though_the_list_omits_it(world: World) -> None:
    world.use_rules(ACCEPT_ALL)
    world.emulator.seed([connection(codebuildRoleArn=f"arn:aws:iam::{STRANGER}:role/CodeBuild")])

    report = world.service().sweep()

    assert report.outcomes[0].result == "held"
    assert "codebuild_role_arn arn:aws:iam::999999999999:role/CodeBuild is in account 999999999999" in (
        world.notifier.sent[0].text
    )


@pytest.mark.parametrize("account", [STRANGER, "555555555555"], ids=["not-a-member", "suspended"])
def test_accounts_that_are_not_active_members_are_held_unless_named(world: World, account: str) -> None:
    world.emulator.seed([connection(1, account=account), connection(2, account=account)])
    world.use_rules(ACCEPT_ALL)
    held = world.service().process(cid(1), "event")

    world.use_rules(ACCEPT_NAMED)
    named = world.service().process(cid(2), "event")

    assert held.result == "held"
    assert named.result == "accepted"
    assert named.decision is not None
    assert "names this account explicitly" in named.decision.invariants[2].detail


# --- rule documents that cannot be trusted -------------------------------------------------------


def _oversized() -> str:
    return json.dumps({**ACCEPT_ALL, "description": "x" * MAX_DOCUMENT_BYTES})


def _too_many_rules() -> str:
    rules = [{"name": f"r{n}", "action": "accept", "when": {"account_ids": [DEV]}} for n in range(501)]
    return json.dumps({"mode": "enforce", "rules": rules})


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"mode": "enforce", "default_action": "accept", "rules": [{"name": "x", "action": "acept"}]}', "invalid"),
        ("{", "invalid"),
        ("", "empty"),
        ('{"mode": "enforce", "default_action": "accept", "rules": []}', "empty"),
        (_oversized(), "oversized"),
        (_too_many_rules(), "oversized"),
    ],
)
def test_untrustworthy_rule_documents_hold_everything_and_notify(world: World, text: str, kind: str) -> None:
    world.use_rules(text)
    world.emulator.seed([connection(1), connection(2, account=PROD)])

    report = world.service().sweep()

    assert [o.result for o in report.outcomes] == ["held", "held"]
    assert world.changes() == []
    assert len(world.notifier.sent) == 2
    for note in world.notifier.sent:
        assert note.attributes["mode"] == "no-rules"
        assert f"Rule set: {kind}:" in note.text
        assert note.body["problem"]["kind"] == kind


def test_a_missing_rule_set_holds(world: World) -> None:
    world.rules[0] = RuleSetProblem("missing", "SSM parameter /gatehouse/dev/proton-rules does not exist")
    world.emulator.seed([connection()])

    assert world.service().process(cid(1), "event").result == "held"
    assert "does not exist" in only_notification(world).text


def test_a_rule_loader_that_breaks_holds(world: World) -> None:
    world.emulator.seed([connection()])

    def broken() -> RuleSet:
        raise RuntimeError("SSM is on fire")

    service = ApprovalService(
        world.gateway, broken, world.directory, THIS, world.notifier, world.guard, logging.getLogger("t")
    )
    outcome = service.process(cid(1), "event")

    assert outcome.result == "held"
    assert outcome.decision is not None
    assert outcome.decision.problem is not None
    assert outcome.decision.problem.kind == "unreadable"
    assert world.changes() == []


# --- repeated sweeps, caching and failures --------------------------------------------------------


def test_a_held_connection_is_announced_once_until_the_decision_changes(world: World) -> None:
    world.emulator.seed([connection(account=PROD)])
    service = world.service()

    for _ in range(3):
        service.sweep()
    assert len(world.notifier.sent) == 1

    world.use_rules(
        {"mode": "enforce", "rules": [{"name": "prod-ok", "action": "accept", "when": {"ous": ["Workloads"]}}]}
    )
    service.sweep()

    assert [n.attributes["result"] for n in world.notifier.sent] == ["held", "accepted"]
    assert world.status() == "CONNECTED"


def test_a_sweep_loads_rules_once_and_asks_the_organization_once_per_account(world: World) -> None:
    world.emulator.seed([connection(n) for n in range(1, 8)] + [connection(9, account=PROD)])

    report = world.service().sweep()

    assert report.listed == 8
    assert world.rule_loads == 1
    assert sorted(world.directory_calls) == [PROD, DEV]


def test_a_directory_failure_is_retried_not_guessed(world: World) -> None:
    world.emulator.seed([connection(1), connection(2)])
    world.directory_error = RuntimeError("organizations is throttling")

    with pytest.raises(DirectoryUnavailable):
        world.service().process(cid(1), "event")
    report = world.service().sweep()

    assert set(report.errors) == {cid(1), cid(2)}
    assert report.outcomes == []
    assert world.changes() == []

    world.directory_error = None
    assert world.service().process(cid(1), "event").result == "accepted"


def test_a_gateway_failure_on_accept_is_raised_and_retried_later(world: World) -> None:
    world.emulator.seed([connection()])
    world.emulator.fail_next(ACCEPT, "InternalServerException")
    service = world.service()

    with pytest.raises(GatewayUnavailable):
        service.process(cid(1), "event")
    retried = service.process(cid(1), "event")

    assert (retried.result, retried.acted) == ("accepted", True)
    assert world.changes() == [ACCEPT, ACCEPT]
    assert len(world.notifier.sent) == 1


def test_someone_deciding_first_is_reported(world: World) -> None:
    world.emulator.seed([connection()])

    class HumanFirst(BarrierGateway):
        def get(self, connection_id: str) -> Connection:
            found = self.inner.get(connection_id)
            self.inner.reject(connection_id)  # a person rejects it in the console meanwhile
            return found

    outcome = world.service(gateway=HumanFirst(world.gateway, 1)).process(cid(1), "event")

    assert outcome.result == "state-changed"
    assert world.status() == "REJECTED"
    assert "Someone else accepted or rejected it" in only_notification(world).text


def test_a_failing_notifier_does_not_undo_the_decision(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.emulator.seed([connection()])

    class Broken:
        def publish(self, notification: Notification) -> None:
            raise RuntimeError("SNS down")

    with caplog.at_level(logging.INFO, logger="tests.approvals"):
        outcome = world.service(notifier=Broken()).process(cid(1), "event")

    assert (outcome.result, outcome.notified) == ("accepted", False)
    assert any("notification failed: SNS down" in r.getMessage() for r in caplog.records)


def test_the_decision_is_logged_with_its_explanation(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.emulator.seed([connection()])

    with caplog.at_level(logging.INFO, logger="tests.approvals"):
        world.service().process(cid(1), "event")

    [record] = [r for r in caplog.records if hasattr(r, "approval")]
    assert record.getMessage() == f"proton-connection {cid(1)} accepted: rule #3 'dev' matched: accept"
    logged: dict[str, Any] = record.approval
    assert logged["decision"]["conditions"][0]["field"] == "ous"
    assert all(check["held"] for check in logged["decision"]["invariants"])


def test_outcome_serialises(world: World) -> None:
    world.emulator.seed([connection()])

    outcome: Outcome = world.service().process(cid(1), "event")

    assert json.loads(json.dumps(outcome.to_dict()))["decision"]["action"] == "accept"
