"""The fleet use case against in-memory fakes: plan reads only, apply carries on past failures, one summary."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.adapters.cloudcraft.errors import CloudcraftServerError
from chalicelib.container import set_services
from chalicelib.core.errors import AwsError
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.fleet.report import RunTally, failed_run_notification, run_notification
from chalicelib.fleet.service import Fleet, Progress
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import FleetPlan, desired_role
from tests.fakes import FakeDirectory, FakeServices, LambdaContextStub, role_as_wanted

NEW = MemberAccount("222222222222", "new", ou_path="Workloads/Dev")
DRIFTED = MemberAccount("333333333333", "drifted", ou_path="Workloads/Prod")
IN_ORDER = MemberAccount("444444444444", "tidy", ou_path="Workloads/Prod")
OUTSIDE = MemberAccount("555555555555", "lab", ou_path="Sandbox")
OPTED_OUT = MemberAccount("666666666666", "quiet", ou_path="Workloads/Dev", tags={"gatehouse:opt-out": "true"})
GONE = "777777777777"  # not a member any more


def world_with(settings: dict[str, Any] | None = None, *members: MemberAccount) -> FakeServices:
    document = {"scope_ous": ["Workloads"], **(settings or {})}
    return FakeServices(parse_settings(document), directory=FakeDirectory(*(members or (NEW, DRIFTED, IN_ORDER))))


def fleet(world: FakeServices) -> Fleet:
    built: Fleet = world.fleet(world.settings_document)
    return built


def in_order(world: FakeServices, account: MemberAccount, **drift: Any) -> str:
    """Give `account` Gatehouse's role (with `drift`) and an owned registration; returns its ID."""
    spec = desired_role(world.settings_document, world.cloudcraft_identity(world.settings_document), OrganizationIds())
    world.members.put(account.account_id, role_as_wanted(spec, **drift))
    registration = world.cloudcraft_client.add(account.account_id, name=f"{account.name} ({account.account_id})")
    world.ledger.records[account.account_id] = registration.id
    return registration.id


def standard_world(settings: dict[str, Any] | None = None) -> FakeServices:
    world = world_with(settings, NEW, DRIFTED, IN_ORDER, OUTSIDE)
    in_order(world, DRIFTED, max_session_seconds=43200)
    in_order(world, IN_ORDER)
    return world


def actions(plan: FleetPlan) -> dict[str, list[str]]:
    return {p.account.account_id: p.actions() for p in plan.accounts}


# --- plan ------------------------------------------------------------------------------------------------


def test_a_plan_reads_every_in_scope_account_once_and_writes_nothing() -> None:
    world = standard_world()

    plan = fleet(world).plan()

    assert actions(plan) == {
        NEW.account_id: ["create role", "register"],
        DRIFTED.account_id: ["repair policy"],
        IN_ORDER.account_id: [],
        OUTSIDE.account_id: [],
    }
    assert sorted(world.members.sessions) == [NEW.account_id, DRIFTED.account_id, IN_ORDER.account_id]
    assert world.cloudcraft_client.calls == [("list",)]
    assert world.cloudcraft_client.writes == []
    assert world.members.writes == []
    assert world.ledger.writes == []
    assert world.session_attempts == [1]  # one AssumeRole attempt per account, no backoff while planning


def test_the_opt_out_tag_is_read_per_account_and_honoured() -> None:
    world = world_with({}, NEW, OPTED_OUT)

    plan = fleet(world).plan()

    assert sorted(world.directory.tag_reads) == [NEW.account_id, OPTED_OUT.account_id]
    scope = {p.account.account_id: p.scope for p in plan.accounts}
    assert scope[OPTED_OUT.account_id].reason == "the account opts out with the tag gatehouse:opt-out=true"
    assert OPTED_OUT.account_id not in world.members.sessions


def test_without_an_opt_out_tag_no_tags_are_read() -> None:
    world = world_with({"opt_out_tag": None}, NEW, OPTED_OUT)

    plan = fleet(world).plan()

    assert world.directory.tag_reads == []
    assert all(p.scope.in_scope for p in plan.accounts)


def test_an_unreachable_account_is_an_error_in_the_plan_and_the_others_are_planned() -> None:
    world = standard_world()
    world.members.refuse.add(NEW.account_id)

    plan = fleet(world).plan()

    assert actions(plan)[NEW.account_id] == [f"error: no access role could be assumed in {NEW.account_id}"]
    assert actions(plan)[DRIFTED.account_id] == ["repair policy"]
    assert plan.summary()["error"] == 1


def test_orphans_are_deregistered_only_when_gatehouse_owns_them() -> None:
    world = world_with({}, NEW, OUTSIDE)
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    lab = world.cloudcraft_client.add(OUTSIDE.account_id)

    plan = fleet(world).plan()

    assert [(o.registration_id, o.owned) for o in plan.orphans] == [(gone.id, True), (lab.id, False)]
    assert [o.registration_id for o in plan.deregistrations] == [gone.id]


