"""Which accounts are in scope, and the reason given when one is not."""

from __future__ import annotations

import pytest

from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.planning.scope import check_scope

PROD = MemberAccount(
    "222222222222", "payments-prod", ou_ids=("ou-ab12-11111111", "ou-ab12-22222222"), ou_path="Workloads/Prod"
)


def test_whole_organization_by_default() -> None:
    assert check_scope(PROD, parse_settings({})).in_scope


@pytest.mark.parametrize("entry", ["Workloads", "Workloads/Prod", "ou-ab12-11111111", "ou-ab12-22222222"])
def test_nested_ous_are_included(entry: str) -> None:
    decision = check_scope(PROD, parse_settings({"scope_ous": [entry]}))
    assert decision.in_scope
    assert entry in decision.reason


@pytest.mark.parametrize("entry", ["Work", "Workloads/Prod/Deep", "Sandbox", "ou-ab12-33333333"])
def test_other_ous_are_out(entry: str) -> None:
    decision = check_scope(PROD, parse_settings({"scope_ous": [entry]}))
    assert not decision.in_scope
    assert "Workloads/Prod" in decision.reason


def test_opt_out_tag_and_exclusions_and_status() -> None:
    tagged = MemberAccount("222222222222", "x", tags={"gatehouse:opt-out": "true"})
    assert "opts out" in check_scope(tagged, parse_settings({})).reason
    other_value = MemberAccount("222222222222", "x", tags={"gatehouse:opt-out": "false"})
    assert check_scope(other_value, parse_settings({})).in_scope
    any_value = parse_settings({"opt_out_tag": {"key": "skip", "value": None}})
    assert not check_scope(MemberAccount("222222222222", "x", tags={"skip": ""}), any_value).in_scope
    excluded = parse_settings({"exclude_accounts": ["222222222222"]})
    assert "exclude_accounts" in check_scope(PROD, excluded).reason
    suspended = MemberAccount("222222222222", "x", status="SUSPENDED")
    assert "SUSPENDED" in check_scope(suspended, parse_settings({})).reason
