"""AWS identifiers: twelve ASCII digits, role ARNs of the deployment's partition, IAM names regardless of case."""

from __future__ import annotations

import pytest

from chalicelib.core.ids import RoleArn, is_account_id, parse_role_arn, partition_for_region, same_iam_name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123456789012", True),
        ("012345678901", True),
        ("١٢٣٤٥٦٧٨٩٠١٢", False),  # Arabic-Indic digits: \d matches them
        ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10\uff11\uff12", False),  # fullwidth digits
        ("123456789012\n", False),  # `$` would allow this newline
        (" 123456789012", False),
        ("12345678901", False),
        ("12345678901\u0968", False),  # one Devanagari digit at the end
        ("12345678901a", False),
        ("", False),
        ("1234567890123", False),
        (123456789012, False),  # the API sends strings
        (None, False),
    ],
)
def test_account_ids_are_exactly_twelve_ascii_digits(value: object, expected: bool) -> None:
    assert is_account_id(value) is expected


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-central-2", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("", "aws"),
        (None, "aws"),
    ],
)
def test_the_partition_follows_the_region(region: str | None, partition: str) -> None:
    assert partition_for_region(region) == partition


def test_role_arns_are_parsed_in_one_partition() -> None:
    arn = "arn:aws:iam::123456789012:role/path/to/Role+=,.@-_1"
    assert parse_role_arn(arn) == RoleArn("aws", "123456789012", "path/to/", "Role+=,.@-_1")
    assert parse_role_arn("arn:aws-cn:iam::123456789012:role/R") is None
    assert parse_role_arn("arn:aws-cn:iam::123456789012:role/R", partition="aws-cn") == RoleArn(
        "aws-cn", "123456789012", "", "R"
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:user/R",  # another resource type
        "arn:aws:sts::123456789012:role/R",  # another service
        "arn:aws:iam:us-east-1:123456789012:role/R",  # IAM has no region
        "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/R",
        "arn:aws:iam::123456789012:role/Rôle",  # IAM names are ASCII
        "arn:aws:iam::123456789012:role/R\n",
        "arn:aws:iam::123456789012:role/" + "R" * 65,
        "arn:aws:iam::123456789012:role/" + "p/" * 1100 + "R",  # longer than any ARN
        42,
    ],
)
def test_anything_but_a_role_arn_is_none(arn: object) -> None:
    assert parse_role_arn(arn) is None


def test_iam_names_compare_regardless_of_case() -> None:
    assert same_iam_name("OrganizationAccountAccessRole", "organizationaccountaccessrole")
    assert not same_iam_name("cloudcraft", "cloudcraft-read")
