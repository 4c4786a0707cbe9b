"""The one home of AWS identifier shapes: account IDs, regions and their partitions, IAM names and ARNs (pure).

Every pattern spells its character classes out ([0-9], [A-Za-z]): Python's \\d and \\w, and those of the regex
engine behind pydantic's `Field(pattern=...)`, also match non-ASCII digits and letters, which no AWS
identifier contains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Plain strings for pydantic's Field(pattern=...); compiled below for everything else.
ACCOUNT_ID_PATTERN = r"^[0-9]{12}$"
_REGION_BODY = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}"
REGION_PATTERN = rf"^{_REGION_BODY}$"
_IAM_NAME_CHAR = r"[A-Za-z0-9_+=,.@-]"  # what IAM allows in role names and path segments
ROLE_NAME_PATTERN = rf"^{_IAM_NAME_CHAR}{{1,64}}$"
# aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b...
_PARTITION = r"aws(?:-[a-z]+)*"
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

MAX_ARN_LENGTH = 2048  # IAM's limit for a role ARN; no ARN Gatehouse reads is longer

_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
_REGION = re.compile(REGION_PATTERN)
_ROLE_NAME = re.compile(ROLE_NAME_PATTERN)
# arn:<partition>:<service>:<region>:<account>:<resource>. The region and the account may be empty (IAM,
# S3), and the account of an AWS-managed policy is "aws".
_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION})"
    r":(?P<service>[a-z0-9][a-z0-9-]*)"
    rf":(?P<region>{_REGION_BODY})?"
    r":(?P<account>[0-9]{12}|aws)?"
    r":(?P<resource>\S+)"
)
# arn:<partition>:iam::<account>:role/<path/>name, with IAM's character set for paths and names.
_ROLE_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):iam::(?P<account>[0-9]{{12}}):role/"
    rf"(?P<path>(?:{_IAM_NAME_CHAR}{{1,512}}/)*)(?P<name>{_IAM_NAME_CHAR}{{1,64}})"
)


def is_account_id(value: object) -> bool:
    """Exactly twelve ASCII digits."""
    return isinstance(value, str) and _ACCOUNT_ID.fullmatch(value) is not None


def is_region(value: object) -> bool:
    """An AWS region name such as eu-west-1, us-gov-west-1 or us-isob-east-1."""
    return isinstance(value, str) and _REGION.fullmatch(value) is not None


def partition_for_region(region: str | None) -> str:
    """The partition a region belongs to (`aws` when the region is unknown or empty)."""
    for prefix, partition in _PARTITION_PREFIXES:
        if region and region.startswith(prefix):
            return partition
    return DEFAULT_PARTITION


def is_role_name(value: object) -> bool:
    """A name IAM allows for a role: 1 to 64 of A-Z a-z 0-9 _+=,.@-."""
    return isinstance(value, str) and _ROLE_NAME.fullmatch(value) is not None


@dataclass(frozen=True)
class Arn:
    """The parts of an ARN. `resource_type` is what comes before the resource's first "/" or ":"
    ("role" in role/path/name), or "" when there is no such separator; `resource_name` is the rest."""

    partition: str
    service: str
    region: str
    account: str
    resource_type: str
    resource_name: str


def parse_arn(arn: object) -> Arn | None:
    """The parts of `arn`, or None when it is not an ARN (or is longer than any ARN Gatehouse reads)."""
    if not isinstance(arn, str) or len(arn) > MAX_ARN_LENGTH:
        return None
    match = _ARN.fullmatch(arn)
    if match is None:
        return None
    resource = match["resource"]
    cut = next((i for i, ch in enumerate(resource) if ch in "/:"), None)
    resource_type, resource_name = ("", resource) if cut is None else (resource[:cut], resource[cut + 1 :])
    return Arn(
        partition=match["partition"],
        service=match["service"],
        region=match["region"] or "",
        account=match["account"] or "",
        resource_type=resource_type,
        resource_name=resource_name,
    )


@dataclass(frozen=True)
class RoleArn:
    partition: str
    account_id: str
    path: str  # "" or "a/b/"
    name: str


def parse_role_arn(arn: object, *, partition: str | None = DEFAULT_PARTITION) -> RoleArn | None:
    """The parts of an IAM role ARN in `partition` (None: in any partition), or None when `arn` is anything else:
    another partition, service or resource type, a region (IAM has none), an account ID that is not twelve ASCII
    digits, a path or name IAM does not allow. The approval engine reads up to three per request: one match."""
    if not isinstance(arn, str) or len(arn) > MAX_ARN_LENGTH:
        return None
    match = _ROLE_ARN.fullmatch(arn)
    if match is None or (partition is not None and match["partition"] != partition):
        return None
    return RoleArn(match["partition"], match["account"], match["path"], match["name"])


def same_iam_name(first: str, second: str) -> bool:
    """IAM role (and user, policy) names are unique regardless of case: `Admin` and `admin` are one name."""
    return first.lower() == second.lower()
