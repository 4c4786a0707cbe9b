from __future__ import annotations

import pytest

from chalicelib.approvals.rules.compile import parse_ruleset
from chalicelib.approvals.rules.schema import RuleSetProblem
from chalicelib.core.errors import ConfigurationError, EventParseError
from chalicelib.core.ids import Arn, RoleArn, is_region, is_role_name, parse_arn, parse_role_arn
from chalicelib.core.settings import parse_settings
from chalicelib.events import parse_departure

ASCII = "123456789012"


def digits(zero: int, text: str = ASCII) -> str:
    """`text` with each ASCII digit replaced by the same digit of the script whose zero is `zero`."""
    return "".join(chr(zero + int(ch)) if ch.isascii() and ch.isdigit() else ch for ch in text)


# Twelve digits to str.isdigit() and to an unflagged \d, none of them ASCII.
ARABIC_INDIC = digits(0x0660)


@pytest.mark.parametrize("value", ["eu-west-1", "us-east-1", "ap-southeast-3", "us-gov-west-1", "us-isob-east-1"])
def test_region_names(value: str) -> None:
    assert is_region(value)


@pytest.mark.parametrize(
    "value", ["moon-base-1", "eu-west", "EU-WEST-1", digits(0x0660, "eu-west-1"), "eu-west-1\n", "", None]
)
def test_not_region_names(value: object) -> None:
    assert not is_region(value)


def test_role_names_are_what_iam_allows() -> None:
    assert is_role_name("Cloudcraft_Read+=,.@-1")
    assert is_role_name("r" * 64)
    assert not is_role_name("r" * 65)
    assert not is_role_name("rôle")
    assert not is_role_name("a/b")
    assert not is_role_name("")


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (
            "arn:aws:iam::123456789012:role/service-role/Builder",
            Arn("aws", "iam", "", "123456789012", "role", "service-role/Builder"),
        ),
        (
            "arn:aws-cn:iam::123456789012:role/cloudcraft",
            Arn("aws-cn", "iam", "", "123456789012", "role", "cloudcraft"),
        ),
        (
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:ops",
            Arn("aws-us-gov", "sns", "us-gov-west-1", "123456789012", "", "ops"),
        ),
        (
            "arn:aws-iso-b:proton:us-isob-east-1:123456789012:environment-account-connection/abc",
            Arn("aws-iso-b", "proton", "us-isob-east-1", "123456789012", "environment-account-connection", "abc"),
        ),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:gatehouse:live",
            Arn("aws", "lambda", "eu-west-1", "123456789012", "function", "gatehouse:live"),
        ),
        ("arn:aws:iam::aws:policy/ReadOnlyAccess", Arn("aws", "iam", "", "aws", "policy", "ReadOnlyAccess")),
        ("arn:aws:s3:::bucket-name", Arn("aws", "s3", "", "", "", "bucket-name")),
    ],
)
def test_parse_arn_reads_every_partition(arn: str, expected: Arn) -> None:
    assert parse_arn(arn) == expected


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:",  # no resource
        "arn:azure:iam::123456789012:role/r",  # not an AWS partition
        "arn:aws:iam::12345678901:role/r",  # eleven digits
        f"arn:aws:iam::{ARABIC_INDIC}:role/r",  # non-ASCII digits
        "arn:aws:sns:moon-base-1:123456789012:ops",  # not a region
        "arn:aws:iam::123456789012:role/r\n",
        "arn:aws:iam::123456789012:role/a b",
        "role/r",
        "arn:aws:iam::123456789012:role/" + "r" * 2048,  # longer than any ARN
        None,
    ],
)
def test_parse_arn_refuses_what_is_not_an_arn(arn: object) -> None:
    assert parse_arn(arn) is None


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        ("arn:aws-cn:iam::123456789012:role/a/b/R", RoleArn("aws-cn", "123456789012", "a/b/", "R")),
        ("arn:aws-us-gov:iam::123456789012:role/R", RoleArn("aws-us-gov", "123456789012", "", "R")),
        ("arn:aws:iam::aws:role/R", None),  # not an account
        ("arn:aws:iam::123456789012:role/a//R", None),  # empty path segment
        ("arn:azure:iam::123456789012:role/R", None),
    ],
)
def test_parse_role_arn_in_any_partition(arn: str, expected: RoleArn | None) -> None:
    assert parse_role_arn(arn, partition=None) == expected


# --- every place that reads an account ID refuses non-ASCII digits -------------------------------------------


def test_settings_refuse_non_ascii_digits_in_account_ids_and_regions() -> None:
    for document in ({"exclude_accounts": [ARABIC_INDIC]}, {"validation_region": digits(0x0660, "us-east-1")}):
        with pytest.raises(ConfigurationError, match=next(iter(document))):
            parse_settings(document)


def test_rules_refuse_non_ascii_digits_in_account_ids() -> None:
    document = '{"mode": "enforce", "rules": [{"name": "r", "action": "accept", "when": {"account_ids": ["%s"]}}]}'
    assert not isinstance(parse_ruleset(document % "123456789012"), RuleSetProblem)
    assert isinstance(parse_ruleset(document % ARABIC_INDIC), RuleSetProblem)


def test_events_refuse_non_ascii_digits_in_account_ids() -> None:
    event = {
        "id": "e1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.organizations",
        "detail": {"eventName": "RemoveAccountFromOrganization", "requestParameters": {"accountId": ARABIC_INDIC}},
    }
    with pytest.raises(EventParseError, match="not a 12-digit AWS account ID"):
        parse_departure(event)