def test_keep_mode_plans_no_deregistration() -> None:
    world = world_with({"offboarding": "keep"}, NEW)
    world.ledger.records[GONE] = world.cloudcraft_client.add(GONE).id

    plan = fleet(world).plan()

    assert plan.deregistrations == []
    assert len(plan.orphans) == 1


@pytest.mark.parametrize(
    "break_it",
    [
        lambda w: w.directory.script.fail_next("list", AwsError("organizations:ListRoots AccessDenied")),
        lambda w: w.cloudcraft_client.script.fail_next("list", CloudcraftServerError("500", status=500)),
        lambda w: w.ledger.script.fail_next("owned", AwsError("dynamodb:Scan throttled")),
    ],
    ids=["directory", "cloudcraft", "ledger"],
)
def test_a_plan_that_cannot_read_the_organization_raises_and_writes_nothing(break_it: Any) -> None:
    world = standard_world()
    break_it(world)

    with pytest.raises((AwsError, CloudcraftServerError)):
        fleet(world).plan()

    assert world.cloudcraft_client.writes == []
    assert world.members.writes == []
    assert world.ledger.writes == []


def test_tags_are_read_only_for_in_scope_accounts_and_a_failed_read_is_that_accounts_result() -> None:
    world = standard_world()
    world.directory.script.fail_next("tags", AwsError("organizations:ListTagsForResource throttled"))

    plan = fleet(world).plan()

    assert OUTSIDE.account_id not in world.directory.tag_reads  # its OU decides: its tags are never needed
    assert sorted(world.directory.tag_reads) == sorted([NEW.account_id, DRIFTED.account_id, IN_ORDER.account_id])
    failed = {p.account.account_id: p.error for p in plan.accounts if p.error}
    assert len(failed) == 1  # the one whose read failed; the plan went on for the others
    [(account, error)] = failed.items()
    assert "its tags could not be read: organizations:ListTagsForResource throttled" in error
    assert {p.account.account_id for p in plan.accounts if p.changes} == {NEW.account_id, DRIFTED.account_id} - {
        account
    }
    assert world.members.writes == []


# --- apply -----------------------------------------------------------------------------------------------


def test_apply_changes_only_what_the_plan_says_and_then_the_fleet_is_in_order() -> None:
    world = standard_world()
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    service = fleet(world)
    plan = service.plan()

    report = service.apply(plan, requests_per_minute=20)

    assert report.applied == [NEW.account_id, DRIFTED.account_id]
    assert report.deregistered == [gone.id]
    assert report.failed == {}
    assert gone.id not in world.cloudcraft_client.accounts
    assert GONE not in world.ledger.records
    assert not service.plan().changes


def test_apply_reports_progress_with_writes_left_and_the_time_they_take() -> None:
    world = standard_world()
    world.ledger.records[GONE] = world.cloudcraft_client.add(GONE).id
    service = fleet(world)
    plan = service.plan()
    ticks: list[Progress] = []

    service.apply(plan, requests_per_minute=30, progress=ticks.append)

    # NEW registers (1 write), DRIFTED repairs IAM only (0), the orphan is deleted (1).
    assert [(t.done, t.total, t.writes_left, t.eta_seconds) for t in ticks] == [
        (0, 3, 2, 4.0),
        (1, 3, 1, 2.0),
        (2, 3, 1, 2.0),
        (3, 3, 0, 0.0),
    ]


def test_one_accounts_failure_does_not_stop_the_others() -> None:
    world = standard_world()
    world.members.script.fail_next(f"apply:{NEW.account_id}", AwsError("iam:CreateRole AccessDenied"))
    gone = world.cloudcraft_client.add(GONE)
    world.ledger.records[GONE] = gone.id
    service = fleet(world)
    plan = service.plan()
    world.cloudcraft_client.script.fail_next("delete", CloudcraftServerError("503", status=503))

    report = service.apply(plan, requests_per_minute=20)

    assert report.applied == [DRIFTED.account_id]
    assert report.failed == {NEW.account_id: "iam:CreateRole AccessDenied", gone.id: "503"}
    assert report.deregistered == []
    assert world.ledger.records[GONE] == gone.id  # still owned: the next run tries again
    assert report.to_dict()["failed"] == report.failed


def test_an_account_refusing_access_during_apply_is_reported_failed() -> None:
    world = standard_world()
    service = fleet(world)
    plan = service.plan()
    world.members.refuse.add(DRIFTED.account_id)

    report = service.apply(plan, requests_per_minute=20)

    assert report.applied == [NEW.account_id]
    assert report.failed == {DRIFTED.account_id: f"no access role could be assumed in {DRIFTED.account_id}"}


def test_applying_a_plan_without_changes_writes_nothing() -> None:
    world = world_with({}, IN_ORDER)
    in_order(world, IN_ORDER)
    service = fleet(world)

    report = service.apply(service.plan(), requests_per_minute=20)

    assert report.to_dict() == {"applied": [], "deregistered": [], "failed": {}, "refused": {}, "unchanged": []}
    assert world.cloudcraft_client.writes == []
    assert world.members.writes == []


# --- the summary -----------------------------------------------------------------------------------------


