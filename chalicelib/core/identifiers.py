"""AWS identifiers as Gatehouse checks them: account IDs, IAM role ARNs, partitions, IAM names (pure).

Python's `\\d` (and pydantic's) also matches non-ASCII digits such as "١٢٣"; AWS identifiers are ASCII, so
every pattern here spells out [0-9] and is compiled with re.ASCII.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# For pydantic `Field(pattern=...)` and plain `re`: exactly twelve ASCII digits.
ACCOUNT_ID_PATTERN = r"^[0-9]{12}$"
_ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)

# arn:<partition>:iam::<account>:role/<path/>name, with IAM's character set for paths and names.
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?P<account>[0-9]{12}):role/"
    r"(?P<path>(?:[A-Za-z0-9_+=,.@-]{1,512}/)*)(?P<name>[A-Za-z0-9_+=,.@-]{1,64})",
    re.ASCII,
)
ROLE_ARN_MAX = 2048
DEFAULT_PARTITION = "aws"

# Region prefixes of the partitions other than `aws` (botocore's endpoints data, restated so this stays pure).
_PARTITION_PREFIXES = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-isof-", "aws-iso-f"),
)


def is_account_id(value: object) -> bool:
    """Exactly twelve ASCII digits: no spaces, no signs, no other scripts' digits, no trailing newline."""
    return isinstance(value, str) and _ACCOUNT_ID.fullmatch(value) is not None


def partition_for_region(region: str | None) -> str:
    """The partition a region belongs to (`aws` when the region is unknown or empty)."""
    for prefix, partition in _PARTITION_PREFIXES:
        if region and region.startswith(prefix):
            return partition
    return DEFAULT_PARTITION


@dataclass(frozen=True)
class RoleArn:
    partition: str
    account_id: str
    path: str  # "" or "a/b/"
    name: str


def parse_role_arn(arn: object, *, partition: str = DEFAULT_PARTITION) -> RoleArn | None:
    """The parts of an IAM role ARN in `partition`, or None when `arn` is anything else (another partition,
    another service, another resource type, a malformed account ID)."""
    if not isinstance(arn, str) or len(arn) > ROLE_ARN_MAX:
        return None
    match = _ROLE_ARN.fullmatch(arn)
    if match is None or match["partition"] != partition:
        return None
    return RoleArn(match["partition"], match["account"], match["path"], match["name"])


def same_iam_name(first: str, second: str) -> bool:
    """IAM role (and user, policy) names are unique regardless of case: `Admin` and `admin` are one name."""
    return first.lower() == second.lower()
