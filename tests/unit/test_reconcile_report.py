"""The reconciliation's summary fits one SNS message at any size, and says where the full report is."""

from __future__ import annotations

import json

from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES
from chalicelib.fleet.report import (
    EXAMPLES,
    REASONS,
    REPORT_MESSAGE,
    ReportLocation,
    RunTally,
    report_entries,
    run_notification,
)
from chalicelib.planning.plan import AccountPlan, FleetPlan, OrphanPlan
from chalicelib.planning.registration import RegistrationPlan
from chalicelib.planning.scope import ScopeDecision

IN = ScopeDecision(True, "in scope")
OUT = ScopeDecision(False, "OU Sandbox is not in scope_ous")
LOCATION = ReportLocation.of_function("/aws/lambda/gatehouse-prod-reconcile_page", "run123")


def account(i: int) -> MemberAccount:
    return MemberAccount(f"{100000000000 + i}", f"account-{i:04d}", ou_path=f"Workloads/Team-{i % 40}")


def fleet_plan(size: int) -> FleetPlan:
    """`size` accounts: a fifth each unreadable, to register, in order, out of scope, and to register again."""
    plans = []
    for i in range(size):
        kind = i % 5
        if kind == 0:
            plans.append(
                AccountPlan(account(i), IN, error=f"no access role could be assumed in {account(i).account_id}")
            )
        elif kind in (1, 4):
            plans.append(AccountPlan(account(i), IN, registration=RegistrationPlan("create", None)))
        elif kind == 2:
            plans.append(AccountPlan(account(i), IN, registration=RegistrationPlan("none", None)))
        else:
            plans.append(AccountPlan(account(i), OUT))
    orphans = [OrphanPlan(f"reg-{i}", f"gone-{i}", f"9{i:011d}", i % 2 == 0, "not a member") for i in range(size // 10)]
    return FleetPlan(accounts=plans, orphans=orphans)


def test_a_small_run_is_summarised_in_full() -> None:
    plan = fleet_plan(20)
    note = run_notification(RunTally.of(plan, queued=8), repair=True, run_id="run123", location=LOCATION)
    assert note.body["truncated"] is False
    assert note.body["accounts"] == 20
    assert note.body["run_id"] == "run123"
    assert "Run: run123" in note.text
    assert "left out" not in note.text


def test_five_thousand_accounts_fit_keep_the_counts_the_first_entries_and_say_where_the_rest_is() -> None:
    plan = fleet_plan(5000)
    note = run_notification(RunTally.of(plan, queued=2000), repair=True, run_id="run123", location=LOCATION)

    assert note.sns_size() <= SNS_MESSAGE_MAX_BYTES // 4  # bounded by reasons and examples, not accounts
    body = note.body
    assert body["truncated"] is True
    assert body["summary"] == dict(plan.summary())  # every count, exact
    assert body["summary"]["error"] == 1000
    unreadable = body["categories"]["could not be read"]
    assert unreadable["count"] == 1000
    assert len(unreadable["reasons"]) == REASONS  # one reason per account here: the first twenty named
    assert unreadable["other_reasons"] == 1000 - REASONS
    assert unreadable["reasons"][0]["examples"] == ["100000000000"]
    assert body["categories"]["changes"]["count"] == 2000
    assert body["categories"]["changes"]["reasons"][0]["count"] == 2000
    assert len(body["categories"]["changes"]["reasons"][0]["examples"]) == EXAMPLES
    assert "register (2000 account(s): 100000000001, 100000000004" in note.text
    assert body["categories"]["deregister orphan"]["count"] == 250
    assert body["full_report"]["log_groups"] == [
        "/aws/lambda/gatehouse-prod-reconcile",
        "/aws/lambda/gatehouse-prod-reconcile_page",
    ]
    query = body["full_report"]["logs_insights_query"]
    assert f'message = "{REPORT_MESSAGE}"' in query
    assert 'run_id = "run123"' in query
    assert query in note.text
    assert "entries are left out" in note.text
    json.loads(note.sns_message())


def test_pages_add_up_to_the_tally_of_the_whole_plan() -> None:
    """However the Organization is cut into pages, the run's tally is the whole plan's: same counts, same
    reasons, examples in page order."""
    plan = fleet_plan(1000)
    whole = RunTally.of(plan, queued=400)
    total = RunTally()
    for start in range(0, 1000, 75):
        page = FleetPlan(accounts=plan.accounts[start : start + 75])
        part = RunTally.of(page, queued=sum(p.changes for p in page.accounts))
        total.merge(RunTally.from_dict(json.loads(json.dumps(part.to_dict()))))  # as stored and read back
    total.merge(RunTally.of(FleetPlan(orphans=plan.orphans), queued=0))
    assert total.to_dict() == whole.to_dict()
    assert total.outcome == whole.outcome == "failed"


def test_the_full_report_has_one_entry_per_account_and_per_orphan() -> None:
    plan = fleet_plan(50)
    entries = list(report_entries(plan))
    assert len(entries) == 50 + 5
    assert {e["category"] for e in entries} == {
        "could not be read",
        "changes",
        "in order",
        "out of scope",
        "deregister orphan",
        "orphan not owned (left alone)",
    }
    assert entries[1] == {
        "category": "changes",
        "account_id": "100000000001",
        "account_name": "account-0001",
        "ou_path": "Workloads/Team-1",
        "detail": "register",
    }
    # Log records reserve some names: the entries stay clear of them (Powertools raises on `name`, `message`).
    assert not {"name", "message", "msg", "args", "levelname"} & {key for e in entries for key in e}


def test_offboarding_keep_reports_owned_orphans_as_kept() -> None:
    plan = fleet_plan(50)
    plan.offboarding = "keep"
    categories = {e["category"] for e in report_entries(plan)}
    assert "owned orphan kept (offboarding=keep)" in categories
    assert "deregister orphan" not in categories
