"""Work items: the account, the action and the run, validated before anything else; nothing else travels."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.workqueue import WorkItem, WorkItemError, parse_work_item, work_messages
from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import CloudcraftIdentity, FleetPlan, MemberView, OrphanPlan, plan_account
from tests.fakes import Reg

GOOD = {"action": "apply", "account_id": "222222222222", "run_id": "3f9a0c1b2d4e"}


def test_a_work_item_is_the_account_the_action_and_the_run() -> None:
    assert parse_work_item(json.dumps(GOOD)) == WorkItem("apply", "222222222222", "3f9a0c1b2d4e")
    assert parse_work_item(json.dumps({**GOOD, "action": "deregister"})).action == "deregister"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        # What the worker used to trust: registrations and IDs carried in the message.
        ({**GOOD, "registrations": [{"id": "cc-1", "roleArn": "arn:aws:iam::222222222222:role/x"}]}, "unknown"),
        ({"kind": "deregister", "registration_id": "cc-9", "aws_account_id": "222222222222"}, "unknown"),
        ({"action": "apply", "account_id": "222222222222"}, "missing field(s) 'run_id'"),
        ({**GOOD, "action": "delete-everything"}, "action 'delete-everything' is not one of apply, deregister"),
        ({**GOOD, "account_id": "٢٢٢٢٢٢٢٢٢٢٢٢"}, "not a 12-digit AWS account ID"),
        ({**GOOD, "account_id": 222222222222}, "not a 12-digit AWS account ID"),
        ({**GOOD, "run_id": "../../etc"}, "not a run ID"),
        ({**GOOD, "run_id": ["x"]}, "not a run ID"),
        ([GOOD], "must be a JSON object"),
    ],
)
def test_anything_else_is_malformed_and_says_why(body: Any, fragment: str) -> None:
    with pytest.raises(WorkItemError) as raised:
        parse_work_item(json.dumps(body))
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[" * 10_000 + "]" * 10_000, "the limit is 1,024 bytes"),
        ('{"action": ' + "[" * 500 + "]" * 500 + "}", "nested more than 4 levels deep"),
        ('{"action": "apply", ' + " " * 2000 + "}", "the limit is 1,024 bytes"),
        ("not json", "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_deep_huge_or_broken_bodies_are_named_errors(body: str, fragment: str) -> None:
    with pytest.raises(WorkItemError, match=fragment):
        parse_work_item(body)


def test_ten_thousand_levels_within_the_size_limit_are_refused_too() -> None:
    # A body may be small and deep: depth is checked before json recurses.
    with pytest.raises(WorkItemError, match="nested more than 4 levels deep"):
        parse_work_item("[" * 400 + "]" * 400)


def test_the_messages_of_a_plan_name_accounts_and_actions_only() -> None:
    settings = parse_settings({})
    new = MemberAccount("222222222222", "new")
    plan = FleetPlan(
        accounts=[
            plan_account(
                new,
                settings,
                CloudcraftIdentity("999999999999", "ext-id-1"),
                MemberView("OAAR"),
                registrations=[],
                owned={},
                organization=OrganizationIds(),
            ),
            plan_account(
                MemberAccount("333333333333", "unreadable"),
                settings,
                CloudcraftIdentity("999999999999", "ext-id-1"),
                None,
                registrations=[],
                owned={},
                organization=OrganizationIds(),
            ),
        ],
        orphans=[
            OrphanPlan("cc-9", "left", "444444444444", True, "not a member"),
            OrphanPlan("cc-8", "someone's", "555555555555", False, "not a member"),
            OrphanPlan("cc-7", "no account", None, True, "not a member"),
        ],
        registrations=[Reg("cc-9", "left", "arn:aws:iam::444444444444:role/cloudcraft")],
    )

    messages = work_messages(plan, "run1")

    assert messages == [
        {"action": "apply", "account_id": "222222222222", "run_id": "run1"},
        {"action": "deregister", "account_id": "444444444444", "run_id": "run1"},
    ]
    assert all(parse_work_item(json.dumps(message)) for message in messages)