def test_the_summary_of_a_plan_that_failed_says_nothing_was_changed() -> None:
    note = failed_run_notification("organizations:ListRoots AccessDenied")

    assert note.subject == "Gatehouse: reconciliation FAILED"
    assert "Why: organizations:ListRoots AccessDenied" in note.text
    assert "Nothing was changed." in note.text
    assert note.attributes == {"event_kind": "reconciliation", "outcome": "failed"}


def test_the_summary_counts_actions_queued_repairs_failures_and_foreign_orphans() -> None:
    world = standard_world()
    world.members.refuse.add(IN_ORDER.account_id)
    lab = world.cloudcraft_client.add(OUTSIDE.account_id, name="lab registration")
    plan = fleet(world).plan()

    note = run_notification(RunTally.of(plan, queued=2), repair=True)

    assert note.subject == "Gatehouse: reconciliation failed (4 accounts)"
    assert note.attributes == {"event_kind": "reconciliation", "outcome": "failed"}
    lines = note.text.split("\n")
    assert "  create role: 1" in lines
    assert "  repair policy: 1" in lines
    assert "  out of scope: 1" in lines
    assert "2 repairs queued for the fleet worker." in lines
    assert "Accounts that could not be read:" in lines
    unreadable = f"no access role could be assumed in {IN_ORDER.account_id}"
    assert f"  {unreadable} (1 account(s): {IN_ORDER.account_id})" in lines
    outside = "the account sits in Sandbox, outside settings.scope_ous"
    assert f"  {outside} (1 account(s): lab registration ({OUTSIDE.account_id}))" in lines
    assert note.body["queued"] == 2
    assert note.body["failed"] == {IN_ORDER.account_id: f"no access role could be assumed in {IN_ORDER.account_id}"}
    assert note.body["categories"]["orphan not owned (left alone)"]["count"] == 1
    assert lab.id not in note.text  # named by its name and account, as people know it


@pytest.mark.parametrize(("repair", "line"), [(True, "0 repairs queued"), (False, "Repairs not queued")])
def test_the_summary_of_drift_says_whether_repairs_were_queued(repair: bool, line: str) -> None:
    plan = fleet(standard_world()).plan()

    note = run_notification(RunTally.of(plan, queued=0), repair=repair)

    assert note.attributes["outcome"] == "drift"
    assert line in note.text


def test_the_summary_of_a_fleet_in_order() -> None:
    world = world_with({}, IN_ORDER)
    in_order(world, IN_ORDER)

    note = run_notification(RunTally.of(fleet(world).plan(), queued=0), repair=True)

    assert note.subject == "Gatehouse: reconciliation in-order (1 accounts)"
    assert "queued" not in note.text


# --- the scheduled reconciliation ------------------------------------------------------------------------


def reconcile(world: FakeServices) -> dict[str, Any]:
    """The scheduled run and then its pages, each planned by reconcile_page; the run's completed result."""
    set_services(world)  # type: ignore[arg-type]
    started: dict[str, Any] = handlers.handle_reconcile({}, LambdaContextStub())
    if started["outcome"] == "failed":
        return started
    completed = None
    for number, page in enumerate(world.plan_queue.sent):
        record = {"messageId": f"page-{number}", "receiptHandle": "r", "body": json.dumps(page), "attributes": {}}
        response = handlers.handle_reconcile_page({"Records": [record]}, LambdaContextStub())
        assert response["batchItemFailures"] == []
        completed = response["pages"][0]["completed"] or completed
    assert completed is not None
    return dict(completed)


def test_reconciliation_queues_one_message_per_repair_and_sends_one_summary() -> None:
    world = standard_world()
    world.ledger.records[GONE] = world.cloudcraft_client.add(GONE).id

    outcome = reconcile(world)

    assert (outcome["outcome"], outcome["queued"]) == ("drift", 3)
    queued = {(m["action"], m["account_id"]) for m in world.work_queue.sent}
    assert queued == {("apply", NEW.account_id), ("apply", DRIFTED.account_id), ("deregister", GONE)}
    [note] = world.notifier.sent
    assert note.body["queued"] == 3
    assert world.cloudcraft_client.writes == []
    assert world.members.writes == []


def test_report_mode_queues_nothing() -> None:
    world = standard_world({"reconcile": "report"})

    outcome = reconcile(world)

    assert (outcome["outcome"], outcome["queued"]) == ("drift", 0)
    assert world.work_queue.sent == []
    assert "Repairs not queued: reconcile=report." in world.notifier.sent[0].text


def test_a_reconciliation_that_cannot_plan_queues_nothing_and_says_so() -> None:
    world = standard_world()
    world.directory.script.fail_next("list", AwsError("organizations:ListRoots AccessDenied"))

    outcome = reconcile(world)

    assert outcome["outcome"] == "failed"
    assert outcome["reason"] == "organizations:ListRoots AccessDenied"
    assert world.plan_queue.sent == []
    assert world.work_queue.sent == []
    [note] = world.notifier.sent
    assert note.subject == "Gatehouse: reconciliation FAILED"
