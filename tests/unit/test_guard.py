"""The trust principal and external ID Gatehouse accepts from Cloudcraft, and when a principal change waits (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.planning.guard import (
    OrganizationIds,
    UnsafeAnswer,
    check_external_id,
    check_trusted_account,
    principal_change,
    trusted_accounts,
)

ORG = OrganizationIds("123456789012", frozenset({"222222222222", "333333333333"}))


def test_an_account_outside_the_organization_is_accepted() -> None:
    assert check_trusted_account("968898580625", pin=None, organization=ORG) == "968898580625"
    assert check_trusted_account("968898580625", pin="968898580625", organization=ORG) == "968898580625"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("123456789012", "the Organization's management account"),
        ("222222222222", "an account of this Organization"),
        ("*", "not a 12-digit AWS account ID"),
        ("arn:aws:iam::968898580625:root", "not a 12-digit"),
        ("96889858062", "not a 12-digit"),
        ("968898580625\n", "not a 12-digit"),
        ("\u0669" * 12, "not a 12-digit"),  # Arabic-Indic digits: str.isdigit() says yes, IAM says no
        (968898580625, "not a 12-digit"),
        (None, "not a 12-digit"),
        ("", "not a 12-digit"),
    ],
)
def test_a_principal_that_is_not_a_foreign_account_is_refused(answer: Any, why: str) -> None:
    with pytest.raises(UnsafeAnswer) as caught:
        check_trusted_account(answer, pin=None, organization=ORG)
    assert why in str(caught.value)
    assert "no role was written" in str(caught.value)


def test_the_pin_refuses_any_other_answer_and_says_how_to_move_it() -> None:
    with pytest.raises(UnsafeAnswer) as caught:
        check_trusted_account("999999999999", pin="968898580625", organization=ORG)
    assert "not the pinned cloudcraft_aws_account_id 968898580625" in str(caught.value)
    assert "set cloudcraft_aws_account_id to 999999999999" in str(caught.value)


def test_without_a_pin_the_account_of_record_refuses_any_other_answer() -> None:
    assert check_trusted_account("968898580625", pin=None, recorded="968898580625", organization=ORG)
    with pytest.raises(UnsafeAnswer) as caught:
        check_trusted_account("999999999999", pin=None, recorded="968898580625", organization=ORG)
    assert "not 968898580625, the account every role Gatehouse wrote so far trusts" in str(caught.value)
    assert "set cloudcraft_aws_account_id to 999999999999" in str(caught.value)
    # The pin is the operator's word: it moves the principal whatever was recorded.
    assert check_trusted_account("999999999999", pin="999999999999", recorded="968898580625", organization=ORG)


def test_an_answer_refused_shows_at_most_a_short_quote_of_itself() -> None:
    with pytest.raises(UnsafeAnswer) as caught:
        check_trusted_account("9" * 10_000, pin=None, organization=ORG)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("answer", ["ab", "7d6c1f2e-aaaa-4bbb-8ccc-0123456789ab", "a+b=c,d.e@f:g/h-i_j", "x" * 1224])
def test_usable_external_ids_pass(answer: str) -> None:
    assert check_external_id(answer) == answer


@pytest.mark.parametrize("answer", ["", " ", "   ", "a", "x" * 1225, "ext id", "ext\nid", "ext\x00", "é-id", 7, None])
def test_blank_short_long_or_odd_external_ids_are_refused_without_being_echoed(answer: Any) -> None:
    with pytest.raises(UnsafeAnswer) as caught:
        check_external_id(answer)
    assert "not a usable external ID" in str(caught.value)
    if isinstance(answer, str) and len(answer) > 3:
        assert answer not in str(caught.value)


@given(st.text(max_size=40))
def test_external_id_check_accepts_exactly_what_sts_accepts(answer: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@:/-")
    sts_accepts = 2 <= len(answer) <= 1224 and set(answer) <= allowed
    try:
        check_external_id(answer)
        accepted = True
    except UnsafeAnswer:
        accepted = False
    assert accepted == sts_accepts


def test_trusted_accounts_reads_arns_bare_ids_and_star() -> None:
    assert trusted_accounts(
        ["arn:aws:iam::999999999999:root", "888888888888", "arn:aws-us-gov:iam::777777777777:role/x", "*", "None"]
    ) == {"999999999999", "888888888888", "777777777777", "*"}


@pytest.mark.parametrize(
    ("current", "pin", "held"),
    [
        (["arn:aws:iam::999999999999:root"], None, False),  # already trusts the answer: a repair, not a move
        (["arn:aws:iam::999999999999:root", "arn:aws:iam::666666666666:root"], None, False),  # narrowed
        (["*"], None, False),  # anyone → the answer: narrowed
        ([], None, False),  # nobody (a service principal, a broken trust): like a new role
        (["arn:aws:iam::666666666666:root"], None, True),
        (["arn:aws:iam::666666666666:root"], "999999999999", False),  # the settings pin the new account
        (["arn:aws:iam::666666666666:root"], "555555555555", True),
    ],
)
def test_a_move_to_another_account_waits_for_the_pin(current: list[str], pin: str | None, held: bool) -> None:
    why = principal_change(current, "999999999999", pin=pin)
    assert (why is not None) == held
    if why:
        assert "set cloudcraft_aws_account_id to 999999999999" in why
