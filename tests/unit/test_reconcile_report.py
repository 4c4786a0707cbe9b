"""The reconciliation's summary fits one SNS message at any size, and says where the full report is."""

from __future__ import annotations

import json

from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES
from chalicelib.fleet.report import REPORT_MESSAGE, ReportLocation, report_entries
from chalicelib.fleet.service import reconciliation_notification
from chalicelib.planning.plan import AccountPlan, FleetPlan, OrphanPlan
from chalicelib.planning.registration import RegistrationPlan
from chalicelib.planning.scope import ScopeDecision

IN = ScopeDecision(True, "in scope")
OUT = ScopeDecision(False, "OU Sandbox is not in scope_ous")
LOCATION = ReportLocation("/aws/lambda/gatehouse-prod-reconcile", "run123")


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
    note = reconciliation_notification(plan, "", queued=8, repair=True, run_id="run123", location=LOCATION)
    assert "truncated" not in note.body
    assert len(note.body["accounts"]) == 20
    assert note.body["run_id"] == "run123"
    assert "Run: run123" in note.text


def test_five_thousand_accounts_fit_keep_the_counts_the_first_entries_and_say_where_the_rest_is() -> None:
    plan = fleet_plan(5000)
    note = reconciliation_notification(plan, "", queued=2000, repair=True, run_id="run123", location=LOCATION)

    assert note.sns_size() <= SNS_MESSAGE_MAX_BYTES
    body = note.body
    assert body["truncated"] is True
    assert body["summary"] == dict(plan.summary())  # every count, exact
    assert body["summary"]["error"] == 1000
    unreadable = body["categories"]["could not be read"]
    assert unreadable["count"] == 1000
    assert 0 < len(unreadable["first"]) <= 50
    assert unreadable["left_out"] == 1000 - len(unreadable["first"])
    assert unreadable["first"][0]["account_id"] == "100000000000"
    assert body["categories"]["changes"]["count"] == 2000
    assert body["categories"]["deregister orphan"]["count"] == 250
    assert body["full_report"]["log_group"] == "/aws/lambda/gatehouse-prod-reconcile"
    query = body["full_report"]["logs_insights_query"]
    assert f'message = "{REPORT_MESSAGE}"' in query
    assert 'run_id = "run123"' in query
    assert query in note.text
    assert "entries are left out" in note.text
    assert "Accounts that could not be read (" in note.text
    json.loads(note.sns_message())


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
